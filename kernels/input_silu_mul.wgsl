// Matvec input prologue: in[j] = silu(gate[j]) * up[j] for x = [gate (cols values), up (cols
// values)], the SwiGLU middle (silu_mul.wgsl) fused into the down projection.

//!include act_silu

fn prepare_input(inv: Invocation) {}

fn input4(i: u32) -> vec4<f32> {
    return silu4(x[i]) * x[i + params.cols / 4u];
}

//!include input_unscaled
