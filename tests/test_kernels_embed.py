"""kernels/embed.wgsl: rows of the embedding matrix, bit for bit as `repack.dequantize` gives them.

Bound: exact (the float32 bits compared). The kernel computes each weight with the same float32
formula as `dequantize`, and every step of it is correctly rounded the same way on both sides:
f16 → f32 is exact; q8g32's scale·q is one rounded product; in q4g32's scale·q + min the product
is exact (an 11-bit f16 significand times a 4-bit code fits in float32's 24 bits), so only the
addition rounds — whether or not the shader compiler fuses it into an fma. No summation, so no
order effects: any differing bit is a bug.
"""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from notebook_llm.loader.repack import PackedWeight, dequantize, repack

from .conftest import random_weight

TYPES = [QT.Q4_0, QT.Q4_1, QT.Q8_0, QT.F16, QT.F32]


def random_q8_0_weight(rng: np.random.Generator, rows: int, cols: int) -> PackedWeight:
    """Random Q8_0 file bytes (f16 scale + 32 int8 codes per block), without quantizing a float
    matrix: cheap at the real vocabulary size."""
    blocks = np.empty((rows, cols // 32, 34), np.uint8)
    blocks[..., :2] = rng.uniform(1e-3, 2e-2, (rows, cols // 32, 1)).astype(np.float16).view(np.uint8)
    blocks[..., 2:] = rng.integers(-127, 128, (rows, cols // 32, 32), dtype=np.int8).view(np.uint8)
    return repack(blocks.reshape(rows, -1), QT.Q8_0, rows, cols)


def run_embed(ctx, w: PackedWeight, tokens: np.ndarray, capacity: int) -> np.ndarray:
    """Embed `tokens` into a [capacity, dim] buffer poisoned with NaN; returns the whole buffer."""
    out = ctx.empty(capacity * w.cols * 4)
    ctx.fill(out)
    buffers = [
        ctx.buffer(w.codes),
        ctx.buffer(w.scales),
        ctx.buffer(tokens.astype(np.uint32)),
        out,
        ctx.uniform(np.array([w.rows, w.cols, 0, 0], np.uint32)),
        ctx.uniform(np.array([len(tokens), 0, 0, 0], np.uint32)),  # Step: n_tokens, position, seed, temperature
    ]
    ctx.run([ctx.dispatch("embed", buffers, len(tokens), weights=w.layout)])
    return ctx.read(out, np.float32, capacity * w.cols).reshape(capacity, w.cols)


def random_tokens(rng: np.random.Generator, vocab: int, n_tokens: int) -> np.ndarray:
    """Random ids that include both ends of the vocabulary and a repeat."""
    tokens = rng.integers(0, vocab, n_tokens).astype(np.uint32)
    tokens[[0, 1, 2]] = [0, vocab - 1, tokens[3]]
    return rng.permutation(tokens)


def assert_rows_exact(out: np.ndarray, table: np.ndarray, tokens: np.ndarray) -> None:
    n = len(tokens)
    expected = table[tokens]
    assert np.array_equal(out[:n].view(np.uint32), expected.view(np.uint32)), (
        f"{np.count_nonzero(out[:n] != expected)} of {expected.size} values differ"
    )
    assert np.isnan(out[n:]).all(), "the kernel wrote past step.n_tokens"


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_embed_rows_equal_dequantized_rows_bit_for_bit(ctx, rng, qtype):
    """dim 576 = 72 blocks of 8 over 64 threads, so the second pass of the block loop is partial."""
    vocab, dim, n_tokens, capacity = 1000, 576, 13, 16
    w = random_weight(rng, qtype, vocab, dim)
    tokens = random_tokens(rng, vocab, n_tokens)
    out = run_embed(ctx, w, tokens, capacity)
    assert_rows_exact(out, dequantize(w), tokens)


@pytest.mark.parametrize("qtype", [QT.F16, QT.F32], ids=lambda t: t.name)
def test_embed_narrow_float_rows_not_a_multiple_of_32(ctx, rng, qtype):
    """dim 40 (five 8-column blocks): fewer blocks than threads, width only a multiple of 8."""
    vocab, dim, n_tokens = 50, 40, 9
    w = random_weight(rng, qtype, vocab, dim)
    tokens = random_tokens(rng, vocab, n_tokens)
    out = run_embed(ctx, w, tokens, n_tokens)
    assert_rows_exact(out, dequantize(w), tokens)


def test_embed_smollm2_real_shape(ctx, rng):
    """SmolLM2-135M's token embedding as its file stores it: Q8_0 [vocab 49152, dim 576], a 37-token chunk."""
    vocab, dim, n_tokens = 49152, 576, 37
    w = random_q8_0_weight(rng, vocab, dim)
    tokens = random_tokens(rng, vocab, n_tokens)
    out = run_embed(ctx, w, tokens, n_tokens)
    assert_rows_exact(out, dequantize(w), tokens)
