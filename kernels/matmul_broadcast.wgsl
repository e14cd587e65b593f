// Y[t, r] = sum_k W[r, k] * X[t, k] for t < step.n_tokens, or Y[t, r] += ... when ACCUMULATE: the
// prefill matmul for CPU Vulkan drivers (lavapipe). Same bindings, row blocks and y layout as
// matmul.wgsl; needs subgroups and cols a multiple of 32.
//
// Why another kernel: matmul.wgsl stages tiles of W and X in workgroup memory between barriers,
// which lavapipe runs as coroutine switches and per-lane loads. Here, as in matvec_broadcast.wgsl,
// a lane owns ROWS_PER_THREAD whole rows: for each 32-column group it dequantizes its rows' weights
// once (`group_weights`, `//!include group32`) and keeps them in registers while it takes the
// workgroup's TOKENS tokens in turn, each token's 32 inputs shared by subgroup broadcasts, so a
// weight is loaded and unpacked once per TOKENS tokens.
//
// Mapping: workgroup (i, j) computes rows WORKGROUP·ROWS_PER_THREAD·i onwards × tokens TOKENS·j ..
// TOKENS·j + TOKENS - 1; the caller dispatches (ceil(rows / 64), ceil(n_tokens / TOKENS), 1).
// Rows and tokens past the end re-read the last ones and are not written.
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include group32

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

const WORKGROUP: u32 = 16u;
const ROWS_PER_THREAD: u32 = 4u;  // WORKGROUP · ROWS_PER_THREAD = 64 rows, matmul.wgsl's tile
override ACCUMULATE: bool = false;
override FOUR_LANE_LOADS: bool = false;  // tests: the 4-lane subgroups' loads on a wider subgroup
override TOKENS: u32 = 8u;        // at most MAX_TOKENS
const MAX_TOKENS: u32 = 16u;

fn dot32(w: Columns32, c: Columns32) -> f32 {
    return ((dot(w.v0, c.v0) + dot(w.v1, c.v1)) + (dot(w.v2, c.v2) + dot(w.v3, c.v3)))
         + ((dot(w.v4, c.v4) + dot(w.v5, c.v5)) + (dot(w.v6, c.v6) + dot(w.v7, c.v7)));
}

// Columns 32g .. 32g+31 of token t's input in every lane (as matvec_broadcast.wgsl's shared_columns).
fn token_columns(t: u32, g: u32, lane: u32, subgroup_size: u32) -> Columns32 {
    let base = t * (params.cols / 4u) + 8u * g;
    let wide = subgroup_size >= 8u && !FOUR_LANE_LOADS;
    let a = x[base + select(lane & 3u, lane & 7u, wide)];
    var b = vec4<f32>(0.0);
    if (!wide) { b = x[base + 4u + (lane & 3u)]; }
    return columns_from_lanes(a, b, wide);
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) index: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) subgroup_size: u32) {
    let first_row = (wg.x * WORKGROUP + index) * ROWS_PER_THREAD;
    let first_token = wg.y * TOKENS;
    let last_row = params.rows - 1u;
    let last_token = step.n_tokens - 1u;
    // acc[r * MAX_TOKENS + t]: row first_row + r, token first_token + t. The loops over
    // ROWS_PER_THREAD and TOKENS have constant bounds and unroll: the arrays stay in registers.
    var acc: array<f32, ROWS_PER_THREAD * MAX_TOKENS>;
    for (var i = 0u; i < ROWS_PER_THREAD * MAX_TOKENS; i++) { acc[i] = 0.0; }
    for (var g = 0u; g < params.cols / 32u; g++) {
        let w0 = group_weights(min(first_row, last_row), g, params.cols);
        let w1 = group_weights(min(first_row + 1u, last_row), g, params.cols);
        let w2 = group_weights(min(first_row + 2u, last_row), g, params.cols);
        let w3 = group_weights(min(first_row + 3u, last_row), g, params.cols);
        for (var t = 0u; t < TOKENS; t++) {
            let c = token_columns(min(first_token + t, last_token), g, lane, subgroup_size);
            acc[t] += dot32(w0, c);
            acc[MAX_TOKENS + t] += dot32(w1, c);
            acc[2u * MAX_TOKENS + t] += dot32(w2, c);
            acc[3u * MAX_TOKENS + t] += dot32(w3, c);
        }
    }
    let out_rows = select(params.out_rows, params.rows, params.out_rows == 0u);
    for (var r = 0u; r < ROWS_PER_THREAD; r++) {
        for (var t = 0u; t < TOKENS; t++) {
            let row = first_row + r;
            let token = first_token + t;
            if (row < params.rows && token < step.n_tokens) {
                let i = token * out_rows + params.row_offset + row;
                if (ACCUMULATE) { y[i] += acc[r * MAX_TOKENS + t]; } else { y[i] = acc[r * MAX_TOKENS + t]; }
            }
        }
    }
}
