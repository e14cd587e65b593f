// Causal grouped-query attention of a chunk of queries over the KV cache, as attention.wgsl (same
// formula, sliding window, bindings and dispatch (n_head, n_tokens, 1)), for CPU Vulkan drivers.
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
// lavapipe, 2 cores, SmolLM2 at depth 1024: attention.wgsl made the decode step 132 ms; a kernel
// with one key per step (a subgroupAdd and two exp per key) 72 ms; this 69 ms: the K and V
// values each lane loads (the same in all three) now set its time.
// Tested by tests/test_kernels_attention.py against numpy float64.

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

// Pipeline constants, so that the loops over them unroll and the arrays below stay in registers.
override WORKGROUP: u32 = 8u;      // the subgroup size: the lanes must form one subgroup
override HEAD_VEC4: u32 = 16u;     // head_dim / 4, at most MAX_HEAD_VEC4
override COLS_PER_LANE: u32 = 2u;  // ceil(HEAD_VEC4 / WORKGROUP), at most MAX_COLS_PER_LANE
const MAX_HEAD_VEC4: u32 = 64u;    // head_dim 256
const MAX_COLS_PER_LANE: u32 = 16u;  // head_dim 256 on 4-lane subgroups
const NEG_BIG: f32 = -3.4028235e38;  // stands in for -inf: exp(NEG_BIG - m) == 0 for any finite m

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let head = wg.x;
    let t = wg.y;
    let kv_head = head / (params.n_head / params.n_kv_head);
    let kv_stride = params.n_kv_head * HEAD_VEC4;  // vec4s per cache row
    let kv_offset = kv_head * HEAD_VEC4;
    let n_keys = step.position + t + 1u;  // keys 0..p exist; the window may start later
    var first_key = 0u;
    if (params.window > 0u && n_keys > params.window) { first_key = n_keys - params.window; }
    let q_base = (t * params.n_head + head) * HEAD_VEC4;

    var q_all: array<vec4<f32>, MAX_HEAD_VEC4>;
    for (var c = 0u; c < HEAD_VEC4; c++) { q_all[c] = q[q_base + c] * params.scale; }
    // Output columns past the head (HEAD_VEC4 not a multiple of WORKGROUP) accumulate the last
    // column again and are never written.
    var acc: array<vec4<f32>, MAX_COLS_PER_LANE>;
    for (var i = 0u; i < COLS_PER_LANE; i++) { acc[i] = vec4<f32>(0.0); }
    var m = NEG_BIG;
    var l = 0.0;
    for (var block = first_key; block < n_keys; block += WORKGROUP) {
        // Keys past the last read the last one, with p = 0.
        let key = block + lane;
        let k_row = min(key, n_keys - 1u) * kv_stride + kv_offset;
        var s = 0.0;
        for (var c = 0u; c < HEAD_VEC4; c++) { s += dot(q_all[c], k_cache[k_row + c]); }
        s = select(NEG_BIG, s, key < n_keys);
        let m_new = max(m, subgroupMax(s));
        let alpha = exp(m - m_new);
        let p = exp(s - m_new);
        l = l * alpha + subgroupAdd(p);
        m = m_new;
        for (var i = 0u; i < COLS_PER_LANE; i++) { acc[i] *= alpha; }
        for (var j = 0u; j < WORKGROUP; j++) {
            let p_j = subgroupShuffle(p, j);
            let v_row = min(block + j, n_keys - 1u) * kv_stride + kv_offset;
            for (var i = 0u; i < COLS_PER_LANE; i++) {
                acc[i] += p_j * v_cache[v_row + min(lane + i * WORKGROUP, HEAD_VEC4 - 1u)];
            }
        }
    }
    for (var i = 0u; i < COLS_PER_LANE; i++) {
        let c = lane + i * WORKGROUP;
        if (c < HEAD_VEC4) { out[q_base + c] = acc[i] / l; }
    }
}
