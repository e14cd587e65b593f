// Matvec input prologue: in = x / sqrt(mean(x²) + eps) * norm_weight (RMSNorm, as rmsnorm.wgsl,
// fused into the matrix that reads the norm's output). x holds one row of params.cols values.
// Bindings: 5 norm_weight f32[cols], 6 norm_params (its eps; its dim is params.cols here).

struct NormParams { dim: u32, eps: f32, _pad0: u32, _pad1: u32 }

@group(0) @binding(5) var<storage, read> norm_weight: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> norm_params: NormParams;

var<private> inv_rms: f32;

// Every invocation gets 1 / rms(x): the sum of squares is a workgroup sum (`workgroup_total` of
// `//!include reduce`: subgroup sums where the device has them, one barrier, instead of a tree of
// eight, which made the norm cost Llama-3.1-8B's QKV matvec ~10 µs of its ~25 on an H200).
fn prepare_input(inv: Invocation) {
    var sum = 0.0;
    for (var i = inv.index; i < params.cols / 4u; i += WORKGROUP) { sum += dot(x[i], x[i]); }
    inv_rms = inverseSqrt(workgroup_total(sum, inv) / f32(params.cols) + norm_params.eps);
}

fn input4(i: u32) -> vec4<f32> { return x[i] * inv_rms * norm_weight[i]; }

// For kernels that scale their output instead (matvec_q4_int8.wgsl, whose int8 rounding of the
// input is the same for any positive scale of it): the input times norm_weight, unnormalized, with
// the sum of squares gathered from the values each invocation reads there, and 1 / rms(x) as the
// output's scale. The workgroup needs no pass over x and no barrier before it starts.
var<private> staged_squares: f32;

fn prepare_unscaled_input(inv: Invocation) {}

fn unscaled_input4(i: u32) -> vec4<f32> {
    let v = x[i];
    staged_squares += dot(v, v);
    return v * norm_weight[i];
}

// Every invocation must call it, after every element of x was read once through unscaled_input4.
fn input_scale(inv: Invocation) -> f32 {
    return inverseSqrt(workgroup_total(staged_squares, inv) / f32(params.cols) + norm_params.eps);
}
