// Rounds each token row of a prefill chunk to int8 per 32-value group (`//!include int8_group`), for
// kernels/matmul_q4_int8.wgsl: the chunk's input is quantized once here instead of once per row
// tile of every workgroup that reads it. With SILU_MUL_INPUT, x holds per token [gate (cols
// values), up (cols values)] and the rows rounded are silu(gate) · up (silu_mul.wgsl's FFN middle):
// prefill's middle before an int8 down projection is then this one dispatch, without a float copy.
//
// Bindings: 0 x vec4<f32>[n_tokens * cols / 4] (row-major [n_tokens, cols]; [n_tokens, 2 cols]
//           with SILU_MUL_INPUT), 1 x_codes
//           vec4<u32>[n_tokens * groups * 2] (per token and group: the even word quad, then the
//           odd one), 2 x_scales vec2<f32>[n_tokens * groups] ((d, sum) per token and group),
//           3 params (the matmul's: only cols is read), 4 step.
// Mapping: one invocation per (group, token): dispatch (ceil(groups / 64), n_tokens, 1).
// Requires cols a multiple of 32. Tested by tests/test_kernels_matmul.py (with matmul_q4_int8).

//!include int8_group
//!include act_silu

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> x_codes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> x_scales: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<uniform> step: Step;

const WORKGROUP: u32 = 64u;
override SILU_MUL_INPUT: bool = false;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let groups = params.cols / 32u;
    let group = wg.x * WORKGROUP + lid;
    let token = wg.y;
    if (group >= groups || token >= step.n_tokens) { return; }
    var v: array<vec4<f32>, 8>;
    if (SILU_MUL_INPUT) {
        let gate_at = token * params.cols / 2u + group * 8u;  // vec4s: a token's row holds cols / 2 of them
        let up_at = gate_at + params.cols / 4u;
        for (var i = 0u; i < 8u; i++) {
            v[i] = silu4(x[gate_at + i]) * x[up_at + i];
        }
    } else {
        let first = (token * params.cols + group * 32u) / 4u;
        for (var i = 0u; i < 8u; i++) { v[i] = x[first + i]; }
    }
    let q = int8_group(v);
    let slot = token * groups + group;
    x_codes[2u * slot] = q.even;
    x_codes[2u * slot + 1u] = q.odd;
    x_scales[slot] = vec2<f32>(q.d, q.sum);
}
