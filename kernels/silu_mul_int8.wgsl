// silu_mul.wgsl's SwiGLU middle, silu(gate[t, j]) * up[t, j], rounded to int8 per 32 values
// (`//!include int8_group`) in kernels/quantize_int8.wgsl's output format instead of written as
// floats: in prefill, the FFN middle before an int8 down projection (kernels/matmul_q4_int8.wgsl)
// is one dispatch and writes a quarter of the bytes, not a middle writing floats and a quantize
// reading them back.
//
// Bindings: 0 gate_up vec4<f32>[n_tokens * 2 ffn / 4], per token [gate (ffn values), up (ffn values)],
//           1 x_codes, 2 x_scales (quantize_int8.wgsl's), 3 params (silu_mul.wgsl's), 4 step.
// Mapping: one invocation per (group, token): dispatch (ceil(ffn / 32 / 64), n_tokens, 1).
// Requires ffn a multiple of 32. Tested by tests/test_kernels_norm_rope.py against numpy float64.

//!include act_silu
//!include int8_group

struct Params { ffn: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> gate_up: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> x_codes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> x_scales: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<uniform> step: Step;

const WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let groups = params.ffn / 32u;
    let group = wg.x * WORKGROUP + lid;
    let token = wg.y;
    if (group >= groups || token >= step.n_tokens) { return; }
    let gate_at = token * params.ffn / 2u + group * 8u;  // vec4s: a token's row holds ffn / 2 of them
    let up_at = gate_at + params.ffn / 4u;
    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        let g = gate_up[gate_at + i];
        v[i] = vec4<f32>(silu(g.x), silu(g.y), silu(g.z), silu(g.w)) * gate_up[up_at + i];
    }
    let q = int8_group(v);
    let slot = token * groups + group;
    x_codes[2u * slot] = q.even;
    x_codes[2u * slot + 1u] = q.odd;
    x_scales[slot] = vec2<f32>(q.d, q.sum);
}
