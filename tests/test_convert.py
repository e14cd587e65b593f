"""`notebook-llm convert` / `gen-config` (notebook_llm/convert/) against independent references.

- Group quantization: the converter's codes and scales equal, bit for bit, a reference written
  here from mlc-llm's group_quantization.py one group at a time with Python scalars (model-dtype
  roundings, ties rounded half away from zero as TVM's `round`), and dequantize within half a
  step (plus the model dtype's own rounding of w / scale + 7).
- Files: shards, md5 sums and records as tvmjs.dump_tensor_cache lays them out, read here with
  plain json + numpy; safetensors input cross-checked with the `safetensors` package.
- Tiny random Hugging Face models of each architecture, converted, loaded by the engine through
  loader/mlc_model.py and run against tests/llama_numpy.py's forward pass on the reference's
  dequantized weights (relative error < 1e-4, the reader's own bound).
- gen-config's fields, and bad inputs raising the typed errors of notebook_llm/errors.py.
- The real default model (slow): SmolLM2's GGUF written back as a Hugging Face folder, converted
  with q0f32 stored as raw float32, gives the GGUF's greedy tokens and log-probabilities, and
  loads through a one-line ModelRecord to answer a chat like the GGUF engine.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import numpy as np
import pytest

from notebook_llm.__main__ import main
from notebook_llm.convert.conv_templates import CONV_TEMPLATE_NAMES, conv_template
from notebook_llm.convert.gen_config import generate_chat_config
from notebook_llm.convert.hf_checkpoint import HFCheckpoint, write_safetensors
from notebook_llm.convert.quantize import f32_to_bf16_bits, group_quantize
from notebook_llm.convert.tensor_cache import TensorCacheWriter
from notebook_llm.convert.weights import convert_model
from notebook_llm.errors import (
    InvalidRequestError,
    ModelFormatError,
    ModelNotFoundError,
)
from notebook_llm.loader.conv_template import ConvTemplate
from notebook_llm.loader.mlc_model import MLCModelFile
from notebook_llm.models.llama import LlamaModel

from .conftest import relative_error
from .llama_numpy import LlamaHyperparameters, LlamaWeights, forward
from .mlc_fixture import bf16_bits, permute_for_llama_cpp, write_tokenizer_json
from .tiny_llama import tiny_llama_weights

LOGIT_BOUND = 3e-4  # as tests/test_mlc_format.py: the engine's float32 (float16 KV cache) against float64
CONTEXT_WINDOW, CHUNK = 128, 16
MODEL_DTYPE = {"q4f16_1": np.float16, "q4f32_1": np.float32, "q0f16": np.float16, "q0f32": np.float32}


def _seed() -> int:
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"tiny Hugging Face model seed {seed}")
    return seed


# --- an independent reference of MLC's numbers ------------------------------------------------------


def reference_group_quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mlc-llm GroupQuantize._quantize, group by group: scale = max|w| / 7 and q = clip(round(w /
    scale + 7), 0, 14), every operation rounded to w's dtype (float16 or float32), round half away
    from zero; a zero group gets code 7. Eight codes per uint32, the first in the low nibble."""
    dtype = w.dtype.type
    rows, cols = w.shape
    words = np.zeros((rows, cols // 8), np.uint32)
    scales = np.zeros((rows, cols // 32), w.dtype)
    for r in range(rows):
        for g in range(cols // 32):
            group = [dtype(x) for x in w[r, 32 * g: 32 * g + 32]]
            scale = dtype(max(abs(x) for x in group) / dtype(7))
            scales[r, g] = scale
            for j, x in enumerate(group):
                if scale == 0:
                    code = 7
                else:
                    shifted = float(dtype(dtype(x / scale) + dtype(7)))
                    code = min(max(int(math.copysign(math.floor(abs(shifted) + 0.5), shifted)), 0), 14)
                words[r, (32 * g + j) // 8] |= np.uint32(code << (4 * (j % 8)))
    return words, scales


def dequantize(words: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(q − 7) · scale in float64, exact."""
    codes = np.stack([(words >> np.uint32(4 * r)) & 0xF for r in range(8)], axis=-1).reshape(words.shape[0], -1)
    return ((codes.astype(np.float64) - 7).reshape(words.shape[0], -1, 32) * scales.astype(np.float64)[..., None]
            ).reshape(words.shape[0], -1)


def stored_float32(values: np.ndarray) -> np.ndarray:
    """A float32 tensor as the tensor cache stores it by default: bfloat16 bits, rounded to nearest even."""
    return (bf16_bits(values).astype(np.uint32) << 16).view(np.float32)


def read_tensor_cache(directory) -> dict[str, np.ndarray]:
    """Every tensor of a tensor-cache.json, decoded with json + numpy only (f32-to-bf16 widened)."""
    cache = json.loads((directory / "tensor-cache.json").read_text())
    out = {}
    for shard in cache["records"]:
        data = (directory / shard["dataPath"]).read_bytes()
        for r in shard["records"]:
            raw = data[r["byteOffset"]: r["byteOffset"] + r["nbytes"]]
            if r["format"] == "f32-to-bf16":
                out[r["name"]] = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(r["shape"])
            else:
                out[r["name"]] = np.frombuffer(raw, {"float32": "<f4", "float16": "<f2", "uint32": "<u4"}[r["dtype"]]
                                               ).reshape(r["shape"])
    return out


# --- group quantization ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_group_quantization_equals_the_reference_bit_for_bit_and_rounds_within_half_a_step(rng, dtype):
    w = (rng.standard_normal((6, 128)) * np.exp(rng.uniform(-4, 2, (6, 1)))).astype(dtype)
    w[2, 32:64] = 0  # a zero group: scale 0, codes 7
    w[3, :32] = rng.standard_normal(32).astype(dtype) * dtype(1e-3)
    words, scales = group_quantize(w)
    ref_words, ref_scales = reference_group_quantize(w)
    assert words.dtype == np.uint32 and words.shape == (6, 16) and scales.dtype == dtype and scales.shape == (6, 4)
    np.testing.assert_array_equal(words, ref_words)
    np.testing.assert_array_equal(scales.view(np.uint16 if dtype == np.float16 else np.uint32),
                                  ref_scales.view(np.uint16 if dtype == np.float16 else np.uint32))
    assert np.all(words[2, 4:8] == 0x77777777)
    # Half a step, plus the model dtype's rounding of w / scale + 7 (< 15 · 2^-11 in float16).
    slack = 0.5 + (2**-7 if dtype == np.float16 else 2**-19)
    error = np.abs(dequantize(words, scales) - w.astype(np.float64)).reshape(6, 4, 32)
    assert np.all(error <= slack * scales.astype(np.float64)[..., None])


def test_ties_round_half_away_from_zero_as_tvm_round():
    """max|w| = 7 gives scale 1: w = 1.5 → 8.5 → 9 and w = −0.5 → 6.5 → 7 (ties to even would give 8 and 6)."""
    w = np.zeros((1, 32), np.float32)
    w[0, :3] = [7.0, 1.5, -0.5]
    words, scales = group_quantize(w)
    codes = [(int(words[0, 0]) >> (4 * j)) & 0xF for j in range(3)]
    assert scales[0, 0] == 1.0 and codes == [14, 9, 7]


def test_float32_storage_rounds_to_nearest_even_and_truncates_past_bfloat16s_range():
    values = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, -2.5, np.finfo(np.float32).max, -np.inf], np.float32)
    bits = f32_to_bf16_bits(values)
    assert bits.tolist()[:4] == [0x3F80, 0x3F80, 0x3F82, 0xC020]  # ties to even: 1 + 2^-8 → 1, 1 + 3·2^-8 → up
    assert bits[4] == 0x7F7F and bits[5] == 0xFF80  # float32 max truncated (not rounded to inf), -inf kept


# --- files ----------------------------------------------------------------------------------------


def test_tensor_cache_shards_records_and_md5_follow_tvmjs(tmp_path, rng):
    writer = TensorCacheWriter(tmp_path, shard_mb=1024 / 2**20, float32_storage="bf16")  # a 1024-byte cap
    tensors = {"a": rng.standard_normal(100).astype(np.float16),  # 200 bytes
               "b": rng.integers(0, 2**32, 100, dtype=np.uint32),  # 400
               "c": rng.standard_normal(150).astype(np.float32),  # 300 as bf16
               "big": rng.standard_normal(300).astype(np.float32),  # 600 ≥ cap / 2: a shard of its own
               "d": rng.standard_normal(200).astype(np.float16)}  # 400: 900 + 400 ≥ cap, closes a+b+c
    for name, values in tensors.items():
        writer.add(name, values)
    writer.finish(total_parameters=850)
    cache = json.loads((tmp_path / "tensor-cache.json").read_text())
    layout = [[r["name"] for r in shard["records"]] for shard in cache["records"]]
    assert layout == [["big"], ["a", "b", "c"], ["d"]]
    for shard in cache["records"]:
        data = (tmp_path / shard["dataPath"]).read_bytes()
        assert shard["format"] == "raw-shard" and shard["nbytes"] == len(data)
        assert shard["md5sum"] == hashlib.md5(data).hexdigest()
        offset = 0
        for r in shard["records"]:
            assert r["byteOffset"] == offset
            offset += r["nbytes"]
        assert offset == len(data)
    records = {r["name"]: r for shard in cache["records"] for r in shard["records"]}
    assert {n: (r["dtype"], r["format"]) for n, r in records.items()} == {
        "a": ("float16", "raw"), "b": ("uint32", "raw"), "c": ("float32", "f32-to-bf16"),
        "big": ("float32", "f32-to-bf16"), "d": ("float16", "raw")}
    assert cache["metadata"] == {"ParamSize": 5, "ParamBytes": 2800.0, "BitsPerParam": 2800 * 8 / 850}  # before bf16
    stored = read_tensor_cache(tmp_path)
    np.testing.assert_array_equal(stored["b"], tensors["b"])
    np.testing.assert_array_equal(stored["c"], stored_float32(tensors["c"]))
    assert [p.name for p in sorted(tmp_path.glob("params_shard_*.bin"))] == [f"params_shard_{i}.bin" for i in range(3)]


def _write_bf16_safetensors(path, name: str, values: np.ndarray) -> None:
    """One BF16 tensor, written by hand from the format's description (the package's numpy API has no bfloat16)."""
    header = json.dumps({name: {"dtype": "BF16", "shape": list(values.shape),
                                "data_offsets": [0, values.size * 2]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16_bits(values).astype("<u2").tobytes())


def test_checkpoint_reads_safetensors_files_and_widens_bfloat16_exactly(tmp_path, rng):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float16)
    c = rng.standard_normal((4, 2)).astype(np.float32)
    safetensors_numpy.save_file({"a": a, "b": b}, str(tmp_path / "model-00001-of-00002.safetensors"))
    _write_bf16_safetensors(tmp_path / "model-00002-of-00002.safetensors", "c", c)
    checkpoint = HFCheckpoint(tmp_path)
    assert sorted(checkpoint.entries) == ["a", "b", "c"] and checkpoint.shape("c") == (4, 2)
    np.testing.assert_array_equal(checkpoint.read("a"), a)
    assert checkpoint.read("b").dtype == np.float16
    np.testing.assert_array_equal(checkpoint.read("b"), b)
    np.testing.assert_array_equal(checkpoint.read("c"), stored_float32(c))
    # and what write_safetensors writes, the package reads
    written = write_safetensors(tmp_path / "out.safetensors", {"a": a, "b": b})
    loaded = safetensors_numpy.load_file(str(written))
    np.testing.assert_array_equal(loaded["a"], a)
    np.testing.assert_array_equal(loaded["b"], b)


# --- tiny Hugging Face models -----------------------------------------------------------------------

DIM, N_HEAD, N_KV_HEAD, FFN, VOCAB, N_LAYER = 64, 4, 2, 96, 300, 2
HF_LAYER_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                  "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                  "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
                  "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}


def _hf_name(arch: str, gguf_name: str) -> str:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    _, layer, kind, suffix = gguf_name.split(".")
    if arch == "phi3" and kind in ("attn_qkv", "ffn_up"):
        return f"model.layers.{layer}.{'self_attn.qkv_proj' if kind == 'attn_qkv' else 'mlp.gate_up_proj'}.{suffix}"
    return f"model.layers.{layer}.{HF_LAYER_NAMES[kind]}.{suffix}"


def write_hf_model(directory, seed: int, arch: str, dtype: str = "float32", *, tied: bool = False,
                   head_dim: int | None = None, sliding_window: int | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """A random Hugging Face model folder (safetensors in `dtype`, config.json, tokenizer.json);
    returns its tensors under llama.cpp's names as the file holds them (float64) and config.json."""
    directory.mkdir(parents=True, exist_ok=True)
    gguf_arch = "llama" if arch == "mistral" else arch
    weights = tiny_llama_weights(seed, N_LAYER, DIM, N_HEAD, N_KV_HEAD, FFN, VOCAB, tied, arch=gguf_arch,
                                 head_dim=head_dim)
    held = {}
    if dtype == "bfloat16":
        parts = {}
        for name, values in weights.items():
            parts[_hf_name(arch, name)] = values
            held[name] = stored_float32(values).astype(np.float64)
        _write_safetensors_bf16(directory / "model.safetensors", parts)
    else:
        stored = {_hf_name(arch, name): values.astype(dtype) for name, values in weights.items()}
        write_safetensors(directory / "model.safetensors", stored)
        held = {name: values.astype(dtype).astype(np.float64) for name, values in weights.items()}
    config = {"architectures": ["X"], "model_type": arch, "hidden_size": DIM, "intermediate_size": FFN,
              "num_attention_heads": N_HEAD, "num_key_value_heads": N_KV_HEAD, "num_hidden_layers": N_LAYER,
              "rms_norm_eps": 1e-5, "vocab_size": VOCAB, "max_position_embeddings": CONTEXT_WINDOW,
              "rope_theta": 10000.0, "tie_word_embeddings": tied, "hidden_act": "silu", "bos_token_id": 1,
              "eos_token_id": 2}
    if head_dim:
        config["head_dim"] = head_dim
    if arch == "qwen3":
        config["attention_bias"] = False
    if arch == "mistral":
        config["sliding_window"] = sliding_window
    if arch == "phi3":
        config["original_max_position_embeddings"] = CONTEXT_WINDOW
    (directory / "config.json").write_text(json.dumps(config))
    write_tokenizer_json(directory / "tokenizer.json", VOCAB)
    return held, config


def _write_safetensors_bf16(path, tensors: dict[str, np.ndarray]) -> None:
    header, offset, blobs = {}, 0, []
    for name, values in tensors.items():
        data = bf16_bits(values).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(values.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def expected_model(held: dict[str, np.ndarray], arch: str, quantization: str, *, head_dim: int,
                   sliding_window: int | None) -> tuple[dict[str, np.ndarray], LlamaWeights]:
    """What the converted folder must hold for each matrix (q_weight / q_scale or weight, by
    llama.cpp name) and the weights the reference forward pass runs (llama's q/k permuted into
    llama.cpp's order, as tests/mlc_fixture.py does)."""
    dtype = MODEL_DTYPE[quantization]
    quantized = quantization.startswith("q4")
    expected, ref = {}, {}
    for name, values in held.items():
        in_dtype = values.astype(dtype)
        if values.ndim == 1:
            stored = in_dtype.astype(np.float32)
            if dtype == np.float32:
                stored = stored_float32(stored)
            expected[name], ref[name] = stored, stored.astype(np.float64)
        elif quantized:
            words, scales = reference_group_quantize(in_dtype)
            stored_scales = stored_float32(scales) if dtype == np.float32 else scales
            expected[name] = (words, stored_scales)
            ref[name] = dequantize(words, stored_scales)
        else:
            stored = stored_float32(in_dtype) if dtype == np.float32 else in_dtype
            expected[name], ref[name] = stored, stored.astype(np.float64)
    if arch in ("llama", "mistral"):
        for i in range(N_LAYER):
            ref[f"blk.{i}.attn_q.weight"] = permute_for_llama_cpp(ref[f"blk.{i}.attn_q.weight"], N_HEAD)
            ref[f"blk.{i}.attn_k.weight"] = permute_for_llama_cpp(ref[f"blk.{i}.attn_k.weight"], N_KV_HEAD)
    hparams = LlamaHyperparameters(
        n_layer=N_LAYER, dim=DIM, ffn=FFN, n_head=N_HEAD, n_kv_head=N_KV_HEAD, head_dim=head_dim, rope_dim=head_dim,
        rope_base=10000.0, rms_eps=1e-5, vocab=VOCAB, arch="llama" if arch == "mistral" else arch,
        context_length=CONTEXT_WINDOW, sliding_window=sliding_window or 0)
    return expected, LlamaWeights(hparams, ref)


def _fused(expected: dict, names: list[str]):
    parts = [expected[n] for n in names]
    if isinstance(parts[0], tuple):
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return np.concatenate(parts)


def _mlc_matrices(arch: str, i: int) -> dict[str, list[str]]:
    """MLC module → the llama.cpp-named tensors it stacks, for layer i."""
    blk = f"blk.{i}."
    layer = f"transformer.h.{i}." if arch == "phi3" else f"model.layers.{i}."
    if arch == "phi3":
        return {layer + "mixer.qkv_proj": [blk + "attn_qkv.weight"], layer + "mixer.out_proj": [blk + "attn_output.weight"],
                layer + "mlp.gate_up_proj": [blk + "ffn_up.weight"], layer + "mlp.down_proj": [blk + "ffn_down.weight"]}
    qkv = "self_attn.c_attn" if arch in ("qwen2", "qwen3") else "self_attn.qkv_proj"
    return {layer + qkv: [blk + f"attn_{x}.weight" for x in "qkv"], layer + "self_attn.o_proj": [blk + "attn_output.weight"],
            layer + "mlp.gate_up_proj": [blk + "ffn_gate.weight", blk + "ffn_up.weight"],
            layer + "mlp.down_proj": [blk + "ffn_down.weight"]}


CASES = [  # (arch, quantization, safetensors dtype, options)
    ("llama", "q4f16_1", "bfloat16", {}),
    ("llama", "q0f32", "float32", {"tied": True}),
    ("qwen2", "q4f32_1", "float32", {"tied": True}),  # c_attn and its bias
    ("qwen3", "q0f16", "bfloat16", {"head_dim": 32}),  # q/k norms, q_dim 128 with dim 64
    ("phi3", "q4f16_1", "float16", {}),  # fused in the checkpoint, transformer.h.* in MLC
    ("mistral", "q4f32_1", "bfloat16", {"sliding_window": 12}),  # untied, a window shorter than the prompt
]


@pytest.mark.parametrize("arch,quantization,dtype,options", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_converted_model_holds_the_reference_tensors_and_runs_like_numpy(ctx, tmp_path, rng, arch, quantization,
                                                                          dtype, options):
    held, _ = write_hf_model(tmp_path / "hf", _seed(), arch, dtype, **options)
    weights, chat = convert_model(tmp_path / "hf", quantization, tmp_path / "mlc", conv_template_name="chatml")
    head_dim = options.get("head_dim") or DIM // N_HEAD
    expected, reference = expected_model(held, arch, quantization, head_dim=head_dim,
                                         sliding_window=options.get("sliding_window"))
    stored = read_tensor_cache(tmp_path / "mlc")
    quantized = quantization.startswith("q4")
    modules = {"transformer.embd" if arch == "phi3" else "model.embed_tokens": ["token_embd.weight"]}
    if "output.weight" in held:
        modules["lm_head"] = ["output.weight"]
    for i in range(N_LAYER):
        modules |= _mlc_matrices(arch, i)
    for module, names in modules.items():
        want = _fused(expected, names)
        if quantized:
            np.testing.assert_array_equal(stored[f"{module}.q_weight"], want[0], err_msg=module)
            np.testing.assert_array_equal(stored[f"{module}.q_scale"], want[1], err_msg=module)
        else:
            np.testing.assert_array_equal(stored[f"{module}.weight"], want, err_msg=module)
    assert weights.tensors == len(stored) == len(modules) * (2 if quantized else 1) + sum(
        1 for v in held.values() if v.ndim == 1) - (N_LAYER * 2 if arch == "qwen2" else 0)  # q/k/v biases fuse
    assert chat.config["model_type"] == arch and chat.config["quantization"] == quantization

    model = LlamaModel(ctx, MLCModelFile(tmp_path / "mlc"), context_window_size=CONTEXT_WINDOW, prefill_chunk_size=CHUNK)
    ids = rng.integers(0, VOCAB, size=40).tolist()
    logits = model.forward_logits(ids)
    ref = forward(reference, ids, CONTEXT_WINDOW)
    worst = max(relative_error(logits[t], ref[t]) for t in range(len(ids)))
    print(f"{arch} {quantization} from {dtype}: worst relative logit error {worst:.1e}")
    assert worst < LOGIT_BOUND


# --- gen-config -----------------------------------------------------------------------------------


def test_gen_config_fields_come_from_the_configs_with_mlcs_defaults(tmp_path):
    write_hf_model(tmp_path / "hf", 1, "llama")
    (tmp_path / "hf" / "generation_config.json").write_text(json.dumps(
        {"temperature": 0.7, "top_p": 0.9, "eos_token_id": [2, 0], "do_sample": True}))
    (tmp_path / "hf" / "tokenizer_config.json").write_text("{}")
    result = generate_chat_config(tmp_path / "hf", "q4f16_1", tmp_path / "out", conv_template_name="chatml",
                                  overrides={"context_window_size": 64, "prefill_chunk_size": 100})
    config = json.loads((tmp_path / "out" / "mlc-chat-config.json").read_text())
    assert config == result.config
    assert list(config)[:4] == ["version", "model_type", "quantization", "model_config"]
    assert (config["version"], config["model_type"], config["quantization"]) == ("0.1.0", "llama", "q4f16_1")
    mc = config["model_config"]
    assert mc["position_embedding_base"] == 10000.0 and mc["rope_scaling"] is None  # rope_theta moved, as MLC does
    assert (mc["num_key_value_heads"], mc["head_dim"], mc["tie_word_embeddings"]) == (N_KV_HEAD, DIM // N_HEAD, False)
    assert (mc["context_window_size"], mc["prefill_chunk_size"]) == (64, 64)  # the chunk clamped to the context
    assert "max_position_embeddings" not in mc and "rope_theta" not in mc  # MLC's kwargs are not dumped
    assert (config["context_window_size"], config["prefill_chunk_size"], config["sliding_window_size"],
            config["attention_sink_size"]) == (64, 64, -1, -1)
    # generation_config.json, then config.json, then MLC's system defaults
    assert (config["temperature"], config["top_p"], config["repetition_penalty"]) == (0.7, 0.9, 1.0)
    assert (config["presence_penalty"], config["frequency_penalty"]) == (0.0, 0.0)
    assert (config["eos_token_id"], config["bos_token_id"], config["pad_token_id"]) == ([2, 0], 1, 0)
    assert config["vocab_size"] == VOCAB and config["active_vocab_size"] == 294  # tokenizer.json without padding
    assert config["tokenizer_files"] == ["tokenizer.json", "tokenizer_config.json"]
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (tmp_path / "hf" / "tokenizer.json").read_bytes()
    assert config["tokenizer_info"] == {"token_postproc_method": "byte_level", "prepend_space_in_encode": False,
                                        "strip_space_in_decode": False}
    assert config["conv_template"] == conv_template("chatml") and result.warnings == ()
    template = ConvTemplate.from_dict(config["conv_template"])
    assert template.render([{"role": "user", "content": "hi"}], add_generation_prompt=True) == (
        "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant gives helpful "
        "and honest answers.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_every_named_template_is_a_valid_conv_template_object():
    for name in CONV_TEMPLATE_NAMES:
        data = conv_template(name)
        assert data["name"] == name and data["messages"] == [] and data["function_string"] == ""
        assert data["role_templates"] == {"user": "{user_message}", "assistant": "{assistant_message}",
                                          "tool": "{tool_message}"}
        ConvTemplate.from_dict(data)
    assert conv_template("llama-3")["system_prefix_token_ids"] == [128000]
    assert conv_template("qwen3")["strip_reasoning_in_history"] is True


def test_stop_ids_that_are_not_special_tokens_are_dropped_with_a_warning(tmp_path):
    write_hf_model(tmp_path / "hf", 1, "qwen2")
    with pytest.warns(UserWarning, match=r"stop_token_ids \[151643, 151645\]"):
        result = generate_chat_config(tmp_path / "hf", "q0f16", tmp_path / "out", conv_template_name="qwen2")
    assert result.config["conv_template"]["stop_token_ids"] == []
    assert result.config["conv_template"]["stop_str"] == ["<|endoftext|>", "<|im_end|>"]
    assert result.config["model_config"]["prefill_chunk_size"] == CONTEXT_WINDOW  # min(context, 2048) for Qwen
    # a template from a JSON file
    (tmp_path / "mine.json").write_text(json.dumps(conv_template("chatml") | {"system_message": "Be brief."}))
    result = generate_chat_config(tmp_path / "hf", "q0f16", tmp_path / "out2", conv_template_name=str(tmp_path / "mine.json"))
    assert result.config["conv_template"]["system_message"] == "Be brief."


def test_mistral_sliding_window_and_overrides_only_where_mlc_has_the_field(tmp_path):
    write_hf_model(tmp_path / "mistral", 1, "mistral", sliding_window=12)
    config = generate_chat_config(tmp_path / "mistral", "q4f16_1", tmp_path / "a", conv_template_name="LM").config
    assert (config["sliding_window_size"], config["context_window_size"], config["prefill_chunk_size"],
            config["attention_sink_size"]) == (12, -1, 12, 4)
    write_hf_model(tmp_path / "llama", 1, "llama")
    with pytest.raises(InvalidRequestError, match="sliding_window_size cannot be set for llama") as caught:
        generate_chat_config(tmp_path / "llama", "q4f16_1", tmp_path / "b", conv_template_name="LM",
                             overrides={"sliding_window_size": 64})
    assert caught.value.param == "sliding_window_size"
    with pytest.raises(InvalidRequestError, match="prefill_chunk_size is 0"):
        generate_chat_config(tmp_path / "llama", "q4f16_1", tmp_path / "b", overrides={"prefill_chunk_size": 0})


# --- bad inputs -----------------------------------------------------------------------------------


def test_bad_inputs_raise_typed_errors_naming_the_problem(tmp_path):
    hf = tmp_path / "hf"
    write_hf_model(hf, 1, "llama")
    with pytest.raises(ModelNotFoundError, match="is not a directory"):
        convert_model(tmp_path / "nowhere", "q4f16_1", tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="has no config.json"):
        convert_model(tmp_path / "empty", "q4f16_1", tmp_path / "o1")
    with pytest.raises(InvalidRequestError, match=r"quantization is 'q3f16_1'; one of \['q4f16_1'") as caught:
        convert_model(hf, "q3f16_1", tmp_path / "o1")
    assert caught.value.param == "quantization"
    with pytest.raises(InvalidRequestError, match="conv_template is 'vicuna'"):
        convert_model(hf, "q4f16_1", tmp_path / "o1", conv_template_name="vicuna")
    assert not (tmp_path / "o1" / "tensor-cache.json").exists()

    config = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps(config | {"model_type": "gpt_neox"}))
    with pytest.raises(ModelFormatError, match=r"model_type 'gpt_neox'.*supported: \['llama', 'mistral'"):
        convert_model(hf, "q4f16_1", tmp_path / "o2")
    (hf / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "num_hidden_layers"}))
    with pytest.raises(ModelFormatError, match=r"lacks \['num_hidden_layers'\]"):
        convert_model(hf, "q4f16_1", tmp_path / "o2")
    (hf / "config.json").write_text(json.dumps(config | {"intermediate_size": 128}))
    with pytest.raises(ModelFormatError, match=r"mlp.gate_up_proj needs \[256, 64\]"):
        convert_model(hf, "q4f16_1", tmp_path / "o3")
    (hf / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 3}))
    with pytest.raises(ModelFormatError, match=r"missing from the \*\.safetensors files, e\.g\. \['model\.layers\.2\."):
        convert_model(hf, "q4f16_1", tmp_path / "o4")
    (hf / "config.json").write_text(json.dumps(config))
    (hf / "tokenizer.json").unlink()
    with pytest.raises(ModelFormatError, match="has no tokenizer.json"):
        convert_model(hf, "q4f16_1", tmp_path / "o5")


def test_cli_converts_refuses_to_overwrite_and_reports_errors(tmp_path, capsys):
    write_hf_model(tmp_path / "hf", 1, "llama", "bfloat16")
    out = tmp_path / "out"
    assert main(["convert", str(tmp_path / "hf"), "--quantization", "q4f16_1", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "llama q4f16_1" in printed and "conv_template 'chatml'" in printed  # guessed from <|im_start|>
    assert MLCModelFile(out).quantization_name == "q4f16_1"
    assert main(["convert", str(tmp_path / "hf"), "--quantization", "q0f16", "-o", str(out)]) == 2
    assert "already holds a converted model" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "hf"), "--quantization", "q0f16", "-o", str(out), "--overwrite",
                 "--shard-mb", "0.01"]) == 0
    assert MLCModelFile(out).quantization_name == "q0f16"
    shards = json.loads((out / "tensor-cache.json").read_text())["records"]
    assert sorted(p.name for p in out.glob("params_shard_*.bin")) == sorted(s["dataPath"] for s in shards)
    assert main(["gen-config", str(tmp_path / "hf"), "--quantization", "q4f16_1", "--conv-template", "llama-3",
                 "-o", str(tmp_path / "gc"), "--context-window-size", "96"]) == 0
    assert json.loads((tmp_path / "gc" / "mlc-chat-config.json").read_text())["context_window_size"] == 96
    assert main(["gen-config", str(tmp_path / "hf"), "--quantization", "q4f16_1", "--conv-template", "nope",
                 "-o", str(tmp_path / "gc")]) == 2
    assert "conv_template is 'nope'" in capsys.readouterr().err


# --- the real default model (slow) ----------------------------------------------------------------


SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # its chat template's default
PROMPT = "The capital of France is"
GREEDY_TOKENS = 16
# nats, top-5 of the GGUF: the same float32 weights through other kernels, whose float32 differences
# round some cached keys and values to the neighbouring float16 (measured 2.5e-3; 2e-5 with an f32 cache)
ROUND_TRIP_LOGPROB_BOUND = 1e-2


@pytest.fixture(scope="module")
def smollm2_converted(tmp_path_factory):
    """SmolLM2's GGUF as a Hugging Face folder (float32), converted with q0f32 stored as raw float32:
    the same weights as the GGUF's dequantized ones, so the models must agree to float32 rounding."""
    from notebook_llm.convert import gguf_to_hf
    from notebook_llm.loader.models_offline import default_model_path

    root = tmp_path_factory.mktemp("smollm2")
    hf = gguf_to_hf(default_model_path(), root / "hf")
    (root / "smollm2-chatml.json").write_text(json.dumps(conv_template("chatml") | {"system_message": SMOLLM2_SYSTEM}))
    convert_model(hf, "q0f32", root / "mlc", conv_template_name=str(root / "smollm2-chatml.json"),
                  overrides={"context_window_size": 2048, "prefill_chunk_size": 128}, float32_storage="raw")
    return root / "mlc"


@pytest.mark.slow
def test_smollm2_round_trip_gives_the_gguf_greedy_tokens(ctx, engine, smollm2_converted):
    from .engine_trace import greedy_trace, log_softmax

    ids = engine.core.tokenizer.encode(PROMPT, add_special_tokens=False)
    want, want_logits = greedy_trace(engine.core.model, ids, GREEDY_TOKENS)
    model = LlamaModel(ctx, MLCModelFile(smollm2_converted), context_window_size=256, prefill_chunk_size=64)
    got, got_logits = greedy_trace(model, ids, GREEDY_TOKENS)
    assert got == want
    want_lp, got_lp = log_softmax(want_logits), log_softmax(got_logits)
    top5 = np.argsort(want_lp, axis=-1)[:, -5:]
    worst = float(np.abs(np.take_along_axis(want_lp - got_lp, top5, axis=-1)).max())
    print(f"SmolLM2 GGUF -> HF -> q0f32: {GREEDY_TOKENS} greedy tokens equal, max |Δ top-5 logprob| {worst:.1e}")
    assert worst < ROUND_TRIP_LOGPROB_BOUND


@pytest.mark.slow
def test_smollm2_converted_loads_from_a_one_line_record_and_chats_like_the_gguf(engine, smollm2_converted):
    from notebook_llm import create_engine
    from notebook_llm.registry import AppConfig, ModelRecord

    config = AppConfig([ModelRecord(model=str(smollm2_converted), model_id="my-smollm2", model_lib="llama-q0f32",
                                    vram_required_MB=700, overrides={"context_window_size": 512})])
    mine = create_engine("my-smollm2", app_config=config)
    assert mine.model_id == "my-smollm2"
    assert (mine.core.options.context_window_size, mine.core.options.prefill_chunk_size) == (512, 128)  # record, config
    ask = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 8}
    reply = mine.chat.completions.create(**ask)
    reference = engine.chat.completions.create(**ask)
    assert reply.usage.prompt_tokens == reference.usage.prompt_tokens  # the same prompt through the conv template
    assert reply.choices[0].message.content == reference.choices[0].message.content
