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
//
// Bindings: 0 q f32[n_head, head_dim], 1 k_cache f32[max_context, n_kv_head, head_dim],
//           2 v_cache (same shape), 3 partials f32[n_head, n_chunks, 4 + head_dim] as
//           (m, l, 0, 0, acc...), 4 params (attention.wgsl's), 5 step.
// Requires head_dim a multiple of 4 and at most 256.
// Mapping: dispatch (n_head, n_chunks, 1), 256 threads. Thread i scores keys i, i + 256, ... of the
// chunk into workgroup memory; the maximum is reduced as a tree; then the threads form
// 256 / (head_dim / 4) slices of head_dim / 4 threads, thread (slice, c) summing value columns
// 4c..4c+3 over the chunk's keys j with j % slices == slice; slices are summed at the end.
// A decode step's chunks are short (one at position 64), so the time is the latency of each
// thread's chain of loads: the loops keep four (scores) or two (values) independent loads in
// flight, and 256 threads make the value loop a quarter as long as 64 did (H200, SmolLM2 shape at
// position 64: ~20 µs a dispatch before).
// Tested by tests/test_kernels_attention.py against numpy float64.

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

const WORKGROUP: u32 = 256u;
const MAX_HEAD_VEC4: u32 = 64u;     // head_dim <= 256
const NEG_BIG: f32 = -3.4028235e38; // stands in for -inf: exp(NEG_BIG - m) == 0 for any finite m
override CHUNK: u32 = 256u;          // keys per workgroup, at most 1024

var<workgroup> q_head: array<vec4<f32>, MAX_HEAD_VEC4>;
var<workgroup> scores: array<f32, 1024>;
var<workgroup> reduce: array<f32, WORKGROUP>;
var<workgroup> partial_acc: array<vec4<f32>, WORKGROUP>;
var<workgroup> partial_sum: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let head = wg.x;
    let chunk = wg.y;
    let n_vec = params.head_dim / 4u;
    let kv_head = head / (params.n_head / params.n_kv_head);
    let kv_stride = params.n_kv_head * n_vec;  // vec4s per cache row
    let kv_offset = kv_head * n_vec;
    let n_keys = step.position + 1u;
    var first_key = chunk * CHUNK;
    if (params.window > 0u && n_keys > params.window) { first_key = max(first_key, n_keys - params.window); }
    let end_key = min(chunk * CHUNK + CHUNK, n_keys);
    let out_base = (head * nwg.y + chunk) * (n_vec + 1u);

    if (first_key >= end_key) { return; }  // a chunk the combine will not read (uniform: no barrier skipped unevenly)

    for (var c = lid; c < n_vec; c += WORKGROUP) { q_head[c] = q[head * n_vec + c]; }
    workgroupBarrier();

    let n = end_key - first_key;
    var m_thread = NEG_BIG;
    for (var i = lid; i < n; i += WORKGROUP) {
        let k_base = (first_key + i) * kv_stride + kv_offset;
        var dots = vec4<f32>(0.0);
        var c = 0u;
        for (; c + 3u < n_vec; c += 4u) {
            dots += vec4<f32>(dot(q_head[c], k_cache[k_base + c]), dot(q_head[c + 1u], k_cache[k_base + c + 1u]),
                              dot(q_head[c + 2u], k_cache[k_base + c + 2u]), dot(q_head[c + 3u], k_cache[k_base + c + 3u]));
        }
        for (; c < n_vec; c++) { dots.x += dot(q_head[c], k_cache[k_base + c]); }
        let s = ((dots.x + dots.y) + (dots.z + dots.w)) * params.scale;
        scores[i] = s;
        m_thread = max(m_thread, s);
    }
    reduce[lid] = m_thread;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) { reduce[lid] = max(reduce[lid], reduce[lid + stride]); }
        workgroupBarrier();
    }
    let m = reduce[0];
    for (var i = lid; i < n; i += WORKGROUP) { scores[i] = exp(scores[i] - m); }
    workgroupBarrier();

    let slices = WORKGROUP / n_vec;
    let slice = lid / n_vec;
    let col = lid % n_vec;
    var acc = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var l = 0.0;
    if (slice < slices) {
        var j = slice;
        for (; j + slices < n; j += 2u * slices) {
            let p0 = scores[j];
            let p1 = scores[j + slices];
            l += p0 + p1;
            acc += p0 * v_cache[(first_key + j) * kv_stride + kv_offset + col];
            acc2 += p1 * v_cache[(first_key + j + slices) * kv_stride + kv_offset + col];
        }
        if (j < n) {
            let p = scores[j];
            l += p;
            acc += p * v_cache[(first_key + j) * kv_stride + kv_offset + col];
        }
    }
    partial_acc[lid] = acc + acc2;
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
