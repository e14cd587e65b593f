// Causal grouped-query attention of a prefill chunk, as attention.wgsl computes it (same bindings,
// same optional sliding window, online float32 softmax), for GPUs: a workgroup takes 16 (query,
// head) rows — HEADS heads that share one KV head × 16 / HEADS consecutive queries — and walks
// the keys in tiles of TILE (32 for head_dim <= 64, else 16: the tiles fit in 32 KiB), each key
// and value row loaded once into workgroup memory for all 16 rows. attention.wgsl (one query a
// workgroup) reads every key from memory once per query.
//
// Bindings: 0 q f32[n_tokens, n_head, head_dim], 1 k_cache [max_context, n_kv_head, head_dim] in kv_cache.wgsl's format,
//           2 v_cache (same shape), 3 out f32[n_tokens, n_head * head_dim], 4 params, 5 step.
// Requires head_dim = 4 · HEAD_VEC4 ≤ 128 and HEADS dividing both 16 and n_head / n_kv_head.
// Mapping: dispatch (n_head / HEADS, ceil(n_tokens / (16 / HEADS)), 1), 128 invocations; row r of
//   the workgroup is head wg.x · HEADS + r % HEADS, query wg.y · 16 / HEADS + r / HEADS, and its 8
//   invocations (lid / 8 == r) score keys lane + 8k (k < TILE / 8) of each tile, exponentiate those
//   (each exp once: exp is a quarter- or eighth-rate instruction) and own value columns lane + 8i.
//   A row's sum of exponentials stays split over its lanes until the end.
// Tested by tests/test_kernels_attention.py against numpy float64.

//!include kv_cache

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec2<u32>>;  // kv_cache.wgsl's format
@group(0) @binding(2) var<storage, read> v_cache: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

override HEAD_VEC4: u32 = 16u;
override HEADS: u32 = 1u;
override TILE: u32 = 16u;  // keys a tile: 16 or 32, with TILE · (HEAD_VEC4 + 1) <= TILE_VEC4S

const WORKGROUP: u32 = 128u;
const ROWS: u32 = 16u;
const LANES: u32 = WORKGROUP / ROWS;      // 8 invocations a row
const MAX_TILE: u32 = 32u;
const MAX_VEC4: u32 = 32u;                // head_dim <= 128
const TILE_VEC4S: u32 = 544u;             // 32 keys of 17 vec4s or 16 of 33
const COLS: u32 = MAX_VEC4 / LANES;       // value vec4s a lane owns, at most
const NEG_BIG: f32 = -3.4028235e38;       // a masked score; exp(NEG_BIG - m) == 0 for any finite m
override KEYS: u32 = TILE / LANES;        // derived: keys a lane scores
override STRIDE: u32 = HEAD_VEC4 + 1u;    // derived: a key row's vec4s, padded so the 8 lanes of a row read 8 keys in different banks

var<workgroup> q_tile: array<vec4<f32>, ROWS * MAX_VEC4>;
var<workgroup> k_tile: array<vec4<f32>, TILE_VEC4S>;
var<workgroup> v_tile: array<vec4<f32>, TILE_VEC4S>;
var<workgroup> scores: array<f32, ROWS * MAX_TILE>;
var<workgroup> weights: array<f32, ROWS * MAX_TILE>;   // exp(score - running max)
var<workgroup> lane_sums: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let queries = ROWS / HEADS;
    let row = lid / LANES;
    let lane = lid % LANES;
    let head = wg.x * HEADS + row % HEADS;
    let t = wg.y * queries + row / HEADS;
    let kv_head = (wg.x * HEADS) / (params.n_head / params.n_kv_head);
    let kv_stride = params.n_kv_head * HEAD_VEC4;  // vec4s per cache row
    let kv_offset = kv_head * HEAD_VEC4;
    let n_tokens = step.n_tokens;
    let row_valid = t < n_tokens;

    // Keys this row sees: first_key .. position (its own); the workgroup walks the union.
    let position = step.position + t;
    var first_key = 0u;
    if (params.window > 0u && position + 1u > params.window) { first_key = position + 1u - params.window; }
    let t_first = wg.y * queries;
    let t_last = min(t_first + queries, n_tokens) - 1u;
    let keys_end = step.position + t_last + 1u;
    var keys_begin = 0u;
    if (params.window > 0u && step.position + t_first + 1u > params.window) {
        keys_begin = step.position + t_first + 1u - params.window;
    }

    for (var i = lid; i < ROWS * HEAD_VEC4; i += WORKGROUP) {
        let r = i / HEAD_VEC4;
        let tr = wg.y * queries + r / HEADS;
        var v = vec4<f32>(0.0);
        if (tr < n_tokens) { v = q[(tr * params.n_head + wg.x * HEADS + r % HEADS) * HEAD_VEC4 + i % HEAD_VEC4]; }
        q_tile[r * HEAD_VEC4 + i % HEAD_VEC4] = v;
    }

    var m_run = NEG_BIG;
    var lane_sum = 0.0;  // this lane's share of the row's sum of exponentials
    var acc: array<vec4<f32>, COLS>;
    for (var i = 0u; i < COLS; i++) { acc[i] = vec4<f32>(0.0); }

    for (var key0 = keys_begin; key0 < keys_end; key0 += TILE) {
        for (var i = lid; i < TILE * HEAD_VEC4; i += WORKGROUP) {
            let j = i / HEAD_VEC4;
            let c = i % HEAD_VEC4;
            var k = vec4<f32>(0.0);
            var v = vec4<f32>(0.0);
            if (key0 + j < keys_end) {
                let index = (key0 + j) * kv_stride + kv_offset + c;
                k = k_row4(index);
                v = v_row4(index);
            }
            k_tile[j * STRIDE + c] = k;
            v_tile[j * HEAD_VEC4 + c] = v;
        }
        workgroupBarrier();

        var dots = vec4<f32>(0.0);  // keys lane + 8k
        for (var c = 0u; c < HEAD_VEC4; c++) {
            let qc = q_tile[row * HEAD_VEC4 + c];
            for (var k = 0u; k < KEYS; k++) { dots[k] += dot(qc, k_tile[(lane + k * LANES) * STRIDE + c]); }
        }
        var mine = vec4<f32>(NEG_BIG);  // keys past KEYS stay masked: weight 0, never stored
        for (var k = 0u; k < KEYS; k++) {
            let key = key0 + lane + k * LANES;
            mine[k] = select(NEG_BIG, dots[k] * params.scale, row_valid && key >= first_key && key <= position);
            scores[row * TILE + lane + k * LANES] = mine[k];
        }
        workgroupBarrier();

        var m_tile = NEG_BIG;
        for (var j = 0u; j < TILE; j++) { m_tile = max(m_tile, scores[row * TILE + j]); }
        let m_new = max(m_run, m_tile);
        let alpha = exp(m_run - m_new);
        // A row with no visible key yet has m_new == NEG_BIG and weights 1 for its masked keys; the
        // first tile that has one rescales those by alpha = exp(NEG_BIG - m) == 0.
        let p = select(vec4<f32>(0.0), exp(mine - vec4<f32>(m_new)), vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(KEYS));
        lane_sum = lane_sum * alpha + p.x + p.y + p.z + p.w;
        for (var k = 0u; k < KEYS; k++) { weights[row * TILE + lane + k * LANES] = p[k]; }
        for (var i = 0u; i < COLS; i++) { acc[i] *= alpha; }
        m_run = m_new;
        workgroupBarrier();

        for (var j = 0u; j < TILE; j++) {
            let w = weights[row * TILE + j];
            for (var i = 0u; i < COLS; i++) {
                let c = lane + LANES * i;
                if (c < HEAD_VEC4) { acc[i] += w * v_tile[j * HEAD_VEC4 + c]; }
            }
        }
        workgroupBarrier();  // the next tile overwrites k_tile, v_tile, scores and weights
    }

    lane_sums[lid] = lane_sum;
    workgroupBarrier();
    var l_run = 0.0;
    for (var l = 0u; l < LANES; l++) { l_run += lane_sums[row * LANES + l]; }
    if (row_valid) {
        for (var i = 0u; i < COLS; i++) {
            let c = lane + LANES * i;
            if (c < HEAD_VEC4) { out[(t * params.n_head + head) * HEAD_VEC4 + c] = acc[i] / l_run; }
        }
    }
}
