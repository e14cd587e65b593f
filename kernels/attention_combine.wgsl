// Merges attention_split.wgsl's chunks of each query head into the attention output (the merge
// itself is attention_merge.wgsl's, which the output projection's prologue also uses).
//
// Bindings: 0 partials f32[n_head, n_chunks, 4 + head_dim] (attention_split.wgsl's layout),
//           1 out f32[n_head * head_dim], 2 params (attention.wgsl's), 3 combine params (n_chunks),
//           4 step.
// Mapping: dispatch (n_head, 1, 1), 64 threads; thread c owns output columns 4c..4c+3.
// Tested by tests/test_kernels_attention.py against numpy float64.

@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> attention_params: AttentionParams;
@group(0) @binding(3) var<uniform> split_chunks: Chunks;
@group(0) @binding(4) var<uniform> step: Step;

const WORKGROUP: u32 = 64u;
override CHUNK: u32 = 256u;  // attention_split.wgsl's keys per chunk

fn split_partial(i: u32) -> vec4<f32> { return partials[i]; }

//!include attention_merge

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wg.x;
    let n_vec = attention_params.head_dim / 4u;
    let live = live_chunks();
    for (var col = lid; col < n_vec; col += WORKGROUP) {
        out[head * n_vec + col] = merged_columns(head, col, live);
    }
}
