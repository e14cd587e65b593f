// Weight layout q8g16f (see notebook_llm/loader/repack.py): int8 codes, four per u32, and one
// float32 scale per group of 16 columns; w = scale * q. Holds GGUF Q6_K exactly (code q − 32,
// scale d·sc: an f16 times an int8 needs up to 19 significant bits, more than f16 has).
// The entry kernel declares `weight_codes` and `weight_scales` (array<u32>).

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    let base = row * (cols / 4u) + k0 / 4u;
    let scale = bitcast<f32>(weight_scales[row * (cols / 16u) + k0 / 16u]);
    let lo = unpack4xI8(weight_codes[base]);
    let hi = unpack4xI8(weight_codes[base + 1u]);
    return Block8(vec4<f32>(lo) * scale, vec4<f32>(hi) * scale);
}
