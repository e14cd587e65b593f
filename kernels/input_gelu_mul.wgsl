// Matvec input prologue: in[j] = gelu(gate[j]) * up[j] for x = [gate (cols values), up (cols
// values)], the GeGLU middle (gelu_mul.wgsl) fused into the down projection.

//!include act_gelu_tanh

fn prepare_input(inv: Invocation) {}

fn input4(i: u32) -> vec4<f32> {
    let g = x[i];
    return vec4<f32>(gelu_tanh(g.x), gelu_tanh(g.y), gelu_tanh(g.z), gelu_tanh(g.w)) * x[i + params.cols / 4u];
}

//!include input_unscaled
