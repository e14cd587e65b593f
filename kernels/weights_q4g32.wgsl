// Weight layout q4g32 (see notebook_llm/loader/repack.py): 4-bit codes, eight per u32,
// one (f16 scale, f16 min) pair per group of 32 columns; w = scale * q + min.
// The entry kernel declares `weight_codes` and `weight_scales` (array<u32>).

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

// Columns k0..k0+7 of `row` (k0 a multiple of 8) of a matrix with `cols` columns.
fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    let word = weight_codes[row * (cols / 8u) + k0 / 8u];
    let scale_min = unpack2x16float(weight_scales[row * (cols / 32u) + k0 / 32u]);
    let lo = vec4<f32>(vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u));
    let hi = vec4<f32>(vec4<u32>(word >> 16u, word >> 20u, word >> 24u, word >> 28u) & vec4<u32>(15u));
    return Block8(lo * scale_min.x + scale_min.y, hi * scale_min.x + scale_min.y);
}
