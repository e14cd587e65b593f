// Weight layout q8g32 (see notebook_llm/loader/repack.py): int8 codes, four per u32,
// one f16 scale per group of 32 columns, two scales per u32; w = scale * q.
// The entry kernel declares `weight_codes` and `weight_scales` (array<u32>).

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    let base = row * (cols / 4u) + k0 / 4u;
    let group = k0 / 32u;
    let scales = unpack2x16float(weight_scales[row * ((cols + 63u) / 64u) + group / 2u]);
    let scale = select(scales.x, scales.y, (group & 1u) == 1u);
    let lo = unpack4xI8(weight_codes[base]);
    let hi = unpack4xI8(weight_codes[base + 1u]);
    return Block8(vec4<f32>(lo) * scale, vec4<f32>(hi) * scale);
}
