// Matvec input prologue: in = the attention output, merged from attention_split.wgsl's chunk
// partials (x) as attention_combine.wgsl does, inside the output projection: one dispatch fewer
// per layer. Every workgroup merges the whole input (each partial read once per workgroup), so
// the model fuses it only into small projections (see FUSED_COMBINE_MAX_WEIGHTS).
// Bindings: 5 attention params (attention.wgsl's), 6 split chunk count, 7 step.

@group(0) @binding(5) var<uniform> attention_params: AttentionParams;
@group(0) @binding(6) var<uniform> split_chunks: Chunks;
@group(0) @binding(7) var<uniform> step: Step;

override CHUNK: u32 = 256u;  // attention_split.wgsl's keys per chunk

fn split_partial(i: u32) -> vec4<f32> { return x[i]; }

//!include attention_merge

var<private> live: vec2<u32>;

fn prepare_input(inv: Invocation) { live = live_chunks(); }

fn input4(i: u32) -> vec4<f32> {
    let n_vec = attention_params.head_dim / 4u;
    return merged_columns(i / n_vec, i % n_vec, live);
}

//!include input_unscaled
