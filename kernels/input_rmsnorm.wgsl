// Matvec input prologue: in = x / sqrt(mean(x²) + eps) * norm_weight (RMSNorm, as rmsnorm.wgsl,
// fused into the matrix that reads the norm's output). x holds one row of params.cols values.
// Bindings: 5 norm_weight f32[cols], 6 norm_params (its eps; its dim is params.cols here).

struct NormParams { dim: u32, eps: f32, _pad0: u32, _pad1: u32 }

@group(0) @binding(5) var<storage, read> norm_weight: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> norm_params: NormParams;

var<workgroup> norm_partial: array<f32, WORKGROUP>;
var<workgroup> inv_rms: f32;

fn prepare_input(lid: u32) {
    var sum = 0.0;
    for (var i = lid; i < params.cols / 4u; i += WORKGROUP) { sum += dot(x[i], x[i]); }
    norm_partial[lid] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) { norm_partial[lid] += norm_partial[lid + stride]; }
        workgroupBarrier();
    }
    if (lid == 0u) { inv_rms = inverseSqrt(norm_partial[0] / f32(params.cols) + norm_params.eps); }
    workgroupBarrier();
}

fn input4(i: u32) -> vec4<f32> { return x[i] * inv_rms * norm_weight[i]; }
