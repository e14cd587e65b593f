// y[r] = sum_k W[r, k] * in[k]   (decode: one token), or y[r] += ... when ACCUMULATE
// (the residual add fused into the epilogue).
//
// `in` is the matvec's input vector as an input prologue (`//!include input`) defines it from the
// buffer x: x itself (input_plain), rmsnorm(x) · weight (input_rmsnorm: the norm before QKV, the
// FFN and the LM head), act(gate) · up of a [gate; up] buffer (input_silu_mul, input_gelu_mul:
// the FFN middle before the down projection), or the merge of split attention's chunk partials
// (input_attention_combine: before the output projection). Fusing them here saves a dispatch, and its barrier,
// per norm and per FFN: each workgroup recomputes the prologue for its rows, which costs reads of a
// vector of a few thousand floats from cache against the megabytes of weights.
//
// Bindings: 0 weight_codes u32[], 1 weight_scales u32[] (layout from `//!include weights`),
//           2 x vec4<f32>[...], 3 y f32[row_offset + rows], 4 params, 5.. the prologue's.
// W may be one row block of a larger matrix (a matrix too large for one storage binding, such as
// a 262k-token LM head, is bound as several blocks): its row r is written to y[row_offset + r].
// Mapping: a workgroup of 256 threads is WORKGROUP / THREADS_PER_ROW lanes groups; group g
// computes ROWS_PER_THREAD consecutive rows: its THREADS_PER_ROW threads stride over the 8-column
// blocks of those rows, reading each block of `in` once for all of them, then reduce in workgroup
// memory. GPUs want 64 threads per row (coalesced reads, short per-thread loops) and several rows
// per thread on large matrices (`in` is read once per ROWS_PER_THREAD rows); CPU drivers such as
// lavapipe run 4 threads per row 3-5x faster (fewer barrier rounds). The model picks both per
// adapter and matrix (notebook_llm/models/llama.py). The lanes' sums meet through `//!include
// reduce`: subgroup shuffles where the device has them (reduce_subgroup.wgsl), else workgroup memory.
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include weights

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }  // out_rows: matmul only

@group(0) @binding(0) var<storage, read> weight_codes: array<u32>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const WORKGROUP: u32 = 256u;
override ACCUMULATE: bool = false;
override THREADS_PER_ROW: u32 = 64u;
override ROWS_PER_THREAD: u32 = 1u;  // 1, 2 or 4

//!include input
//!include reduce

// The dot products of rows (row0, row1, row2, row3) — the first ROWS_PER_THREAD of them — with
// the input over the 8 columns at k0.
fn block1(row0: u32, row1: u32, row2: u32, row3: u32, k0: u32) -> vec4<f32> {
    let lo = input4(k0 / 4u);
    let hi = input4(k0 / 4u + 1u);
    var out = vec4<f32>(0.0);
    let w0 = weight_block8(row0, k0, params.cols);
    out.x = dot(w0.lo, lo) + dot(w0.hi, hi);
    if (ROWS_PER_THREAD > 1u) {
        let w1 = weight_block8(row1, k0, params.cols);
        out.y = dot(w1.lo, lo) + dot(w1.hi, hi);
    }
    if (ROWS_PER_THREAD > 2u) {
        let w2 = weight_block8(row2, k0, params.cols);
        out.z = dot(w2.lo, lo) + dot(w2.hi, hi);
        let w3 = weight_block8(row3, k0, params.cols);
        out.w = dot(w3.lo, lo) + dot(w3.hi, hi);
    }
    return out;
}

// block1 at k0, k0 + stride, k0 + 2 stride and k0 + 3 stride, summed.
fn block4(row0: u32, row1: u32, row2: u32, row3: u32, k0: u32, stride: u32) -> vec4<f32> {
    let a = block1(row0, row1, row2, row3, k0);
    let b = block1(row0, row1, row2, row3, k0 + stride);
    let c = block1(row0, row1, row2, row3, k0 + 2u * stride);
    let d = block1(row0, row1, row2, row3, k0 + 3u * stride);
    return (a + b) + (c + d);
}

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation) {
    let lid = inv.index;
    let wg = inv.workgroup;
    let nwg = inv.workgroups;
    prepare_input(inv);  // before any branch: prologues may reduce over the workgroup

    let groups = WORKGROUP / THREADS_PER_ROW;
    let first_row = ((wg.y * nwg.x + wg.x) * groups + lid / THREADS_PER_ROW) * ROWS_PER_THREAD;
    let lane = lid % THREADS_PER_ROW;
    // One accumulator per row, no array: a dynamically indexed array would live in slow
    // per-thread memory; the branches on the override constant vanish when the pipeline is made.
    var sum0 = 0.0;
    var sum1 = 0.0;
    var sum2 = 0.0;
    var sum3 = 0.0;
    if (first_row < params.rows) {
        let last_row = params.rows - 1u;  // rows past the end re-read it; their sums are never written
        let row1 = min(first_row + 1u, last_row);
        let row2 = min(first_row + 2u, last_row);
        let row3 = min(first_row + 3u, last_row);
        // With one row per thread, four blocks per iteration, all loads issued before any is
        // used: a decode matvec has only a few iterations per thread, so memory latency sets its
        // time. Several rows per thread already keep that many loads in flight (unrolling them
        // too cost registers and occupancy: measured slower on the H200).
        let stride = THREADS_PER_ROW * 8u;
        var k0 = lane * 8u;
        for (; ROWS_PER_THREAD == 1u && k0 + 3u * stride < params.cols; k0 += 4u * stride) {
            let a = block4(first_row, row1, row2, row3, k0, stride);
            sum0 += a.x;
            sum1 += a.y;
            sum2 += a.z;
            sum3 += a.w;
        }
        for (; k0 < params.cols; k0 += stride) {
            let a = block1(first_row, row1, row2, row3, k0);
            sum0 += a.x;
            sum1 += a.y;
            sum2 += a.z;
            sum3 += a.w;
        }
    }
    let total = row_total(vec4<f32>(sum0, sum1, sum2, sum3), inv);
    if (lane == 0u) {
        for (var r = 0u; r < ROWS_PER_THREAD; r++) {
            let row = first_row + r;
            if (row < params.rows) {
                let out = params.row_offset + row;
                if (ACCUMULATE) { y[out] += total[r]; } else { y[out] = total[r]; }
            }
        }
    }
}
