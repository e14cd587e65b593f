"""Every architecture variant the graph runs, as a tiny random GGUF, against the numpy forward pass.

Variants: Llama 3.x frequency scaling (rope_freqs), linear RoPE scaling (llama: every layer;
Gemma 3 4B-27B: the global layers only), Qwen 2 (q/k/v biases, tied embeddings, halves
RoPE), Qwen 3 (per-head q/k RMSNorm, head_dim != dim / n_head), Mistral (sliding window smaller
than the prompt), Phi-3 (fused attn_qkv and gate·up, LongRoPE long and short factors, partial
rotary), Gemma 3 (embedding scale, GeGLU, q/k norms, post-attention and post-FFN norms, five local
sliding-window layers with their own RoPE base and a global sixth, tied embeddings). The llama-family
files store their matrices in the five types Q4_0, Q4_1, Q8_0, F16, F32 (tiny_llama.DEFAULT_TYPES);
the Gemma 3 file as the real Q4_K_M file does, in Q4_K, Q6_K, Q5_0 and Q8_0 (tiny_llama.GEMMA3_TYPES).

tests/llama_numpy.py is written from each architecture's reference code in float64; the engine
computes in float32 from exactly dequantized weights, so logits agree to float32 rounding
accumulated over two layers: ‖Δ‖/‖ref‖ < 1e-4 at every position (observed 2e-7 to 4e-7). Each variant
also shows that its feature moves the reference logits by far more than that bound, so an engine
that ignored the feature could not pass.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from notebook_llm.engine.core import ChatOptions, EngineCore
from notebook_llm.errors import ModelFormatError
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.models import llama
from notebook_llm.models.llama import LlamaModel

from .conftest import relative_error
from .engine_trace import greedy_trace
from .llama_numpy import LlamaWeights, forward, load_weights, numpy_llama_logits
from .test_loader_gguf import write_gguf
from .tiny_llama import Llama3Rope, write_tiny_model

# A tiny Gemma 3: six layers so that the sixth is global; head_dim 64 (q_dim 256 != dim) and ffn 256
# so attn_output (Q4_K) and ffn_down (Q6_K) have whole 256-wide super-blocks; one kv head as the
# 270M model; a window of 8 shorter than the prompts; global RoPE base 1e6 as the real file.
GEMMA3_OPTIONS = dict(arch="gemma3", n_layer=6, dim=128, n_head=4, n_kv_head=1, head_dim=64, ffn=256,
                      tied=True, sliding_window=8, rope_base=1e6, rms_eps=1e-6)

# float32 arithmetic against float64, both caching keys and values in float16: a value whose float32
# result straddles an f16 rounding boundary lands one f16 ulp (2^-10 relative) from the reference's,
# which moves the logits by up to ~1.4e-4 relative (measured); the arithmetic alone stays ~1e-6.
LOGIT_BOUND = 3e-4
# A feature left out must move the reference logits by at least this much (relative), 100x the bound.
FEATURE_EFFECT = 1e-2
CHUNK = 16  # a 40-token prompt takes three chunks, the last one ragged
CONTEXT_WINDOW = 128


def _without(w: LlamaWeights, *fragments: str) -> LlamaWeights:
    """The weights minus every tensor whose name contains one of `fragments`."""
    return LlamaWeights(w.hparams, {n: t for n, t in w.tensors.items() if not any(f in n for f in fragments)})


@dataclasses.dataclass(frozen=True)
class Variant:
    options: dict  # write_tiny_model keyword arguments
    expected_config: dict  # ArchitectureConfig fields the loader must read from the file
    # The reference's logits with the variant's feature left out: (weights, ids) -> logits.
    without_feature: object


VARIANTS = {
    "llama3_rope_freqs": Variant(
        dict(arch="llama", llama3_rope=Llama3Rope()),
        dict(architecture="llama", rope_neox=False),
        lambda w, ids: forward(_without(w, "rope_freqs"), ids, CONTEXT_WINDOW),
    ),
    "qwen2_bias_tied": Variant(
        dict(arch="qwen2", tied=True, types={"token_embd": Q.F32}),
        dict(architecture="qwen2", rope_neox=True, qkv_bias=True, tied_embeddings=True),
        lambda w, ids: forward(_without(w, ".bias"), ids, CONTEXT_WINDOW),
    ),
    "qwen3_qk_norm": Variant(
        dict(arch="qwen3", head_dim=32),  # q_dim 128 while dim is 64
        dict(architecture="qwen3", rope_neox=True, qk_norm=True, head_dim=32),
        lambda w, ids: forward(_without(w, "attn_q_norm", "attn_k_norm"), ids, CONTEXT_WINDOW),
    ),
    "mistral_sliding_window": Variant(
        dict(arch="llama", sliding_window=12),
        dict(architecture="llama", sliding_window=12),
        lambda w, ids: forward(w, ids, CONTEXT_WINDOW, sliding_window=-1),
    ),
    "gemma3_local_global_sandwich": Variant(
        GEMMA3_OPTIONS,
        dict(architecture="gemma3", rope_neox=True, qk_norm=True, post_norms=True, ffn_activation="gelu_tanh",
             tied_embeddings=True, sliding_window=8, sliding_window_layers=(True,) * 5 + (False,),
             rope_freq_base=1e6, rope_freq_base_local=10000.0, attention_scale=1 / 8, head_dim=64),
        lambda w, ids: forward(w, ids, CONTEXT_WINDOW, sliding_window=-1),
    ),
    "gemma3_linear_rope_in_global_layers": Variant(
        GEMMA3_OPTIONS | dict(rope_linear_factor=8.0),  # Gemma 3 4B-27B
        dict(architecture="gemma3", rope_linear_factor=8.0),
        lambda w, ids: forward(LlamaWeights(dataclasses.replace(w.hparams, rope_linear_factor=1.0), w.tensors),
                               ids, CONTEXT_WINDOW),
    ),
    "llama_linear_rope": Variant(
        dict(arch="llama", rope_linear_factor=4.0),
        dict(architecture="llama", rope_linear_factor=4.0),
        lambda w, ids: forward(LlamaWeights(dataclasses.replace(w.hparams, rope_linear_factor=1.0), w.tensors),
                               ids, CONTEXT_WINDOW),
    ),
    "phi3_fused_longrope": Variant(
        dict(arch="phi3", context=256, long_rope_original_context=64),  # 128 > 64: the long factors
        dict(architecture="phi3", rope_neox=True, rope_original_context_length=64),
        lambda w, ids: forward(w, ids, context_window=64),  # the short factors instead
    ),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request, tmp_path_factory, ctx):
    """(name, path, model) of one variant, written with a fresh seed."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"{request.param} seed {seed}")
    path = write_tiny_model(tmp_path_factory.mktemp(request.param) / "tiny.gguf", seed=seed,
                            **VARIANTS[request.param].options)
    # the GPU graph (fused prologues, split attention, attention_tiled in prefill) even on lavapipe: CI has no GPU, and
    # tests/test_engine_tiny_llama.py runs the CPU adapters' default, one kernel per op. Matrices
    # this small take the float matvec; test_int8_* below covers the int8 kernels (and prefill's).
    model = LlamaModel(ctx, GGUFModelFile(path), context_window_size=CONTEXT_WINDOW, prefill_chunk_size=CHUNK,
                       fused_decode=True, int8_matmul=False)
    labels = [d.label for d in model.decode_graph]
    assert "attention_split" in labels and "attention_combine" not in labels  # merged in the output projection
    assert sum(label.endswith("_attention_combine") for label in labels) == model.config.n_layer
    prefill_labels = [d.label for d in model.prefill_graph(CHUNK)]  # GPU prefill attention: 16 rows a workgroup
    assert prefill_labels.count("attention_tiled") == (model.config.n_layer if model.config.head_dim <= 128 else 0)
    return request.param, path, model


def test_loader_reads_the_variant_from_the_file(variant):
    name, _, model = variant
    for field, value in VARIANTS[name].expected_config.items():
        assert getattr(model.config, field) == value, field


def test_prefill_logits_match_numpy_at_every_position(variant, rng):
    name, path, model = variant
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    logits = model.forward_logits(ids)
    reference = numpy_llama_logits(path, ids, context_window=CONTEXT_WINDOW)
    assert logits.shape == reference.shape
    for t in range(len(ids)):
        assert relative_error(logits[t], reference[t]) < LOGIT_BOUND, f"{name}: position {t}"
    ignored = VARIANTS[name].without_feature(load_weights(path), ids)
    assert relative_error(ignored, reference) > FEATURE_EFFECT, f"{name}: the feature barely matters"


def test_decode_steps_match_numpy(variant, rng):
    name, path, model = variant
    prompt = rng.integers(0, model.config.vocab_size, size=19).tolist()
    ids, logits = greedy_trace(model, prompt, n_new=12)
    reference = numpy_llama_logits(path, prompt + ids[:-1], context_window=CONTEXT_WINDOW)[len(prompt) - 1 :]
    for i in range(len(ids)):
        assert relative_error(logits[i], reference[i]) < LOGIT_BOUND, f"{name}: generated position {i}"
        assert ids[i] == int(np.argmax(logits[i]))


# Decode through kernels/matvec_q4_int8.wgsl (prefill: matmul_q4_int8) rounds every 4-bit input to int8 (~0.5%
# relative a matvec, see tests/test_kernels_matmul.py). On these two-layer models the logits moved
# 1.6e-2 to 3.1e-2 from the float reference over 12 seeds; a wrong row, group, scale or nibble
# order moves them by 3e-1 and more.
INT8_LOGIT_BOUND = 8e-2


@pytest.mark.parametrize("options", [dict(arch="llama", types={
    "ffn_gate": Q.Q4_0, "ffn_up": Q.Q4_1, "ffn_down": Q.Q4_0}), GEMMA3_OPTIONS | dict(types={
    "attn_q": Q.Q4_0, "attn_k": Q.Q4_0, "attn_v": Q.Q4_0, "attn_output": Q.Q4_K, "ffn_gate": Q.Q4_1,
    "ffn_up": Q.Q4_1, "ffn_down": Q.Q4_K})], ids=["llama_q4", "gemma3_q4_k"])
@pytest.mark.parametrize("fused_quantize", [True, False], ids=["int8-writing-norms", "quantize-kernel"])
def test_int8_decode_and_prefill_stay_near_numpy(ctx, tmp_path, rng, monkeypatch, options, fused_quantize):
    """Every 4-bit matrix of the decode graph through the int8 kernel (a real model's take it from
    8M weights) and of the prefill graph through matmul_q4_int8: the greedy trace's logits and
    prefill's logits at every position against the float64 reference. Prefill's int8 inputs come
    from the norms and the SwiGLU middle themselves (rmsnorm_int8, quantize_int8 of gate and up) or from
    quantize_int8 after float ones (INT8_PREFILL_FUSED_QUANTIZE)."""
    path = write_tiny_model(tmp_path / "tiny.gguf", seed=int(rng.integers(2**31)), **options)
    monkeypatch.setattr(llama, "INT8_MATVEC_MIN_WEIGHTS", 0)
    monkeypatch.setattr(llama, "FUSED_FFN_MAX_WEIGHTS", 0)  # as a big model: fused only into the int8 kernel
    monkeypatch.setattr(llama, "INT8_PREFILL_FUSED_QUANTIZE", fused_quantize)  # read as prefill graphs are built
    model = LlamaModel(ctx, GGUFModelFile(path), CONTEXT_WINDOW, CHUNK, fused_decode=True)
    int8_labels = [d.label for d in model.decode_graph if d.label.startswith("matvec_q4_int8")]
    assert len(int8_labels) >= 4 * model.config.n_layer  # QKV, output, FFN up and down
    assert sum(label.endswith("_mul") for label in int8_labels) == model.config.n_layer  # the FFN middle inside
    prompt = rng.integers(0, model.config.vocab_size, size=19).tolist()
    ids, logits = greedy_trace(model, prompt, n_new=12)
    reference = numpy_llama_logits(path, prompt + ids[:-1], context_window=CONTEXT_WINDOW)[len(prompt) - 1 :]
    errors = [relative_error(logits[i], reference[i]) for i in range(len(ids))]
    print("int8 decode relative errors", np.round(errors, 5))
    assert max(errors) < INT8_LOGIT_BOUND
    prefill_labels = [d.label for d in model.prefill_graph(len(prompt))]
    assert sum(label.startswith("matmul_q4_int8") for label in prefill_labels) >= 4 * model.config.n_layer
    n_layer, middle = model.config.n_layer, llama.FFN_KERNELS[model.config.ffn_activation]
    expected = {"rmsnorm_int8": 2 * n_layer if fused_quantize else 0,
                "quantize_int8": (2 if fused_quantize else 4) * n_layer,  # SwiGLU's middle quantized inside
                middle: 0 if fused_quantize and middle == "silu_mul" else n_layer}
    assert {name: prefill_labels.count(name) for name in expected} == expected
    assert not any(label.startswith("matmul_q4") for label in prefill_labels if "int8" not in label)
    prefill = model.forward_logits(prompt)
    reference = numpy_llama_logits(path, prompt, context_window=CONTEXT_WINDOW)
    errors = [relative_error(prefill[t], reference[t]) for t in range(len(prompt))]
    print("int8 prefill relative errors", np.round(errors, 5))
    assert max(errors) < INT8_LOGIT_BOUND


def test_each_gemma3_feature_moves_the_reference(tmp_path, rng):
    """The Gemma 3 variant above matches the reference to 1e-4; each feature the reference has must
    move its logits by more than 1e-2, so an engine without it could not have matched."""
    path = write_tiny_model(tmp_path / "gemma3.gguf", seed=int(rng.integers(2**31)), **GEMMA3_OPTIONS)
    w = load_weights(path)
    ids = rng.integers(0, w.hparams.vocab, size=40).tolist()
    reference = forward(w, ids, CONTEXT_WINDOW)
    hp = w.hparams
    without = {
        "local RoPE base": LlamaWeights(dataclasses.replace(hp, rope_local_base=None), w.tensors),
        "global sixth layer": LlamaWeights(dataclasses.replace(hp, sliding_window_pattern=0), w.tensors),
        "embedding scale": LlamaWeights(dataclasses.replace(hp, embedding_multiplier=1.0), w.tensors),
        "GELU gate": LlamaWeights(dataclasses.replace(hp, activation="silu"), w.tensors),
        "post norms": _without(w, "post_attention_norm", "post_ffw_norm"),
        "q/k norms": _without(w, "attn_q_norm", "attn_k_norm"),
    }
    for feature, weights in without.items():
        assert relative_error(forward(weights, ids, CONTEXT_WINDOW), reference) > FEATURE_EFFECT, feature


def test_matrices_bound_as_row_blocks_match_numpy(ctx, tmp_path, rng):
    """With a 8 KiB binding limit every matrix is uploaded as row blocks (the embedding and tied LM
    head in 5, gate·up in 8): prefill (matmul per block), decode (matvec per block) and the
    embedding lookup (embed per block) still give the reference logits."""
    path = write_tiny_model(tmp_path / "gemma3.gguf", seed=int(rng.integers(2**31)), **GEMMA3_OPTIONS)
    model = LlamaModel(ctx, GGUFModelFile(path), CONTEXT_WINDOW, CHUNK, max_binding_bytes=8192)
    assert len(model.embedding.blocks) == 5 and len(model.layers[0]["gate_up"].blocks) == 8
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    assert relative_error(model.forward_logits(ids), numpy_llama_logits(path, ids, CONTEXT_WINDOW)) < LOGIT_BOUND
    prompt = ids[:19]
    generated, logits = greedy_trace(model, prompt, n_new=6)
    reference = numpy_llama_logits(path, prompt + generated[:-1], CONTEXT_WINDOW)[len(prompt) - 1 :]
    assert relative_error(logits, reference) < LOGIT_BOUND


def test_q4_k_m_files_with_mixed_layouts_in_fused_matrices_match_numpy(ctx, tmp_path, rng):
    """A llama.cpp Q4_K_M file stores attn_q and attn_k as Q4_K but attn_v as Q6_K: the fused QKV is
    bound as two row blocks of different layouts (q4g32f, q8g16f), each its own dispatch; likewise a
    Q4_K gate with a Q5_K up (as in Q5_K_M files). The output and the embedding are Q6_K and Q4_K."""
    types = {"attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q4_K, "ffn_gate": Q.Q4_K,
             "ffn_up": Q.Q5_K, "ffn_down": Q.Q6_K, "token_embd": Q.Q4_K, "output": Q.Q6_K}
    path = write_tiny_model(tmp_path / "q4_k_m.gguf", seed=int(rng.integers(2**31)), dim=256, n_head=4,
                            n_kv_head=2, ffn=256, types=types)
    model = LlamaModel(ctx, GGUFModelFile(path), CONTEXT_WINDOW, CHUNK)
    assert [b.layout for b in model.layers[0]["qkv"].blocks] == ["q4g32f", "q8g16f"]
    assert [b.row_offset for b in model.layers[0]["qkv"].blocks] == [0, 256 + 128]
    assert [b.layout for b in model.layers[0]["gate_up"].blocks] == ["q4g32f", "q8g32f"]
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    assert relative_error(model.forward_logits(ids), numpy_llama_logits(path, ids, CONTEXT_WINDOW)) < LOGIT_BOUND
    prompt = ids[:19]
    generated, logits = greedy_trace(model, prompt, n_new=6)
    reference = numpy_llama_logits(path, prompt + generated[:-1], CONTEXT_WINDOW)[len(prompt) - 1 :]
    assert relative_error(logits, reference) < LOGIT_BOUND


def test_gemma3_27b_scales_queries_by_dim_over_heads(tmp_path):
    """llama.cpp's rule (Gemma 3 27B's query_pre_attn_scalar is 5376 / 32 = 168, not its head_dim
    128): a 62-layer gemma3 file gets 1/sqrt(dim / n_head); others 1/sqrt(key_length)."""
    for layers, expected in ((62, 1 / np.sqrt(168)), (26, 1 / np.sqrt(128))):
        path = tmp_path / f"gemma3_{layers}.gguf"
        kv = {"block_count": layers, "context_length": 64, "embedding_length": 5376, "feed_forward_length": 96,
              "attention.head_count": 32, "attention.head_count_kv": 16, "attention.key_length": 128,
              "attention.value_length": 128, "attention.layer_norm_rms_epsilon": 1e-6, "attention.sliding_window": 1024}
        norm = (np.ones(64, np.float32), Q.F32)
        write_gguf(path, arch="gemma3", kv={f"gemma3.{k}": v for k, v in kv.items()} | {"tokenizer.ggml.tokens": ["a", "b"]},
                   tensors={"blk.0.post_attention_norm.weight": norm, "blk.0.post_ffw_norm.weight": norm})
        config = GGUFModelFile(path).config
        assert config.attention_scale == pytest.approx(expected, rel=1e-12)
        assert config.sliding_window_layers[:6] == (True,) * 5 + (False,)


# -- choices made at load -------------------------------------------------------------------------


def test_phi3_short_factors_and_partial_rotary_at_a_context_within_the_original(ctx, tmp_path, rng):
    """Phi-4-mini rotates 3/4 of each head; a context window of at most the original context
    (64 here) gets rope_factors_short, as llama.cpp chooses."""
    path = write_tiny_model(tmp_path / "phi3.gguf", seed=int(rng.integers(2**31)), arch="phi3", context=256,
                            long_rope_original_context=64, rope_dim=12)
    model = LlamaModel(ctx, GGUFModelFile(path), context_window_size=64, prefill_chunk_size=CHUNK)
    assert model.config.rope_dim == 12
    np.testing.assert_array_equal(model.rope_freq_factors, GGUFModelFile(path).vector("rope_factors_short.weight"))
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    reference = numpy_llama_logits(path, ids, context_window=64)
    assert relative_error(model.forward_logits(ids), reference) < LOGIT_BOUND
    assert relative_error(numpy_llama_logits(path, ids, context_window=128), reference) > FEATURE_EFFECT


@pytest.mark.parametrize("window", [1, 9, 16])
def test_sliding_window_from_chat_options_on_a_model_without_one(ctx, tmp_path, rng, window):
    path = write_tiny_model(tmp_path / "plain.gguf", seed=int(rng.integers(2**31)))
    model = LlamaModel(ctx, GGUFModelFile(path), CONTEXT_WINDOW, CHUNK, sliding_window_size=window)
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    logits = model.forward_logits(ids)
    reference = numpy_llama_logits(path, ids, sliding_window=window)
    for t in range(len(ids)):
        assert relative_error(logits[t], reference[t]) < LOGIT_BOUND, f"position {t}"
    prompt = ids[:19]
    generated, decode_logits = greedy_trace(model, prompt, n_new=6)
    decode_reference = numpy_llama_logits(path, prompt + generated[:-1], sliding_window=window)[len(prompt) - 1 :]
    assert relative_error(decode_logits, decode_reference) < LOGIT_BOUND


def test_minus_one_turns_the_files_sliding_window_off(ctx, tmp_path, rng):
    path = write_tiny_model(tmp_path / "mistral.gguf", seed=int(rng.integers(2**31)), sliding_window=8)
    model = LlamaModel(ctx, GGUFModelFile(path), CONTEXT_WINDOW, CHUNK, sliding_window_size=-1)
    assert model.sliding_window == 0
    ids = rng.integers(0, model.config.vocab_size, size=30).tolist()
    assert relative_error(model.forward_logits(ids), numpy_llama_logits(path, ids, sliding_window=-1)) < LOGIT_BOUND


def test_engine_passes_chat_options_sliding_window_to_the_model(ctx, tmp_path, rng):
    path = write_tiny_model(tmp_path / "plain.gguf", seed=int(rng.integers(2**31)))
    core = EngineCore(str(path), ChatOptions(context_window_size=64, sliding_window_size=5), ctx=ctx)
    assert core.model.sliding_window == 5
    assert EngineCore(str(path), ChatOptions(context_window_size=64), ctx=ctx).model.sliding_window == 0


# -- files the engine refuses ---------------------------------------------------------------------

_TINY = {"block_count": 1, "context_length": 64, "embedding_length": 64, "feed_forward_length": 96,
         "attention.head_count": 4, "attention.layer_norm_rms_epsilon": 1e-6}


@pytest.mark.parametrize("arch, extra, message", [
    ("qwen2", {"rope.scaling.type": "yarn", "rope.scaling.factor": 4.0}, "RoPE scaling 'yarn'"),
    ("llama", {"rope.scaling.type": "yarn", "rope.scaling.factor": 2.0}, "RoPE scaling 'yarn'"),
    ("qwen3", {"attention.key_length": 32, "attention.value_length": 16}, "value_length 16 differs"),
    ("gemma3", {"final_logit_softcapping": 30.0}, "soft-capping"),
    ("gemma3", {"attn_logit_softcapping": 50.0}, "soft-capping"),
])
def test_unsupported_variants_are_model_format_errors(tmp_path, arch, extra, message):
    path = tmp_path / "variant.gguf"
    write_gguf(path, arch=arch, kv={f"{arch}.{k}": v for k, v in (_TINY | extra).items()}
               | {"tokenizer.ggml.tokens": ["a", "b"]})
    with pytest.raises(ModelFormatError, match=message):
        GGUFModelFile(path).config


def test_longrope_factors_without_the_original_context_are_refused(ctx, tmp_path, rng):
    path = write_tiny_model(tmp_path / "phi3.gguf", seed=int(rng.integers(2**31)), arch="phi3",
                            context=256, long_rope_original_context=64)
    model_file = GGUFModelFile(path)
    broken = dataclasses.replace(model_file.config, rope_original_context_length=None)
    model_file.__dict__["config"] = broken  # what a cached_property reads once it has a value
    with pytest.raises(ModelFormatError, match="original_context_length"):
        LlamaModel(ctx, model_file, CONTEXT_WINDOW, CHUNK)


def test_prefill_attention_falls_back_where_workgroup_memory_is_short(ctx, tmp_path, rng):
    """attention_tiled needs ~30 KB of workgroup memory; a device that allows less gets attention.wgsl."""
    path = write_tiny_model(tmp_path / "tiny.gguf", seed=int(rng.integers(2**31)), arch="llama")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(llama, "TILED_ATTENTION_WORKGROUP_BYTES", ctx.gpu.max_workgroup_storage + 1)
        model = LlamaModel(ctx, GGUFModelFile(path), CONTEXT_WINDOW, CHUNK, fused_decode=True, int8_matmul=False)
    labels = [d.label for d in model.prefill_graph(CHUNK)]
    assert labels.count("attention") == model.config.n_layer and "attention_tiled" not in labels
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    reference = numpy_llama_logits(path, ids, context_window=CONTEXT_WINDOW)
    logits = model.forward_logits(ids)
    assert max(relative_error(logits[t], reference[t]) for t in range(len(ids))) < LOGIT_BOUND
