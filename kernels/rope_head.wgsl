// One q or k head of the fused QKV output made ready for attention: optional bias, optional
// per-head RMSNorm, then the rotary embedding (the math is spelled out in rope_kv_write.wgsl).
// Shared by rope_kv_write.wgsl (prefill; CPU adapters' decode) and attention_split.wgsl (GPU
// decode, which ropes its own head instead of a separate dispatch).
// The including kernel declares the bindings qkv, bias, q_norm, k_norm, rope (array<f32>) and
// rope_params (RopeParams), the overrides HAS_BIAS, QK_NORM and NEOX, and WORKGROUP.

struct RopeParams { n_head: u32, n_kv_head: u32, head_dim: u32, rope_dim: u32, eps: f32, _pad0: u32, _pad1: u32, _pad2: u32 }

const MAX_HEAD_DIM: u32 = 256u;

var<workgroup> head_values: array<f32, MAX_HEAD_DIM>;
var<workgroup> head_partial: array<f32, WORKGROUP>;

// head_values[j] = qkv[src + j] (+ bias[bias_at + j]), RMS-normed with q_norm or k_norm under QK_NORM.
// Every invocation must call it (barriers); when it returns, head_values is complete.
fn load_head(src: u32, bias_at: u32, is_q: bool, lid: u32) {
    let head_dim = rope_params.head_dim;
    workgroupBarrier();  // readers of a previous head are done
    var sum_sq = 0.0;
    for (var j = lid; j < head_dim; j += WORKGROUP) {
        var x = qkv[src + j];
        if (HAS_BIAS) { x += bias[bias_at + j]; }
        head_values[j] = x;
        sum_sq += x * x;
    }
    if (QK_NORM) {
        head_partial[lid] = sum_sq;
        workgroupBarrier();
        for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
            if (lid < stride) { head_partial[lid] += head_partial[lid + stride]; }
            workgroupBarrier();
        }
        let scale = inverseSqrt(head_partial[0] / f32(head_dim) + rope_params.eps);
        for (var j = lid; j < head_dim; j += WORKGROUP) {
            head_values[j] *= scale * select(k_norm[j], q_norm[j], is_q);
        }
    }
    workgroupBarrier();
}

fn rope_partner(j: u32, rope_pairs: u32) -> vec2<u32> {
    if (NEOX) {
        return select(vec2<u32>(j - rope_pairs, 0u), vec2<u32>(j + rope_pairs, 1u), j < rope_pairs);
    }
    return select(vec2<u32>(j - 1u, 0u), vec2<u32>(j + 1u, 1u), j % 2u == 0u);
}

// Element j of the loaded head after the rotary embedding at position `pos` (a pair's two halves
// may be read by different invocations, so the head is rotated out of place).
fn rotated(j: u32, pos: u32) -> f32 {
    let x = head_values[j];
    if (j >= rope_params.rope_dim) { return x; }
    let rope_pairs = rope_params.rope_dim / 2u;
    let partner = rope_partner(j, rope_pairs);
    let i = select(j, j / 2u, !NEOX) % rope_pairs;
    let cs = 2u * (pos * rope_pairs + i);
    let c = rope[cs];
    let s = rope[cs + 1u];
    let y = head_values[partner.x];
    return select(y * s + x * c, x * c - y * s, partner.y == 1u);
}
