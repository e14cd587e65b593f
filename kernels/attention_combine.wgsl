// Merges attention_split.wgsl's chunks of each query head into the attention output:
//     M = max_c m_c,   out[h] = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c,
// over the chunks that hold keys of this step: from the one of the first key in range (0, or the
// sliding window's start) to the one of the current position. Chunks outside hold nothing (the
// split kernel leaves them unwritten) and are never read, so the cost follows the position, not
// the context window. The last chunk holds the current key, so the denominator is >= 1.
//
// Bindings: 0 partials f32[n_head, n_chunks, 4 + head_dim] (attention_split.wgsl's layout),
//           1 out f32[n_head * head_dim], 2 params (attention.wgsl's), 3 combine params (n_chunks),
//           4 step.
// Mapping: dispatch (n_head, 1, 1), 64 threads; thread c owns output columns 4c..4c+3.
// Tested by tests/test_kernels_attention.py against numpy float64.

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Chunks { count: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<uniform> chunks: Chunks;
@group(0) @binding(4) var<uniform> step: Step;

const WORKGROUP: u32 = 64u;
override CHUNK: u32 = 256u;  // attention_split.wgsl's keys per chunk

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wg.x;
    let n_vec = params.head_dim / 4u;
    let n_keys = step.position + 1u;
    var first_key = 0u;
    if (params.window > 0u && n_keys > params.window) { first_key = n_keys - params.window; }
    let first_chunk = first_key / CHUNK;
    let last_chunk = min((n_keys - 1u) / CHUNK, chunks.count - 1u);
    let head_base = head * chunks.count * (n_vec + 1u);
    var m_max = partials[head_base + first_chunk * (n_vec + 1u)].x;
    for (var c = first_chunk + 1u; c <= last_chunk; c++) { m_max = max(m_max, partials[head_base + c * (n_vec + 1u)].x); }
    for (var col = lid; col < n_vec; col += WORKGROUP) {
        var total = vec4<f32>(0.0);
        var denominator = 0.0;
        for (var c = first_chunk; c <= last_chunk; c++) {
            let base = head_base + c * (n_vec + 1u);
            let weight = exp(partials[base].x - m_max);
            denominator += weight * partials[base].y;
            total += weight * partials[base + 1u + col];
        }
        out[head * n_vec + col] = total / denominator;
    }
}
