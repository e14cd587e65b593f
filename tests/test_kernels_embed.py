"""kernels/embed.wgsl: rows of the embedding matrix, bit for bit as `repack.dequantize` gives them.

Bound: exact (the float32 bits compared). The kernel computes each weight with the same float32
formula as `dequantize`, and every step of it is correctly rounded the same way on both sides:
f16 → f32 is exact; the products scale·q of q8g32 and q8g16f are exact (an f16 or an f16×int8
scale times an int8 code fits float32's 24 bits); in q4g32's, q4g32f's and q8g32f's scale·q + min
the product is exact too (at most 11 + 6 + 5 bits), so only the addition rounds — whether or not the
shader compiler fuses it into an fma. Gemma's SCALE multiplies each value once more: one rounded
product on both sides. No summation, so no order effects: any differing bit is a bug.
"""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from notebook_llm.loader.repack import PackedWeight, dequantize, repack, split_rows

from .tiny_llama import K_QUANTS, quantize_any

TYPES = [QT.Q4_0, QT.Q4_1, QT.Q4_K, QT.Q5_0, QT.Q5_1, QT.Q5_K, QT.Q8_0, QT.Q6_K, QT.F16, QT.F32]


def random_weight(rng: np.random.Generator, qtype: QT, rows: int, cols: int) -> PackedWeight:
    """A random N(0, 1) matrix as a file would store it in `qtype`, repacked."""
    values = rng.standard_normal((rows, cols), dtype=np.float32)
    return repack(quantize_any(values, qtype), qtype, rows, cols)


def random_q8_0_weight(rng: np.random.Generator, rows: int, cols: int) -> PackedWeight:
    """Random Q8_0 file bytes (f16 scale + 32 int8 codes per block), without quantizing a float
    matrix: cheap at the real vocabulary size."""
    blocks = np.empty((rows, cols // 32, 34), np.uint8)
    blocks[..., :2] = rng.uniform(1e-3, 2e-2, (rows, cols // 32, 1)).astype(np.float16).view(np.uint8)
    blocks[..., 2:] = rng.integers(-127, 128, (rows, cols // 32, 32), dtype=np.int8).view(np.uint8)
    return repack(blocks.reshape(rows, -1), QT.Q8_0, rows, cols)


def run_embed(ctx, w: PackedWeight, tokens: np.ndarray, capacity: int, max_bytes: int | None = None,
              **constants) -> np.ndarray:
    """Embed `tokens` into a [capacity, dim] buffer poisoned with NaN; returns the whole buffer.
    With `max_bytes`, E is bound as row blocks, one dispatch each, in row order."""
    out = ctx.empty(capacity * w.cols * 4)
    ctx.fill(out)
    token_buffer = ctx.buffer(tokens.astype(np.uint32))
    step = ctx.uniform(np.array([len(tokens), 0, 0, 0], np.uint32))  # Step: n_tokens, position, seed, temperature
    dispatches = []
    for row_offset, block in split_rows(w, max_bytes) if max_bytes else [(0, w)]:
        params = ctx.uniform(np.array([block.rows, block.cols, row_offset, 0], np.uint32))
        buffers = [ctx.buffer(block.codes), ctx.buffer(block.scales), token_buffer, out, params, step]
        dispatches.append(ctx.dispatch("embed", buffers, len(tokens), weights=w.layout, **constants))
    ctx.run(dispatches)
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
    """dim 576 = 72 blocks of 8 over 64 threads, so the second pass of the block loop is partial
    (768 for K-quants, whose blocks are 256 wide: 96 blocks of 8)."""
    vocab, dim, n_tokens, capacity = 1000, 768 if qtype in K_QUANTS else 576, 13, 16
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


@pytest.mark.parametrize("qtype", [QT.Q8_0, QT.Q4_K], ids=lambda t: t.name)
def test_embed_row_blocks_and_gemma_scale(ctx, rng, qtype):
    """E bound as 4 row blocks of 250 rows (as Gemma 3's 262k-row Q8_0 embedding is, over 128 MiB),
    scaled by sqrt(640) as Gemma's embedding is: each token's row from the block holding it, times
    the float32 scale; an id past the vocabulary still gives zeros."""
    vocab, dim, n_tokens = 1000, 512, 21
    w = random_weight(rng, qtype, vocab, dim)
    tokens = random_tokens(rng, vocab, n_tokens)
    tokens[5] = vocab + 3
    scale = np.float32(np.sqrt(640.0))
    out = run_embed(ctx, w, tokens, n_tokens, max_bytes=250 * (w.codes.nbytes // vocab), SCALE=float(scale))
    table = np.concatenate([dequantize(w), np.zeros((4, dim), np.float32)]) * scale
    assert np.array_equal(out.view(np.uint32), table[tokens].view(np.uint32))
