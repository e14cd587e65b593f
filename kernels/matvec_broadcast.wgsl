// y[r] = sum_k W[r, k] * in[k] for one token, or y[r] += ... when ACCUMULATE: the decode matvec
// for CPU Vulkan drivers (lavapipe). Same bindings, prologues (`//!include input`) and row blocks as
// matvec.wgsl; needs subgroups and cols a multiple of 32.
//
// Why another kernel: lavapipe runs a subgroup's invocations as the SIMD lanes of one CPU thread,
// and it loads storage memory at lane-varying addresses one lane at a time (a scalar loop with a
// bounds check per lane and component), so on a CPU a matvec's time is largely its lanes' load
// operations, not bytes. matvec.wgsl's lanes each load their own input and their row's code and
// scale for every 8 columns. Here each lane owns ROWS_PER_THREAD whole rows (no reduction across
// lanes, no barrier), and the lanes of a subgroup share the input: for each group of 32 columns,
// lane l loads one vec4 of it (columns 4(l % 8) onwards; with 4-lane subgroups two) and
// subgroupBroadcast — a register extract on lavapipe — hands all eight to every lane. Per 32
// weights of a row a lane then loads one vec4<u32> of codes and the group's scale
// (`//!include group32`, which also does the layout's arithmetic). lavapipe, 2 cores, SmolLM2's
// shapes: about 2x faster than matvec.wgsl's best CPU configuration, 3.7-4.2x than the one the
// model ran (benchmarks/matvec_sweep.py).
//
// Bindings: 0 weight_codes vec4<u32>[] (`//!include group32` says what an element holds),
//           1 weight_scales u32[], 2 x vec4<f32>[...], 3 y f32[row_offset + rows], 4 params, 5.. the prologue's.
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include group32

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Few lanes a workgroup: a CPU runs one workgroup per core, and small matrices still give every core one.
const WORKGROUP: u32 = 16u;
const THREADS_PER_ROW: u32 = 1u;  // the reduce include's row_total goes unused: a lane sums whole rows
override ACCUMULATE: bool = false;
override FOUR_LANE_LOADS: bool = false;  // tests: the 4-lane subgroups' loads on a wider subgroup
override ROWS_PER_THREAD: u32 = 4u;  // 1, 2, 4 or 8

//!include input
//!include reduce

//!include broadcast_rows

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation, @builtin(subgroup_invocation_id) lane: u32) {
    prepare_input(inv);
    let first_row = ((inv.workgroup.y * inv.workgroups.x + inv.workgroup.x) * WORKGROUP + inv.index) * ROWS_PER_THREAD;
    let sums = broadcast_row_sums(first_row, lane, inv.subgroup_size);
    for (var r = 0u; r < ROWS_PER_THREAD; r++) {
        let row = first_row + r;
        if (row < params.rows) {
            let out = params.row_offset + row;
            if (ACCUMULATE) { y[out] += row_sum(sums, r); } else { y[out] = row_sum(sums, r); }
        }
    }
}
