// The epilogue of the fused QKV projection for one chunk of tokens: optional bias, optional
// per-head RMSNorm of q and k, rotary embedding, and the KV-cache write.
// For token t at position p = step.position + t, and each head x of q or k (row j of x: x[j]):
//     x[j] += bias[head, j]                                          if HAS_BIAS  (Qwen 2)
//     x[j]  = x[j] / sqrt(mean_j x[j]^2 + eps) * norm[j]              if QK_NORM   (Qwen 3; q heads
//                                                                      use q_norm, k heads k_norm)
//     then each pair (x[a], x[b]) with pair index i < rope_dim/2 becomes
//     (x[a] c - x[b] s, x[a] s + x[b] c),   (c, s) = rope[p, i]
//         NEOX = false: a = 2i, b = 2i + 1      (GGUF llama: adjacent pairs, llama.cpp "normal")
//         NEOX = true:  a = i,  b = i + rope_dim/2  (halves: qwen2, qwen3, phi3, llama.cpp "neox")
//     dims >= rope_dim pass through.
//     q_out[t, h, :] = x (q head h),   k_cache[p, g, :] = x (k head g),
//     v_cache[p, g, :] = v[t, g, :] + bias (v is only biased and copied).
//
// Bindings: 0 qkv f32[n_tokens, (n_head + 2 n_kv_head) head_dim], per token [q heads, k heads, v heads],
//           1 bias f32[(n_head + 2 n_kv_head) head_dim] (read only if HAS_BIAS; else any 4 bytes),
//           2 q_norm f32[head_dim], 3 k_norm f32[head_dim] (read only if QK_NORM; else any 4 bytes),
//           4 rope f32[max_context, rope_dim/2, 2] = (cos θ, sin θ), computed on the CPU in float64
//             (notebook_llm/models/rope.py): WGSL promises sin/cos only to 2^-11 absolute and only
//             inside [-pi, pi], while θ reaches thousands of radians, so no trig runs here; frequency
//             factors and attention factors (Llama 3.x, Phi-3 LongRoPE) are folded into the table.
//           5 q_out f32[n_tokens, n_head head_dim], 6 k_cache [max_context, n_kv_head, head_dim] in kv_cache.wgsl's format,
//           7 v_cache (same shape), 8 params, 9 step (n_tokens, position).
// Requires head_dim even and at most 256, rope_dim even and <= head_dim.
// Mapping: dispatch (n_tokens, n_head + n_kv_head, 1); workgroup (t, h) owns head h of token t
// (a q head for h < n_head, else k head g = h - n_head, which also copies v head g). Its 64 threads
// load the head into workgroup memory (bias added, squares summed; rope_head.wgsl), reduce the sum of
// squares, and write elements j, j + 1 each from the normed head (a RoPE pair's two halves may belong
// to different threads; a cache word's two halves do not).
// Tested by tests/test_kernels_norm_rope.py against numpy float64.

//!include rope_head
//!include kv_cache_pairs

struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> q_norm: array<f32>;
@group(0) @binding(3) var<storage, read> k_norm: array<f32>;
@group(0) @binding(4) var<storage, read> rope: array<f32>;
@group(0) @binding(5) var<storage, read_write> q_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> k_cache: array<u32>;  // kv_cache_pairs.wgsl's format
@group(0) @binding(7) var<storage, read_write> v_cache: array<u32>;
@group(0) @binding(8) var<uniform> rope_params: RopeParams;
@group(0) @binding(9) var<uniform> step: Step;

override HAS_BIAS: bool = false;
override QK_NORM: bool = false;
override NEOX: bool = false;

override WORKGROUP: u32 = 64u;  // a power of two; CPU adapters take 16

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x;
    let h = wg.y;
    let pos = step.position + t;
    let head_dim = rope_params.head_dim;
    let kv_width = rope_params.n_kv_head * head_dim;
    let q_width = rope_params.n_head * head_dim;
    let token_in = t * (q_width + 2u * kv_width);
    let cache_row = pos * kv_width;
    let is_q = h < rope_params.n_head;
    let head_in = h * head_dim;  // q heads then k heads, contiguous from the token's start

    load_head(token_in + head_in, head_in, is_q, lid);
    // elements j, j + 1 a thread: the cache packs a pair of them in one word
    for (var j = 2u * lid; j < head_dim; j += 2u * WORKGROUP) {
        let x0 = rotated(j, pos);
        let x1 = rotated(j + 1u, pos);
        if (is_q) {
            q_out[t * q_width + head_in + j] = x0;
            q_out[t * q_width + head_in + j + 1u] = x1;
        } else {
            store_k2(cache_row + head_in - q_width + j, x0, x1);
        }
    }

    if (!is_q) {
        let v_head = head_in - q_width;  // k head g copies v head g
        let v_in = token_in + q_width + kv_width + v_head;
        for (var j = 2u * lid; j < head_dim; j += 2u * WORKGROUP) {
            var v = vec2<f32>(qkv[v_in + j], qkv[v_in + j + 1u]);
            if (HAS_BIAS) { v += vec2<f32>(bias[q_width + kv_width + v_head + j], bias[q_width + kv_width + v_head + j + 1u]); }
            store_v2(cache_row + v_head + j, v.x, v.y);
        }
    }
}
