// Weight layout f16: two halves per u32 (column k in half k % 2). Read with unpack2x16float,
// so it needs no `shader-f16`. `weight_scales` is declared but unused.

struct Block8 { lo: vec4<f32>, hi: vec4<f32> }

fn weight_block8(row: u32, k0: u32, cols: u32) -> Block8 {
    _ = weight_scales[0]; // keeps the binding in the auto layout, so every layout binds alike
    let base = row * (cols / 2u) + k0 / 2u;
    let a = unpack2x16float(weight_codes[base]);
    let b = unpack2x16float(weight_codes[base + 1u]);
    let c = unpack2x16float(weight_codes[base + 2u]);
    let d = unpack2x16float(weight_codes[base + 3u]);
    return Block8(vec4<f32>(a, b), vec4<f32>(c, d));
}
