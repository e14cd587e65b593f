// Causal grouped-query attention of a chunk of queries over the KV cache, optionally within a
// sliding window. Query t of the chunk sits at position p = step.position + t and attends to cache
// rows j0..p, where j0 = 0, or j0 = max(0, p - window + 1) when params.window > 0 (Mistral-style
// sliding-window attention: a query sees itself and the window - 1 keys before it; older rows stay
// in the cache but are never read):
//     s_j       = (q[t, h, :] · k_cache[j, g, :]) * scale,      g = h / (n_head / n_kv_head)
//     out[t, h] = sum_j softmax(s)_j v_cache[j, g, :],          j = j0..p
// Softmax is float32 with max subtraction, done online over tiles of TILE keys (running max m,
// running sum l, accumulator rescaled by exp(m_old - m_new)), so the context length is bounded only
// by the cache, not by any array in the shader.
//
// Bindings: 0 q f32[n_tokens, n_head, head_dim], 1 k_cache [max_context, n_kv_head, head_dim] in kv_cache.wgsl's format,
//           2 v_cache (same shape), 3 out f32[n_tokens, n_head * head_dim], 4 params, 5 step.
// Requires head_dim a multiple of 4 and at most 256 (rows are read as vec4), n_head a multiple of
// n_kv_head.
// Mapping: dispatch (n_head, n_tokens, 1); one workgroup of 64 threads per (head, query).
//   Scores: thread i computes the score of key (tile start + i).
//   Values: the threads form `slices` groups of head_dim/4 threads; thread (slice, c) owns output
//   columns 4c..4c+3 and accumulates the keys j of the tile with j % slices == slice; the slices
//   are summed once at the end.
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

const WORKGROUP: u32 = 64u;
const TILE: u32 = WORKGROUP;       // keys scored per tile: one per thread
const MAX_HEAD_VEC4: u32 = 64u;    // head_dim <= 256
const NEG_BIG: f32 = -3.4028235e38; // stands in for -inf: exp(NEG_BIG - m) == 0 for any finite m

var<workgroup> q_tile: array<vec4<f32>, MAX_HEAD_VEC4>;
var<workgroup> scores: array<f32, TILE>;
var<workgroup> probs: array<f32, TILE>;
var<workgroup> partial_acc: array<vec4<f32>, WORKGROUP>;
var<workgroup> partial_sum: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wg.x;
    let t = wg.y;
    let n_vec = params.head_dim / 4u;
    let kv_head = head / (params.n_head / params.n_kv_head);
    let kv_stride = params.n_kv_head * n_vec;     // vec4s per cache row
    let kv_offset = kv_head * n_vec;
    let n_keys = step.position + t + 1u;  // keys 0..p exist; the window may start later
    var first_key = 0u;
    if (params.window > 0u && n_keys > params.window) { first_key = n_keys - params.window; }

    let q_base = (t * params.n_head + head) * n_vec;
    for (var c = lid; c < n_vec; c += WORKGROUP) { q_tile[c] = q[q_base + c]; }
    workgroupBarrier();

    let slices = WORKGROUP / n_vec;
    let slice = lid / n_vec;
    let col = lid % n_vec;
    let owns_columns = slice < slices;

    var m_run = NEG_BIG;
    var l_part = 0.0;                 // this thread's share of the softmax denominator
    var acc = vec4<f32>(0.0);
    for (var key0 = first_key; key0 < n_keys; key0 += TILE) {
        let key = key0 + lid;
        var s = NEG_BIG;
        if (key < n_keys) {
            let k_base = key * kv_stride + kv_offset;
            var dot_qk = 0.0;
            for (var c = 0u; c < n_vec; c++) { dot_qk += dot(q_tile[c], k_row4(k_base + c)); }
            s = dot_qk * params.scale;
        }
        scores[lid] = s;
        workgroupBarrier();

        var m_tile = scores[0];
        for (var j = 1u; j < TILE; j++) { m_tile = max(m_tile, scores[j]); }
        let m_new = max(m_run, m_tile);
        let alpha = exp(m_run - m_new);
        probs[lid] = exp(s - m_new);
        m_run = m_new;
        workgroupBarrier();
        // The next tile writes `scores` only after this barrier (all reads of it are above) and
        // `probs` only after its first barrier (all reads below finish before it), so two suffice.

        acc *= alpha;
        l_part *= alpha;
        if (owns_columns) {
            let tile_len = min(TILE, n_keys - key0);
            for (var j = slice; j < tile_len; j += slices) {
                let p = probs[j];
                l_part += p;
                acc += p * v_row4((key0 + j) * kv_stride + kv_offset + col);
            }
        }
    }

    partial_acc[lid] = acc;
    partial_sum[lid] = l_part;
    workgroupBarrier();
    if (lid < n_vec) {
        var total = vec4<f32>(0.0);
        var denominator = 0.0;
        for (var sl = 0u; sl < slices; sl++) {
            total += partial_acc[sl * n_vec + lid];
            denominator += partial_sum[sl * n_vec + lid];
        }
        out[q_base + lid] = total / denominator;
    }
}
