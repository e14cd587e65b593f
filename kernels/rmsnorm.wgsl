// out[r, i] = x[row, i] / sqrt(mean_j x[row, j]^2 + eps) * weight[i]   (RMSNorm, llama's norm),
// or out[r, i] += ... when ACCUMULATE: Gemma's post-attention and post-FFN norms, whose result is
// added to the residual stream (x is then the block's output, out the residual).
//
// Bindings: 0 x f32[n_tokens, dim], 1 weight f32[dim], 2 out f32[n_tokens or 1, dim], 3 params,
//           4 step (only n_tokens is read).
// Mapping: one workgroup of 256 threads per normalised row. The threads stride over the row's
// squares, reduce them in workgroup memory (a tree, no subgroups), then scale the row.
//   LAST_ROW_ONLY = false: dispatch (n_tokens, 1, 1); workgroup r reads row r, writes out row r.
//   LAST_ROW_ONLY = true:  dispatch (1, 1, 1); reads row step.n_tokens - 1, writes out row 0
//                          (the final norm feeding only the last token of a chunk to the LM head).
// Tested by tests/test_kernels_norm_rope.py against numpy float64.

struct Params { dim: u32, eps: f32, _pad0: u32, _pad1: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<uniform> step: Step;

override LAST_ROW_ONLY: bool = false;
override ACCUMULATE: bool = false;
override WORKGROUP: u32 = 256u;  // a power of two; CPU adapters take 16 (fewer SIMD batches a barrier)

var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let in_row = select(wg.x, step.n_tokens - 1u, LAST_ROW_ONLY);
    let out_row = select(wg.x, 0u, LAST_ROW_ONLY);
    let dim = params.dim;
    let x_base = in_row * dim;

    var sum = 0.0;
    for (var i = lid; i < dim; i += WORKGROUP) {
        let v = x[x_base + i];
        sum += v * v;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) { partial[lid] += partial[lid + stride]; }
        workgroupBarrier();
    }
    let inv_rms = inverseSqrt(partial[0] / f32(dim) + params.eps);

    let out_base = out_row * dim;
    for (var i = lid; i < dim; i += WORKGROUP) {
        let y = x[x_base + i] * inv_rms * weight[i];
        if (ACCUMULATE) { out[out_base + i] += y; } else { out[out_base + i] = y; }
    }
}
