// Layout q4g32f (weights_q4g32f.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
// `weight_codes` as vec4<u32>, one group's 32 nibbles per element; a float32 scale and min per group.

//!include columns32
//!include nibbles

fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    let i = row * (cols / 32u) + g;
    let scale = bitcast<f32>(weight_scales[2u * i]);
    let minimum = bitcast<f32>(weight_scales[2u * i + 1u]);
    return scale * nibbles_dot(weight_codes[i], c) + minimum * c.sum;
}

// Row `row`'s weights over group `g`, dequantized (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    let i = row * (cols / 32u) + g;
    return nibbles_weights(weight_codes[i], bitcast<f32>(weight_scales[2u * i]), bitcast<f32>(weight_scales[2u * i + 1u]));
}
