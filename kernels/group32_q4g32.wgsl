// Layout q4g32 (weights_q4g32.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
// `weight_codes` as vec4<u32>, one group's 32 nibbles per element; one (f16 scale, f16 min) per group.

//!include columns32
//!include nibbles

// Row `row` of a matrix with `cols` columns times the input, over group `g`:
// sum (scale q + min) in = scale (q · in) + min sum(in).
fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    let i = row * (cols / 32u) + g;
    let scale_min = unpack2x16float(weight_scales[i]);
    return scale_min.x * nibbles_dot(weight_codes[i], c) + scale_min.y * c.sum;
}

// Row `row`'s weights over group `g`, dequantized (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    let i = row * (cols / 32u) + g;
    let scale_min = unpack2x16float(weight_scales[i]);
    return nibbles_weights(weight_codes[i], scale_min.x, scale_min.y);
}
