// Layout f32 (weights_f32.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
// `weight_codes` as vec4<u32>, four floats per element. `weight_scales` is bound but unused.

//!include columns32

fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    _ = weight_scales[0]; // keeps the binding in the auto layout, so every layout binds alike
    let i = row * (cols / 4u) + 8u * g;
    return ((dot(bitcast<vec4<f32>>(weight_codes[i]), c.v0) + dot(bitcast<vec4<f32>>(weight_codes[i + 1u]), c.v1))
          + (dot(bitcast<vec4<f32>>(weight_codes[i + 2u]), c.v2) + dot(bitcast<vec4<f32>>(weight_codes[i + 3u]), c.v3)))
         + ((dot(bitcast<vec4<f32>>(weight_codes[i + 4u]), c.v4) + dot(bitcast<vec4<f32>>(weight_codes[i + 5u]), c.v5))
          + (dot(bitcast<vec4<f32>>(weight_codes[i + 6u]), c.v6) + dot(bitcast<vec4<f32>>(weight_codes[i + 7u]), c.v7)));
}

// Row `row`'s weights over group `g` (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    _ = weight_scales[0];
    let i = row * (cols / 4u) + 8u * g;
    var w: Columns32;
    w.v0 = bitcast<vec4<f32>>(weight_codes[i]);
    w.v1 = bitcast<vec4<f32>>(weight_codes[i + 1u]);
    w.v2 = bitcast<vec4<f32>>(weight_codes[i + 2u]);
    w.v3 = bitcast<vec4<f32>>(weight_codes[i + 3u]);
    w.v4 = bitcast<vec4<f32>>(weight_codes[i + 4u]);
    w.v5 = bitcast<vec4<f32>>(weight_codes[i + 5u]);
    w.v6 = bitcast<vec4<f32>>(weight_codes[i + 6u]);
    w.v7 = bitcast<vec4<f32>>(weight_codes[i + 7u]);
    return w;
}
