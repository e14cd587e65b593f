"""kernels/matvec.wgsl (decode) and kernels/matmul.wgsl (prefill) against numpy float64.

Weights are random float matrices quantized by the `gguf` package and repacked into our layouts;
the reference is `dequantize(packed) @ x` in float64, so quantization error is not measured
here (tests/test_repack* hold that), only the kernels' arithmetic.

Bound: the weights the kernel decodes equal `dequantize(packed)` exactly, so the only error is
float32 accumulation of K products in another order than numpy's. Each addition rounds by at
most 2^-24 ≈ 6e-8 relative; over K ≤ ~600 random-sign terms ‖out − ref‖ / ‖ref‖ is ~1e-7 (a few
1e-7 at worst). 1e-5 leaves room for any summation order and still fails on any real bug (a
wrong element, scale or row gives errors of 1e-2 or more).
"""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from notebook_llm.loader.repack import PackedWeight, dequantize

from .conftest import random_weight, relative_error

BOUND = 1e-5
TYPES = [QT.Q4_0, QT.Q4_1, QT.Q8_0, QT.F16, QT.F32]
MAX_WORKGROUPS = 65535


def odd_width(qtype: QT) -> int:
    """A width that is not a multiple of the kernels' 32- or 64-column steps where the type allows:
    19 groups of 32 for quantized types (an odd count pads q8g32's scale words), 77 × 8 for floats."""
    return 608 if qtype in (QT.Q4_0, QT.Q4_1, QT.Q8_0) else 616


def params(rows: int, cols: int) -> np.ndarray:
    return np.array([rows, cols, 0, 0], np.uint32)


def step(n_tokens: int) -> np.ndarray:
    """Step { n_tokens, position, seed, temperature = 0.0 }."""
    return np.array([n_tokens, 0, 0, 0], np.uint32)


def matvec_workgroups(rows: int, rows_per_workgroup: int = 4) -> tuple[int, int]:
    """The dispatch rule of matvec.wgsl: 4 rows per workgroup by default, folded into y past 65535."""
    n = -(-rows // rows_per_workgroup)
    return (n, 1) if n <= MAX_WORKGROUPS else (MAX_WORKGROUPS, -(-n // MAX_WORKGROUPS))


def run_matvec(ctx, w: PackedWeight, x: np.ndarray, y0: np.ndarray | None = None, threads_per_row: int = 64) -> np.ndarray:
    """y = W x, or y0 + W x with ACCUMULATE; y is poisoned with NaN first when not accumulating."""
    y = ctx.empty(w.rows * 4)
    if y0 is None:
        ctx.fill(y)
    else:
        ctx.queue.write_buffer(y, 0, y0.astype(np.float32).tobytes())
    buffers = [ctx.buffer(w.codes), ctx.buffer(w.scales), ctx.buffer(x.astype(np.float32)), y,
               ctx.uniform(params(w.rows, w.cols))]
    constants = {"ACCUMULATE": True} if y0 is not None else {}
    rows_per_workgroup = 256 // threads_per_row
    constants.update(ROWS_PER_WORKGROUP=rows_per_workgroup, THREADS_PER_ROW=threads_per_row)
    workgroups = matvec_workgroups(w.rows, rows_per_workgroup)
    ctx.run([ctx.dispatch("matvec", buffers, workgroups, weights=w.layout, **constants)])
    return ctx.read(y, np.float32, w.rows)


def run_matmul(ctx, w: PackedWeight, x: np.ndarray, y0: np.ndarray | None = None, capacity: int | None = None):
    """Y = X Wᵀ for the x.shape[0] tokens of the step, into a [capacity, rows] buffer poisoned with
    NaN (or holding y0 with ACCUMULATE); returns the whole buffer so tests can see the rows past
    n_tokens."""
    n_tokens = x.shape[0]
    capacity = capacity or n_tokens
    y = ctx.empty(capacity * w.rows * 4)
    ctx.fill(y)
    if y0 is not None:
        ctx.queue.write_buffer(y, 0, y0.astype(np.float32).tobytes())
    x_buffer = ctx.empty(capacity * w.cols * 4)
    ctx.fill(x_buffer)  # tokens past n_tokens hold NaN: the kernel must not let them leak in
    ctx.queue.write_buffer(x_buffer, 0, x.astype(np.float32).tobytes())
    buffers = [ctx.buffer(w.codes), ctx.buffer(w.scales), x_buffer, y,
               ctx.uniform(params(w.rows, w.cols)), ctx.uniform(step(n_tokens))]
    workgroups = (-(-w.rows // 64), -(-n_tokens // 32), 1)
    constants = {"ACCUMULATE": True} if y0 is not None else {}
    ctx.run([ctx.dispatch("matmul", buffers, workgroups, weights=w.layout, **constants)])
    return ctx.read(y, np.float32, capacity * w.rows).reshape(capacity, w.rows)


# -- matvec ------------------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_matvec_matches_numpy(ctx, rng, qtype):
    rows, cols = 203, odd_width(qtype)  # 203: the last workgroup has 3 of its 4 rows
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    out = run_matvec(ctx, w, x)
    ref = dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0], ids=lambda t: t.name)
def test_matvec_cpu_variant_with_four_threads_per_row_matches_numpy(ctx, rng, qtype):
    """The variant the model picks on CPU adapters (64 rows per workgroup, 4 threads each)."""
    rows, cols = 203, odd_width(qtype)
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32)
    out = run_matvec(ctx, w, x, y0, threads_per_row=4)
    ref = y0.astype(np.float64) + dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


def test_matvec_accumulate_adds_to_y(ctx, rng):
    rows, cols = 130, 576
    w = random_weight(rng, QT.Q4_1, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32) * 10
    out = run_matvec(ctx, w, x, y0)
    ref = y0.astype(np.float64) + dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


def test_matvec_tied_lm_head_real_shape(ctx, rng):
    """SmolLM2's output projection: the Q8_0 embedding [vocab 49152, dim 576] used as the LM head."""
    rows, cols = 49152, 576
    w = random_weight(rng, QT.Q8_0, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    out = run_matvec(ctx, w, x)
    ref = dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


def test_matvec_folds_workgroups_past_65535(ctx, rng):
    """ceil(rows / 4) > 65535: the caller dispatches (65535, 2) and the kernel folds y into x."""
    rows, cols = 4 * MAX_WORKGROUPS + 9, 8  # narrow, so the 262k rows stay cheap
    assert matvec_workgroups(rows) == (MAX_WORKGROUPS, 2)
    w = random_weight(rng, QT.F32, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    out = run_matvec(ctx, w, x)
    ref = dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


# -- matmul ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_tokens", [7, 45])
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_matmul_matches_numpy_with_ragged_shapes(ctx, rng, qtype, n_tokens):
    """rows 200 (4th row tile partly empty), 7 or 45 tokens (token tiles partly empty), a width
    that is not a multiple of the 32-column K step for f16/f32; rows of y past n_tokens stay NaN."""
    rows, cols, capacity = 200, odd_width(qtype), 64
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y = run_matmul(ctx, w, x, capacity=capacity)
    ref = x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y[:n_tokens], ref) < BOUND
    assert np.isnan(y[n_tokens:]).all(), "the kernel wrote past step.n_tokens"


@pytest.mark.parametrize("qtype", [QT.Q4_0, QT.Q8_0], ids=lambda t: t.name)
def test_matmul_accumulate_adds_to_y(ctx, rng, qtype):
    rows, cols, n_tokens = 100, 576, 33
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y0 = rng.standard_normal((n_tokens, rows)).astype(np.float32) * 10
    y = run_matmul(ctx, w, x, y0)
    ref = y0.astype(np.float64) + x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y, ref) < BOUND


def test_matmul_smollm2_ffn_up_real_shape(ctx, rng):
    """SmolLM2-135M's up projection as its file stores it: Q4_1 [ffn 1536, dim 576], 37 tokens."""
    rows, cols, n_tokens = 1536, 576, 37
    w = random_weight(rng, QT.Q4_1, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y = run_matmul(ctx, w, x)
    ref = x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y, ref) < BOUND
