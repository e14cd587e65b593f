// Y[t, r] = sum_k W[r, k] * X[t, k]   for t < step.n_tokens (prefill: a chunk of tokens),
// or Y[t, r] += ... when ACCUMULATE (the residual add fused into the epilogue).
//
// Bindings: 0 weight_codes u32[], 1 weight_scales u32[] (layout from `//!include weights`,
//           W is [rows, cols]), 2 x vec4<f32>[n_tokens * cols / 4] (row-major [n_tokens, cols]),
//           3 y f32[n_tokens * out_rows] (row-major [n_tokens, out_rows]), 4 params, 5 step.
//           W may be one row block of a larger matrix (see matvec.wgsl): its row r is column
//           row_offset + r of y, whose rows are out_rows wide (0: rows, the whole matrix).
// Mapping: workgroup (i, j) computes the tile of rows 64i..64i+63 × tokens 32j..32j+31, so the
//          caller dispatches (ceil(rows / 64), ceil(n_tokens / 32), 1). The 256 threads walk K in
//          steps of 32 columns: each step every thread dequantizes one 8-column block of W
//          (weight_block8) and loads one vec4 of X into workgroup memory, so a weight is decoded
//          once and reused by 32 tokens; then thread (tr, tt) = (lid % 16, lid / 16) accumulates
//          rows tr + 16i (i < 4) × tokens tt + 16j (j < 2) from the tiles. Rows past `rows` and
//          tokens past n_tokens load zeros and are not written; cols need only be a multiple of 8.
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include weights

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<u32>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

override ACCUMULATE: bool = false;

const WORKGROUP: u32 = 256u;
const TILE_ROWS: u32 = 64u;      // output rows per workgroup (the dispatch rule depends on it)
const TILE_TOKENS: u32 = 32u;    // tokens per workgroup (the dispatch rule depends on it)
const TILE_K: u32 = 32u;         // columns per step through K
const K_VEC4: u32 = TILE_K / 4u; // vec4s per tile row
// Weight tile rows are padded by one vec4: the 16 threads that read one k at once read 16
// different rows, and an unpadded stride of 8 vec4 (128 bytes) would put them all in one
// shared-memory bank on most GPUs.
const W_STRIDE: u32 = K_VEC4 + 1u;
const THREAD_ROWS: u32 = 4u;     // TILE_ROWS / 16
const THREAD_TOKENS: u32 = 2u;   // TILE_TOKENS / 16

var<workgroup> w_tile: array<vec4<f32>, TILE_ROWS * W_STRIDE>;   // 9 KiB
var<workgroup> x_tile: array<vec4<f32>, TILE_TOKENS * K_VEC4>;   // 4 KiB

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rows = params.rows;
    let cols = params.cols;
    let n_tokens = step.n_tokens;
    let row0 = wg.x * TILE_ROWS;
    let token0 = wg.y * TILE_TOKENS;

    // What this thread loads each K step: one 8-column weight block, one vec4 of X.
    let load_row = lid / (TILE_K / 8u);            // 0..63
    let load_block = lid % (TILE_K / 8u);          // 0..3
    let load_token = lid / K_VEC4;                 // 0..31
    let load_vec4 = lid % K_VEC4;                  // 0..7
    let w_row = row0 + load_row;
    let x_token = token0 + load_token;

    // What this thread computes.
    let tr = lid % 16u;
    let tt = lid / 16u;

    var acc: array<vec2<f32>, THREAD_ROWS>;  // acc[i][j]: row tr + 16i, token tt + 16j
    for (var i = 0u; i < THREAD_ROWS; i++) { acc[i] = vec2<f32>(0.0); }

    for (var k_tile = 0u; k_tile < cols; k_tile += TILE_K) {
        let k0 = k_tile + load_block * 8u;
        var w = Block8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (w_row < rows && k0 < cols) { w = weight_block8(w_row, k0, cols); }
        w_tile[load_row * W_STRIDE + load_block * 2u] = w.lo;
        w_tile[load_row * W_STRIDE + load_block * 2u + 1u] = w.hi;

        let k = k_tile + load_vec4 * 4u;
        var xv = vec4<f32>(0.0);
        if (x_token < n_tokens && k < cols) { xv = x[(x_token * cols + k) / 4u]; }
        x_tile[load_token * K_VEC4 + load_vec4] = xv;
        workgroupBarrier();

        for (var kv = 0u; kv < K_VEC4; kv++) {
            let x0 = x_tile[tt * K_VEC4 + kv];
            let x1 = x_tile[(tt + 16u) * K_VEC4 + kv];
            for (var i = 0u; i < THREAD_ROWS; i++) {
                let wv = w_tile[(tr + 16u * i) * W_STRIDE + kv];
                acc[i] += vec2<f32>(dot(wv, x0), dot(wv, x1));
            }
        }
        workgroupBarrier();
    }

    let out_rows = select(params.out_rows, rows, params.out_rows == 0u);
    for (var i = 0u; i < THREAD_ROWS; i++) {
        let row = row0 + tr + 16u * i;
        for (var j = 0u; j < THREAD_TOKENS; j++) {
            let token = token0 + tt + 16u * j;
            if (row < rows && token < n_tokens) {
                let index = token * out_rows + params.row_offset + row;
                if (ACCUMULATE) { y[index] += acc[i][j]; } else { y[index] = acc[i][j]; }
            }
        }
    }
}
