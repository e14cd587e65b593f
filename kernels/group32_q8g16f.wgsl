// Layout q8g16f (weights_q8g16f.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
// `weight_codes` as vec4<u32>, 16 int8 codes per element; a float32 scale per 16 columns.

//!include columns32
//!include bytes

fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    let i = row * (cols / 16u) + 2u * g;  // also the first half's scale: one word per 16 columns
    return bitcast<f32>(weight_scales[i]) * bytes_dot(weight_codes[i], c.v0, c.v1, c.v2, c.v3)
         + bitcast<f32>(weight_scales[i + 1u]) * bytes_dot(weight_codes[i + 1u], c.v4, c.v5, c.v6, c.v7);
}

// Row `row`'s weights over group `g`, dequantized (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    let i = row * (cols / 16u) + 2u * g;
    return bytes_weights(weight_codes[i], weight_codes[i + 1u], bitcast<f32>(weight_scales[i]), bitcast<f32>(weight_scales[i + 1u]), 0.0);
}
