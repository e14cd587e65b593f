"""Greedy and Gumbel-max sampling on the GPU: argmax against numpy, draws against softmax by chi-square."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from notebook_llm.engine.sampler import GpuSampler, SamplingParams

# Upper 1e-4 tail of the chi-square distribution with 7 degrees of freedom (8 categories),
# scipy.stats.chi2.isf(1e-4, 7). A correct sampler fails a chi-square test once in 10,000 runs.
CHI2_7DOF_P1E4 = 29.8775


def run_sample(ctx, logits_buffer, vocab: int, draws: list[tuple[int, int, float]]) -> np.ndarray:
    """One draw (sample_partials, sample) per (seed, position, temperature), no top-k/top-p/min-p
    (the logits are the kernels' `scores`); each token copied into its slot of `tokens`."""
    token_out = ctx.empty(4)
    sampler = GpuSampler(ctx, vocab, logits_buffer, token_out, ctx.uniform(struct.pack("<IIIf", 1, 0, 0, 0.0)))
    sampler.begin_request(SamplingParams(), [])
    tokens = ctx.empty(4 * len(draws))
    ctx.fill(tokens, 0.0)
    ctx.fill(sampler.partials)  # poisoned: a candidate the partials kernel did not write
    encoder = ctx.device.create_command_encoder()
    for slot, (seed, position, temperature) in enumerate(draws):
        step = ctx.uniform(struct.pack("<IIIf", 1, position, seed, temperature))
        ctx.encode(encoder, sampler.draw_dispatches(logits_buffer, step))
        encoder.copy_buffer_to_buffer(token_out, 0, tokens, 4 * slot, 4)
    ctx.queue.submit([encoder.finish()])
    return ctx.read(tokens, np.uint32, len(draws)).astype(np.int64)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - np.max(x))
    return e / e.sum()


def chi_square(tokens: np.ndarray, probabilities: np.ndarray) -> float:
    counts = np.bincount(tokens, minlength=len(probabilities))
    expected = len(tokens) * probabilities
    return float(np.sum((counts - expected) ** 2 / expected))


def spread_logits(rng) -> np.ndarray:
    """8 logits spanning 3 nats in random order: every probability ≥ 0.02, no two alike."""
    return (rng.permutation(np.linspace(-1.5, 1.5, 8)) + rng.uniform(-0.05, 0.05, 8)).astype(np.float32)


# -- greedy ----------------------------------------------------------------------------------


def test_greedy_matches_numpy_argmax_on_smollm2_vocab(ctx, rng):
    vocab = 49152
    logits = (rng.standard_normal(vocab) * 3).astype(np.float32)
    tokens = run_sample(ctx, ctx.buffer(logits), vocab, [(rng.integers(2**32), 5, 0.0) for _ in range(3)])
    assert np.all(tokens == np.argmax(logits))


@pytest.mark.parametrize("gap", [1, 256, 30000])
def test_greedy_tie_goes_to_the_lowest_index(ctx, rng, gap):
    # gap 1: the tied entries sit in neighbouring threads; 256: in the same thread's slice.
    vocab = 49152
    logits = rng.standard_normal(vocab).astype(np.float32)
    first = int(rng.integers(0, vocab - gap))
    logits[[first, first + gap]] = logits.max() + 1.0
    tokens = run_sample(ctx, ctx.buffer(logits), vocab, [(0, 0, 0.0)])
    assert tokens[0] == first


def test_greedy_handles_all_negative_and_all_equal_logits(ctx):
    vocab = 1000
    negative = np.full(vocab, -1e30, np.float32)
    negative[777] = -1e29
    assert run_sample(ctx, ctx.buffer(negative), vocab, [(0, 0, 0.0)])[0] == 777
    assert run_sample(ctx, ctx.buffer(np.full(vocab, -3.0, np.float32)), vocab, [(0, 0, 0.0)])[0] == 0


# -- sampling --------------------------------------------------------------------------------


def test_sampling_at_temperature_1_draws_from_softmax(ctx, rng):
    logits = spread_logits(rng)
    draws = 4000
    seeds = rng.integers(0, 2**32, draws)
    tokens = run_sample(ctx, ctx.buffer(logits), 8, [(int(s), 42, 1.0) for s in seeds])
    assert chi_square(tokens, softmax(logits)) < CHI2_7DOF_P1E4


def test_sampling_at_temperature_half_draws_from_softmax_of_twice_the_logits(ctx, rng):
    # 8 live tokens scattered over a 3000-entry vocabulary (the rest at -40: total mass < 1e-14),
    # so draws also cross the threads' strided slices and the reduction; positions vary, seed fixed.
    vocab, draws = 3000, 4000
    live = rng.choice(vocab, 8, replace=False)
    logits = np.full(vocab, -40.0, np.float32)
    logits[live] = spread_logits(rng)
    seed = int(rng.integers(2**32))
    tokens = run_sample(ctx, ctx.buffer(logits), vocab, [(seed, p, 0.5) for p in range(draws)])
    assert np.all(np.isin(tokens, live))
    category = np.searchsorted(np.sort(live), tokens)
    live_logits = logits[np.sort(live)]
    assert chi_square(category, softmax(2.0 * live_logits)) < CHI2_7DOF_P1E4
    # And the test can tell temperatures apart: the same draws are far from softmax(logits).
    assert chi_square(category, softmax(live_logits)) > 10 * CHI2_7DOF_P1E4


def test_same_seed_and_position_give_the_same_token(ctx, rng):
    vocab = 49152
    logits = rng.standard_normal(vocab).astype(np.float32)
    draws = [(int(rng.integers(2**32)), int(rng.integers(8192)), 1.0) for _ in range(16)]
    logits_buffer = ctx.buffer(logits)
    first = run_sample(ctx, logits_buffer, vocab, draws)
    second = run_sample(ctx, logits_buffer, vocab, draws)
    np.testing.assert_array_equal(first, second)
    # Near-flat logits over 49152 tokens: 16 independent draws repeating a token is very unlikely.
    assert len(set(first.tolist())) >= 14
