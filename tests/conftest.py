"""Shared fixtures: one GPU context per session, fresh random inputs per test (seed printed)."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

from gguf import GGMLQuantizationType as QT
from gguf import quants

from notebook_llm.gpu.compute import GpuContext
from notebook_llm.loader.repack import PackedWeight, repack


@pytest.fixture(scope="session")
def ctx() -> GpuContext:
    return GpuContext.create()


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A fresh generator per test; the seed is in the test's report so a failure can be replayed."""
    seed = int(os.environ.get("NOTEBOOK_LLM_TEST_SEED") or secrets.randbits(32))
    request.node.user_properties.append(("seed", seed))
    print(f"random seed {seed} (replay with NOTEBOOK_LLM_TEST_SEED={seed})")
    return np.random.default_rng(seed)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """‖out − ref‖ / ‖ref‖ in float64; NaN (a poisoned output left unwritten) gives inf."""
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    if not np.all(np.isfinite(out)):
        return float("inf")
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def assert_float16_rounding(got: np.ndarray, ref: np.ndarray, reference_error: float = 1e-6) -> None:
    """`got` (float16, as the KV cache stores values) is `ref` (float64) computed in float32 and rounded
    to nearest: within half an f16 ulp plus `reference_error` × max|ref| (the float32 arithmetic), so
    a value whose float32 result straddles a rounding boundary may land one ulp over (truncating
    instead of rounding leaves about half the values up to a whole ulp off)."""
    assert got.dtype == np.float16 and got.shape == ref.shape
    assert np.all(np.isfinite(got)), "unwritten (NaN) values"
    g, r = got.astype(np.float64), np.asarray(ref, np.float64)
    half_ulp = np.maximum(np.abs(r), 2.0**-14) * 2.0**-11  # f16: 10 fraction bits; subnormals below 2^-14
    assert np.all(np.abs(g - r) <= half_ulp * (1 + 1e-9) + np.max(np.abs(r)) * reference_error + 2.0**-25)


def random_weight(rng: np.random.Generator, qtype: QT, rows: int, cols: int) -> PackedWeight:
    """A random N(0, 1) matrix as the file would store it in `qtype`, repacked."""
    values = rng.standard_normal((rows, cols), dtype=np.float32)
    return repack(quants.quantize(values, qtype), qtype, rows, cols)


@pytest.fixture(params=["subgroup", "workgroup"])
def reduction(request, ctx):
    """Run the test with each row reduction (`//!include reduce`): subgroup shuffles where the
    adapter has them, and workgroup memory (what adapters without subgroups get)."""
    if request.param == "subgroup" and not ctx.gpu.has_subgroups:
        pytest.skip("the adapter has no subgroups")
    saved, ctx.pipelines.subgroups = ctx.pipelines.subgroups, request.param == "subgroup"
    yield request.param
    ctx.pipelines.subgroups = saved


@pytest.fixture(scope="session")
def engine(ctx):
    """The default model (SmolLM2-135M-Instruct Q4_1) loaded once for the whole session."""
    from notebook_llm.api.engine import Engine

    return Engine()


from .hub_server import hub_server  # noqa: E402,F401  (a fixture: a hub-shaped HTTP server on 127.0.0.1)
