// Thirty-two consecutive input values and their sum, as the group32_* layouts take them
// (matvec_broadcast.wgsl); v0 holds columns 0..3 of the group, v7 columns 28..31.

struct Columns32 { v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
                   v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>, sum: f32 }
