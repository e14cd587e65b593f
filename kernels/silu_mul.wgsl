// out[t, j] = silu(gate[t, j]) * up[t, j],   silu(g) = g * sigmoid(g)   (llama's SwiGLU FFN middle).
//
// Bindings: 0 gate_up f32[n_tokens, 2 ffn], per token [gate (ffn values), up (ffn values)],
//           1 out f32[n_tokens, ffn], 2 params, 3 step (only n_tokens is read).
// Mapping: dispatch (ceil(ffn / 256), n_tokens, 1); one thread per output value.
// Tested by tests/test_kernels_norm_rope.py against numpy float64.

struct Params { ffn: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> gate_up: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<uniform> step: Step;

//!include act_silu

const WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let t = gid.y;
    if (j >= params.ffn || t >= step.n_tokens) { return; }
    let g = gate_up[t * 2u * params.ffn + j];
    let u = gate_up[t * 2u * params.ffn + params.ffn + j];
    out[t * params.ffn + j] = silu(g) * u;
}
