// The merge of attention_split.wgsl's chunks, shared by attention_combine.wgsl (its own dispatch)
// and input_attention_combine.wgsl (the output projection's input prologue):
//     M = max_c m_c,   out[h] = sum_c exp(m_c - M) acc_c / sum_c exp(m_c - M) l_c,
// over the chunks that hold keys of this step: from the one of the first key in range (0, or the
// sliding window's start) to the one of the current position. Chunks outside hold nothing (the
// split kernel leaves them unwritten) and are never read, so the cost follows the position, not
// the context window. The last chunk holds the current key, so the denominator is >= 1.
// The including file binds `attention_params`, `split_chunks` and `step` (the uniform types
// below) and declares `override CHUNK` and `fn split_partial(i: u32) -> vec4<f32>`, element i of
// partials f32[n_head, n_chunks, 4 + head_dim] read as vec4s.

struct AttentionParams { n_head: u32, n_kv_head: u32, head_dim: u32, scale: f32, window: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Chunks { count: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

// The first and last chunk holding keys of this step.
fn live_chunks() -> vec2<u32> {
    let n_keys = step.position + 1u;
    var first_key = 0u;
    if (attention_params.window > 0u && n_keys > attention_params.window) { first_key = n_keys - attention_params.window; }
    return vec2<u32>(first_key / CHUNK, min((n_keys - 1u) / CHUNK, split_chunks.count - 1u));
}

// Output columns 4·col .. 4·col+3 of head `head`.
fn merged_columns(head: u32, col: u32, live: vec2<u32>) -> vec4<f32> {
    let stride = attention_params.head_dim / 4u + 1u;  // one chunk's (m, l) vec4 and its columns
    let head_base = head * split_chunks.count * stride;
    var m_max = split_partial(head_base + live.x * stride).x;
    for (var c = live.x + 1u; c <= live.y; c++) { m_max = max(m_max, split_partial(head_base + c * stride).x); }
    var total = vec4<f32>(0.0);
    var denominator = 0.0;
    for (var c = live.x; c <= live.y; c++) {
        let base = head_base + c * stride;
        let m_l = split_partial(base);
        let weight = exp(m_l.x - m_max);
        denominator += weight * m_l.y;
        total += weight * split_partial(base + 1u + col);
    }
    return total / denominator;
}
