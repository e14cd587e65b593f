// GELU's tanh form, gelu(g) = g/2 · (1 + tanh(u)) = g · sigmoid(2u), u = sqrt(2/pi) · (g + 0.044715 g³).
// The sigmoid form needs no tanh (WGSL's may overflow through exp for large |u|) and is evaluated
// from e = exp(-|2u|) <= 1, so no infinity appears: for g far below zero it gives g · 0 = -0.
// Included by gelu_mul.wgsl and input_gelu_mul.wgsl.

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn gelu_sigmoid(z: f32) -> f32 {
    let e = exp(-abs(z));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, z >= 0.0);
}

fn gelu_tanh(g: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (g + 0.044715 * g * g * g);
    return g * gelu_sigmoid(2.0 * inner);
}
