// The unscaled-input interface of a matvec input prologue for prologues that have no scale to defer:
// the input as `prepare_input` / `input4` give it, and an output scale of 1. Kernels that can
// scale their output instead of their input (matvec_q4_int8.wgsl) call these; see
// input_rmsnorm.wgsl for the prologue that defers its scale.

fn prepare_unscaled_input(inv: Invocation) { prepare_input(inv); }

fn unscaled_input4(i: u32) -> vec4<f32> { return input4(i); }

fn input_scale(inv: Invocation) -> f32 { return 1.0; }
