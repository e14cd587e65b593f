// rmsnorm.wgsl's rows (x[row] / sqrt(mean x[row]^2 + eps) * weight), rounded to int8 per 32 columns
// (`//!include int8_group`) in kernels/quantize_int8.wgsl's output format instead of written as
// floats: in prefill, the norm before an int8 matmul (kernels/matmul_q4_int8.wgsl) is one dispatch
// and one pass over the chunk, not a norm writing floats and a quantize reading them back.
//
// Bindings: 0 x vec4<f32>[n_tokens * dim / 4], 1 weight vec4<f32>[dim / 4], 2 x_codes, 3 x_scales
//           (quantize_int8.wgsl's), 4 params (rmsnorm.wgsl's), 5 step (only n_tokens is read).
// Mapping: dispatch (n_tokens, 1, 1), one workgroup a row: the threads stride over its squares,
// sum them with `workgroup_total` (`//!include reduce`: subgroup sums where the device has them),
// then each rounds whole 32-column groups. Requires dim a multiple of 32.
// Tested by tests/test_kernels_norm_rope.py against numpy float64.

//!include int8_group

struct Params { dim: u32, eps: f32, _pad0: u32, _pad1: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> x_codes: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> x_scales: array<vec2<f32>>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

override WORKGROUP: u32 = 256u;  // a power of two
const THREADS_PER_ROW: u32 = 1u;  // the reduce include's row_total goes unused

//!include reduce

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation) {
    let lid = inv.index;
    let row = inv.workgroup.x;
    if (row >= step.n_tokens) { return; }  // uniform: the whole workgroup
    let row_vec4 = params.dim / 4u;
    let base = row * row_vec4;

    var sum = 0.0;
    for (var i = lid; i < row_vec4; i += WORKGROUP) {
        let v = x[base + i];
        sum += dot(v, v);
    }
    let inv_rms = inverseSqrt(workgroup_total(sum, inv) / f32(params.dim) + params.eps);

    let groups = params.dim / 32u;
    for (var group = lid; group < groups; group += WORKGROUP) {
        var v: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) { v[i] = x[base + group * 8u + i] * inv_rms * weight[group * 8u + i]; }
        let q = int8_group(v);
        let slot = row * groups + group;
        x_codes[2u * slot] = q.even;
        x_codes[2u * slot + 1u] = q.odd;
        x_scales[slot] = vec2<f32>(q.d, q.sum);
    }
}
