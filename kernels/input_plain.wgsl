// Matvec input prologue: the input vector is x as it is (see matvec.wgsl).

fn prepare_input(inv: Invocation) {}

fn input4(i: u32) -> vec4<f32> { return x[i]; }

//!include input_unscaled
