// y[r] = sum_k W[r, k] * x[k]   (decode: one token), or y[r] += ... when ACCUMULATE
// (the residual add fused into the epilogue).
//
// Bindings: 0 weight_codes u32[], 1 weight_scales u32[] (layout from `//!include weights`),
//           2 x vec4<f32>[cols/4], 3 y f32[row_offset + rows], 4 params.
// W may be one row block of a larger matrix (a matrix too large for one storage binding, such as
// a 262k-token LM head, is bound as several blocks): its row r is written to y[row_offset + r].
// Mapping: a workgroup of 256 threads computes ROWS_PER_WORKGROUP rows; the THREADS_PER_ROW
// threads of one row stride over its 8-column blocks, then reduce in workgroup memory.
// ROWS_PER_WORKGROUP * THREADS_PER_ROW must be 256. GPUs want 64 threads per row (coalesced
// reads, short per-thread loops); CPU drivers such as lavapipe run 4 threads per row 3-5x faster
// (fewer barrier rounds), so the model picks per adapter (notebook_llm/models/llama.py).
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include weights

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }  // out_rows: matmul only

@group(0) @binding(0) var<storage, read> weight_codes: array<u32>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override ACCUMULATE: bool = false;
const WORKGROUP: u32 = 256u;
override ROWS_PER_WORKGROUP: u32 = 4u;
override THREADS_PER_ROW: u32 = 64u;

var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = (wg.y * nwg.x + wg.x) * ROWS_PER_WORKGROUP + lid / THREADS_PER_ROW;
    let lane = lid % THREADS_PER_ROW;
    var sum = 0.0;
    if (row < params.rows) {
        for (var k0 = lane * 8u; k0 < params.cols; k0 += THREADS_PER_ROW * 8u) {
            let w = weight_block8(row, k0, params.cols);
            sum += dot(w.lo, x[k0 / 4u]) + dot(w.hi, x[k0 / 4u + 1u]);
        }
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = THREADS_PER_ROW / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) { partial[lid] += partial[lid + stride]; }
        workgroupBarrier();
    }
    if (lane == 0u && row < params.rows) {
        let out = params.row_offset + row;
        if (ACCUMULATE) { y[out] += partial[lid]; } else { y[out] = partial[lid]; }
    }
}
