// Layout q8g32 (weights_q8g32.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
// `weight_codes` as vec4<u32>, half a group (16 int8 codes) per element; one f16 scale per group,
// two per u32.

//!include columns32
//!include bytes

fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    let i = row * (cols / 16u) + 2u * g;
    let scales = unpack2x16float(weight_scales[row * ((cols + 63u) / 64u) + g / 2u]);
    let scale = select(scales.x, scales.y, (g & 1u) == 1u);
    return scale * (bytes_dot(weight_codes[i], c.v0, c.v1, c.v2, c.v3) + bytes_dot(weight_codes[i + 1u], c.v4, c.v5, c.v6, c.v7));
}

// Row `row`'s weights over group `g`, dequantized (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    let i = row * (cols / 16u) + 2u * g;
    let scales = unpack2x16float(weight_scales[row * ((cols + 63u) / 64u) + g / 2u]);
    let scale = select(scales.x, scales.y, (g & 1u) == 1u);
    return bytes_weights(weight_codes[i], weight_codes[i + 1u], scale, scale, 0.0);
}
