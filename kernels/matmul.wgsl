// Y[t, r] = sum_k W[r, k] * X[t, k]   for t < step.n_tokens (prefill: a chunk of tokens),
// or Y[t, r] += ... when ACCUMULATE (the residual add fused into the epilogue).
//
// Bindings: 0 weight_codes u32[], 1 weight_scales u32[] (layout from `//!include weights`,
//           W is [rows, cols]), 2 x vec4<f32>[n_tokens * cols / 4] (row-major [n_tokens, cols]),
//           3 y f32[n_tokens * out_rows] (row-major [n_tokens, out_rows]), 4 params, 5 step.
//           W may be one row block of a larger matrix (see matvec.wgsl): its row r is column
//           row_offset + r of y, whose rows are out_rows wide (0: rows, the whole matrix).
// Mapping: workgroup (i, j) computes the tile of rows 64i..64i+63 × tokens Ti..Ti+T-1, where
//          T = 16 * TOKENS_PER_THREAD (64, or 32 for models whose small matrices would leave a
//          large GPU idle with 64), so the caller dispatches (ceil(rows / 64), ceil(n_tokens / T), 1).
//          The 256 threads walk K in
//          steps of 16 columns: each step threads 0..127 dequantize one 8-column block of W
//          (weight_block8) and every thread loads one vec4 of X into workgroup memory, so a weight
//          is decoded once per 64 tokens; then thread (tr, tt) = (lid % 16, lid / 16) accumulates
//          rows tr + 16i × tokens tt + 16j (i < 4, j < TOKENS_PER_THREAD) from the tiles: 16 dots from 8
//          workgroup-memory reads per vec4 of K. Rows past `rows` and tokens past n_tokens load
//          zeros and are not written; cols need only be a multiple of 8.
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
override TOKENS_PER_THREAD: u32 = 4u;  // 4 or 2

const WORKGROUP: u32 = 256u;
const TILE_ROWS: u32 = 64u;      // output rows per workgroup (the dispatch rule depends on it)
const MAX_TILE_TOKENS: u32 = 64u;
const TILE_K: u32 = 16u;         // columns per step through K
const K_VEC4: u32 = TILE_K / 4u; // vec4s per tile row
// Tile rows are padded by one vec4 so that the 16 threads reading one k at once, from 16
// different rows, spread over the shared-memory banks.
const STRIDE: u32 = K_VEC4 + 1u;

var<workgroup> w_tile: array<vec4<f32>, TILE_ROWS * STRIDE>;    // 5 KiB
var<workgroup> x_tile: array<vec4<f32>, MAX_TILE_TOKENS * STRIDE>;  // 5 KiB

//!include matmul_store

// What a loading thread brings in for the K step at k_tile: one 8-column weight block, one vec4
// of X; zeros past the rows, tokens or columns.
struct Fetched { w: Block8, x: vec4<f32> }

fn fetch(k_tile: u32, loads_w: bool, w_row: u32, load_block: u32, loads_x: bool, x_token: u32, load_vec4: u32) -> Fetched {
    var out = Fetched(Block8(vec4<f32>(0.0), vec4<f32>(0.0)), vec4<f32>(0.0));
    let k0 = k_tile + load_block * 8u;
    if (loads_w && w_row < params.rows && k0 < params.cols) { out.w = weight_block8(w_row, k0, params.cols); }
    let k = k_tile + load_vec4 * 4u;
    if (loads_x && x_token < step.n_tokens && k < params.cols) { out.x = x[(x_token * params.cols + k) / 4u]; }
    return out;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rows = params.rows;
    let cols = params.cols;
    let n_tokens = step.n_tokens;
    let row0 = wg.x * TILE_ROWS;
    let tile_tokens = 16u * TOKENS_PER_THREAD;  // the dispatch rule depends on it
    let token0 = wg.y * tile_tokens;

    // What this thread loads each K step: (threads < 128) one 8-column weight block, one vec4 of X.
    let loads_w = lid < TILE_ROWS * (TILE_K / 8u);
    let load_row = lid / (TILE_K / 8u);            // 0..63 for the loading threads
    let load_block = lid % (TILE_K / 8u);          // 0..1
    let load_token = lid / K_VEC4;                 // 0..63 (past tile_tokens: loads nothing)
    let load_vec4 = lid % K_VEC4;                  // 0..3
    let w_row = row0 + load_row;
    let x_token = token0 + load_token;

    // What this thread computes: rows tr + 16i, tokens tt + 16j; acc_i[j] holds (row i, token j).
    let tr = lid % 16u;
    let tt = lid / 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    // Each K step's weights and inputs are loaded into registers one step ahead, so their loads
    // are in flight while the previous step's dot products run.
    var next = fetch(0u, loads_w, w_row, load_block, load_token < tile_tokens, x_token, load_vec4);
    for (var k_tile = 0u; k_tile < cols; k_tile += TILE_K) {
        if (loads_w) {
            w_tile[load_row * STRIDE + load_block * 2u] = next.w.lo;
            w_tile[load_row * STRIDE + load_block * 2u + 1u] = next.w.hi;
        }
        if (load_token < tile_tokens) { x_tile[load_token * STRIDE + load_vec4] = next.x; }
        workgroupBarrier();
        if (k_tile + TILE_K < cols) {
            next = fetch(k_tile + TILE_K, loads_w, w_row, load_block, load_token < tile_tokens, x_token, load_vec4);
        }

        for (var kv = 0u; kv < K_VEC4; kv++) {
            let x0 = x_tile[tt * STRIDE + kv];
            let x1 = x_tile[(tt + 16u) * STRIDE + kv];
            var x2 = vec4<f32>(0.0);
            var x3 = vec4<f32>(0.0);
            if (TOKENS_PER_THREAD > 2u) {
                x2 = x_tile[(tt + 32u) * STRIDE + kv];
                x3 = x_tile[(tt + 48u) * STRIDE + kv];
            }
            let w0 = w_tile[tr * STRIDE + kv];
            let w1 = w_tile[(tr + 16u) * STRIDE + kv];
            let w2 = w_tile[(tr + 32u) * STRIDE + kv];
            let w3 = w_tile[(tr + 48u) * STRIDE + kv];
            acc0 += vec4<f32>(dot(w0, x0), dot(w0, x1), dot(w0, x2), dot(w0, x3));
            acc1 += vec4<f32>(dot(w1, x0), dot(w1, x1), dot(w1, x2), dot(w1, x3));
            acc2 += vec4<f32>(dot(w2, x0), dot(w2, x1), dot(w2, x2), dot(w2, x3));
            acc3 += vec4<f32>(dot(w3, x0), dot(w3, x1), dot(w3, x2), dot(w3, x3));
        }
        workgroupBarrier();
    }

    let out_rows = select(params.out_rows, rows, params.out_rows == 0u);
    for (var j = 0u; j < TOKENS_PER_THREAD; j++) {
        let token = token0 + tt + 16u * j;
        store(row0 + tr, token, out_rows, acc0[j]);
        store(row0 + tr + 16u, token, out_rows, acc1[j]);
        store(row0 + tr + 32u, token, out_rows, acc2[j]);
        store(row0 + tr + 48u, token, out_rows, acc3[j]);
    }
}
