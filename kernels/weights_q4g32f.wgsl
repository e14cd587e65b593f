// Weight layout q4g32f (see notebook_llm/loader/repack.py): 4-bit codes, eight per u32, and per
// group of 32 columns a float32 scale and a float32 min (two u32 words); w = scale * q + min.
// GGUF Q4_K's scale d·sc and min −dmin·m need up to 17 significant bits, so f16 (q4g32) would round
// them. scale * q is exact in f32 (at most 21 bits), so a fused multiply-add gives the same bits.
// The entry kernel declares `weight_codes` and `weight_scales` (array<u32>).

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

// Columns k0..k0+7 of `row` (k0 a multiple of 8) of a matrix with `cols` columns.
fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    let word = weight_codes[row * (cols / 8u) + k0 / 8u];
    let pair = row * (cols / 16u) + (k0 / 32u) * 2u;
    let scale = bitcast<f32>(weight_scales[pair]);
    let minimum = bitcast<f32>(weight_scales[pair + 1u]);
    let lo = vec4<f32>(vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u));
    let hi = vec4<f32>(vec4<u32>(word >> 16u, word >> 20u, word >> 24u, word >> 28u) & vec4<u32>(15u));
    return Block8(lo * scale + minimum, hi * scale + minimum);
}
