"""The whole engine on a random tiny llama (GQA, every weight type) against a numpy forward pass.

tests/llama_numpy.py is written from the architecture in float64; the engine computes in
float32 from exactly dequantized weights, both caching keys and values in float16, so logits agree
to float32 rounding accumulated over two layers (~1e-6) plus the odd cached value that float32
rounds to the neighbouring float16: ‖Δ‖/‖ref‖ < 3e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

from notebook_llm.engine.generation import GenerationConfig, GenerationStats, TokenLoop
from notebook_llm.errors import InvalidRequestError
from notebook_llm.engine.sampler import SamplingParams
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.models.llama import LlamaModel

from .conftest import relative_error
from .engine_trace import LogitRecorder, greedy_trace
from .llama_numpy import numpy_llama_logits
from .tiny_llama import write_tiny_llama

# float32 arithmetic against float64, both caching keys and values in float16: a value whose float32
# result straddles an f16 rounding boundary lands one f16 ulp (2^-10 relative) from the reference's,
# which moves the logits by up to ~1.4e-4 relative (measured); the arithmetic alone stays ~1e-6.
LOGIT_BOUND = 3e-4


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"tiny llama seed {seed}")
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=seed)


@pytest.fixture(scope="module")
def tiny_model(ctx, tiny_path):
    # a chunk of 16 makes a 40-token prompt take three chunks, the last one ragged
    return LlamaModel(ctx, GGUFModelFile(tiny_path), context_window_size=128, prefill_chunk_size=16)


def test_prefill_logits_match_numpy_forward_at_every_position(tiny_model, tiny_path, rng):
    ids = rng.integers(0, tiny_model.config.vocab_size, size=40).tolist()
    logits = tiny_model.forward_logits(ids)
    reference = numpy_llama_logits(tiny_path, ids)
    assert logits.shape == reference.shape
    for t in range(len(ids)):
        assert relative_error(logits[t], reference[t]) < LOGIT_BOUND, f"position {t}"


def test_decode_steps_match_numpy_forward(tiny_model, tiny_path, rng):
    """The adapter's default decode graph; on CPU drivers with subgroups its QKV projections rotate q
    and k and write the KV cache themselves (matvec_broadcast_rope), no rope_kv_write left."""
    labels = [d.label for d in tiny_model.decode_graph]
    if tiny_model.broadcast_matvec:
        assert sum(label.startswith("matvec_broadcast_rope") for label in labels) == tiny_model.config.n_layer
        assert "rope_kv_write" not in labels
    prompt = rng.integers(0, tiny_model.config.vocab_size, size=19).tolist()
    ids, logits = greedy_trace(tiny_model, prompt, n_new=12)
    reference = numpy_llama_logits(tiny_path, prompt + ids[:-1])[len(prompt) - 1 :]
    for i in range(len(ids)):
        assert relative_error(logits[i], reference[i]) < LOGIT_BOUND, f"generated position {i}"
        assert ids[i] == int(np.argmax(logits[i]))


@pytest.mark.parametrize("fused_decode", [False, True], ids=["cpu-or-per-op-graph", "gpu-graph"])
def test_float32_kv_cache_matches_an_unrounded_reference_to_float32_rounding(ctx, tiny_path, rng, fused_decode):
    """kv_cache_dtype="float32": prefill and decode (both decode graphs) against the reference that
    does not round keys and values, at the float32 arithmetic's own bound."""
    model = LlamaModel(ctx, GGUFModelFile(tiny_path), context_window_size=96, prefill_chunk_size=16,
                       fused_decode=fused_decode, kv_cache_dtype="float32")
    assert model.kv_cache_bytes == 2 * model.config.n_layer * 96 * model.config.n_kv_head * model.config.head_dim * 4
    prompt = rng.integers(0, model.config.vocab_size, size=21).tolist()
    assert relative_error(model.forward_logits(prompt), numpy_llama_logits(tiny_path, prompt, kv_dtype=np.float64)) < 1e-4
    ids, logits = greedy_trace(model, prompt, n_new=8)
    reference = numpy_llama_logits(tiny_path, prompt + ids[:-1], kv_dtype=np.float64)[len(prompt) - 1 :]
    for i in range(len(ids)):
        assert relative_error(logits[i], reference[i]) < 1e-4, f"generated position {i}"


def test_kv_cache_dtype_is_checked(ctx, tiny_path):
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        LlamaModel(ctx, GGUFModelFile(tiny_path), context_window_size=32, kv_cache_dtype="bfloat16")


def test_tied_embeddings_use_the_embedding_as_output_head(ctx, tmp_path, rng):
    path = write_tiny_llama(tmp_path / "tied.gguf", seed=int(rng.integers(2**31)), tied=True)
    model = LlamaModel(ctx, GGUFModelFile(path), context_window_size=64, prefill_chunk_size=32)
    assert model.config.tied_embeddings
    ids = rng.integers(0, model.config.vocab_size, size=9).tolist()
    assert relative_error(model.forward_logits(ids), numpy_llama_logits(path, ids)) < LOGIT_BOUND


def test_one_token_prefill_runs_the_decode_graph_and_matches_numpy(tiny_model, tiny_path, rng):
    """A prompt whose chunking leaves one token alone (17 = 16 + 1) and a repeated prompt (only its
    last token re-run from the KV cache) both take the decode graph for that token."""
    prompt = rng.integers(0, tiny_model.config.vocab_size, size=17).tolist()
    loop_ids, logits = greedy_trace(tiny_model, prompt, n_new=3)
    reference = numpy_llama_logits(tiny_path, prompt + loop_ids[:-1])[len(prompt) - 1 :]
    for i in range(len(loop_ids)):
        assert relative_error(logits[i], reference[i]) < LOGIT_BOUND, f"generated position {i}"
    loop = TokenLoop(tiny_model)
    loop.logit_processor = recorder = LogitRecorder()
    config = GenerationConfig(max_new_tokens=1, sampling=SamplingParams(temperature=0.0))
    list(loop.generate(prompt, config, GenerationStats()))
    stats = GenerationStats()
    list(loop.generate(prompt, config, stats))  # the same prompt again: the KV cache holds all but its last token
    assert stats.prefilled_tokens == 1
    assert relative_error(recorder.rows[-1], reference[0]) < LOGIT_BOUND


def test_token_ids_outside_the_vocabulary_are_refused_before_the_gpu(tiny_model, rng):
    """The kernels read the embedding without bounds checks, so the loop checks the ids; the model
    stays usable."""
    loop = TokenLoop(tiny_model)
    config = GenerationConfig(max_new_tokens=3, sampling=SamplingParams(temperature=0.0), stop_token_ids=())
    for bad in (tiny_model.config.vocab_size, -1):
        with pytest.raises(InvalidRequestError, match="token id"):
            list(loop.generate([1, 2, bad], config, GenerationStats()))
    prompt = rng.integers(0, tiny_model.config.vocab_size, size=5).tolist()
    assert len(list(loop.generate(prompt, config, GenerationStats()))) == 3


def test_token_loop_reads_the_same_tokens_through_wgpu_pys_map(tiny_model, rng):
    """The loop's readback (gpu/readback.py) has a wgpu-native path and wgpu-py's map as fallback:
    both give the same tokens, with sampling and logprobs."""
    from notebook_llm.gpu.readback import QueueReader

    loop = TokenLoop(tiny_model)
    sampling = SamplingParams(temperature=0.8, seed=int(rng.integers(2**31)), logprobs=True, top_logprobs=2)
    config = GenerationConfig(max_new_tokens=6, sampling=sampling, stop_token_ids=frozenset())
    prompt = rng.integers(0, tiny_model.config.vocab_size, size=7).tolist()
    runs = []
    for native in (True, False):
        loop.reader = QueueReader(tiny_model.ctx.device, native=native)
        loop.reset()
        runs.append([(t.token, t.logprob) for t in loop.generate(prompt, config, GenerationStats())])
    assert len(runs[0]) == 6 and runs[0] == runs[1]
