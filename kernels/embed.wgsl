// out[t, :] = E[tokens[t], :] * SCALE   for t < step.n_tokens: dequantized rows of the embedding
// matrix (SCALE = 1 but for Gemma, whose embeddings are multiplied by sqrt(dim): one rounded f32
// product, as llama.cpp's ggml_scale does).
//
// Bindings: 0 weight_codes u32[], 1 weight_scales u32[] (layout from `//!include weights`,
//           E is [rows = vocab, cols = dim]), 2 tokens u32[n_tokens], 3 out f32[n_tokens * dim]
//           (row-major [n_tokens, dim]), 4 params, 5 step.
// Mapping: workgroup t (dispatch (n_tokens, 1, 1)) copies token t's row; its 64 threads stride
//          over the row's 8-column blocks. A token id ≥ vocab (requests are validated before they
//          reach the GPU) writes zeros rather than reading past the matrix.
//          E may be bound as row blocks (a matrix larger than one storage binding): the block
//          holding rows row_offset.. (params) writes the tokens whose rows it holds; the first
//          block (row_offset 0) also writes zeros for every other token, and the later blocks,
//          dispatched after it, overwrite those that are theirs.
// Tested by tests/test_kernels_embed.py: bit-for-bit equal to repack.dequantize.

//!include weights

struct Params { rows: u32, cols: u32, row_offset: u32, _pad0: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<u32>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<uniform> step: Step;

const WORKGROUP: u32 = 64u;
override SCALE: f32 = 1.0;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x;
    if (t >= step.n_tokens) { return; }
    let row = tokens[t] - params.row_offset;  // wraps past rows for ids below this block
    let cols = params.cols;
    let valid = row < params.rows;
    if (!valid && params.row_offset != 0u) { return; }
    for (var k0 = lid * 8u; k0 < cols; k0 += WORKGROUP * 8u) {
        var w = Block8(vec4<f32>(0.0), vec4<f32>(0.0));
        if (valid) { w = weight_block8(row, k0, cols); }
        let base = t * cols + k0;
        for (var i = 0u; i < 4u; i++) {
            out[base + i] = w.lo[i] * SCALE;
            out[base + 4u + i] = w.hi[i] * SCALE;
        }
    }
}
