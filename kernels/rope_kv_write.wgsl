// Rotary embedding of q and k, and the KV-cache write, for one chunk of tokens.
// For token t at position p = step.position + t, each head's pairs (2i, 2i+1), i < rope_dim/2, become
//     (a, b) -> (a cos θ - b sin θ, a sin θ + b cos θ),   θ = p * freq_base^(-2i / rope_dim)
// (GGUF / llama.cpp "normal" ordering: adjacent pairs); dims >= rope_dim pass through.
//     q_out[t, h, :]          = rope(q[t, h, :])
//     k_cache[p, kv_h, :]     = rope(k[t, kv_h, :])
//     v_cache[p, kv_h, :]     = v[t, kv_h, :]
//
// Bindings: 0 qkv f32[n_tokens, (n_head + 2 n_kv_head) head_dim], per token [q heads, k heads, v heads],
//           1 rope f32[max_context, rope_dim/2, 2] = (cos θ, sin θ), computed on the CPU in float64
//             (notebook_llm/models/rope.py): WGSL promises sin/cos only to 2^-11 absolute and only
//             inside [-pi, pi], while θ reaches thousands of radians, so no trig runs here.
//           2 q_out f32[n_tokens, n_head head_dim], 3 k_cache f32[max_context, n_kv_head, head_dim],
//           4 v_cache (same shape), 5 params, 6 step (n_tokens, position).
// Requires head_dim even and rope_dim <= head_dim.
// Mapping: dispatch (n_tokens, 1, 1); the 256 threads of workgroup t loop over the token's
// (head, pair) items of q and k, then over its v values.
// Tested by tests/test_kernels_norm_rope.py against numpy float64.

struct Params { n_head: u32, n_kv_head: u32, head_dim: u32, rope_dim: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> rope: array<f32>;
@group(0) @binding(2) var<storage, read_write> q_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<uniform> step: Step;

const WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x;
    let pos = step.position + t;
    let head_dim = params.head_dim;
    let half_dim = head_dim / 2u;
    let rope_pairs = params.rope_dim / 2u;
    let kv_width = params.n_kv_head * head_dim;
    let q_width = params.n_head * head_dim;
    let token_in = t * (q_width + 2u * kv_width);
    let cache_row = pos * kv_width;

    // q heads then k heads, one (head, pair) per item; both live contiguously at the token's start.
    let pairs = (params.n_head + params.n_kv_head) * half_dim;
    for (var item = lid; item < pairs; item += WORKGROUP) {
        let head = item / half_dim;
        let i = item % half_dim;
        let src = token_in + head * head_dim + 2u * i;
        var a = qkv[src];
        var b = qkv[src + 1u];
        if (i < rope_pairs) {
            let cs = 2u * (pos * rope_pairs + i);
            let c = rope[cs];
            let s = rope[cs + 1u];
            let a0 = a;
            a = a0 * c - b * s;
            b = a0 * s + b * c;
        }
        if (head < params.n_head) {
            let dst = t * q_width + head * head_dim + 2u * i;
            q_out[dst] = a;
            q_out[dst + 1u] = b;
        } else {
            let dst = cache_row + (head - params.n_head) * head_dim + 2u * i;
            k_cache[dst] = a;
            k_cache[dst + 1u] = b;
        }
    }

    let v_in = token_in + q_width + kv_width;
    for (var j = lid; j < kv_width; j += WORKGROUP) {
        v_cache[cache_row + j] = qkv[v_in + j];
    }
}
