"""Causal grouped-query attention over the KV cache against numpy float64 written from the formula.

The cache holds float16 by default, float32 with KV_F32 (kernels/kv_cache.wgsl): the cases draw keys
and values of the cache's type, which the reference reads exactly, so the bounds measure the
kernels' float32 arithmetic alone."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from notebook_llm.loader.repack import PackedWeight, dequantize
from notebook_llm.models.llama import split_attention_lanes, tiled_attention_keys

from .conftest import random_weight, relative_error


def attention_reference(q, k_cache, v_cache, position: int, scale: float, window: int = 0) -> np.ndarray:
    """q [n_tokens, n_head, head_dim]; query t at p = position + t attends to cache rows 0..p, or with
    a window only to the `window` rows p - window + 1..p (itself and the window - 1 before it)."""
    n_tokens, n_head, head_dim = q.shape
    group = n_head // k_cache.shape[1]
    out = np.empty((n_tokens, n_head, head_dim))
    for t in range(n_tokens):
        keys = position + t + 1
        first = max(0, keys - window) if window else 0
        for h in range(n_head):
            k = k_cache[first:keys, h // group].astype(np.float64)
            v = v_cache[first:keys, h // group].astype(np.float64)
            scores = k @ q[t, h].astype(np.float64) * scale
            weights = np.exp(scores - scores.max())
            out[t, h] = weights / weights.sum() @ v
    return out.reshape(n_tokens, n_head * head_dim)


@pytest.fixture(params=["attention", "attention_subgroup", "attention_tiled"])
def attention_kernel(request, ctx):
    """attention.wgsl (GPU decode fallback), attention_subgroup.wgsl (CPU drivers: a workgroup of
    one subgroup, lanes owning the head's columns) and attention_tiled.wgsl (GPU prefill: 16
    (query, head) rows a workgroup sharing key tiles), which must agree."""
    if request.param == "attention_subgroup" and not ctx.gpu.has_subgroups:
        pytest.skip("attention_subgroup needs subgroups")
    return request.param


def tiled_heads(n_head: int, n_kv_head: int) -> int:
    """attention_tiled's HEADS as the model picks it: the most heads sharing a KV head, up to 4."""
    return next(h for h in (4, 2, 1) if (n_head // n_kv_head) % h == 0)


def subgroup_slots(n_head: int, n_kv_head: int, head_dim: int, n_tokens: int) -> tuple[int, int]:
    """attention_subgroup's (HEADS, TOKENS) as the model picks them: one token the heads sharing a KV
    head, a chunk 4 queries of a head (what registers allow: slots · head_dim <= 256)."""
    fits = [n for n in (4, 3, 2, 1) if n * head_dim <= 256]
    if n_tokens == 1:
        return next(n for n in fits if (n_head // n_kv_head) % n == 0), 1
    return 1, next(n for n in fits if n != 3)


def run_attention(ctx, q, k_cache, v_cache, position: int, scale: float, window: int = 0,
                  kernel: str = "attention", slots: tuple[int, int] | None = None, tile: int | None = None) -> np.ndarray:
    """`slots`: attention_subgroup's (HEADS, TOKENS) a workgroup (default: subgroup_slots), or
    attention_tiled's (HEADS, _) (default: tiled_heads); `tile`: attention_tiled's keys a tile
    (default: the model's choice)."""
    n_tokens, n_head, head_dim = q.shape
    out = ctx.empty(q.nbytes)
    ctx.fill(out)
    params = ctx.uniform(struct.pack("<IIIfIIII", n_head, k_cache.shape[1], head_dim, scale, window, 0, 0, 0))
    step = ctx.uniform(struct.pack("<IIIf", n_tokens, position, 0, 0.0))
    assert k_cache.dtype == v_cache.dtype and k_cache.dtype in (np.float16, np.float32)
    buffers = [ctx.buffer(q), ctx.buffer(k_cache), ctx.buffer(v_cache), out, params, step]
    constants = {"KV_F32": k_cache.dtype == np.float32}
    if kernel == "attention_subgroup":
        lanes = ctx.subgroup_size
        heads, tokens = slots or subgroup_slots(n_head, k_cache.shape[1], head_dim, n_tokens)
        constants |= {"WORKGROUP": lanes, "HEAD_VEC4": head_dim // 4, "COLS_PER_LANE": -(-head_dim // (4 * lanes)),
                      "HEADS": heads, "TOKENS": tokens}
        workgroups = (n_head // heads, -(-n_tokens // tokens))
    elif kernel == "attention_tiled":
        if head_dim > 128:
            pytest.skip("attention_tiled holds head_dim <= 128")
        heads = slots[0] if slots else tiled_heads(n_head, k_cache.shape[1])
        constants |= {"HEAD_VEC4": head_dim // 4, "HEADS": heads, "TILE": tile or tiled_attention_keys(head_dim)}
        workgroups = (n_head // heads, -(-n_tokens // (16 // heads)))
    else:
        workgroups = (n_head, n_tokens)
    ctx.run([ctx.dispatch(kernel, buffers, workgroups, **constants)])
    return ctx.read(out, np.float32, n_tokens * n_head * head_dim).reshape(n_tokens, n_head * head_dim)


def random_case(rng, n_tokens, position, n_head, n_kv_head, head_dim, q_scale=1.0, kv_dtype=np.float16):
    """Caches of `kv_dtype` (the engine's float16 by default). Cache rows past the chunk's last
    position hold NaN: reading any of them poisons the output."""
    max_context = position + n_tokens + 5
    q = (rng.standard_normal((n_tokens, n_head, head_dim)) * q_scale).astype(np.float32)
    k_cache = rng.standard_normal((max_context, n_kv_head, head_dim)).astype(kv_dtype)
    v_cache = rng.standard_normal((max_context, n_kv_head, head_dim)).astype(kv_dtype)
    k_cache[position + n_tokens :] = np.nan
    v_cache[position + n_tokens :] = np.nan
    return q, k_cache, v_cache


@pytest.mark.parametrize(
    "n_tokens, position, n_head, n_kv_head, head_dim",
    [
        (1, 100, 9, 3, 64),  # SmolLM2-135M decode
        (17, 0, 9, 3, 64),  # SmolLM2-135M first prefill chunk (ragged vs the 64-key tile)
        (9, 40, 9, 3, 64),  # later prefill chunk over rows already in the cache
        (1, 0, 9, 3, 64),  # the very first token: one key, softmax weight 1
        (6, 70, 8, 2, 128),  # GQA ratio 4, head_dim 128 (two key slices per thread group)
        (3, 63, 4, 1, 256),  # head_dim 256 (largest allowed), chunk straddling a tile boundary
        (2, 20, 6, 2, 80),  # head_dim 80: 20 vec4 columns do not divide the 64 threads
    ],
)
@pytest.mark.parametrize("kv_dtype", [np.float16, np.float32], ids=["f16-cache", "f32-cache"])
def test_attention_matches_numpy_causal_gqa(ctx, rng, attention_kernel, n_tokens, position, n_head, n_kv_head, head_dim, kv_dtype):
    q, k_cache, v_cache = random_case(rng, n_tokens, position, n_head, n_kv_head, head_dim, kv_dtype=kv_dtype)
    scale = 1.0 / np.sqrt(head_dim)
    out = run_attention(ctx, q, k_cache, v_cache, position, scale, kernel=attention_kernel)
    # float32 dot products of head_dim terms and a float32 weighted sum over ≤ ~100 keys: ~1e-7 per
    # term, errors growing like sqrt(terms); 1e-5 is ten times what float32 rounding can reach here.
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, scale)) < 1e-5


@pytest.mark.parametrize("heads, tokens", [(2, 2), (3, 1), (1, 3), (1, 1)])
def test_attention_subgroup_slots_of_heads_and_queries(ctx, rng, heads, tokens):
    """Any (HEADS, TOKENS) with HEADS dividing the group: slot i is head i % HEADS of the workgroup's
    first, query i / HEADS; 7 queries leave the last workgroup's slots past the chunk."""
    if not ctx.gpu.has_subgroups:
        pytest.skip("attention_subgroup needs subgroups")
    q, k_cache, v_cache = random_case(rng, 7, 30, 12, 2, 64)  # 6 heads a KV head
    out = run_attention(ctx, q, k_cache, v_cache, 30, 0.125, window=20, kernel="attention_subgroup",
                        slots=(heads, tokens))
    assert relative_error(out, attention_reference(q, k_cache, v_cache, 30, 0.125, window=20)) < 1e-5


@pytest.mark.parametrize("tile", [32, 16])
@pytest.mark.parametrize("heads", [1, 2, 4, 8])
@pytest.mark.parametrize("n_tokens, position, window", [(37, 0, 0), (21, 50, 0), (40, 9, 12)])
def test_attention_tiled_rows_of_heads_and_queries(ctx, rng, heads, n_tokens, position, window, tile):
    """HEADS heads × 16 / HEADS queries a workgroup, chunks that leave the last workgroup's rows past
    n_tokens, key tiles (of either size) straddling the chunk's start, a window shorter than the chunk."""
    q, k_cache, v_cache = random_case(rng, n_tokens, position, 16, 2, 64)
    oldest_visible = max(0, position + 1 - window) if window else 0
    k_cache[:oldest_visible] = np.nan
    v_cache[:oldest_visible] = np.nan
    out = run_attention(ctx, q, k_cache, v_cache, position, 0.125, window=window, kernel="attention_tiled",
                        slots=(heads, 1), tile=tile)
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, 0.125, window)) < 1e-5


def test_attention_subtracts_the_max_for_scores_in_the_hundreds(ctx, rng, attention_kernel):
    # Scores of several hundred: exp without max subtraction overflows float32 (exp(89) = inf).
    q, k_cache, v_cache = random_case(rng, 4, 90, 9, 3, 64, q_scale=60.0)
    scale = 1.0 / 8.0
    out = run_attention(ctx, q, k_cache, v_cache, 90, scale, kernel=attention_kernel)
    # Near one-hot weights; scores of ~500 carry float32 rounding of ~3e-5 absolute into exp().
    assert relative_error(out, attention_reference(q, k_cache, v_cache, 90, scale)) < 1e-4


@pytest.mark.parametrize("position", [3000, 8191])
def test_attention_long_context_decode(ctx, rng, attention_kernel, position):
    # 8191: the last row of an 8192-token context, 128 key tiles streamed through the online softmax.
    q, k_cache, v_cache = random_case(rng, 1, position, 9, 3, 64, q_scale=2.0)
    scale = 1.0 / 8.0
    out = run_attention(ctx, q, k_cache, v_cache, position, scale, kernel=attention_kernel)
    # Sums over thousands of keys in float32: rounding grows like sqrt(keys) · 6e-8 ≈ 6e-6 at most.
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, scale)) < 2e-5


@pytest.mark.parametrize(
    "n_tokens, position, window",
    [
        (1, 100, 7),  # decode far past the window
        (20, 0, 7),  # a first chunk longer than the window
        (9, 120, 70),  # a window wider than one 64-key tile, starting mid-tile
        (5, 2, 16),  # every query still inside the window: plain causal attention
        (3, 40, 1),  # each query sees only itself
    ],
)
def test_sliding_window_attention_reads_only_the_last_window_keys(ctx, rng, attention_kernel, n_tokens, position, window):
    q, k_cache, v_cache = random_case(rng, n_tokens, position, 8, 2, 64)
    # Rows older than every query's window hold NaN: reading any of them poisons the output.
    oldest_visible = max(0, position + 1 - window)
    k_cache[:oldest_visible] = np.nan
    v_cache[:oldest_visible] = np.nan
    out = run_attention(ctx, q, k_cache, v_cache, position, 0.125, window=window, kernel=attention_kernel)
    # The same float32 budget as the causal test.
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, 0.125, window)) < 1e-5


# -- decode attention split over the keys (attention_split.wgsl + attention_combine.wgsl) -------


def run_split_attention(ctx, q, k_cache, v_cache, position: int, scale: float, window: int = 0,
                        chunk: int = 256, projection: PackedWeight | None = None, new_kv=None,
                        projection_kernel: str = "matvec", lanes: dict | None = None) -> np.ndarray:
    """One decode token through the two kernels the decode graph uses, or with `projection`, the
    split kernel and the output projection that merges the chunks in its input prologue
    (`projection_kernel`, matvec.wgsl or matvec_q4_int8.wgsl, with input_attention_combine.wgsl),
    returning W · out. Key and value `position`
    come in the QKV projection's output (with an identity rotary table, so q and k pass unchanged:
    the epilogue's bias, norms and rotation are tested through the model in
    tests/test_architectures.py) and the cache row `position` holds NaN: the split kernel must use
    the new key and value, and it must write them into that row (float16 values: the row must hold
    them exactly, and they are what the reference attends to). The partials buffer and the output
    are poisoned with NaN too: every chunk in range must write its partial, and the combine must
    read no other (chunks past the position or before the window stay NaN). `new_kv`: float32 key
    and value of the step in place of the cache's row `position` (whose float16 rounding the kernel
    must attend to and write). `lanes`: the split kernel's THREADS_PER_ROW and COLS_PER_LANE (default:
    the model's)."""
    _, n_head, head_dim = q.shape
    n_kv_head = k_cache.shape[1]
    n_chunks = -(-k_cache.shape[0] // chunk)
    new_k, new_v = new_kv if new_kv is not None else (k_cache[position], v_cache[position])
    qkv = np.concatenate([q[0].ravel(), new_k.ravel(), new_v.ravel()]).astype(np.float32)
    k_in, v_in = k_cache.copy(), v_cache.copy()
    k_in[position] = np.nan
    v_in[position] = np.nan
    k_buffer, v_buffer = ctx.buffer(k_in), ctx.buffer(v_in)
    kv_format = {"KV_F32": k_cache.dtype == np.float32}
    partials = ctx.empty(n_head * n_chunks * (4 + head_dim) * 4)
    ctx.fill(partials)
    out = ctx.empty(q.nbytes)
    ctx.fill(out)
    params = ctx.uniform(struct.pack("<IIIfIIII", n_head, n_kv_head, head_dim, scale, window, 0, 0, 0))
    step = ctx.uniform(struct.pack("<IIIf", 1, position, 0, 0.0))
    chunks = ctx.uniform(struct.pack("<IIII", n_chunks, 0, 0, 0))
    identity_rope = np.tile(np.array([1.0, 0.0], np.float32), k_cache.shape[0] * head_dim // 2)
    rope_params = ctx.uniform(struct.pack("<IIIIfIII", n_head, n_kv_head, head_dim, head_dim, 1e-6, 0, 0, 0))
    unused = ctx.empty(4)
    split = ctx.dispatch("attention_split", [ctx.buffer(qkv), k_buffer, v_buffer, partials, params, step,
                                             unused, unused, unused, ctx.buffer(identity_rope), rope_params],
                         (n_head, n_chunks), CHUNK=chunk, **(lanes or split_attention_lanes(head_dim)), **kv_format)
    if projection is not None:
        y = ctx.empty(projection.rows * 4)
        ctx.fill(y)
        shape = ctx.uniform(np.array([projection.rows, projection.cols, 0, 0], np.uint32))
        rows_per_thread = 4 if projection_kernel == "matvec_q4_int8" else 1
        ctx.run([split, ctx.dispatch(
            projection_kernel, [ctx.buffer(projection.codes), ctx.buffer(projection.scales), partials, y, shape, params,
                                chunks, step],
            (-(-projection.rows // (8 * rows_per_thread)), 1), weights=projection.layout, prologue="attention_combine",
            THREADS_PER_ROW=32, ROWS_PER_THREAD=rows_per_thread, CHUNK=chunk)])
        return ctx.read(y, np.float32, projection.rows)
    ctx.run([split, ctx.dispatch("attention_combine", [partials, out, params, chunks, step], (n_head, 1), CHUNK=chunk)])
    for cache, written in ((k_cache, k_buffer), (v_cache, v_buffer)):
        row = ctx.read(written, cache.dtype).reshape(cache.shape)[position]
        np.testing.assert_array_equal(row, cache[position])
    return ctx.read(out, np.float32, n_head * head_dim).reshape(1, n_head * head_dim)


@pytest.mark.parametrize(
    "position, n_head, n_kv_head, head_dim, chunk, window",
    [
        (0, 9, 3, 64, 256, 0),  # the first token: one key in chunk 0, every other chunk empty
        (100, 9, 3, 64, 256, 0),  # SmolLM2-135M, inside the first chunk
        (255, 9, 3, 64, 256, 0),  # the first chunk exactly full
        (256, 8, 2, 128, 256, 0),  # one key into the second chunk; GQA 4, head_dim 128
        (1000, 14, 2, 64, 64, 0),  # Qwen2.5-0.5B heads, 16 chunks of 64
        (700, 4, 1, 256, 256, 0),  # Gemma 3 270M heads (head_dim 256: one slice)
        (900, 9, 3, 64, 128, 300),  # sliding window: chunks before p - 299 are empty or cut
    ],
)
@pytest.mark.parametrize("kv_dtype", [np.float16, np.float32], ids=["f16-cache", "f32-cache"])
def test_split_attention_matches_numpy(ctx, rng, position, n_head, n_kv_head, head_dim, chunk, window, kv_dtype):
    q, k_cache, v_cache = random_case(rng, 1, position, n_head, n_kv_head, head_dim, q_scale=2.0, kv_dtype=kv_dtype)
    scale = 1.0 / np.sqrt(head_dim)
    out = run_split_attention(ctx, q, k_cache, v_cache, position, scale, window, chunk)
    ref = attention_reference(q, k_cache, v_cache, position, scale, window)
    assert relative_error(out, ref) < 1e-5


@pytest.mark.parametrize(
    "position, head_dim, lanes, columns",
    [
        (300, 128, 8, 4),  # the model's layout at head_dim 128, over two chunks
        (200, 80, 8, 3),  # 20 columns over 8 lanes: the last lanes' third column is past the head
        (64, 64, 1, 16),  # a key a thread (no reduction)
        (130, 128, 32, 1),  # a subgroup a key
        (255, 256, 64, 1),  # rows wider than any subgroup: the reduction crosses subgroups
    ],
)
def test_split_attention_key_lanes_and_both_reductions(ctx, rng, reduction, position, head_dim, lanes, columns):
    """attention_split.wgsl's rows of lanes scoring four keys at a time, for other row widths than
    the model's, with each `//!include reduce` (subgroup shuffles, workgroup memory)."""
    q, k_cache, v_cache = random_case(rng, 1, position, 4, 2, head_dim, q_scale=2.0)
    scale = 1.0 / np.sqrt(head_dim)
    out = run_split_attention(ctx, q, k_cache, v_cache, position, scale, lanes={"THREADS_PER_ROW": lanes,
                                                                                "COLS_PER_LANE": columns})
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, scale)) < 1e-5


@pytest.mark.parametrize(
    "position, n_head, n_kv_head, head_dim, chunk, window",
    [
        (0, 9, 3, 64, 256, 0),
        (1000, 14, 2, 64, 64, 0),
        (900, 9, 3, 64, 128, 300),
    ],
)
def test_output_projection_merges_the_split_chunks(ctx, rng, position, n_head, n_kv_head, head_dim, chunk, window):
    """The same merge inside the output projection's prologue: W · attention for a float32 W."""
    q, k_cache, v_cache = random_case(rng, 1, position, n_head, n_kv_head, head_dim, q_scale=2.0)
    scale = 1.0 / np.sqrt(head_dim)
    w = random_weight(rng, QT.F32, 37, n_head * head_dim)
    out = run_split_attention(ctx, q, k_cache, v_cache, position, scale, window, chunk, projection=w)
    ref = dequantize(w).astype(np.float64) @ attention_reference(q, k_cache, v_cache, position, scale, window).ravel()
    assert relative_error(out, ref) < 1e-5


@pytest.mark.parametrize("position, chunk", [(0, 256), (1000, 64)])
def test_int8_output_projection_merges_the_split_chunks(ctx, rng, position, chunk):
    """The merge in matvec_q4_int8.wgsl's prologue (large models' output projections): W · attention
    for a Q4_0 W, within the bound of rounding the merged input to int8 per 32 columns."""
    n_head, n_kv_head, head_dim = 8, 2, 128
    q, k_cache, v_cache = random_case(rng, 1, position, n_head, n_kv_head, head_dim, q_scale=2.0)
    scale = 1.0 / np.sqrt(head_dim)
    w = random_weight(rng, QT.Q4_0, 70, n_head * head_dim)
    out = run_split_attention(ctx, q, k_cache, v_cache, position, scale, 0, chunk, projection=w,
                              projection_kernel="matvec_q4_int8")
    attention = attention_reference(q, k_cache, v_cache, position, scale, 0).ravel()
    deq = dequantize(w).astype(np.float64)
    step = np.abs(attention).reshape(-1, 32).max(axis=1) / 127  # the int8 step of each group
    rounding = np.abs(deq).reshape(w.rows, -1, 32).sum(axis=2) @ step / 2
    assert np.all(np.abs(out - deq @ attention) <= rounding + 1e-4 * (np.abs(deq) @ np.abs(attention)))


def test_split_attention_chunks_with_far_apart_maxima(ctx, rng):
    """Scores in the hundreds, largest in a late chunk: the combine must rescale every chunk by
    exp(m_c - M) (a plain sum of partials overflows or weighs the chunks wrongly)."""
    position, head_dim = 600, 64
    q, k_cache, v_cache = random_case(rng, 1, position, 4, 2, head_dim, q_scale=30.0)
    k_cache[550] *= 3.0
    out = run_split_attention(ctx, q, k_cache, v_cache, position, 1.0, chunk=128)
    ref = attention_reference(q, k_cache, v_cache, position, 1.0)
    assert np.isfinite(out).all()
    # scores in the hundreds carry float32 rounding of ~3e-5 absolute into exp(), as in
    # test_attention_subtracts_the_max_for_scores_in_the_hundreds (measured up to 1.4e-5)
    assert relative_error(out, ref) < 1e-4


def test_split_attention_attends_to_the_steps_key_as_the_cache_holds_it(ctx, rng):
    """The step's own key and value come from the QKV projection in float32; the kernel rounds them
    to float16 before attending (so a token's output does not depend on whether its key came from
    the projection or from the cache, as in prefill) and writes that rounding into the cache."""
    position, n_head, n_kv_head, head_dim = 77, 9, 3, 64
    q, k_cache, v_cache = random_case(rng, 1, position, n_head, n_kv_head, head_dim, q_scale=2.0)
    new_k = rng.standard_normal((n_kv_head, head_dim)).astype(np.float32) * 3
    new_v = rng.standard_normal((n_kv_head, head_dim)).astype(np.float32)
    assert (new_k.astype(np.float16).astype(np.float32) != new_k).any()  # not float16 values already
    k_cache[position], v_cache[position] = new_k.astype(np.float16), new_v.astype(np.float16)
    out = run_split_attention(ctx, q, k_cache, v_cache, position, 0.125, new_kv=(new_k, new_v))
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, 0.125)) < 1e-5


def test_split_attention_with_a_float32_cache_keeps_the_steps_key_unrounded(ctx, rng):
    """KV_F32: the step's float32 key and value are attended to and cached as they are."""
    position, n_head, n_kv_head, head_dim = 77, 9, 3, 64
    q, k_cache, v_cache = random_case(rng, 1, position, n_head, n_kv_head, head_dim, q_scale=2.0, kv_dtype=np.float32)
    new_k = rng.standard_normal((n_kv_head, head_dim)).astype(np.float32) * 3
    new_v = rng.standard_normal((n_kv_head, head_dim)).astype(np.float32)
    k_cache[position], v_cache[position] = new_k, new_v
    out = run_split_attention(ctx, q, k_cache, v_cache, position, 0.125, new_kv=(new_k, new_v))
    assert relative_error(out, attention_reference(q, k_cache, v_cache, position, 0.125)) < 1e-5
