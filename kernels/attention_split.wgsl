// Decode attention, split over the keys (flash-decoding): one token's query heads against the KV
// cache, each workgroup taking one head and one chunk of CHUNK keys, so a long context keeps the
// GPU busy (one workgroup per head left a 1024-key decode step on 9 of an H200's 132 SMs).
// attention_combine.wgsl merges the chunks. For query head h at position p = step.position
// (keys j0..p, j0 = 0 or p - window + 1 with a sliding window, as in attention.wgsl), chunk c
// covers keys c·CHUNK .. c·CHUNK + CHUNK - 1 within j0..p and writes, unnormalised,
//     m = max_j s_j,   l = sum_j exp(s_j - m),   acc = sum_j exp(s_j - m) v_j,
// where s_j = (q[h] · k_cache[j, g]) * scale, g = h / (n_head / n_kv_head). A chunk with no key
// in range (past the position, or before a sliding window) returns at once: the combine reads only
// the chunks in range.
// The step's own q, k and v come straight from the QKV projection's output: each workgroup ropes
// its query head (rope_head.wgsl: bias, q/k norm, rotation, as rope_kv_write.wgsl does in prefill),
// the workgroups of the chunk holding position p also rope key p and take value p from there
// rather than from the cache, and the first query head of each KV group writes them into the cache
// row p for later steps. That saves the decode step one dispatch per layer (a decode step of a small
// model is bound by the CPU time of recording its dispatches).
//
// Bindings: 0 qkv f32[(n_head + 2 n_kv_head) head_dim] (one token: q heads, k heads, v heads),
//           1 k_cache [max_context, n_kv_head, head_dim] in kv_cache.wgsl's format, 2 v_cache (same shape),
//           3 partials f32[n_head, n_chunks, 4 + head_dim] as (m, l, 0, 0, acc...),
//           4 params (attention.wgsl's), 5 step, 6 bias, 7 q_norm, 8 k_norm, 9 rope, 10 rope_params
//           (rope_kv_write.wgsl's bindings 1-4 and 8).
// Requires head_dim a multiple of 4 and at most 256.
// Mapping: dispatch (n_head, n_chunks, 1), 256 threads. Scores: the threads form rows of
// THREADS_PER_ROW consecutive lanes; a row scores 4 keys at once, lane l summing q·k over the vec4
// columns l, l + THREADS_PER_ROW, ... (COLS_PER_LANE of them), and the row's lanes add up through
// `//!include reduce` (subgroup shuffles where the device has them). A decode step's chunk is
// short (65 keys at position 64), so the time is the latency of each thread's chain of loads: with
// one key a thread (before), head_dim / 16 dependent rounds of loads for every key; now each lane
// has 4 · COLS_PER_LANE independent loads in flight and a pass covers 4 · 256 / THREADS_PER_ROW
// keys (all 65 at head_dim 128). The maximum is a `workgroup_max` (subgroup maxima, one barrier);
// then the threads form 256 / (head_dim / 4) slices of head_dim / 4 threads, thread (slice, c)
// summing value columns 4c..4c+3 over the chunk's keys j with j % slices == slice, four keys in
// flight; slices are summed at the end. (H200, SmolLM2 shape at position 64: ~20 µs a dispatch with 64 threads and one
// load in flight; H100, Llama-3.1-8B shape: 15.8 µs in the per-dispatch profile with 256 threads and
// one key a thread, 12% of the step.)
// Tested by tests/test_kernels_attention.py against numpy float64.

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> k_cache: array<vec2<u32>>;  // kv_cache.wgsl's format
@group(0) @binding(2) var<storage, read_write> v_cache: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read> q_norm: array<f32>;
@group(0) @binding(8) var<storage, read> k_norm: array<f32>;
@group(0) @binding(9) var<storage, read> rope: array<f32>;
@group(0) @binding(10) var<uniform> rope_params: RopeParams;

override HAS_BIAS: bool = false;
override QK_NORM: bool = false;
override NEOX: bool = false;

//!include rope_head
//!include kv_cache
//!include kv_cache_store
//!include reduce

const WORKGROUP: u32 = 256u;
override THREADS_PER_ROW: u32 = 8u;  // lanes scoring one key: a power of two, at most WORKGROUP / 4
override COLS_PER_LANE: u32 = 4u;    // ceil(head_dim / 4 / THREADS_PER_ROW)
const MAX_HEAD_VEC4: u32 = 64u;     // head_dim <= 256
const NEG_BIG: f32 = -3.4028235e38; // stands in for -inf: exp(NEG_BIG - m) == 0 for any finite m
override CHUNK: u32 = 256u;          // keys per workgroup, at most 1024

var<workgroup> q_head: array<vec4<f32>, MAX_HEAD_VEC4>;
var<workgroup> k_new: array<vec4<f32>, MAX_HEAD_VEC4>;  // key and value p, in the chunk holding p
var<workgroup> v_new: array<vec4<f32>, MAX_HEAD_VEC4>;
var<workgroup> scores: array<f32, 1024>;
var<workgroup> partial_acc: array<vec4<f32>, WORKGROUP>;
var<workgroup> partial_sum: array<f32, WORKGROUP>;

// Columns 4 col .. 4 col + 3 of key `key` (at vec4 `at` of the cache): the cache row, or k_new for the step's own key.
fn key4(key: u32, at: u32, col: u32) -> vec4<f32> {
    return select(k_row4(at + col), k_new[col], key == step.position);
}

// Columns 4 col .. 4 col + 3 of value `key`: the cache row, or v_new for the step's own key.
fn value4(key: u32, kv_stride: u32, kv_offset: u32, col: u32) -> vec4<f32> {
    return select(v_row4(key * kv_stride + kv_offset + col), v_new[col], key == step.position);
}

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation) {
    let lid = inv.index;
    let head = inv.workgroup.x;
    let chunk = inv.workgroup.y;
    let n_vec = params.head_dim / 4u;
    let kv_head = head / (params.n_head / params.n_kv_head);
    let kv_stride = params.n_kv_head * n_vec;  // vec4s per cache row
    let kv_offset = kv_head * n_vec;
    let n_keys = step.position + 1u;
    var first_key = chunk * CHUNK;
    if (params.window > 0u && n_keys > params.window) { first_key = max(first_key, n_keys - params.window); }
    let end_key = min(chunk * CHUNK + CHUNK, n_keys);
    let out_base = (head * inv.workgroups.y + chunk) * (n_vec + 1u);

    if (first_key >= end_key) { return; }  // a chunk the combine will not read (uniform: no barrier skipped unevenly)

    let p = step.position;
    let head_dim = params.head_dim;
    let q_width = params.n_head * head_dim;
    let kv_width = params.n_kv_head * head_dim;
    load_head(head * head_dim, head * head_dim, true, lid);
    for (var j = lid; j < head_dim; j += WORKGROUP) { q_head[j / 4u][j % 4u] = rotated(j, p); }
    if (end_key == n_keys) {  // this chunk holds key p (uniform over the workgroup)
        let k_at = q_width + kv_head * head_dim;
        load_head(k_at, k_at, false, lid);
        let v_at = q_width + kv_width + kv_head * head_dim;
        for (var j = lid; j < head_dim; j += WORKGROUP) {
            k_new[j / 4u][j % 4u] = rotated(j, p);
            var v = qkv[v_at + j];
            if (HAS_BIAS) { v += bias[v_at + j]; }
            v_new[j / 4u][j % 4u] = v;
        }
        workgroupBarrier();
        // Key and value p are attended to as the cache holds them (half precision unless
        // KV_F32), as later steps and the prefill graph read them.
        let writes_cache = head % (params.n_head / params.n_kv_head) == 0u;
        for (var c = lid; c < n_vec; c += WORKGROUP) {
            k_new[c] = kv_round(k_new[c]);
            v_new[c] = kv_round(v_new[c]);
            if (writes_cache) {
                store_k4(p * kv_stride + kv_offset + c, k_new[c]);
                store_v4(p * kv_stride + kv_offset + c, v_new[c]);
            }
        }
    }
    workgroupBarrier();

    let n = end_key - first_key;
    let lane = lid % THREADS_PER_ROW;
    let rows = WORKGROUP / THREADS_PER_ROW;
    let row = lid / THREADS_PER_ROW;
    var m_thread = NEG_BIG;
    for (var pass_start = 0u; pass_start < n; pass_start += 4u * rows) {  // uniform: row_total has barriers
        let i = vec4<u32>(pass_start + row) + rows * vec4<u32>(0u, 1u, 2u, 3u);
        let key = first_key + min(i, vec4<u32>(n - 1u));  // past the chunk: its last key again, unused
        let at = key * kv_stride + kv_offset;
        var dots = vec4<f32>(0.0);
        for (var k = 0u; k < COLS_PER_LANE; k++) {
            let c = lane + k * THREADS_PER_ROW;
            if (c < n_vec) {
                let qc = q_head[c];
                dots += vec4<f32>(dot(qc, key4(key.x, at.x, c)), dot(qc, key4(key.y, at.y, c)),
                                  dot(qc, key4(key.z, at.z, c)), dot(qc, key4(key.w, at.w, c)));
            }
        }
        let s = row_total(dots, inv) * params.scale;
        if (lane == 0u) {
            for (var r = 0u; r < 4u; r++) {
                if (i[r] < n) {
                    scores[i[r]] = s[r];
                    m_thread = max(m_thread, s[r]);
                }
            }
        }
    }
    let m = workgroup_max(m_thread, inv);  // also makes the scores visible to all
    for (var i = lid; i < n; i += WORKGROUP) { scores[i] = exp(scores[i] - m); }
    workgroupBarrier();

    let slices = WORKGROUP / n_vec;
    let slice = lid / n_vec;
    let col = lid % n_vec;
    var acc = array<vec4<f32>, 4>();
    var l = 0.0;
    if (slice < slices) {
        var j = slice;
        for (; j + 3u * slices < n; j += 4u * slices) {
            let weights = vec4<f32>(scores[j], scores[j + slices], scores[j + 2u * slices], scores[j + 3u * slices]);
            l += (weights.x + weights.y) + (weights.z + weights.w);
            acc[0] += weights.x * value4(first_key + j, kv_stride, kv_offset, col);
            acc[1] += weights.y * value4(first_key + j + slices, kv_stride, kv_offset, col);
            acc[2] += weights.z * value4(first_key + j + 2u * slices, kv_stride, kv_offset, col);
            acc[3] += weights.w * value4(first_key + j + 3u * slices, kv_stride, kv_offset, col);
        }
        for (; j < n; j += slices) {
            let weight = scores[j];
            l += weight;
            acc[0] += weight * value4(first_key + j, kv_stride, kv_offset, col);
        }
    }
    partial_acc[lid] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    partial_sum[lid] = l;
    workgroupBarrier();
    if (lid < n_vec) {
        var total = vec4<f32>(0.0);
        var denominator = 0.0;
        for (var sl = 0u; sl < slices; sl++) {
            total += partial_acc[sl * n_vec + lid];
            denominator += partial_sum[sl * n_vec + lid];
        }
        partials[out_base + 1u + lid] = total;
        if (lid == 0u) { partials[out_base] = vec4<f32>(m, denominator, 0.0, 0.0); }
    }
}
