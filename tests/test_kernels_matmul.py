"""kernels/matvec.wgsl, matvec_broadcast.wgsl and matvec_q4_int8.wgsl (decode), kernels/matmul.wgsl,
matmul_broadcast.wgsl and matmul_q4_int8.wgsl (prefill) against numpy float64.

Weights are random float matrices quantized by the `gguf` package and repacked into our layouts;
the reference is `dequantize(packed) @ x` in float64, so quantization error is not measured
here (tests/test_repack* hold that), only the kernels' arithmetic.

Bound: the weights the kernel decodes equal `dequantize(packed)` exactly, so the only error is
float32 accumulation of K products in another order than numpy's. Each addition rounds by at
most 2^-24 ≈ 6e-8 relative; over K ≤ ~600 random-sign terms ‖out − ref‖ / ‖ref‖ is ~1e-7 (a few
1e-7 at worst). 1e-5 leaves room for any summation order and still fails on any real bug (a
wrong element, scale or row gives errors of 1e-2 or more).

matvec_q4_int8 and matmul_q4_int8 round their input to int8 on purpose, so they have their own
bounds (see matvec_q4_int8's section).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from notebook_llm.loader.repack import PackedWeight, dequantize, repack, split_rows

from .conftest import assert_float16_rounding, relative_error
from .tiny_llama import K_QUANTS, quantize_any

BOUND = 1e-5
# Every type the loader repacks, so every layout: q4g32 (Q4_0, Q4_1), q4g32f (Q4_K),
# q8g32 (Q5_0, Q8_0), q8g32f (Q5_1, Q5_K), q8g16f (Q6_K), f16, f32.
TYPES = [QT.Q4_0, QT.Q4_1, QT.Q4_K, QT.Q5_0, QT.Q5_1, QT.Q5_K, QT.Q8_0, QT.Q6_K, QT.F16, QT.F32]
MAX_WORKGROUPS = 65535
BROADCAST_WORKGROUP = 16  # kernels/matvec_broadcast.wgsl's WORKGROUP


def random_weight(rng: np.random.Generator, qtype: QT, rows: int, cols: int) -> PackedWeight:
    """A random N(0, 1) matrix as a file would store it in `qtype` (K-quants by tests/tiny_llama.py's
    quantizer, the others by gguf's), repacked."""
    values = rng.standard_normal((rows, cols), dtype=np.float32)
    return repack(quantize_any(values, qtype), qtype, rows, cols)


def odd_width(qtype: QT) -> int:
    """A width that is not a multiple of the kernels' 32- or 64-column steps where the type allows:
    19 groups of 32 for 32-block types (an odd count pads q8g32's scale words), 3 super-blocks of
    256 for K-quants, 77 × 8 for floats."""
    if qtype in K_QUANTS:
        return 768
    return 608 if qtype in (QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0) else 616


def params(rows: int, cols: int, row_offset: int = 0, out_rows: int = 0) -> np.ndarray:
    return np.array([rows, cols, row_offset, out_rows], np.uint32)


def step(n_tokens: int) -> np.ndarray:
    """Step { n_tokens, position, seed, temperature = 0.0 }."""
    return np.array([n_tokens, 0, 0, 0], np.uint32)


def matvec_workgroups(rows: int, rows_per_workgroup: int = 4) -> tuple[int, int]:
    """The dispatch rule of matvec.wgsl: 4 rows per workgroup by default, folded into y past 65535."""
    n = -(-rows // rows_per_workgroup)
    return (n, 1) if n <= MAX_WORKGROUPS else (MAX_WORKGROUPS, -(-n // MAX_WORKGROUPS))


def run_matvec(ctx, w: PackedWeight, x: np.ndarray, y0: np.ndarray | None = None, threads_per_row: int = 64,
               rows_per_thread: int = 1, prologue: str | None = None, extra: list | None = None,
               kernel: str = "matvec", **constants) -> np.ndarray:
    """y = W x, or y0 + W x with ACCUMULATE; y is poisoned with NaN first when not accumulating.
    `prologue` and the buffers it binds (`extra`, from binding 5) select matvec's input prologue."""
    y = ctx.empty(w.rows * 4)
    return run_matvec_blocks(ctx, w, x, y, y0, threads_per_row, rows_per_thread=rows_per_thread,
                             prologue=prologue, extra=extra, kernel=kernel, **constants)


def run_matvec_blocks(ctx, w: PackedWeight, x: np.ndarray, y, y0: np.ndarray | None = None,
                      threads_per_row: int = 64, max_bytes: int | None = None, rows_per_thread: int = 1,
                      prologue: str | None = None, extra: list | None = None, kernel: str = "matvec",
                      **constants) -> np.ndarray:
    """run_matvec with W bound as row blocks of at most `max_bytes` (one dispatch each), as the model
    binds a matrix larger than a storage binding."""
    blocks = split_rows(w, max_bytes) if max_bytes else [(0, w)]
    if y0 is None:
        ctx.fill(y)
    else:
        ctx.queue.write_buffer(y, 0, y0.astype(np.float32).tobytes())
    x_buffer = ctx.buffer(x.astype(np.float32))
    constants.update({"ACCUMULATE": True} if y0 is not None else {})
    if kernel == "matvec_broadcast":  # one lane a row, 16 lanes a workgroup
        rows_per_workgroup = BROADCAST_WORKGROUP * rows_per_thread
        constants.update(ROWS_PER_THREAD=rows_per_thread)
    else:
        rows_per_workgroup = 256 // threads_per_row * rows_per_thread
        constants.update(THREADS_PER_ROW=threads_per_row, ROWS_PER_THREAD=rows_per_thread)
    dispatches = []
    for row_offset, block in blocks:
        buffers = [ctx.buffer(block.codes), ctx.buffer(block.scales), x_buffer, y,
                   ctx.uniform(params(block.rows, block.cols, row_offset)), *(extra or [])]
        workgroups = matvec_workgroups(block.rows, rows_per_workgroup)
        dispatches.append(ctx.dispatch(kernel, buffers, workgroups, weights=w.layout, prologue=prologue, **constants))
    ctx.run(dispatches)
    return ctx.read(y, np.float32, w.rows)


def run_matmul(ctx, w: PackedWeight, x: np.ndarray, y0: np.ndarray | None = None, capacity: int | None = None,
               max_bytes: int | None = None, tokens_per_thread: int = 4, kernel: str = "matmul", tokens: int = 8,
               four_lane_loads: bool = False):
    """Y = X Wᵀ for the x.shape[0] tokens of the step, into a [capacity, rows] buffer poisoned with
    NaN (or holding y0 with ACCUMULATE); returns the whole buffer so tests can see the rows past
    n_tokens. With `max_bytes`, W is bound as row blocks (one dispatch each)."""
    n_tokens = x.shape[0]
    capacity = capacity or n_tokens
    y = ctx.empty(capacity * w.rows * 4)
    ctx.fill(y)
    if y0 is not None:
        ctx.queue.write_buffer(y, 0, y0.astype(np.float32).tobytes())
    x_buffer = ctx.empty(capacity * w.cols * 4)
    ctx.fill(x_buffer)  # tokens past n_tokens hold NaN: the kernel must not let them leak in
    ctx.queue.write_buffer(x_buffer, 0, x.astype(np.float32).tobytes())
    constants = {"ACCUMULATE": True} if y0 is not None else {}
    if kernel == "matmul_broadcast":  # TOKENS tokens a workgroup
        constants["TOKENS"], tile_tokens = tokens, tokens
        constants.update({"FOUR_LANE_LOADS": True} if four_lane_loads else {})
    else:
        constants["TOKENS_PER_THREAD"], tile_tokens = tokens_per_thread, 16 * tokens_per_thread
    step_buffer = ctx.uniform(step(n_tokens))
    dispatches = []
    for row_offset, block in split_rows(w, max_bytes) if max_bytes else [(0, w)]:
        out_rows = w.rows if max_bytes else 0  # 0: the block's own rows (what a whole matrix passes)
        buffers = [ctx.buffer(block.codes), ctx.buffer(block.scales), x_buffer, y,
                   ctx.uniform(params(block.rows, block.cols, row_offset, out_rows)), step_buffer]
        workgroups = (-(-block.rows // 64), -(-n_tokens // tile_tokens), 1)
        dispatches.append(ctx.dispatch(kernel, buffers, workgroups, weights=w.layout, **constants))
    ctx.run(dispatches)
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


@pytest.mark.parametrize("rows_per_thread", [2, 4])
@pytest.mark.parametrize("threads_per_row", [64, 4])
@pytest.mark.parametrize("qtype", [QT.Q4_0, QT.Q8_0, QT.Q4_K, QT.F16], ids=lambda t: t.name)
def test_matvec_with_several_rows_per_thread_matches_numpy(ctx, rng, qtype, threads_per_row, rows_per_thread):
    """The variant large matrices get: each thread's group computes 2 or 4 rows, reading the input
    once for them; 203 rows leave the last group short (rows past the end must not be written)."""
    rows, cols = 203, odd_width(qtype)
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32)
    out = run_matvec(ctx, w, x, y0, threads_per_row=threads_per_row, rows_per_thread=rows_per_thread)
    ref = y0.astype(np.float64) + dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


@pytest.mark.parametrize("rows_per_thread", [1, 4])
@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q6_K], ids=lambda t: t.name)
def test_matvec_long_rows_take_the_four_block_loop_and_its_tail(ctx, rng, qtype, rows_per_thread):
    """5 * 512 + 256 columns: with 64 threads per row one pass of the four-block loop, then one
    or two blocks of the tail loop (the second only for the lanes whose block is still in the row)."""
    rows, cols = 37, 5 * 512 + 256
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    out = run_matvec(ctx, w, x, rows_per_thread=rows_per_thread)
    assert relative_error(out, dequantize(w).astype(np.float64) @ x.astype(np.float64)) < BOUND


@pytest.mark.parametrize("rows_per_thread", [1, 4])
def test_matvec_rmsnorm_prologue_matches_numpy(ctx, rng, reduction, rows_per_thread):
    """in = x / sqrt(mean(x²) + eps) * g, computed inside the matvec (the decode norm before QKV)."""
    rows, cols, eps = 203, 608, 1e-5
    w = random_weight(rng, QT.Q4_1, rows, cols)
    x = (3.0 * rng.standard_normal(cols)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    norm_params = np.array([cols, np.float32(eps).view(np.uint32), 0, 0], np.uint32)
    out = run_matvec(ctx, w, x, rows_per_thread=rows_per_thread, prologue="rmsnorm",
                     extra=[ctx.buffer(g), ctx.uniform(norm_params)])
    x64 = x.astype(np.float64)
    normed = x64 / np.sqrt(np.mean(x64 ** 2) + eps) * g
    assert relative_error(out, dequantize(w).astype(np.float64) @ normed) < BOUND


def _silu(g: np.ndarray) -> np.ndarray:
    return g / (1.0 + np.exp(-g))


def _gelu_tanh(g: np.ndarray) -> np.ndarray:
    return 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g ** 3)))


@pytest.mark.parametrize("prologue, act", [("silu_mul", _silu), ("gelu_mul", _gelu_tanh)])
def test_matvec_ffn_prologue_matches_numpy(ctx, rng, prologue, act):
    """in = act(gate) * up for x = [gate; up] (the decode FFN middle fused into the down projection);
    gates up to ±20 reach both tails of the activations."""
    rows, cols = 203, 768
    w = random_weight(rng, QT.Q6_K, rows, cols)
    gate_up = np.concatenate([rng.uniform(-20, 20, cols), rng.standard_normal(cols)]).astype(np.float32)
    out = run_matvec(ctx, w, gate_up, rows_per_thread=2, prologue=prologue)
    gate, up = gate_up[:cols].astype(np.float64), gate_up[cols:].astype(np.float64)
    assert relative_error(out, dequantize(w).astype(np.float64) @ (act(gate) * up)) < BOUND


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0, QT.Q4_K, QT.Q6_K], ids=lambda t: t.name)
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


@pytest.mark.parametrize("qtype", [QT.Q8_0, QT.Q4_K], ids=lambda t: t.name)
def test_matvec_row_blocks_write_at_their_offsets(ctx, rng, qtype):
    """A matrix bound as row blocks (here 4 blocks of 60 rows and one of 23, as a 262k-row LM head
    is split at 128 MiB): each block's dispatch writes y[row_offset + r]; together they give W x."""
    rows, cols = 263, 512
    w = random_weight(rng, qtype, rows, cols)
    row_bytes = w.codes.nbytes // rows
    x = rng.standard_normal(cols).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32)
    y = ctx.empty(rows * 4)
    out = run_matvec_blocks(ctx, w, x, y, y0, threads_per_row=4, max_bytes=60 * row_bytes)
    assert len(split_rows(w, 60 * row_bytes)) == 5
    ref = y0.astype(np.float64) + dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref) < BOUND


def test_matvec_gemma3_tied_lm_head_real_shape(ctx, rng):
    """Gemma 3 270M's output projection: the Q8_0 embedding [vocab 262144, dim 640] (168 MB of int8
    codes, over lavapipe's 128 MiB binding) as two row blocks of at most 128 MiB."""
    rows, cols = 262144, 640
    blocks = np.empty((rows, cols // 32, 34), np.uint8)
    blocks[..., :2] = rng.uniform(1e-3, 2e-2, (rows, cols // 32, 1)).astype(np.float16).view(np.uint8)
    blocks[..., 2:] = rng.integers(-127, 128, (rows, cols // 32, 32), dtype=np.int8).view(np.uint8)
    w = repack(blocks.reshape(rows, -1), QT.Q8_0, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    max_bytes = 128 * 2**20
    assert len(split_rows(w, max_bytes)) == 2
    kernel = "matvec_broadcast" if ctx.gpu.has_subgroups else "matvec"  # what the CPU decode graph runs
    out = run_matvec_blocks(ctx, w, x, ctx.empty(rows * 4), threads_per_row=4, max_bytes=max_bytes,
                            rows_per_thread=4, kernel=kernel)
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


@pytest.mark.parametrize("threads_per_row, rows_per_thread", [(64, 1), (32, 2), (4, 4)])
def test_matvec_both_row_reductions_match_numpy(ctx, rng, reduction, threads_per_row, rows_per_thread):
    rows, cols = 203, 608
    w = random_weight(rng, QT.Q4_1, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    out = run_matvec(ctx, w, x, threads_per_row=threads_per_row, rows_per_thread=rows_per_thread)
    assert relative_error(out, dequantize(w).astype(np.float64) @ x.astype(np.float64)) < BOUND


Q4_TYPES = [QT.Q4_0, QT.Q4_1, QT.Q4_K]  # layouts q4g32, q4g32, q4g32f


# -- matvec_broadcast: the CPU decode kernel (a lane a row, the input shared by subgroup broadcasts) ----


@pytest.fixture
def subgroups(ctx):
    if not ctx.gpu.has_subgroups:
        pytest.skip("matvec_broadcast needs subgroups")


def width32(qtype: QT) -> int:
    """A width of whole 32-column groups (matvec_broadcast's step): 19 groups, an odd count that
    pads q8g32's scale words; 3 super-blocks of 256 for K-quants."""
    return 768 if qtype in K_QUANTS else 608


@pytest.mark.parametrize("rows_per_thread", [1, 2, 4, 8])
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_matvec_broadcast_matches_numpy(ctx, rng, subgroups, qtype, rows_per_thread):
    """Every layout's group32 reader; 203 rows leave lanes of the last workgroup past the end
    (they re-read the last row and must not write); with 2 rows a lane, y accumulates."""
    rows, cols = 203, width32(qtype)
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32) if rows_per_thread == 2 else None
    y = ctx.empty((rows + 8) * 4)  # 8 more floats, NaN, that no lane may write
    out = run_matvec_blocks(ctx, w, x, y, y0, rows_per_thread=rows_per_thread, kernel="matvec_broadcast")
    ref = dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(out, ref if y0 is None else y0 + ref) < BOUND
    if y0 is None:
        assert np.isnan(ctx.read(y, np.float32, rows + 8)[rows:]).all()


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0, QT.Q6_K], ids=lambda t: t.name)
def test_broadcast_kernels_with_four_lane_loads(ctx, rng, subgroups, qtype):
    """The input loads of 4-lane subgroups (lavapipe on CPUs without AVX: two vec4 a lane, lanes
    l % 4), forced on this adapter's wider subgroups: matvec and matmul."""
    rows, cols, n_tokens = 203, width32(qtype), 21
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    w64 = dequantize(w).astype(np.float64)
    out = run_matvec(ctx, w, x[0], rows_per_thread=4, kernel="matvec_broadcast", FOUR_LANE_LOADS=True)
    assert relative_error(out, w64 @ x[0].astype(np.float64)) < BOUND
    y = run_matmul(ctx, w, x, kernel="matmul_broadcast", four_lane_loads=True)
    assert relative_error(y, x.astype(np.float64) @ w64.T) < BOUND


@pytest.mark.parametrize("prologue", ["rmsnorm", "silu_mul", "gelu_mul"])
def test_matvec_broadcast_prologues_match_numpy(ctx, rng, subgroups, prologue):
    """The CPU decode graph fuses the norms and the FFN middle into matvec_broadcast as the GPU's
    does into matvec: every lane computes its share of the input through the prologue."""
    rows, cols, eps = 203, 768, 1e-5
    w = random_weight(rng, QT.Q4_K, rows, cols)
    if prologue == "rmsnorm":
        x = (3.0 * rng.standard_normal(cols)).astype(np.float32)
        g = rng.uniform(0.5, 1.5, cols).astype(np.float32)
        norm_params = np.array([cols, np.float32(eps).view(np.uint32), 0, 0], np.uint32)
        extra = [ctx.buffer(g), ctx.uniform(norm_params)]
        x64 = x.astype(np.float64)
        expected_in = x64 / np.sqrt(np.mean(x64 ** 2) + eps) * g
    else:
        x = np.concatenate([rng.uniform(-20, 20, cols), rng.standard_normal(cols)]).astype(np.float32)
        act = _silu if prologue == "silu_mul" else _gelu_tanh
        extra, expected_in = [], act(x[:cols].astype(np.float64)) * x[cols:].astype(np.float64)
    out = run_matvec(ctx, w, x, rows_per_thread=4, prologue=prologue, extra=extra, kernel="matvec_broadcast")
    assert relative_error(out, dequantize(w).astype(np.float64) @ expected_in) < BOUND


@pytest.mark.parametrize("rows_per_thread", [2, 4, 8])
@pytest.mark.parametrize("rope_dim", [16, 12])
@pytest.mark.parametrize("kv_dtype", [np.float16, np.float32], ids=["f16-cache", "f32-cache"])
def test_matvec_broadcast_rope_writes_rotated_q_and_the_kv_cache(ctx, rng, subgroups, rows_per_thread, rope_dim, kv_dtype):
    """The CPU decode QKV projection with RoPE and the KV-cache write in its epilogue: 3 q heads and
    1 KV head of 16, adjacent pairs rotated by a random (cos, sin) table row (rope_dim 12: the last
    4 dims pass through); cache rows other than the position's stay NaN."""
    n_head, n_kv_head, head_dim, cols, position, context, eps = 3, 1, 16, 96, 5, 9, 1e-5
    rows = (n_head + 2 * n_kv_head) * head_dim
    w = random_weight(rng, QT.Q4_1, rows, cols)
    x = (3.0 * rng.standard_normal(cols)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    table = rng.standard_normal((context, rope_dim // 2, 2)).astype(np.float32)
    q_out = ctx.empty(n_head * head_dim * 4)
    ctx.fill(q_out)
    k_cache, v_cache = (ctx.buffer(np.full(context * n_kv_head * head_dim, np.nan, kv_dtype)) for _ in range(2))
    buffers = [ctx.buffer(w.codes), ctx.buffer(w.scales), ctx.buffer(x), q_out, ctx.uniform(params(rows, cols)),
               ctx.buffer(g), ctx.uniform(np.array([cols, np.float32(eps).view(np.uint32), 0, 0], np.uint32)),
               k_cache, v_cache, ctx.buffer(table),
               ctx.uniform(np.array([n_head, n_kv_head, head_dim, rope_dim, 0, 0, 0, 0], np.uint32)),
               ctx.uniform(np.array([1, position, 0, 0], np.uint32))]
    workgroups = -(-rows // (BROADCAST_WORKGROUP * rows_per_thread))
    ctx.run([ctx.dispatch("matvec_broadcast_rope", buffers, workgroups, weights=w.layout, prologue="rmsnorm",
                          ROWS_PER_THREAD=rows_per_thread, KV_F32=kv_dtype == np.float32)])
    x64 = x.astype(np.float64)
    qkv = dequantize(w).astype(np.float64) @ (x64 / np.sqrt(np.mean(x64 ** 2) + eps) * g)
    heads = qkv.reshape(n_head + 2 * n_kv_head, head_dim).copy()
    c, s_ = table[position, :, 0].astype(np.float64), table[position, :, 1].astype(np.float64)
    for h in range(n_head + n_kv_head):  # q and k heads
        a, b = heads[h, 0:rope_dim:2].copy(), heads[h, 1:rope_dim:2].copy()
        heads[h, 0:rope_dim:2], heads[h, 1:rope_dim:2] = a * c - b * s_, a * s_ + b * c
    got_k = ctx.read(k_cache, kv_dtype, context * head_dim).reshape(context, head_dim)
    got_v = ctx.read(v_cache, kv_dtype, context * head_dim).reshape(context, head_dim)
    assert relative_error(ctx.read(q_out, np.float32, n_head * head_dim), heads[:n_head].ravel()) < BOUND
    if kv_dtype == np.float32:
        assert relative_error(got_k[position], heads[n_head]) < BOUND
        assert relative_error(got_v[position], heads[n_head + 1]) < BOUND
    else:  # float16 (kernels/kv_cache.wgsl): the float32 results rounded to nearest
        assert_float16_rounding(got_k[position], heads[n_head], reference_error=BOUND)
        assert_float16_rounding(got_v[position], heads[n_head + 1], reference_error=BOUND)
    others = np.arange(context) != position
    assert np.isnan(got_k[others]).all() and np.isnan(got_v[others]).all()


def test_matvec_broadcast_row_blocks_and_folded_workgroups(ctx, rng, subgroups):
    """Row blocks write y[row_offset + r]; a dispatch folded into (x, y) workgroups (as past 65535)
    numbers its workgroups y·nx + x."""
    rows, cols = 263, 512
    w = random_weight(rng, QT.Q8_0, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    y = ctx.empty(rows * 4)
    ctx.fill(y)
    x_buffer = ctx.buffer(x)
    blocks = split_rows(w, 60 * (w.codes.nbytes // rows))
    assert len(blocks) == 5
    dispatches = [ctx.dispatch("matvec_broadcast", [ctx.buffer(b.codes), ctx.buffer(b.scales), x_buffer, y,
                                                    ctx.uniform(params(b.rows, b.cols, row_offset))],
                               (1, 2, 1), weights=w.layout, ROWS_PER_THREAD=2)  # 2 workgroups of 32 rows: 64 >= 60
                  for row_offset, b in blocks]
    ctx.run(dispatches)
    ref = dequantize(w).astype(np.float64) @ x.astype(np.float64)
    assert relative_error(ctx.read(y, np.float32, rows), ref) < BOUND


# -- matvec_q4_int8: 4-bit matrices times an int8-quantized input -------------------------------
#
# The kernel rounds each group of 32 inputs to q·d with d = max|in| / 127 and q an integer, so
# per row |out − W·in| ≤ Σ_k |W[r,k] − min[r,k]| · d(k) / 2 (the min term uses the exact sum).
# Beyond that bound it must also equal the quantized product itself: the test rebuilds q in
# float64 and compares per row within float32 accumulation (1e-5 of the row's absolute terms),
# letting an input that lies within 1e-4 of a rounding tie round either way.


def int8_quantized(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q·d per input, d per input, and where rounding is a near tie, as the kernel stages them."""
    groups = x.astype(np.float64).reshape(-1, 32)
    d = np.abs(groups).max(axis=1, keepdims=True) / 127
    scaled = np.divide(groups, d, out=np.zeros_like(groups), where=d > 0)
    q = np.rint(scaled)
    near_tie = np.abs(scaled - q) > 0.5 - 1e-4
    return (q * d).ravel(), np.broadcast_to(d, groups.shape).ravel(), near_tie.ravel()


def check_int8_matvec(out: np.ndarray, w: PackedWeight, x: np.ndarray, y0: np.ndarray | None = None):
    deq = dequantize(w).astype(np.float64)
    mins = dequantize(replace(w, codes=np.zeros_like(w.codes))).astype(np.float64)
    coded = deq - mins  # scale · q_w
    x64 = x.astype(np.float64)
    xq, d, near_tie = int8_quantized(x)
    base = np.zeros(w.rows) if y0 is None else y0.astype(np.float64)
    assert np.all(np.isfinite(out)), "rows left unwritten"
    accumulation = 1e-5 * (np.abs(coded) @ np.abs(xq) + np.abs(mins) @ np.abs(x64) + np.abs(base))
    quantized = base + coded @ xq + mins @ x64
    tie_slack = np.abs(coded[:, near_tie]) @ d[near_tie]
    assert np.all(np.abs(out - quantized) <= accumulation + tie_slack), "differs from the quantized product"
    rounding = np.abs(coded) @ d / 2
    assert np.all(np.abs(out - (base + deq @ x64)) <= rounding + accumulation), "past the rounding bound"


@pytest.mark.parametrize("threads_per_row, rows_per_thread", [(16, 4), (32, 1), (4, 2)])
@pytest.mark.parametrize("chunk_groups", [4, 128])
@pytest.mark.parametrize("qtype", Q4_TYPES, ids=lambda t: t.name)
def test_matvec_q4_int8_matches_numpy(ctx, rng, reduction, qtype, chunk_groups, threads_per_row, rows_per_thread):
    """203 rows (a partial last workgroup); 19 or 24 groups staged 4 at a time or all at once; one
    input group all zeros (d = 0) and one scaled far up (d differs per group)."""
    rows, cols = 203, odd_width(qtype)
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    x[32:64] = 0.0
    x[64:96] *= 1000.0
    out = run_matvec(ctx, w, x, threads_per_row=threads_per_row, rows_per_thread=rows_per_thread,
                     kernel="matvec_q4_int8", CHUNK_GROUPS=chunk_groups)
    check_int8_matvec(out, w, x)


@pytest.mark.parametrize("defer_scale", [True, False], ids=["norm-scales-sums", "norm-scales-input"])
@pytest.mark.parametrize("qtype", Q4_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("width, chunk_groups", [("odd", 8), ("wide", 512)])
def test_matvec_q4_int8_rmsnorm_prologue_accumulates(ctx, rng, reduction, qtype, defer_scale, width, chunk_groups):
    """The model's use: the QKV / FFN-up norm fused in, ACCUMULATE, row blocks at their offsets;
    1 / rms applied to the sums (the default: x staged unnormalized over several chunks, or 300
    groups in one, two a thread) or to x."""
    rows, cols = 263, odd_width(qtype) if width == "odd" else 9600 if qtype not in K_QUANTS else 9728
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32) * 3
    norm = rng.standard_normal(cols).astype(np.float32)
    y0 = rng.standard_normal(rows).astype(np.float32)
    eps = np.float32(1e-5)
    extra = [ctx.buffer(norm), ctx.uniform(np.array([cols, eps.view(np.uint32), 0, 0], np.uint32))]
    out = run_matvec_blocks(ctx, w, x, ctx.empty(rows * 4), y0, threads_per_row=16, rows_per_thread=4,
                            max_bytes=100 * (w.codes.nbytes // rows), prologue="rmsnorm", extra=extra,
                            kernel="matvec_q4_int8", CHUNK_GROUPS=chunk_groups, DEFER_INPUT_SCALE=defer_scale)
    x64 = x.astype(np.float64)
    normed = x64 / np.sqrt(np.mean(x64 * x64) + float(eps)) * norm
    check_int8_matvec(out, w, normed, y0)


@pytest.mark.parametrize("cols, chunk_groups", [(1536, 16), (9600, 300), (9600, 512)])
def test_matvec_q4_int8_silu_prologue_matches_numpy(ctx, rng, cols, chunk_groups):
    """The FFN down projection's use; 300 groups staged at once: two a thread."""
    rows = 96
    w = random_weight(rng, QT.Q4_0, rows, cols)
    gate_up = rng.standard_normal(2 * cols).astype(np.float32)
    out = run_matvec(ctx, w, gate_up, threads_per_row=8, rows_per_thread=2, prologue="silu_mul",
                     kernel="matvec_q4_int8", CHUNK_GROUPS=chunk_groups)
    gate, up = gate_up[:cols].astype(np.float64), gate_up[cols:].astype(np.float64)
    check_int8_matvec(out, w, _silu(gate) * up)


# -- matmul ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens_per_thread", [4, 2])
@pytest.mark.parametrize("n_tokens", [7, 45, 100])
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_matmul_matches_numpy_with_ragged_shapes(ctx, rng, qtype, n_tokens, tokens_per_thread):
    """rows 200 (4th row tile partly empty), 7, 45 or 100 tokens (token tiles partly empty; 100
    spans two), a width that is not a multiple of the 16-column K step for f16/f32; rows of y past
    n_tokens stay NaN."""
    rows, cols, capacity = 200, odd_width(qtype), 128
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y = run_matmul(ctx, w, x, capacity=capacity, tokens_per_thread=tokens_per_thread)
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


def test_matmul_row_blocks_fill_their_columns_of_y(ctx, rng):
    """W bound as row blocks of 70 rows: block b writes columns row_offset.. of the [tokens, rows] output."""
    rows, cols, n_tokens = 200, 768, 37
    w = random_weight(rng, QT.Q6_K, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y = run_matmul(ctx, w, x, max_bytes=70 * (w.codes.nbytes // rows))
    ref = x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y, ref) < BOUND


def test_matmul_gemma3_ffn_down_real_shape(ctx, rng):
    """Gemma 3 270M's down projection as its Q4_K_M file stores it in some layers: Q6_K [dim 640,
    ffn 2048], and in the others Q4_K; 37 tokens."""
    rows, cols, n_tokens = 640, 2048, 37
    for qtype in (QT.Q6_K, QT.Q4_K):
        w = random_weight(rng, qtype, rows, cols)
        x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
        y = run_matmul(ctx, w, x)
        ref = x.astype(np.float64) @ dequantize(w).astype(np.float64).T
        assert relative_error(y, ref) < BOUND, qtype.name


def test_matmul_smollm2_ffn_up_real_shape(ctx, rng):
    """SmolLM2-135M's up projection as its file stores it: Q4_1 [ffn 1536, dim 576], 37 tokens."""
    rows, cols, n_tokens = 1536, 576, 37
    w = random_weight(rng, QT.Q4_1, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y = run_matmul(ctx, w, x)
    ref = x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y, ref) < BOUND


# -- matmul_q4_int8: GPU prefill of 4-bit matrices, the chunk rounded to int8 by quantize_int8 ------
# The same algorithm as matvec_q4_int8 token by token, so check_int8_matvec bounds every token's row.


def run_matmul_q4_int8(ctx, w: PackedWeight, x: np.ndarray, y0: np.ndarray | None = None, capacity: int | None = None,
                       tokens_per_thread: int = 8, max_bytes: int | None = None, row_lanes: int = 32,
                       stage_groups: int = 1) -> np.ndarray:
    """quantize_int8 once, then matmul_q4_int8 per row block, as the model's prefill graph runs them;
    x's buffer and y are [capacity, ...] and poisoned with NaN past n_tokens."""
    n_tokens = x.shape[0]
    capacity = capacity or n_tokens
    groups = w.cols // 32
    y = ctx.empty(capacity * w.rows * 4)
    ctx.fill(y)
    if y0 is not None:
        ctx.queue.write_buffer(y, 0, y0.astype(np.float32).tobytes())
    x_buffer, x_codes, x_scales = ctx.empty(capacity * w.cols * 4), ctx.empty(capacity * groups * 32), ctx.empty(capacity * groups * 8)
    for buffer in (x_buffer, x_codes, x_scales):
        ctx.fill(buffer)
    ctx.queue.write_buffer(x_buffer, 0, x.astype(np.float32).tobytes())
    step_buffer = ctx.uniform(step(n_tokens))
    dispatches = [ctx.dispatch("quantize_int8", [x_buffer, x_codes, x_scales, ctx.uniform(params(w.rows, w.cols)), step_buffer],
                               (-(-groups // 64), n_tokens, 1))]
    for row_offset, block in split_rows(w, max_bytes) if max_bytes else [(0, w)]:
        out_rows = w.rows if max_bytes else 0
        buffers = [ctx.buffer(block.codes), ctx.buffer(block.scales), x_codes, x_scales, y,
                   ctx.uniform(params(block.rows, block.cols, row_offset, out_rows)), step_buffer]
        workgroups = (-(-block.rows // (4 * row_lanes)), -(-n_tokens // (8 * tokens_per_thread)), 1)
        dispatches.append(ctx.dispatch("matmul_q4_int8", buffers, workgroups, weights=w.layout,
                                       ACCUMULATE=y0 is not None, TOKENS_PER_THREAD=tokens_per_thread,
                                       ROW_LANES=row_lanes, STAGE_GROUPS=stage_groups))
    ctx.run(dispatches)
    return ctx.read(y, np.float32, capacity * w.rows).reshape(capacity, w.rows)


@pytest.mark.parametrize("row_lanes, tokens_per_thread, stage_groups", [(32, 8, 1), (32, 4, 2), (16, 8, 4), (16, 4, 1),
                                                                     (32, 8, 4), (16, 8, 2)])
@pytest.mark.parametrize("n_tokens", [7, 45, 100])
@pytest.mark.parametrize("qtype", Q4_TYPES, ids=lambda t: t.name)
def test_matmul_q4_int8_matches_numpy(ctx, rng, qtype, n_tokens, row_lanes, tokens_per_thread, stage_groups):
    """rows 203 (the second row tile partly past the end), 7, 45 or 100 tokens (100 spans token
    tiles of 32 and 64), one group all zeros (d = 0) and one scaled far up in every token; rows of y
    past n_tokens stay NaN. 16 lanes a row: row tiles of 64 (the fourth partly past the end).
    Stages of 2 or 4 groups over an odd number of groups: the last stage partly past the columns."""
    rows, cols, capacity = 203, odd_width(qtype), 128
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    x[:, 32:64] = 0.0
    x[:, 64:96] *= 1000.0
    y = run_matmul_q4_int8(ctx, w, x, capacity=capacity, tokens_per_thread=tokens_per_thread, row_lanes=row_lanes,
                           stage_groups=stage_groups)
    for t in range(n_tokens):
        check_int8_matvec(y[t], w, x[t])
    assert np.isnan(y[n_tokens:]).all(), "the kernel wrote past step.n_tokens"


@pytest.mark.parametrize("row_lanes, stage_groups", [(32, 1), (16, 2), (32, 4)])
def test_matmul_q4_int8_accumulates_into_row_blocks(ctx, rng, row_lanes, stage_groups):
    """W as row blocks of 70 rows, ACCUMULATE: block b adds to columns row_offset.. of [tokens, rows]."""
    rows, cols, n_tokens = 200, 1024, 37
    w = random_weight(rng, QT.Q4_0, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32) * 3
    y0 = rng.standard_normal((n_tokens, rows)).astype(np.float32) * 10
    y = run_matmul_q4_int8(ctx, w, x, y0, max_bytes=70 * (w.codes.nbytes // rows), row_lanes=row_lanes,
                           stage_groups=stage_groups)
    for t in range(n_tokens):
        check_int8_matvec(y[t], w, x[t], y0[t])


# -- matmul_broadcast: the CPU prefill kernel (a lane a row, dequantized once per TOKENS tokens) ---


@pytest.mark.parametrize("tokens", [16, 8])
@pytest.mark.parametrize("n_tokens", [7, 45, 100])
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_matmul_broadcast_matches_numpy_with_ragged_shapes(ctx, rng, subgroups, qtype, n_tokens, tokens):
    """rows 203 (the last workgroup's lanes partly past the end), 7, 45 or 100 tokens (the last
    token tile partly empty); rows of y past n_tokens stay NaN."""
    rows, cols, capacity = 203, width32(qtype), 128
    w = random_weight(rng, qtype, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y = run_matmul(ctx, w, x, capacity=capacity, kernel="matmul_broadcast", tokens=tokens)
    ref = x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y[:n_tokens], ref) < BOUND
    assert np.isnan(y[n_tokens:]).all(), "the kernel wrote past step.n_tokens"


def test_matmul_broadcast_accumulates_into_row_blocks(ctx, rng, subgroups):
    """W as row blocks of 70 rows, ACCUMULATE: block b adds to columns row_offset.. of [tokens, rows]."""
    rows, cols, n_tokens = 200, 768, 37
    w = random_weight(rng, QT.Q6_K, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    y0 = rng.standard_normal((n_tokens, rows)).astype(np.float32) * 10
    y = run_matmul(ctx, w, x, y0, max_bytes=70 * (w.codes.nbytes // rows), kernel="matmul_broadcast")
    ref = y0.astype(np.float64) + x.astype(np.float64) @ dequantize(w).astype(np.float64).T
    assert relative_error(y, ref) < BOUND

