"""RMSNorm, RoPE + KV-cache write and SiLU·up kernels against numpy float64 written from the formulas."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from notebook_llm.models.rope import rope_table

from .conftest import relative_error


def step_uniform(ctx, n_tokens: int, position: int = 0, seed: int = 0, temperature: float = 0.0):
    return ctx.uniform(struct.pack("<IIIf", n_tokens, position, seed, temperature))


# -- rmsnorm ---------------------------------------------------------------------------------


def rmsnorm_reference(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight.astype(np.float64)


def run_rmsnorm(ctx, x: np.ndarray, weight: np.ndarray, eps: float, last_row_only: bool) -> np.ndarray:
    n_tokens, dim = x.shape
    out_rows = 1 if last_row_only else n_tokens
    out = ctx.empty(out_rows * dim * 4)
    ctx.fill(out)
    params = ctx.uniform(struct.pack("<IfII", dim, eps, 0, 0))
    buffers = [ctx.buffer(x), ctx.buffer(weight), out, params, step_uniform(ctx, n_tokens)]
    if last_row_only:
        ctx.run([ctx.dispatch("rmsnorm", buffers, 1, LAST_ROW_ONLY=True)])
    else:
        ctx.run([ctx.dispatch("rmsnorm", buffers, n_tokens)])
    return ctx.read(out, np.float32, out_rows * dim).reshape(out_rows, dim)


@pytest.mark.parametrize("n_tokens, dim", [(1, 576), (7, 576), (3, 100), (2, 2048)])
def test_rmsnorm_matches_numpy_per_row(ctx, rng, n_tokens, dim):
    # Rows with very different scales: the norm must be per row.
    x = (rng.standard_normal((n_tokens, dim)) * rng.uniform(0.01, 30.0, (n_tokens, 1))).astype(np.float32)
    weight = rng.uniform(-2.0, 2.0, dim).astype(np.float32)
    out = run_rmsnorm(ctx, x, weight, 1e-5, last_row_only=False)
    # float32 sum of `dim` squares and one inverseSqrt: a few ulp (~1e-7) per element; 1e-5 leaves room.
    assert relative_error(out, rmsnorm_reference(x, weight, 1e-5)) < 1e-5


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


def rope_reference(x: np.ndarray, positions: np.ndarray, rope_dim: int, freq_base: float) -> np.ndarray:
    """x [n_tokens, heads, head_dim]: adjacent pairs (2i, 2i+1), i < rope_dim/2, rotated by p·base^(-2i/rope_dim)."""
    out = x.astype(np.float64).copy()
    i = np.arange(rope_dim // 2)
    angle = positions[:, None].astype(np.float64) * freq_base ** (-2.0 * i / rope_dim)  # [n_tokens, pairs]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    a, b = out[..., 0:rope_dim:2].copy(), out[..., 1:rope_dim:2].copy()
    out[..., 0:rope_dim:2] = a * cos - b * sin
    out[..., 1:rope_dim:2] = a * sin + b * cos
    return out


@pytest.mark.parametrize(
    "n_tokens, position, n_head, n_kv_head, head_dim, rope_dim, freq_base",
    [
        (1, 100, 9, 3, 64, 64, 100000.0),  # SmolLM2-135M decode
        (13, 0, 9, 3, 64, 64, 100000.0),  # SmolLM2-135M prefill chunk
        (5, 3000, 8, 2, 128, 128, 500000.0),  # GQA 4, long position (table precision matters)
        (4, 17, 4, 4, 64, 32, 10000.0),  # partial rotary: dims >= rope_dim pass through
    ],
)
def test_rope_kv_write_rotates_q_and_k_and_writes_cache_rows(
    ctx, rng, n_tokens, position, n_head, n_kv_head, head_dim, rope_dim, freq_base
):
    max_context = position + n_tokens + 3
    q_width, kv_width = n_head * head_dim, n_kv_head * head_dim
    qkv = rng.standard_normal((n_tokens, q_width + 2 * kv_width)).astype(np.float32)
    old_k = rng.standard_normal((max_context, n_kv_head, head_dim)).astype(np.float32)
    old_v = rng.standard_normal((max_context, n_kv_head, head_dim)).astype(np.float32)

    q_out = ctx.empty(n_tokens * q_width * 4)
    ctx.fill(q_out)
    k_cache, v_cache = ctx.buffer(old_k), ctx.buffer(old_v)
    params = ctx.uniform(struct.pack("<IIII", n_head, n_kv_head, head_dim, rope_dim))
    buffers = [ctx.buffer(qkv), ctx.buffer(rope_table(max_context, rope_dim, freq_base)), q_out, k_cache, v_cache]
    ctx.run([ctx.dispatch("rope_kv_write", buffers + [params, step_uniform(ctx, n_tokens, position)], n_tokens)])

    positions = position + np.arange(n_tokens)
    q = qkv[:, :q_width].reshape(n_tokens, n_head, head_dim)
    k = qkv[:, q_width : q_width + kv_width].reshape(n_tokens, n_kv_head, head_dim)
    v = qkv[:, q_width + kv_width :].reshape(n_tokens, n_kv_head, head_dim)
    got_q = ctx.read(q_out, np.float32, n_tokens * q_width).reshape(n_tokens, n_head, head_dim)
    got_k = ctx.read(k_cache).reshape(max_context, n_kv_head, head_dim)
    got_v = ctx.read(v_cache).reshape(max_context, n_kv_head, head_dim)
    rows = slice(position, position + n_tokens)

    # cos/sin rounded to float32 in the table (~6e-8 relative) and two float32 products per value.
    assert relative_error(got_q, rope_reference(q, positions, rope_dim, freq_base)) < 1e-6
    assert relative_error(got_k[rows], rope_reference(k, positions, rope_dim, freq_base)) < 1e-6
    np.testing.assert_array_equal(got_v[rows], v)
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
