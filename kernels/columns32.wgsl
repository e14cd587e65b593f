// Thirty-two consecutive input values and their sum, as the group32_* layouts take them
// (matvec_broadcast.wgsl, matmul_broadcast.wgsl); v0 holds columns 0..3 of the group, v7 columns 28..31.

struct Columns32 { v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
                   v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>, sum: f32 }

// The 32 values of a group in every lane of a subgroup, from the lanes' own loads, by subgroup
// broadcasts: with 8 or more lanes (`wide`) lane l loaded `a` = values 4(l % 8) .. 4(l % 8) + 3;
// with 4 lanes, `a` = values 4(l % 4) .. and `b` = values 16 + 4(l % 4) ... `sum` is left 0.
fn columns_from_lanes(a: vec4<f32>, b: vec4<f32>, wide: bool) -> Columns32 {
    var c: Columns32;
    c.v0 = subgroupBroadcast(a, 0u);
    c.v1 = subgroupBroadcast(a, 1u);
    c.v2 = subgroupBroadcast(a, 2u);
    c.v3 = subgroupBroadcast(a, 3u);
    if (wide) {
        c.v4 = subgroupBroadcast(a, 4u);
        c.v5 = subgroupBroadcast(a, 5u);
        c.v6 = subgroupBroadcast(a, 6u);
        c.v7 = subgroupBroadcast(a, 7u);
    } else {
        c.v4 = subgroupBroadcast(b, 0u);
        c.v5 = subgroupBroadcast(b, 1u);
        c.v6 = subgroupBroadcast(b, 2u);
        c.v7 = subgroupBroadcast(b, 3u);
    }
    return c;
}
