"""GPU sampling end to end (notebook_llm/engine/sampler.py and its three kernels).

Processed scores against a numpy float64 reference of the penalties, bias and mask; greedy against
numpy's argmax; top-k, top-p, min-p and temperature draws against numpy's renormalised softmax by
chi-square, with no draw outside the kept set; logprobs against float64 log_softmax of the raw logits.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from notebook_llm.engine.sampler import (
    RECORD_BYTES,
    GpuSampler,
    SampledToken,
    SamplingParams,
    parse_record,
)

SMOLLM2_VOCAB = 49152
MASKED = np.float32(-3.0e38)  # what kernels/logits_process.wgsl writes for a masked token

# Upper 1e-4 tail of the chi-square distribution by degrees of freedom, scipy.stats.chi2.isf(1e-4, dof):
# a correct sampler fails one of these tests once in 10,000 runs.
CHI2_P1E4 = {1: 15.1367, 2: 18.4207, 3: 21.1075, 4: 23.5127, 5: 25.7448, 6: 27.8563, 7: 29.8775,
             8: 31.8276, 9: 33.7199, 10: 35.564, 11: 37.367, 12: 39.1344}


# -- running the sampler ---------------------------------------------------------------------


def step_bytes(position: int, seed: int, temperature: float) -> bytes:
    return struct.pack("<IIIf", 1, position, seed, temperature)


def make_sampler(ctx, logits: np.ndarray, params: SamplingParams, prompt_ids=(), counts=None) -> GpuSampler:
    """A sampler over `logits` (a fresh buffer), begun with `params`; `counts` preset if given."""
    logits_buffer = ctx.buffer(np.asarray(logits, np.float32))
    tokens = ctx.empty(16)
    step = ctx.uniform(step_bytes(0, 0, 0.0))
    sampler = GpuSampler(ctx, len(logits), logits_buffer, tokens, step)
    sampler.begin_request(params, list(prompt_ids))
    if counts is not None:
        ctx.queue.write_buffer(sampler.counts, 0, np.asarray(counts, np.uint32).tobytes())
    return sampler


def sample_once(ctx, sampler: GpuSampler, seed: int, temperature: float, with_logprobs: bool, position: int = 7) -> SampledToken:
    """One step as the token loop runs it: the sampler's dispatches, then its record read back."""
    ctx.queue.write_buffer(sampler.step, 0, step_bytes(position, seed, temperature))
    ctx.fill(sampler.scores)  # poisoned: an unwritten score would be NaN
    ctx.fill(sampler.result)
    ctx.run(sampler.dispatches(with_logprobs))
    return parse_record(ctx.read(sampler.result, np.uint8, sampler.record_bytes(with_logprobs)).tobytes())


def processed_scores(ctx, sampler: GpuSampler) -> np.ndarray:
    ctx.fill(sampler.scores)
    ctx.run([sampler.process])
    return ctx.read(sampler.scores, np.float32, sampler.vocab_size)


def draw_many(ctx, sampler: GpuSampler, draws: list[tuple[int, int, float]]) -> np.ndarray:
    """Process once, then one draw (sample_partials, sample) per (seed, position, temperature), each with its own
    step uniform, all in one command encoder; each token copied into its slot of `out`."""
    ctx.run([sampler.process])
    out = ctx.empty(4 * len(draws))
    ctx.fill(out)
    encoder = ctx.device.create_command_encoder()
    for slot, (seed, position, temperature) in enumerate(draws):
        step = ctx.uniform(step_bytes(position, seed, temperature))
        ctx.encode(encoder, sampler.draw_dispatches(sampler.scores, step))
        encoder.copy_buffer_to_buffer(sampler.tokens, 0, out, 4 * slot, 4)
    ctx.queue.submit([encoder.finish()])
    return ctx.read(out, np.uint32, len(draws)).astype(np.int64)


def mask_words(allowed: np.ndarray) -> np.ndarray:
    """u32 words, bit i % 32 of word i // 32 set where token i is allowed (written out bit by bit)."""
    words = np.zeros(-(-len(allowed) // 32), np.uint32)
    for i in np.flatnonzero(allowed):
        words[i // 32] |= np.uint32(1 << (i % 32))
    return words


def random_draws(rng, n: int, temperature: float) -> list[tuple[int, int, float]]:
    return [(int(seed), int(position), temperature)
            for seed, position in zip(rng.integers(0, 2**32, n), rng.integers(0, 2**20, n))]


# -- references (numpy float64, from the definitions) ----------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = x - x.max()
    return shifted - np.log(np.exp(shifted).sum())


def reference_scores(logits, params: SamplingParams, prompt_ids, counts, allowed=None) -> np.ndarray:
    """logit bias, then the repetition penalty (CTRL: divide positive, multiply negative) on tokens of
    the prompt or generated, then OpenAI's frequency and presence penalties; masked tokens -inf."""
    vocab = len(logits)
    s = np.asarray(logits, np.float64).copy()
    for token, bias in params.logit_bias.items():
        s[token] += bias
    counts = np.asarray(counts, np.float64)
    seen = np.isin(np.arange(vocab), list(prompt_ids)) | (counts > 0)
    rp = params.repetition_penalty
    s[seen] = np.where(s[seen] > 0, s[seen] / rp, s[seen] * rp)
    s -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0)
    if allowed is not None:
        s[~allowed] = -np.inf
    return s


def reference_kept(scores, temperature: float, top_k=0, top_p=1.0, min_p=0.0) -> np.ndarray:
    """The kept set: the top_k best, the nucleus (smallest set of best tokens holding top_p of
    softmax(scores / T)), and p >= min_p * p_max, intersected."""
    scores = np.asarray(scores, np.float64)
    p = softmax(scores / temperature)
    keep = np.isfinite(scores)
    if top_k:
        keep &= scores >= np.sort(scores)[-top_k]
    if top_p < 1.0:
        order = np.argsort(-scores, kind="stable")
        size = int(np.argmax(np.cumsum(p[order]) >= top_p)) + 1
        keep &= scores >= scores[order[size - 1]]
    if min_p > 0.0:
        keep &= p >= min_p * p.max()
    return keep


def top_p_keeping(scores, temperature: float, size: int) -> float:
    """A top_p whose nucleus is exactly the `size` best tokens, halfway between two cumulative masses
    (so float32 sums on the GPU cannot move the boundary)."""
    cumulative = np.cumsum(np.sort(softmax(np.asarray(scores, np.float64) / temperature))[::-1])
    return float((cumulative[size - 2] + cumulative[size - 1]) / 2)


def min_p_keeping(scores, temperature: float, size: int) -> float:
    """A min_p keeping exactly the `size` best tokens, halfway between two probability ratios."""
    ratios = np.sort(softmax(np.asarray(scores, np.float64) / temperature))[::-1]
    ratios /= ratios[0]
    return float((ratios[size - 1] + ratios[size]) / 2)


def headed_logits(rng, vocab: int, head: int, span: float = 3.0, tail=(-6.0, -2.5)) -> np.ndarray:
    """`head` tokens evenly spread over `span` nats around 0 at random ids (every one likely enough
    for a chi-square test), the rest of the vocabulary uniform in `tail`, below them."""
    logits = rng.uniform(*tail, vocab)
    ids = rng.choice(vocab, head, replace=False)
    logits[ids] = rng.permutation(np.linspace(-span / 2, span / 2, head)) + rng.uniform(-0.05, 0.05, head)
    return logits.astype(np.float32)


def assert_draws_follow(tokens: np.ndarray, scores, temperature: float, keep: np.ndarray) -> None:
    """No draw outside the kept set, and the draws fit softmax(scores / T) renormalised over it."""
    kept_ids = np.flatnonzero(keep)
    outside = tokens[~np.isin(tokens, kept_ids)]
    assert outside.size == 0, f"{outside.size} draws outside the kept set, e.g. {outside[:5]}"
    probabilities = softmax(np.asarray(scores, np.float64)[kept_ids] / temperature)
    counts = np.bincount(np.searchsorted(kept_ids, tokens), minlength=len(kept_ids))
    expected = len(tokens) * probabilities
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    print(f"chi-square {chi2:.2f} over {len(kept_ids)} categories (bound {CHI2_P1E4[len(kept_ids) - 1]})")
    assert chi2 < CHI2_P1E4[len(kept_ids) - 1]


# -- logit processing ------------------------------------------------------------------------


def test_penalties_bias_and_mask_match_numpy_on_smollm2_vocab(ctx, rng):
    vocab = SMOLLM2_VOCAB
    logits = (rng.standard_normal(vocab) * 3).astype(np.float32)
    counts = np.where(rng.random(vocab) < 0.05, rng.integers(1, 7, vocab), 0)
    prompt_ids = rng.integers(0, vocab, 300).tolist()
    bias_ids = rng.choice(vocab, 40, replace=False)
    params = SamplingParams(
        frequency_penalty=0.6, presence_penalty=-0.35, repetition_penalty=1.3,
        logit_bias={int(i): float(b) for i, b in zip(bias_ids, rng.uniform(-5, 5, 40))},
    )
    allowed = rng.random(vocab) < 0.7
    sampler = make_sampler(ctx, logits, params, prompt_ids, counts)
    sampler.set_mask(allowed)
    out = processed_scores(ctx, sampler)
    ref = reference_scores(logits, params, prompt_ids, counts, allowed)
    assert np.all(out[~allowed] == MASKED)
    # Five float32 roundings of values up to ~20: a few ulps, so 1e-6 relative to max(|ref|, 1).
    error = np.max(np.abs(out[allowed] - ref[allowed]) / np.maximum(np.abs(ref[allowed]), 1.0))
    print(f"max relative error of the processed scores {error:.2e}")
    assert error < 1e-6


def test_greedy_is_the_argmax_of_the_processed_scores_on_smollm2_vocab(ctx, rng):
    vocab = SMOLLM2_VOCAB
    logits = (rng.standard_normal(vocab) * 3).astype(np.float32)
    counts = np.where(rng.random(vocab) < 0.01, rng.integers(1, 4, vocab), 0)
    # Penalties and a bias aimed at the raw top tokens, so the processed argmax differs from the raw one.
    top = np.argsort(-logits)[:5]
    params = SamplingParams(temperature=0.0, frequency_penalty=0.8, presence_penalty=0.5, repetition_penalty=1.5,
                            logit_bias={int(top[0]): -4.0, int(top[1]): -3.0})
    prompt_ids = top[2:4].tolist()
    sampler = make_sampler(ctx, logits, params, prompt_ids, counts)
    record = sample_once(ctx, sampler, seed=1, temperature=0.0, with_logprobs=False)
    expected = int(np.argmax(reference_scores(logits, params, prompt_ids, counts)))
    assert record.token == expected
    assert ctx.read(sampler.tokens, np.uint32, 1)[0] == expected
    assert ctx.read(sampler.counts, np.uint32, vocab)[expected] == counts[expected] + 1


def test_logit_bias_of_plus_100_forces_a_token_and_minus_100_forbids_one(ctx, rng):
    vocab = 1000
    logits = rng.standard_normal(vocab).astype(np.float32)
    forced = int(rng.integers(vocab))
    sampler = make_sampler(ctx, logits, SamplingParams(logit_bias={forced: 100.0}))
    assert np.all(draw_many(ctx, sampler, random_draws(rng, 100, 1.5)) == forced)

    favourite = int(rng.integers(vocab))
    logits[favourite] = 8.0  # without the bias it would be drawn ~3/4 of the time at T = 1.5
    sampler = make_sampler(ctx, logits, SamplingParams(logit_bias={favourite: -100.0}))
    tokens = draw_many(ctx, sampler, random_draws(rng, 200, 1.5))
    assert not np.any(tokens == favourite)
    assert sample_once(ctx, sampler, 0, 0.0, False).token == int(np.argsort(-logits)[1])


def test_masked_tokens_are_never_drawn_even_when_they_are_the_likeliest(ctx, rng):
    vocab = 1000
    allowed = rng.random(vocab) < 0.3
    logits = rng.standard_normal(vocab).astype(np.float32)
    logits[~allowed] += 6.0  # the forbidden tokens would hold almost all the mass
    sampler = make_sampler(ctx, logits, SamplingParams(top_p=0.9))
    sampler.set_mask(mask_words(allowed))
    tokens = draw_many(ctx, sampler, random_draws(rng, 300, 2.0))
    assert np.all(allowed[tokens])
    best_allowed = int(np.flatnonzero(allowed)[np.argmax(logits[allowed])])
    assert sample_once(ctx, sampler, 0, 0.0, False).token == best_allowed
    sampler.set_mask(None)  # every token allowed again: the draw goes back to the forbidden ones
    assert not np.all(allowed[draw_many(ctx, sampler, random_draws(rng, 50, 1.0))])


def test_a_single_allowed_token_is_always_drawn_whatever_the_filters(ctx, rng):
    vocab = 3000
    logits = rng.standard_normal(vocab).astype(np.float32)
    only = int(np.argmin(logits))  # the least likely token of all
    allowed = np.zeros(vocab, bool)
    allowed[only] = True
    sampler = make_sampler(ctx, logits, SamplingParams(top_k=3, top_p=0.5, min_p=0.3, logprobs=True, top_logprobs=2))
    sampler.set_mask(allowed)
    assert np.all(draw_many(ctx, sampler, random_draws(rng, 60, 1.2)) == only)
    record = sample_once(ctx, sampler, 5, 0.7, True)
    assert record.token == only
    # Its logprob is the model's (raw logits), not 0 as under the mask.
    assert abs(record.logprob - log_softmax(logits)[only]) < 1e-5


def test_every_token_masked_gives_token_0(ctx, rng):
    vocab = 700
    sampler = make_sampler(ctx, rng.standard_normal(vocab).astype(np.float32), SamplingParams(top_k=4))
    sampler.set_mask(np.zeros(vocab, bool))
    assert sample_once(ctx, sampler, 3, 1.0, False).token == 0
    assert sample_once(ctx, sampler, 3, 0.0, False).token == 0


# -- draws -------------------------------------------------------------------------------------


def test_top_k_draws_the_k_best_in_softmax_proportion(ctx, rng):
    vocab, k, temperature = 256, 6, 0.8
    logits = headed_logits(rng, vocab, 10)
    sampler = make_sampler(ctx, logits, SamplingParams(top_k=k))
    tokens = draw_many(ctx, sampler, random_draws(rng, 2000, temperature))
    keep = reference_kept(logits, temperature, top_k=k)
    assert keep.sum() == k
    assert_draws_follow(tokens, logits, temperature, keep)


def test_top_p_draws_only_the_nucleus_in_softmax_proportion(ctx, rng):
    vocab, temperature = 256, 1.0
    logits = headed_logits(rng, vocab, 10)
    top_p = top_p_keeping(logits, temperature, 5)
    sampler = make_sampler(ctx, logits, SamplingParams(top_p=top_p))
    tokens = draw_many(ctx, sampler, random_draws(rng, 2000, temperature))
    keep = reference_kept(logits, temperature, top_p=top_p)
    assert keep.sum() == 5
    assert_draws_follow(tokens, logits, temperature, keep)


def test_min_p_keeps_tokens_above_a_fraction_of_the_tempered_maximum(ctx, rng):
    vocab, temperature = 256, 0.7
    logits = headed_logits(rng, vocab, 10)
    min_p = min_p_keeping(logits, temperature, 4)
    sampler = make_sampler(ctx, logits, SamplingParams(min_p=min_p))
    tokens = draw_many(ctx, sampler, random_draws(rng, 2000, temperature))
    keep = reference_kept(logits, temperature, min_p=min_p)
    assert keep.sum() == 4
    assert_draws_follow(tokens, logits, temperature, keep)


def test_filters_intersect_at_temperature_1_6(ctx, rng):
    # top-k keeps 8, the nucleus 7, min-p 6: the kept set is min-p's; draws from softmax(logits / 1.6).
    vocab, temperature = 256, 1.6
    logits = headed_logits(rng, vocab, 12, span=6.0)
    params = SamplingParams(top_k=8, top_p=top_p_keeping(logits, temperature, 7),
                            min_p=min_p_keeping(logits, temperature, 6))
    sampler = make_sampler(ctx, logits, params)
    tokens = draw_many(ctx, sampler, random_draws(rng, 2000, temperature))
    keep = reference_kept(logits, temperature, params.top_k, params.top_p, params.min_p)
    assert keep.sum() == 6
    assert_draws_follow(tokens, logits, temperature, keep)
    # And the test tells temperatures apart: the same draws reject softmax(logits) on that set (the
    # 6 kept span ~2.7 nats: non-centrality ~146 over 2000 draws, a miss 5 standard deviations away).
    kept_ids = np.flatnonzero(keep)
    expected = len(tokens) * softmax(logits[kept_ids].astype(np.float64))
    counts = np.bincount(np.searchsorted(kept_ids, tokens), minlength=len(kept_ids))
    assert np.sum((counts - expected) ** 2 / expected) > CHI2_P1E4[5]


def test_nucleus_and_top_1_are_exact_on_smollm2_vocab(ctx, rng):
    # 12 head tokens, 200 more 3-7 nats below, the rest 8-12 nats below; the nucleus is the 9 best.
    vocab, temperature = SMOLLM2_VOCAB, 1.0
    logits = headed_logits(rng, vocab, 12, tail=(-12.0, -8.0))
    logits[rng.choice(np.flatnonzero(logits < -7.0), 200, replace=False)] += 5.0
    top_p = top_p_keeping(logits, temperature, 9)
    keep = reference_kept(logits, temperature, top_p=top_p)
    assert keep.sum() == 9
    sampler = make_sampler(ctx, logits, SamplingParams(top_p=top_p))
    tokens = draw_many(ctx, sampler, random_draws(rng, 40, temperature))
    assert np.all(keep[tokens])
    sampler = make_sampler(ctx, logits, SamplingParams(top_k=1))
    assert np.all(draw_many(ctx, sampler, random_draws(rng, 4, 1.3)) == np.argmax(logits))


def test_counts_follow_the_draws_feed_the_penalties_and_reset_per_request(ctx, rng):
    vocab = 512
    logits = headed_logits(rng, vocab, 8)
    params = SamplingParams(frequency_penalty=0.25, presence_penalty=0.5)
    sampler = make_sampler(ctx, logits, params, counts=np.zeros(vocab))
    tokens = draw_many(ctx, sampler, random_draws(rng, 300, 1.0))
    counts = ctx.read(sampler.counts, np.uint32, vocab)
    np.testing.assert_array_equal(counts, np.bincount(tokens, minlength=vocab))
    ref = reference_scores(logits, params, [], counts)
    assert np.max(np.abs(processed_scores(ctx, sampler) - ref)) < 1e-5  # |scores| < 80: float32 rounding
    sampler.begin_request(params, [])
    assert not np.any(ctx.read(sampler.counts, np.uint32, vocab))


# -- logprobs ------------------------------------------------------------------------------------


def test_logprobs_are_log_softmax_of_the_raw_logits_on_smollm2_vocab(ctx, rng):
    vocab = SMOLLM2_VOCAB
    logits = (rng.standard_normal(vocab) * 3).astype(np.float32)
    # Ties among the top 20, in neighbouring threads (gap 1) and in one thread's slice (gap 256).
    order = np.argsort(-logits)
    a, b = int(order[2]), int(order[9])
    logits[[a, min(a + 1, vocab - 1)]] = logits[a]
    logits[[b, (b + 256) % vocab]] = logits[b]
    # Penalties, bias, mask and temperature change the draw but not the reported logprobs.
    params = SamplingParams(temperature=0.8, top_p=0.95, frequency_penalty=1.0, repetition_penalty=1.2,
                            logit_bias={int(order[0]): -50.0}, logprobs=True, top_logprobs=20)
    sampler = make_sampler(ctx, logits, params, prompt_ids=order[:30].tolist(), counts=np.zeros(vocab))
    sampler.set_mask(rng.random(vocab) < 0.8)
    record = sample_once(ctx, sampler, int(rng.integers(2**32)), 0.8, True)
    ref = log_softmax(logits)
    expected_ids = np.lexsort((np.arange(vocab), -logits.astype(np.float64)))[:20]  # ties: lower id first
    ids = [i for i, _ in record.top]
    assert ids == expected_ids.tolist()
    top_error = max(abs(lp - ref[i]) for i, lp in record.top)
    token_error = abs(record.logprob - ref[record.token])
    print(f"logprob errors: top-20 {top_error:.1e}, sampled token {token_error:.1e}")
    # float32 log-sum-exp over 49152 terms with logits up to ~13: ~1e-6; 1e-5 leaves room.
    assert top_error < 1e-5 and token_error < 1e-5
    assert record.token != int(order[0])  # the -50 bias held


@pytest.mark.parametrize("top_logprobs", [0, 1, 5])
def test_top_logprobs_count_and_record_layout(ctx, rng, top_logprobs):
    vocab = 3000
    logits = (rng.standard_normal(vocab) * 2).astype(np.float32)
    sampler = make_sampler(ctx, logits, SamplingParams(logprobs=True, top_logprobs=top_logprobs))
    record = sample_once(ctx, sampler, 11, 0.0, True)
    ref = log_softmax(logits)
    assert record.token == int(np.argmax(logits))
    assert abs(record.logprob - ref[record.token]) < 1e-5
    assert [i for i, _ in record.top] == np.argsort(-logits)[:top_logprobs].tolist()
    assert all(abs(lp - ref[i]) < 1e-5 for i, lp in record.top)


def test_without_logprobs_the_record_is_the_token_alone(ctx, rng):
    vocab = 300
    logits = rng.standard_normal(vocab).astype(np.float32)
    sampler = make_sampler(ctx, logits, SamplingParams())
    assert sampler.record_bytes(False) == 4 and sampler.record_bytes(True) == RECORD_BYTES == 176
    assert len(sampler.dispatches(False)) == 2 and len(sampler.dispatches(True)) == 3
    assert sampler.dispatches(True) is sampler.dispatches(True)  # built once, not per step
    record = sample_once(ctx, sampler, 0, 0.0, False)
    assert record == SampledToken(int(np.argmax(logits)))


def test_logits_process_runs_only_while_a_request_needs_it(ctx, rng):
    """No bias, penalty or mask: the draw reads the logits directly (one dispatch fewer a token)."""
    logits = rng.standard_normal(1000).astype(np.float32)
    sampler = make_sampler(ctx, logits, SamplingParams(temperature=0.0))
    labels = lambda: [d.label for d in sampler.dispatches(False)]  # noqa: E731
    assert labels() == ["sample_partials", "sample"]
    assert sample_once(ctx, sampler, 0, 0.0, False).token == int(np.argmax(logits))
    allowed = np.zeros(1000, np.bool_)
    allowed[[3, 500]] = True
    sampler.set_mask(allowed)
    assert labels() == ["logits_process", "sample_partials", "sample"]
    assert sample_once(ctx, sampler, 0, 0.0, False).token == max((3, 500), key=lambda i: logits[i])
    sampler.set_mask(None)
    assert labels() == ["sample_partials", "sample"]
    sampler.begin_request(SamplingParams(temperature=0.0, logit_bias={7: 100.0}), [])
    assert labels()[0] == "logits_process" and sample_once(ctx, sampler, 0, 0.0, False).token == 7
    sampler.begin_request(SamplingParams(temperature=0.0), [])
    assert labels() == ["sample_partials", "sample"]
    assert sample_once(ctx, sampler, 0, 0.0, True).token == int(np.argmax(logits))
