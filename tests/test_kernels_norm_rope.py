"""RMSNorm, RoPE + KV-cache write, SiLU·up and GELU·up kernels (and the int8-writing variants of RMSNorm
and SiLU·up) against numpy float64 written from the formulas."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from notebook_llm.models.rope import rope_table

from .conftest import assert_float16_rounding, relative_error


def step_uniform(ctx, n_tokens: int, position: int = 0, seed: int = 0, temperature: float = 0.0):
    return ctx.uniform(struct.pack("<IIIf", n_tokens, position, seed, temperature))


# -- rmsnorm ---------------------------------------------------------------------------------


def rmsnorm_reference(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight.astype(np.float64)


def run_rmsnorm(ctx, x: np.ndarray, weight: np.ndarray, eps: float, last_row_only: bool,
                residual: np.ndarray | None = None, workgroup: int = 256) -> np.ndarray:
    """out = rmsnorm(x), poisoned with NaN first; or residual + rmsnorm(x) with ACCUMULATE.
    `workgroup`: lanes a row (256 on GPUs, 16 on CPU adapters)."""
    n_tokens, dim = x.shape
    out_rows = 1 if last_row_only else n_tokens
    out = ctx.empty(out_rows * dim * 4)
    ctx.fill(out)
    if residual is not None:
        ctx.queue.write_buffer(out, 0, residual.astype(np.float32).tobytes())
    params = ctx.uniform(struct.pack("<IfII", dim, eps, 0, 0))
    buffers = [ctx.buffer(x), ctx.buffer(weight), out, params, step_uniform(ctx, n_tokens)]
    accumulate = {"ACCUMULATE": True} if residual is not None else {}
    accumulate["WORKGROUP"] = workgroup
    if last_row_only:
        ctx.run([ctx.dispatch("rmsnorm", buffers, 1, LAST_ROW_ONLY=True, **accumulate)])
    else:
        ctx.run([ctx.dispatch("rmsnorm", buffers, n_tokens, **accumulate)])
    return ctx.read(out, np.float32, out_rows * dim).reshape(out_rows, dim)


@pytest.mark.parametrize("workgroup", [256, 16])
@pytest.mark.parametrize("n_tokens, dim", [(1, 576), (7, 576), (3, 100), (2, 2048)])
def test_rmsnorm_matches_numpy_per_row(ctx, rng, n_tokens, dim, workgroup):
    # Rows with very different scales: the norm must be per row.
    x = (rng.standard_normal((n_tokens, dim)) * rng.uniform(0.01, 30.0, (n_tokens, 1))).astype(np.float32)
    weight = rng.uniform(-2.0, 2.0, dim).astype(np.float32)
    out = run_rmsnorm(ctx, x, weight, 1e-5, last_row_only=False, workgroup=workgroup)
    # float32 sum of `dim` squares and one inverseSqrt: a few ulp (~1e-7) per element; 1e-5 leaves room.
    assert relative_error(out, rmsnorm_reference(x, weight, 1e-5)) < 1e-5


def test_rmsnorm_accumulate_adds_the_normed_row_to_the_residual(ctx, rng):
    """Gemma's post-attention / post-FFN norm: residual += rmsnorm(block output) · weight."""
    x = (rng.standard_normal((5, 640)) * rng.uniform(0.1, 50.0, (5, 1))).astype(np.float32)
    weight = rng.uniform(-2.0, 2.0, 640).astype(np.float32)
    residual = (rng.standard_normal((5, 640)) * 3).astype(np.float32)
    out = run_rmsnorm(ctx, x, weight, 1e-6, last_row_only=False, residual=residual)
    # The norm's few ulp plus one rounded addition per element: 1e-5 as above.
    assert relative_error(out, residual + rmsnorm_reference(x, weight, 1e-6)) < 1e-5


def test_rmsnorm_eps_dominates_a_tiny_row(ctx, rng):
    x = (rng.standard_normal((2, 576)) * 1e-4).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, 576).astype(np.float32)
    out = run_rmsnorm(ctx, x, weight, 1e-2, last_row_only=False)
    assert relative_error(out, rmsnorm_reference(x, weight, 1e-2)) < 1e-5


def test_rmsnorm_last_row_only_normalises_the_chunks_last_token_into_row_0(ctx, rng):
    x = rng.standard_normal((5, 576)).astype(np.float32)
    weight = rng.uniform(-2.0, 2.0, 576).astype(np.float32)
    out = run_rmsnorm(ctx, x, weight, 1e-5, last_row_only=True)
    assert out.shape == (1, 576)
    # Same float32 budget as the per-row test.
    assert relative_error(out, rmsnorm_reference(x[-1:], weight, 1e-5)) < 1e-5


# -- rope + kv write -------------------------------------------------------------------------


def test_rope_table_holds_cos_and_sin_of_position_times_frequency():
    table = rope_table(64, 16, 10000.0)
    assert table.shape == (64, 8, 2) and table.dtype == np.float32
    p, i = 37, 5
    angle = p * 10000.0 ** (-2 * i / 16)
    np.testing.assert_allclose(table[p, i], [np.cos(angle), np.sin(angle)], atol=1e-7)
    np.testing.assert_array_equal(table[0], np.stack([np.ones(8), np.zeros(8)], -1))


def test_rope_table_divides_frequencies_by_factors_and_scales_by_the_attention_factor(rng):
    factors = rng.uniform(1.0, 8.0, 8)
    table = rope_table(64, 16, 10000.0, freq_factors=factors.astype(np.float32), attn_factor=1.19)
    p, i = 51, 6
    angle = p * 10000.0 ** (-2 * i / 16) / np.float32(factors[i])
    np.testing.assert_allclose(table[p, i], 1.19 * np.array([np.cos(angle), np.sin(angle)]), atol=2e-7)


def rope_reference(x: np.ndarray, table: np.ndarray, positions: np.ndarray, rope_dim: int, neox: bool) -> np.ndarray:
    """x [n_tokens, heads, head_dim]; pair i (< rope_dim/2) is (2i, 2i+1), or (i, i + rope_dim/2) when
    neox, rotated by the table's (cos, sin) at each token's position; later dims pass through."""
    out = x.astype(np.float64).copy()
    cos = table[positions, :, 0].astype(np.float64)[:, None, :]
    sin = table[positions, :, 1].astype(np.float64)[:, None, :]
    half = rope_dim // 2
    first, second = (np.arange(half), np.arange(half) + half) if neox else (np.arange(0, rope_dim, 2), np.arange(1, rope_dim, 2))
    a, b = out[..., first].copy(), out[..., second].copy()
    out[..., first] = a * cos - b * sin
    out[..., second] = a * sin + b * cos
    return out


def head_rmsnorm_reference(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight.astype(np.float64)


@pytest.mark.parametrize(
    "n_tokens, position, n_head, n_kv_head, head_dim, rope_dim, freq_base, neox, bias, qk_norm",
    [
        (1, 100, 9, 3, 64, 64, 100000.0, False, False, False),  # SmolLM2-135M decode
        (13, 0, 9, 3, 64, 64, 100000.0, False, False, False),  # SmolLM2-135M prefill chunk
        (5, 3000, 8, 2, 128, 128, 500000.0, False, False, False),  # GQA 4, long position (table precision)
        (4, 17, 4, 4, 64, 32, 10000.0, False, False, False),  # partial rotary: dims >= rope_dim pass through
        (6, 40, 14, 2, 64, 64, 1000000.0, True, True, False),  # Qwen2.5-0.5B: halves, q/k/v bias
        (3, 9, 16, 8, 128, 128, 1000000.0, True, False, True),  # Qwen3-0.6B: per-head q/k norm
        (2, 5, 4, 2, 256, 256, 10000.0, True, True, True),  # the largest head, every option at once
        (4, 30, 6, 2, 48, 36, 10000.0, True, False, False),  # Phi-4-mini-like partial rotary, halves
    ],
)
@pytest.mark.parametrize("workgroup, kv_dtype", [(64, np.float16), (16, np.float16), (64, np.float32)],
                         ids=["gpu-f16-cache", "cpu-f16-cache", "gpu-f32-cache"])  # lanes a head: GPUs, CPU adapters
def test_rope_kv_write_rotates_q_and_k_and_writes_cache_rows(
    ctx, rng, n_tokens, position, n_head, n_kv_head, head_dim, rope_dim, freq_base, neox, bias, qk_norm, workgroup, kv_dtype
):
    max_context = position + n_tokens + 3
    eps = 1e-6
    q_width, kv_width = n_head * head_dim, n_kv_head * head_dim
    qkv = (rng.standard_normal((n_tokens, q_width + 2 * kv_width)) * rng.uniform(0.2, 5.0)).astype(np.float32)
    bias_values = rng.standard_normal(q_width + 2 * kv_width).astype(np.float32) if bias else np.zeros(1, np.float32)
    q_norm = rng.uniform(0.5, 1.5, head_dim).astype(np.float32) if qk_norm else np.zeros(1, np.float32)
    k_norm = rng.uniform(0.5, 1.5, head_dim).astype(np.float32) if qk_norm else np.zeros(1, np.float32)
    factors = rng.uniform(1.0, 4.0, rope_dim // 2).astype(np.float32) if neox else None
    table = rope_table(max_context, rope_dim, freq_base, factors, attn_factor=1.1 if neox else 1.0)
    old_k = rng.standard_normal((max_context, n_kv_head, head_dim)).astype(kv_dtype)  # the cache's type
    old_v = rng.standard_normal((max_context, n_kv_head, head_dim)).astype(kv_dtype)

    q_out = ctx.empty(n_tokens * q_width * 4)
    ctx.fill(q_out)
    k_cache, v_cache = ctx.buffer(old_k), ctx.buffer(old_v)
    params = ctx.uniform(struct.pack("<IIIIfIII", n_head, n_kv_head, head_dim, rope_dim, eps, 0, 0, 0))
    buffers = [ctx.buffer(qkv), ctx.buffer(bias_values), ctx.buffer(q_norm), ctx.buffer(k_norm), ctx.buffer(table),
               q_out, k_cache, v_cache, params, step_uniform(ctx, n_tokens, position)]
    ctx.run([ctx.dispatch("rope_kv_write", buffers, (n_tokens, n_head + n_kv_head),
                          HAS_BIAS=bias, QK_NORM=qk_norm, NEOX=neox, WORKGROUP=workgroup, KV_F32=kv_dtype == np.float32)])

    positions = position + np.arange(n_tokens)
    x = qkv.astype(np.float64) + (bias_values.astype(np.float64) if bias else 0.0)
    q = x[:, :q_width].reshape(n_tokens, n_head, head_dim)
    k = x[:, q_width : q_width + kv_width].reshape(n_tokens, n_kv_head, head_dim)
    v = x[:, q_width + kv_width :].reshape(n_tokens, n_kv_head, head_dim)
    if qk_norm:
        q, k = head_rmsnorm_reference(q, q_norm, eps), head_rmsnorm_reference(k, k_norm, eps)
    got_q = ctx.read(q_out, np.float32, n_tokens * q_width).reshape(n_tokens, n_head, head_dim)
    got_k = ctx.read(k_cache, kv_dtype).reshape(max_context, n_kv_head, head_dim)
    got_v = ctx.read(v_cache, kv_dtype).reshape(max_context, n_kv_head, head_dim)
    rows = slice(position, position + n_tokens)

    # cos/sin rounded to float32 in the table (~6e-8 relative), two float32 products per value, and
    # with the norm a float32 sum of head_dim squares and one inverseSqrt (a few ulp): 1e-6 holds all.
    assert relative_error(got_q, rope_reference(q, table, positions, rope_dim, neox)) < 1e-6
    # v is only copied, plus the bias in float32: exact without bias, one rounding with it.
    if kv_dtype == np.float32:
        assert relative_error(got_k[rows], rope_reference(k, table, positions, rope_dim, neox)) < 1e-6
        np.testing.assert_allclose(got_v[rows], v, rtol=1e-7 if bias else 0, atol=1e-7 if bias else 0)
    else:  # cached in float16, rounded to nearest from those float32 results
        assert_float16_rounding(got_k[rows], rope_reference(k, table, positions, rope_dim, neox))
        if bias:
            assert_float16_rounding(got_v[rows], v, reference_error=1e-7)
        else:
            np.testing.assert_array_equal(got_v[rows], v.astype(np.float16))
    # Every other cache row is left as it was.
    for got, old in ((got_k, old_k), (got_v, old_v)):
        np.testing.assert_array_equal(got[:position], old[:position])
        np.testing.assert_array_equal(got[position + n_tokens :], old[position + n_tokens :])


# -- silu * up -------------------------------------------------------------------------------


def run_silu_mul(ctx, gate_up: np.ndarray) -> np.ndarray:
    n_tokens, ffn = gate_up.shape[0], gate_up.shape[1] // 2
    out = ctx.empty(n_tokens * ffn * 4)
    ctx.fill(out)
    params = ctx.uniform(struct.pack("<IIII", ffn, 0, 0, 0))
    buffers = [ctx.buffer(gate_up), out, params, step_uniform(ctx, n_tokens)]
    ctx.run([ctx.dispatch("silu_mul", buffers, (-(-ffn // 256), n_tokens))])
    return ctx.read(out, np.float32, n_tokens * ffn).reshape(n_tokens, ffn)


def silu_mul_reference(gate_up: np.ndarray) -> np.ndarray:
    ffn = gate_up.shape[1] // 2
    gate, up = gate_up[:, :ffn].astype(np.float64), gate_up[:, ffn:].astype(np.float64)
    return gate / (1.0 + np.exp(-gate)) * up


@pytest.mark.parametrize("n_tokens, ffn", [(1, 1536), (6, 1536), (3, 100)])
def test_silu_mul_matches_numpy(ctx, rng, n_tokens, ffn):
    gate_up = (rng.standard_normal((n_tokens, 2 * ffn)) * 4).astype(np.float32)
    # One exp, one division and two products in float32: a few ulp per element.
    assert relative_error(run_silu_mul(ctx, gate_up), silu_mul_reference(gate_up)) < 1e-6


def test_silu_mul_stays_finite_for_gates_of_plus_minus_100(ctx, rng):
    ffn = 300
    gate = rng.choice([-100.0, 100.0, -88.5, 89.0, -1000.0, 1000.0, 0.0], ffn)
    up = rng.uniform(-2.0, 2.0, ffn)
    gate_up = np.concatenate([gate, up])[None, :].astype(np.float32)
    out = run_silu_mul(ctx, gate_up)
    assert np.all(np.isfinite(out))
    # silu(g)·up is g·up for g >= 88 and below 1e-30 in magnitude for g <= -88.
    np.testing.assert_allclose(out[0], np.where(gate > 0, gate * up, 0.0), rtol=1e-6, atol=1e-30)


# -- rmsnorm and silu * up rounded to int8 (quantize_int8.wgsl's format, for matmul_q4_int8) ---


def int8_buffers(ctx, n_tokens: int, cols: int):
    """x_codes and x_scales for n_tokens rows of cols values, poisoned (NaN scales, 0xFF.. codes)."""
    codes, scales = ctx.empty(n_tokens * cols), ctx.empty(n_tokens * cols // 32 * 8)
    ctx.fill(codes)
    ctx.fill(scales)
    return codes, scales


def read_int8_rows(ctx, codes, scales, n_tokens: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q [n_tokens, cols] as integers, d and sum [n_tokens, groups]) from quantize_int8.wgsl's
    layout: per token and group, four even words (values 8j, 8j+2, 8j+4, 8j+6 as bytes) then four
    odd ones (8j+1, ..., 8j+7)."""
    groups = cols // 32
    raw = ctx.read(codes, np.int8, n_tokens * cols).reshape(n_tokens, groups, 2, 4, 4)  # [t, g, even/odd, j, byte]
    q = np.empty((n_tokens, groups, 4, 8), np.int64)  # [t, g, j, value 8j + k]
    q[..., 0::2] = raw[:, :, 0]
    q[..., 1::2] = raw[:, :, 1]
    d_sum = ctx.read(scales, np.float32, n_tokens * groups * 2).reshape(n_tokens, groups, 2)
    return q.reshape(n_tokens, cols), d_sum[..., 0], d_sum[..., 1]


def check_int8_rows(q: np.ndarray, d: np.ndarray, sums: np.ndarray, ref: np.ndarray, tolerance: float):
    """The rows as rounded to int8 per 32 values: d = max|group| / 127, q = round(value / d) (a
    near tie either way), sum over the unrounded values; `tolerance` relative, from the float32 ops."""
    n_tokens, cols = ref.shape
    groups = ref.reshape(n_tokens, cols // 32, 32)
    np.testing.assert_allclose(d, np.abs(groups).max(axis=-1) / 127, rtol=tolerance)
    assert np.all(np.abs(sums - groups.sum(axis=-1)) <= tolerance * np.abs(groups).sum(axis=-1)), "group sums"
    scaled = groups / np.where(d > 0, d, 1.0)[..., None]
    off = np.abs(q.reshape(groups.shape) - scaled)
    assert np.all(off <= 0.5 + 1e-3), f"q off by {off.max()} from value / d"


@pytest.mark.parametrize("n_tokens, dim", [(1, 576), (5, 2048), (3, 9216)])  # 9216: more groups than threads
def test_rmsnorm_int8_matches_numpy(ctx, rng, reduction, n_tokens, dim):
    """Its sum of squares through each `//!include reduce` (subgroup sums, workgroup memory)."""
    x = (rng.standard_normal((n_tokens, dim)) * 3).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero group after the norm: d = 0, q = 0
    weight = rng.uniform(0.5, 1.5, dim).astype(np.float32)
    codes, scales = int8_buffers(ctx, n_tokens, dim)
    params = ctx.uniform(struct.pack("<IfII", dim, 1e-5, 0, 0))
    ctx.run([ctx.dispatch("rmsnorm_int8", [ctx.buffer(x), ctx.buffer(weight), codes, scales, params,
                                           step_uniform(ctx, n_tokens)], n_tokens)])
    q, d, sums = read_int8_rows(ctx, codes, scales, n_tokens, dim)
    check_int8_rows(q, d, sums, rmsnorm_reference(x, weight, 1e-5), 1e-5)
    assert np.all(q[0, :32] == 0) and d[0, 0] == 0


@pytest.mark.parametrize("n_tokens, ffn", [(1, 1536), (6, 8192), (2, 2080)])  # 2080: 65 groups, a second workgroup
def test_quantize_int8_of_silu_mul_matches_numpy(ctx, rng, n_tokens, ffn):
    """quantize_int8.wgsl with SILU_MUL_INPUT: the FFN middle rounded to int8 in one dispatch."""
    gate_up = (rng.standard_normal((n_tokens, 2 * ffn)) * 4).astype(np.float32)
    gate_up[-1, 64:96] = -1000.0  # silu(g) ~ 0: a group of zeros
    codes, scales = int8_buffers(ctx, n_tokens, ffn)
    params = ctx.uniform(struct.pack("<IIII", 0, ffn, 0, 0))  # the down projection's (rows, cols, ...)
    ctx.run([ctx.dispatch("quantize_int8", [ctx.buffer(gate_up), codes, scales, params, step_uniform(ctx, n_tokens)],
                          (-(-ffn // (32 * 64)), n_tokens), SILU_MUL_INPUT=True)])
    q, d, sums = read_int8_rows(ctx, codes, scales, n_tokens, ffn)
    with np.errstate(over="ignore"):  # exp(1000) in the reference: silu(-1000) = -0
        reference = silu_mul_reference(gate_up)
    check_int8_rows(q, d, sums, reference, 1e-5)
    assert np.all(q[-1, 64:96] == 0) and d[-1, 2] == 0


# -- gelu * up -------------------------------------------------------------------------------


def run_gelu_mul(ctx, gate_up: np.ndarray) -> np.ndarray:
    n_tokens, ffn = gate_up.shape[0], gate_up.shape[1] // 2
    out = ctx.empty(n_tokens * ffn * 4)
    ctx.fill(out)
    params = ctx.uniform(struct.pack("<IIII", ffn, 0, 0, 0))
    buffers = [ctx.buffer(gate_up), out, params, step_uniform(ctx, n_tokens)]
    ctx.run([ctx.dispatch("gelu_mul", buffers, (-(-ffn // 256), n_tokens))])
    return ctx.read(out, np.float32, n_tokens * ffn).reshape(n_tokens, ffn)


def gelu_mul_reference(gate_up: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation as the Gemma papers give it: g/2 · (1 + tanh(sqrt(2/pi)(g + 0.044715 g³)))."""
    ffn = gate_up.shape[1] // 2
    gate, up = gate_up[:, :ffn].astype(np.float64), gate_up[:, ffn:].astype(np.float64)
    return 0.5 * gate * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (gate + 0.044715 * gate**3))) * up


@pytest.mark.parametrize("n_tokens, ffn", [(1, 2048), (6, 2048), (3, 100)])
def test_gelu_mul_matches_numpy(ctx, rng, n_tokens, ffn):
    gate_up = (rng.standard_normal((n_tokens, 2 * ffn)) * 3).astype(np.float32)
    # A cubic, one exp, one division and a few products in float32: a few ulp per element.
    assert relative_error(run_gelu_mul(ctx, gate_up), gelu_mul_reference(gate_up)) < 1e-6


def test_gelu_mul_stays_finite_for_large_gates(ctx, rng):
    ffn = 300
    gate = rng.choice([-1e20, -1000.0, -20.0, 0.0, 20.0, 1000.0, 1e20], ffn)
    up = rng.uniform(-2.0, 2.0, ffn)
    gate_up = np.concatenate([gate, up])[None, :].astype(np.float32)
    out = run_gelu_mul(ctx, gate_up)
    assert np.all(np.isfinite(out))
    # gelu(g) is g for g >= 20 (to float32 precision) and 0 (below 1e-30) for g <= -20.
    np.testing.assert_allclose(out[0], np.where(gate > 0, gate * up, 0.0), rtol=1e-6, atol=1e-30)
