// Merges attention_split.wgsl's chunks of each query head into the attention output:
//     M = max_c m_c,   out[h] = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c.
// Chunks without keys hold m = NEG_BIG and l = acc = 0; at least one chunk (the one holding the
// current position) has keys, so the denominator is >= 1.
//
// Bindings: 0 partials f32[n_head, n_chunks, 4 + head_dim] (attention_split.wgsl's layout),
//           1 out f32[n_head * head_dim], 2 params (attention.wgsl's), 3 combine params (n_chunks).
// Mapping: dispatch (n_head, 1, 1), 64 threads; thread c owns output columns 4c..4c+3.
// Tested by tests/test_kernels_attention.py against numpy float64.

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Chunks { count: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<uniform> chunks: Chunks;

const WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wg.x;
    let n_vec = params.head_dim / 4u;
    let head_base = head * chunks.count * (n_vec + 1u);
    var m_max = partials[head_base].x;
    for (var c = 1u; c < chunks.count; c++) { m_max = max(m_max, partials[head_base + c * (n_vec + 1u)].x); }
    for (var col = lid; col < n_vec; col += WORKGROUP) {
        var total = vec4<f32>(0.0);
        var denominator = 0.0;
        for (var c = 0u; c < chunks.count; c++) {
            let base = head_base + c * (n_vec + 1u);
            let weight = exp(partials[base].x - m_max);
            denominator += weight * partials[base].y;
            total += weight * partials[base + 1u + col];
        }
        out[head * n_vec + col] = total / denominator;
    }
}
