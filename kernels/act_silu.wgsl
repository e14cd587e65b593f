// silu(g) = g * sigmoid(g), with sigmoid evaluated from e = exp(-|g|) <= 1 so that no infinity
// appears for any finite g (exp(g) / (1 + exp(g)) gives inf / inf = NaN above ~88).
// Included by silu_mul.wgsl, quantize_int8.wgsl and input_silu_mul.wgsl.

fn silu_sigmoid(g: f32) -> f32 {
    let e = exp(-abs(g));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, g >= 0.0);
}

fn silu(g: f32) -> f32 { return g * silu_sigmoid(g); }

fn silu4(g: vec4<f32>) -> vec4<f32> { return vec4<f32>(silu(g.x), silu(g.y), silu(g.z), silu(g.w)); }
