// Y[t, r] = sum_k W[r, k] * X[t, k] for a prefill chunk (t < step.n_tokens), or Y += ... when
// ACCUMULATE, for 4-bit matrices (layouts q4g32, q4g32f) through integer dot products: X comes
// rounded to int8 per 32-column group by kernels/quantize_int8.wgsl, and per group, row and token
//     w · x = scale · d · (q_w · q_x) + min · sum(x)
// (see matvec_q4_int8.wgsl), where q_w · q_x is eight dot4I8Packed (dp4a where the GPU has it).
// matmul.wgsl's float path spends about five instructions unpacking a weight and one FMA per
// weight and token; here a weight is unpacked once per workgroup and four of them meet four
// inputs in one instruction.
//
// Bindings: 0 weight_codes vec4<u32>[] (one 32-column group per element), 1 weight_scales u32[]
//           (layout from `//!include scales`), 2 x_codes, 3 x_scales (quantize_int8.wgsl's),
//           4 y f32[n_tokens * out_rows], 5 params (rows, cols, row_offset, out_rows as in
//           matmul.wgsl), 6 step.
// Mapping: 8 · ROW_LANES invocations; workgroup (i, j) computes rows Ri .. Ri+R-1 × tokens Tj ..
//          Tj+T-1, R = 4 · ROW_LANES, T = 8 · TOKENS_PER_THREAD, so the caller dispatches
//          (ceil(rows / R), ceil(n_tokens / T), 1). Per group of 32 columns, R invocations stage a
//          row's codes each (split into even and odd bytes) and the next T a token's q_x; then
//          invocation (tr, tt) = (lid % ROW_LANES, lid / ROW_LANES) accumulates rows tr +
//          ROW_LANES · i (i < 4) × tokens tt + 8j (j < TOKENS_PER_THREAD). A warp's lanes read
//          consecutive rows (no bank conflicts) and one or two tokens (broadcasts). ROW_LANES 16
//          (64 rows, 128 invocations) doubles a matrix's workgroups at the same work an
//          invocation: matrices of a few thousand rows otherwise fill a big GPU unevenly.
//          STAGE_GROUPS groups are staged between one pair of barriers (each staging invocation
//          fetches that many a step ahead), so the barriers and the fetch latency are paid once
//          per STAGE_GROUPS groups.
// Requires cols a multiple of 32. Tested by tests/test_kernels_matmul.py against numpy float64.

//!include scales
//!include int8_dot

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x_codes: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> x_scales: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> step: Step;

override ACCUMULATE: bool = false;
override TOKENS_PER_THREAD: u32 = 8u;  // 8 or 4: tokens a workgroup = 8 × this
override ROW_LANES: u32 = 32u;         // 32 or 16
override STAGE_GROUPS: u32 = 1u;       // groups of 32 columns a stage: 1, 2 or 4

const TOKEN_LANES: u32 = 8u;
const MAX_STAGE_GROUPS: u32 = 4u;
override WORKGROUP: u32 = TOKEN_LANES * ROW_LANES;  // derived: never set by callers
override TILE_ROWS: u32 = 4u * ROW_LANES;            // derived; the dispatch rule depends on it
override TILE_TOKENS: u32 = TOKEN_LANES * TOKENS_PER_THREAD;  // derived

// Slot s · TILE_ROWS + r holds group s of the stage for tile row r; likewise for tokens.
var<workgroup> w_even: array<vec4<u32>, TILE_ROWS * STAGE_GROUPS>;
var<workgroup> w_odd: array<vec4<u32>, TILE_ROWS * STAGE_GROUPS>;
var<workgroup> w_scale_min: array<vec2<f32>, TILE_ROWS * STAGE_GROUPS>;
var<workgroup> x_even: array<vec4<u32>, TILE_TOKENS * STAGE_GROUPS>;
var<workgroup> x_odd: array<vec4<u32>, TILE_TOKENS * STAGE_GROUPS>;
var<workgroup> x_scale_sum: array<vec2<f32>, TILE_TOKENS * STAGE_GROUPS>;

//!include matmul_store

// What a staging invocation loads for one group: a row's codes (a) and (scale, min), or a token's
// even (a) and odd (b) q_x words and (d, sum); zeros past the rows, tokens or groups.
struct Staged { a: vec4<u32>, b: vec4<u32>, scales: vec2<f32> }

fn fetch(group: u32, groups: u32, stages_row: bool, row: u32, stages_token: bool, token: u32) -> Staged {
    var out = Staged(vec4<u32>(0u), vec4<u32>(0u), vec2<f32>(0.0));
    if (group >= groups) { return out; }
    if (stages_row) {
        out.a = weight_codes[row * groups + group];
        out.scales = group_scale_min(row, group, groups);
    } else if (stages_token) {
        let slot = token * groups + group;
        out.a = x_codes[2u * slot];
        out.b = x_codes[2u * slot + 1u];
        out.scales = x_scales[slot];
    }
    return out;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let rows = params.rows;
    let groups = params.cols / 32u;
    let row0 = wg.x * TILE_ROWS;
    let token0 = wg.y * TILE_TOKENS;
    // Staging: invocations 0..TILE_ROWS-1 a row each; the next TILE_TOKENS a token each. Rows,
    // tokens and groups past the end stage zeros, which add nothing and are never stored.
    let stage_row = row0 + lid;
    let stage_token = token0 + lid - TILE_ROWS;
    let stages_row = lid < TILE_ROWS && stage_row < rows;
    let stages_token = lid >= TILE_ROWS && lid < TILE_ROWS + TILE_TOKENS && stage_token < step.n_tokens;

    let tr = lid % ROW_LANES;
    let tt = lid / ROW_LANES;
    var acc: array<vec4<f32>, 8>;  // acc[j][i]: token tt + 8j, row tr + ROW_LANES · i
    for (var j = 0u; j < 8u; j++) { acc[j] = vec4<f32>(0.0); }

    // Each stage's codes and scales are fetched into registers one stage ahead, so their loads
    // are in flight while the previous stage's dot products run.
    var next: array<Staged, MAX_STAGE_GROUPS>;
    for (var s = 0u; s < STAGE_GROUPS; s++) { next[s] = fetch(s, groups, stages_row, stage_row, stages_token, stage_token); }
    for (var group0 = 0u; group0 < groups; group0 += STAGE_GROUPS) {
        workgroupBarrier();  // the previous stage's reads are done
        for (var s = 0u; s < STAGE_GROUPS; s++) {
            if (lid < TILE_ROWS) {
                let slot = s * TILE_ROWS + lid;
                w_even[slot] = next[s].a & vec4<u32>(0x0F0F0F0Fu);
                w_odd[slot] = (next[s].a >> vec4<u32>(4u)) & vec4<u32>(0x0F0F0F0Fu);
                w_scale_min[slot] = next[s].scales;
            } else if (lid < TILE_ROWS + TILE_TOKENS) {
                let slot = s * TILE_TOKENS + lid - TILE_ROWS;
                x_even[slot] = next[s].a;
                x_odd[slot] = next[s].b;
                x_scale_sum[slot] = next[s].scales;
            }
        }
        workgroupBarrier();
        if (group0 + STAGE_GROUPS < groups) {
            for (var s = 0u; s < STAGE_GROUPS; s++) {
                next[s] = fetch(group0 + STAGE_GROUPS + s, groups, stages_row, stage_row, stages_token, stage_token);
            }
        }

        for (var s = 0u; s < STAGE_GROUPS; s++) {
            let w = s * TILE_ROWS + tr;
            let we0 = w_even[w];
            let wo0 = w_odd[w];
            let we1 = w_even[w + ROW_LANES];
            let wo1 = w_odd[w + ROW_LANES];
            let we2 = w_even[w + 2u * ROW_LANES];
            let wo2 = w_odd[w + 2u * ROW_LANES];
            let we3 = w_even[w + 3u * ROW_LANES];
            let wo3 = w_odd[w + 3u * ROW_LANES];
            let scale = vec4<f32>(w_scale_min[w].x, w_scale_min[w + ROW_LANES].x,
                                  w_scale_min[w + 2u * ROW_LANES].x, w_scale_min[w + 3u * ROW_LANES].x);
            let min = vec4<f32>(w_scale_min[w].y, w_scale_min[w + ROW_LANES].y,
                                w_scale_min[w + 2u * ROW_LANES].y, w_scale_min[w + 3u * ROW_LANES].y);
            for (var j = 0u; j < TOKENS_PER_THREAD; j++) {
                let t = s * TILE_TOKENS + tt + TOKEN_LANES * j;
                let xe = x_even[t];
                let xo = x_odd[t];
                let xs = x_scale_sum[t];
                let q = vec4<f32>(dot32_float(we0, wo0, xe, xo), dot32_float(we1, wo1, xe, xo),
                                  dot32_float(we2, wo2, xe, xo), dot32_float(we3, wo3, xe, xo));
                // a product and two fused multiply-adds a row, where scale · xs.x · q + min · xs.y
                // added to acc took four instructions: the loop issues ~60 instructions per token
                // for its 32 dot products (session 10, not yet timed on a GPU)
                acc[j] = fma(scale * xs.x, q, fma(min, vec4<f32>(xs.y), acc[j]));
            }
        }
    }

    let out_rows = select(params.out_rows, rows, params.out_rows == 0u);
    for (var j = 0u; j < TOKENS_PER_THREAD; j++) {
        let token = token0 + tt + TOKEN_LANES * j;
        for (var i = 0u; i < 4u; i++) {
            store(row0 + tr + ROW_LANES * i, token, out_rows, acc[j][i]);
        }
    }
}
