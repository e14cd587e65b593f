// Layout q8g32f (weights_q8g32f.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
// `weight_codes` as vec4<u32>, half a group (16 int8 codes) per element; a float32 scale and min per group.

//!include columns32
//!include bytes

fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    let i = row * (cols / 16u) + 2u * g;  // also the group's (scale, min) pair: two words per 16 columns
    let scale = bitcast<f32>(weight_scales[i]);
    let minimum = bitcast<f32>(weight_scales[i + 1u]);
    return scale * (bytes_dot(weight_codes[i], c.v0, c.v1, c.v2, c.v3) + bytes_dot(weight_codes[i + 1u], c.v4, c.v5, c.v6, c.v7))
         + minimum * c.sum;
}

// Row `row`'s weights over group `g`, dequantized (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    let i = row * (cols / 16u) + 2u * g;
    let scale = bitcast<f32>(weight_scales[i]);
    return bytes_weights(weight_codes[i], weight_codes[i + 1u], scale, scale, bitcast<f32>(weight_scales[i + 1u]));
}
