// Weight layout f32: float32 bits in u32 words. `weight_scales` is declared but unused.

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    _ = weight_scales[0]; // keeps the binding in the auto layout, so every layout binds alike
    let base = row * cols + k0;
    return Block8(
        bitcast<vec4<f32>>(vec4<u32>(weight_codes[base], weight_codes[base + 1u], weight_codes[base + 2u], weight_codes[base + 3u])),
        bitcast<vec4<f32>>(vec4<u32>(weight_codes[base + 4u], weight_codes[base + 5u], weight_codes[base + 6u], weight_codes[base + 7u])),
    );
}
