// Weight layout q8g32f (see notebook_llm/loader/repack.py): int8 codes, four per u32, and per
// group of 32 columns a float32 scale and a float32 min (two u32 words); w = scale * q + min.
// Holds GGUF Q5_K (5-bit codes; scale d·sc and min −dmin·m as Q4_K's, up to 17 significant bits)
// and Q5_1 exactly. scale * q is exact in f32 (at most 22 bits), so a fused multiply-add gives
// the same bits. The entry kernel declares `weight_codes` and `weight_scales` (array<u32>).

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    let base = row * (cols / 4u) + k0 / 4u;
    let pair = row * (cols / 16u) + (k0 / 32u) * 2u;
    let scale = bitcast<f32>(weight_scales[pair]);
    let minimum = bitcast<f32>(weight_scales[pair + 1u]);
    let lo = vec4<f32>(unpack4xI8(weight_codes[base]));
    let hi = vec4<f32>(unpack4xI8(weight_codes[base + 1u]));
    return Block8(lo * scale + minimum, hi * scale + minimum);
}
