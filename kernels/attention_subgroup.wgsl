// Causal grouped-query attention of a chunk of queries over the KV cache, as attention.wgsl (same
// formula, sliding window and bindings; dispatch (n_head / HEADS, ceil(n_tokens / TOKENS), 1)), for
// CPU Vulkan drivers.
//
// Why another kernel: lavapipe runs a subgroup as the SIMD lanes of one CPU thread and loads memory
// at lane-varying addresses one lane at a time, and barriers are coroutine switches. attention.wgsl's
// 64 threads exchange scores and probabilities through workgroup memory (every thread reads all 64
// scores of a tile for its maximum) and read q from it for every key. Here a workgroup is one
// subgroup (WORKGROUP = the device's subgroup size, which the model measures), keys are taken
// WORKGROUP at a time, and lanes meet only through subgroup operations:
//   scores: lane l scores key block + l against q held whole in its registers;
//   softmax: the block's max and sum are a subgroupMax and a subgroupAdd, then one online-softmax
//     rescale per block (two exp a lane) instead of one per key;
//   values: lane l owns vec4 columns l, l + WORKGROUP, ... of the output (COLS_PER_LANE of them)
//     and adds p_j v_j for each key j of the block, p_j fetched by subgroupShuffle.
// A workgroup takes up to 4 (head, query) pairs, as registers allow: in decode the heads that share
// a KV head, in prefill 4 consecutive queries of one head; each key and value row a lane loads
// serves all of them.
// lavapipe, 2 cores, SmolLM2: at depth 1024 attention.wgsl made the decode step 132 ms, a first
// version of this kernel with one key per step (a subgroupAdd and two exp per key) 72 ms, this 69 ms;
// prefill of 512 tokens, attention alone: 3.3 s with one query a workgroup, 2.2 s with four.
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

// Pipeline constants, so that the loops over them unroll and the arrays below stay in registers.
override WORKGROUP: u32 = 8u;      // the subgroup size: the lanes must form one subgroup
override HEAD_VEC4: u32 = 16u;     // head_dim / 4, at most MAX_HEAD_VEC4
override COLS_PER_LANE: u32 = 2u;  // ceil(HEAD_VEC4 / WORKGROUP), at most MAX_COLS_PER_LANE
// A workgroup computes SLOTS = HEADS · TOKENS (head, query) pairs: HEADS consecutive heads (of one
// KV head: HEADS divides n_head / n_kv_head) × TOKENS consecutive queries; SLOTS · HEAD_VEC4 <= MAX_HEAD_VEC4.
override HEADS: u32 = 1u;
override TOKENS: u32 = 1u;
const MAX_HEAD_VEC4: u32 = 64u;    // head_dim 256
const MAX_COLS_PER_LANE: u32 = 16u;  // head_dim 256 on 4-lane subgroups
const MAX_SLOTS: u32 = 4u;
const NEG_BIG: f32 = -3.4028235e38;  // stands in for -inf: exp(NEG_BIG - m) == 0 for any finite m

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let slots = HEADS * TOKENS;
    let head0 = wg.x * HEADS;
    let kv_head = head0 / (params.n_head / params.n_kv_head);
    let kv_stride = params.n_kv_head * HEAD_VEC4;  // vec4s per cache row
    let kv_offset = kv_head * HEAD_VEC4;
    // Slot i: head head0 + i % HEADS, query t0 + i / HEADS of the chunk (queries past its end redo its
    // last one, unwritten); it sees keys firsts[i] .. ends[i] - 1, and the workgroup walks the union.
    let t0 = wg.y * TOKENS;
    var ends: array<u32, MAX_SLOTS>;
    var firsts: array<u32, MAX_SLOTS>;
    // q of slots 0..3 (one array each: a loop over the columns then unrolls into straight code)
    var q0: array<vec4<f32>, MAX_HEAD_VEC4>;
    var q1: array<vec4<f32>, MAX_HEAD_VEC4 / 2u>;
    var q2: array<vec4<f32>, MAX_HEAD_VEC4 / 4u>;
    var q3: array<vec4<f32>, MAX_HEAD_VEC4 / 4u>;
    var acc: array<vec4<f32>, MAX_SLOTS * MAX_COLS_PER_LANE>;  // i · COLS_PER_LANE + j: column lane + j · WORKGROUP
    var m: array<f32, MAX_SLOTS>;
    var l: array<f32, MAX_SLOTS>;
    var p: array<f32, MAX_SLOTS>;
    for (var i = 0u; i < slots; i++) {
        let t = min(t0 + i / HEADS, step.n_tokens - 1u);
        ends[i] = step.position + t + 1u;  // keys 0..p exist; the window may start later
        firsts[i] = select(0u, ends[i] - params.window, params.window > 0u && ends[i] > params.window);
        let q_base = (t * params.n_head + head0 + i % HEADS) * HEAD_VEC4;
        for (var c = 0u; c < HEAD_VEC4; c++) {
            let v = q[q_base + c] * params.scale;
            if (i == 0u) { q0[c] = v; } else if (i == 1u) { q1[c] = v; } else if (i == 2u) { q2[c] = v; } else { q3[c] = v; }
        }
        // Output columns past the head (HEAD_VEC4 not a multiple of WORKGROUP) accumulate the last
        // column again and are never written.
        for (var j = 0u; j < COLS_PER_LANE; j++) { acc[i * COLS_PER_LANE + j] = vec4<f32>(0.0); }
        m[i] = NEG_BIG;
        l[i] = 0.0;
    }
    let first_key = firsts[0];
    let n_keys = ends[slots - 1u];
    for (var block = first_key; block < n_keys; block += WORKGROUP) {
        // Keys past the last read the last one, with p = 0.
        let key = block + lane;
        let k_row = min(key, n_keys - 1u) * kv_stride + kv_offset;
        var s = vec4<f32>(0.0);
        for (var c = 0u; c < HEAD_VEC4; c++) {
            let k = k_row4(k_row + c);
            s.x += dot(q0[c], k);
            if (slots > 1u) { s.y += dot(q1[c], k); }
            if (slots > 2u) { s.z += dot(q2[c], k); }
            if (slots > 3u) { s.w += dot(q3[c], k); }
        }
        for (var i = 0u; i < slots; i++) {
            let visible = key >= firsts[i] && key < ends[i];
            let m_new = max(m[i], subgroupMax(select(NEG_BIG, s[i], visible)));
            let alpha = exp(m[i] - m_new);
            p[i] = select(0.0, exp(s[i] - m_new), visible);
            l[i] = l[i] * alpha + subgroupAdd(p[i]);
            m[i] = m_new;
            for (var j = 0u; j < COLS_PER_LANE; j++) { acc[i * COLS_PER_LANE + j] *= alpha; }
        }
        for (var k = 0u; k < WORKGROUP; k++) {
            let v_row = min(block + k, n_keys - 1u) * kv_stride + kv_offset;
            for (var j = 0u; j < COLS_PER_LANE; j++) {
                let v = v_row4(v_row + min(lane + j * WORKGROUP, HEAD_VEC4 - 1u));
                for (var i = 0u; i < slots; i++) { acc[i * COLS_PER_LANE + j] += subgroupShuffle(p[i], k) * v; }
            }
        }
    }
    for (var i = 0u; i < slots; i++) {
        let t = t0 + i / HEADS;
        for (var j = 0u; j < COLS_PER_LANE; j++) {
            let c = lane + j * WORKGROUP;
            if (t < step.n_tokens && c < HEAD_VEC4) { out[(t * params.n_head + head0 + i % HEADS) * HEAD_VEC4 + c] = acc[i * COLS_PER_LANE + j] / l[i]; }
        }
    }
}
