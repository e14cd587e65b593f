"""Tiny random model directories in MLC-LLM's format, written with numpy from the documented format.

Owns an independent numpy implementation of what MLC-LLM's `convert_weight` and `gen_config`
write, taken from mlc-llm's sources (never from notebook_llm's loader, which it must not import):

- Group quantization (python/mlc_llm/quantization/group_quantization.py): weights cast to the
  model dtype; per group of 32 input features scale = max|w| / 7 (in the model dtype); codes
  q = clip(round(w / scale + 7), 0, 14), eight per uint32, element r in bits 4r; w ≈ (q − 7)·scale.
  "_1" quantizations store q_weight [out, in / 8] and q_scale [out, in / 32]; "_0" ones store
  linear layers transposed (q_weight [in / 8, out]); q4f16_2 leaves the embedding and lm_head in
  float16.
- The tensor cache (TVM's tvmjs.dump_ndarray_cache): shards params_shard_{n}.bin of at most
  `shard_bytes`, each with its size and md5sum; float32 tensors written as bfloat16 (format
  "f32-to-bf16", dtype "float32", rounded to nearest even; as tvmjs does, every other record of
  the cache carries the same format label over raw bytes) unless `f32_format="raw"`.
- Tensor names and fusions per architecture (python/mlc_llm/model/*/_model.py, _loader.py):
  q, k, v stacked into one projection (`self_attn.qkv_proj`, Qwen's `self_attn.c_attn` with its
  bias, Phi-3's `mixer.qkv_proj`), gate and up into `mlp.gate_up_proj`, Hugging Face's row order.
- mlc-chat-config.json with model_config, runtime and sampling defaults and a ChatML
  conv_template; tokenizer.json for tests/tiny_llama.py's byte-level vocabulary (without its
  unused padding tokens, so the model's vocabulary is larger than the tokenizer's, as Qwen's).

`write_mlc_model` returns the directory with the float64 weights its tensors stand for, in two
forms: by MLC module (`dense`: fused matrices as stored, for repacking tests) and as a
tests/llama_numpy.py `LlamaWeights` under llama.cpp's names (`reference`), where llama's q and k
rows are permuted from Hugging Face's half-split order into llama.cpp's interleaved one (the
permutation llama.cpp's converter applies), so the numpy forward pass runs the model as written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from .llama_numpy import LlamaHyperparameters, LlamaWeights
from .tiny_llama import BOS_ID, CONTROL_TOKENS, EOS_ID, Llama3Rope, llama3_rope_freqs, tiny_llama_weights, tiny_tokenizer

GROUP = 32
QUANTIZATIONS = ("q4f16_1", "q4f32_1", "q0f16", "q0f32", "q4f16_0", "q4f16_2", "q0bf16")
MODEL_DTYPE = {"q4f16_1": "float16", "q4f32_1": "float32", "q0f16": "float16", "q0f32": "float32",
               "q4f16_0": "float16", "q4f16_2": "float16", "q0bf16": "bfloat16"}
ARCHS = ("llama", "qwen2", "qwen3", "phi3", "mistral")

# module paths: (embedding, layer prefix, attn norm, qkv, attn out, ffn norm, gate_up, down, final norm)
MODULES = {
    "llama": ("model.embed_tokens", "model.layers.{i}", "input_layernorm", "self_attn.qkv_proj", "self_attn.o_proj",
              "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj", "model.norm"),
    "qwen2": ("model.embed_tokens", "model.layers.{i}", "input_layernorm", "self_attn.c_attn", "self_attn.o_proj",
              "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj", "model.norm"),
    "phi3": ("transformer.embd", "transformer.h.{i}", "ln", "mixer.qkv_proj", "mixer.out_proj",
             "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj", "transformer.norm"),
}
MODULES["qwen3"] = MODULES["qwen2"]
MODULES["mistral"] = MODULES["llama"]

# ChatML as MLC's qwen2 template writes it, with the tiny vocabulary's control tokens.
CHATML_CONV = {
    "name": "chatml-tiny",
    "system_template": "<|im_start|>system\n{system_message}<|im_end|>\n",
    "system_message": "You are tiny.",
    "roles": {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"},
    "role_templates": {"user": "{user_message}", "assistant": "{assistant_message}", "tool": "{tool_message}"},
    "messages": [],
    "seps": ["<|im_end|>\n"],
    "role_content_sep": "\n",
    "role_empty_sep": "\n",
    "stop_str": ["<|endoftext|>"],
    "stop_token_ids": [0, 2],
    "function_string": "",
    "use_function_calling": False,
}
SAMPLING = {"temperature": 0.6, "top_p": 0.9, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "repetition_penalty": 1.0}


# --- numbers --------------------------------------------------------------------------------------


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns, rounded to nearest even (tvmjs' f32-to-bf16 for finite values)."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def in_model_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """The values a tensor of `dtype` holds (float64 copy): float16 and bfloat16 round."""
    if dtype == "float16":
        return values.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return bf16_value(bf16_bits(values)).astype(np.float64)
    return values.astype(np.float32).astype(np.float64)


def quantize_q4(w: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """MLC's int4 group quantization of [rows, cols] → (q_weight uint32 [rows, cols/8], scale [rows,
    cols/32] float64 holding model-dtype values)."""
    rows, cols = w.shape
    x = in_model_dtype(w, dtype).reshape(rows, cols // GROUP, GROUP)
    scale = in_model_dtype(np.abs(x).max(axis=-1) / 7.0, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.nan_to_num(np.rint(x / scale[..., None] + 7.0), nan=7.0)
    codes = np.clip(q, 0, 14).astype(np.uint32).reshape(rows, cols // 8, 8)
    words = np.zeros((rows, cols // 8), np.uint32)
    for r in range(8):
        words |= codes[..., r] << np.uint32(4 * r)
    return words, scale


def dequantize_q4(words: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(q − 7) · scale in float64 (exact: 4-bit codes times scales of at most 24 significant bits)."""
    rows = words.shape[0]
    codes = np.stack([(words >> np.uint32(4 * r)) & 0xF for r in range(8)], axis=-1).reshape(rows, -1)
    return (codes.astype(np.float64) - 7.0).reshape(rows, -1, GROUP) * scale[..., None]


def permute_for_llama_cpp(w: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q or k projection from Hugging Face's order (each head's first rotary half, then
    its second) into llama.cpp's interleaved pairs: convert_hf_to_gguf.py's LlamaModel.permute."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


# --- the cache ------------------------------------------------------------------------------------


@dataclass
class _CacheWriter:
    directory: Path
    shard_bytes: int
    f32_format: str
    shards: list[dict] = field(default_factory=list)
    _data: bytearray = field(default_factory=bytearray)
    _records: list[dict] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray, dtype: str) -> np.ndarray:
        """Store `values` as `dtype`; returns the float64 values (or uint32 codes) the file now holds."""
        # tvmjs labels every record with the cache's encoding; only float32 ones are converted
        encoding = self.f32_format
        if dtype == "float32" and self.f32_format == "f32-to-bf16":
            bits = bf16_bits(values)
            data, held = bits.tobytes(), bf16_value(bits).astype(np.float64)
        elif dtype == "bfloat16":
            bits = bf16_bits(values)
            data, held = bits.tobytes(), bf16_value(bits).astype(np.float64)
        elif dtype == "uint32":
            data, held = np.ascontiguousarray(values, np.uint32).tobytes(), values
        else:
            stored = np.ascontiguousarray(values, np.float16 if dtype == "float16" else np.float32)
            data, held = stored.tobytes(), stored.astype(np.float64)
        if self._data and len(self._data) + len(data) > self.shard_bytes:
            self._commit()
        self._records.append({"name": name, "shape": list(values.shape), "dtype": dtype, "format": encoding,
                              "nbytes": len(data), "byteOffset": len(self._data)})
        self._data += data
        return held

    def _commit(self) -> None:
        path = f"params_shard_{len(self.shards)}.bin"
        (self.directory / path).write_bytes(bytes(self._data))
        self.shards.append({"dataPath": path, "format": "raw-shard", "nbytes": len(self._data),
                            "records": self._records, "md5sum": hashlib.md5(self._data).hexdigest()})
        self._data, self._records = bytearray(), []

    def finish(self, cache_name: str, with_md5: bool) -> None:
        if self._data:
            self._commit()
        shards = self.shards if with_md5 else [{k: v for k, v in s.items() if k != "md5sum"} for s in self.shards]
        params = sum(int(np.prod(r["shape"])) for s in shards for r in s["records"])
        (self.directory / cache_name).write_text(json.dumps(
            {"metadata": {"ParamSize": len([r for s in shards for r in s["records"]]), "ParamBytes": params},
             "records": shards}, indent=1))


# --- tokenizer ------------------------------------------------------------------------------------


def write_tokenizer_json(path: Path, vocab: int) -> int:
    """tiny_llama's byte-level BPE as a Hugging Face tokenizer.json (SmolLM's pre-tokenizer: each
    \\p{N} alone, then GPT-2's split); the unused padding tokens are left out. Returns its size."""
    tokens, types, merges = tiny_tokenizer(vocab)
    kept = [t for t in tokens if not t.startswith("<|unused_")]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(kept)},
                                     merges=[tuple(m.split(" ")) for m in merges], fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CONTROL_TOKENS])
    tokenizer.save(str(path))
    return len(kept)


# --- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyMLCModel:
    path: Path
    arch: str
    quantization: str
    dense: dict[str, np.ndarray]  # MLC module or tensor name → float64 values as stored (matrices [out, in])
    reference: LlamaWeights  # under llama.cpp's names, for tests/llama_numpy.py's forward pass
    tokenizer_size: int


def write_mlc_model(
    directory: str | Path, seed: int, arch: str = "llama", quantization: str = "q4f16_1", *,
    n_layer: int = 2, dim: int = 64, n_head: int = 4, n_kv_head: int = 2, ffn: int = 96, vocab: int = 300,
    head_dim: int | None = None, tied: bool = False, context: int = 128, cache_name: str = "tensor-cache.json",
    shard_bytes: int = 48 * 1024, with_md5: bool = True, f32_format: str = "f32-to-bf16",
    llama3_rope: Llama3Rope | None = None, sliding_window: int = -1, conv_template: dict | None = None,
    extra_config: dict | None = None,
) -> TinyMLCModel:
    """Write a random-weight MLC model directory (see the module docstring) and return it with its weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = MODEL_DTYPE[quantization]
    group_quantized = quantization.startswith("q4")
    kn = quantization.endswith("_0")
    plain_ends = quantization == "q4f16_2"  # embedding and lm_head unquantized
    head_dim = head_dim or dim // n_head
    gguf_arch = "llama" if arch == "mistral" else arch
    tied = tied and arch != "mistral"  # MLC's Mistral always has an lm_head
    w = tiny_llama_weights(seed, n_layer, dim, n_head, n_kv_head, ffn, vocab, tied, arch=gguf_arch, head_dim=head_dim)
    cache = _CacheWriter(directory, shard_bytes, f32_format)
    dense: dict[str, np.ndarray] = {}

    def matrix(module: str, values: np.ndarray, quantize: bool, linear: bool = True) -> None:
        if not quantize:
            dense[module] = cache.add(f"{module}.weight", values, dtype)
            return
        words, scale = quantize_q4(values, dtype)
        if kn and linear:
            cache.add(f"{module}.q_weight", words.T.copy(), "uint32")
            held_scale = cache.add(f"{module}.q_scale", scale.T.copy(), dtype).T
        else:
            cache.add(f"{module}.q_weight", words, "uint32")
            held_scale = cache.add(f"{module}.q_scale", scale, dtype)
        dense[module] = dequantize_q4(words, held_scale).reshape(values.shape)

    def vector(name: str, values: np.ndarray) -> None:
        dense[name] = cache.add(name, values, dtype)

    emb, layer_path, attn_norm, qkv, attn_out, ffn_norm, gate_up, down, out_norm = MODULES[arch]
    matrix(emb, w["token_embd.weight"], group_quantized and not plain_ends, linear=False)
    ref = {"token_embd.weight": dense[emb]}
    q_dim, kv_dim = n_head * head_dim, n_kv_head * head_dim
    for i in range(n_layer):
        p, blk = layer_path.format(i=i), f"blk.{i}."
        vector(f"{p}.{attn_norm}.weight", w[blk + "attn_norm.weight"])
        fused = w[blk + "attn_qkv.weight"] if arch == "phi3" else np.concatenate(
            [w[blk + "attn_q.weight"], w[blk + "attn_k.weight"], w[blk + "attn_v.weight"]])
        matrix(f"{p}.{qkv}", fused, group_quantized)
        q, k, v = np.split(dense[f"{p}.{qkv}"], [q_dim, q_dim + kv_dim])
        if gguf_arch == "llama":  # Hugging Face order in the file; llama.cpp's for the reference
            q, k = permute_for_llama_cpp(q, n_head), permute_for_llama_cpp(k, n_kv_head)
        if arch == "phi3":
            ref[blk + "attn_qkv.weight"] = np.concatenate([q, k, v])
        else:
            ref |= {blk + "attn_q.weight": q, blk + "attn_k.weight": k, blk + "attn_v.weight": v}
        if arch == "qwen2":
            vector(f"{p}.{qkv}.bias", np.concatenate([w[blk + f"attn_{x}.bias"] for x in "qkv"]))
            bias = dense[f"{p}.{qkv}.bias"]
            ref |= {blk + "attn_q.bias": bias[:q_dim], blk + "attn_k.bias": bias[q_dim: q_dim + kv_dim],
                    blk + "attn_v.bias": bias[q_dim + kv_dim:]}
        if arch == "qwen3":
            vector(f"{p}.self_attn.q_norm.weight", w[blk + "attn_q_norm.weight"])
            vector(f"{p}.self_attn.k_norm.weight", w[blk + "attn_k_norm.weight"])
            ref |= {blk + "attn_q_norm.weight": dense[f"{p}.self_attn.q_norm.weight"],
                    blk + "attn_k_norm.weight": dense[f"{p}.self_attn.k_norm.weight"]}
        matrix(f"{p}.{attn_out}", w[blk + "attn_output.weight"], group_quantized)
        vector(f"{p}.{ffn_norm}.weight", w[blk + "ffn_norm.weight"])
        fused = w[blk + "ffn_up.weight"] if arch == "phi3" else np.concatenate(
            [w[blk + "ffn_gate.weight"], w[blk + "ffn_up.weight"]])
        matrix(f"{p}.{gate_up}", fused, group_quantized)
        ref[blk + "ffn_up.weight"] = dense[f"{p}.{gate_up}"]  # the reference splits it into gate, up
        matrix(f"{p}.{down}", w[blk + "ffn_down.weight"], group_quantized)
        ref |= {blk + "attn_norm.weight": dense[f"{p}.{attn_norm}.weight"],
                blk + "attn_output.weight": dense[f"{p}.{attn_out}"],
                blk + "ffn_norm.weight": dense[f"{p}.{ffn_norm}.weight"],
                blk + "ffn_down.weight": dense[f"{p}.{down}"]}
    vector(f"{out_norm}.weight", w["output_norm.weight"])
    ref["output_norm.weight"] = dense[f"{out_norm}.weight"]
    if not tied:
        matrix("lm_head", w["output.weight"], group_quantized and not plain_ends)
        ref["output.weight"] = dense["lm_head"]
    cache.finish(cache_name, with_md5)

    rope_scaling = None
    if llama3_rope is not None:
        rope_scaling = {"rope_type": "llama3", "factor": llama3_rope.factor,
                        "low_freq_factor": llama3_rope.low_freq_factor,
                        "high_freq_factor": llama3_rope.high_freq_factor,
                        "original_max_position_embeddings": llama3_rope.original_context}
        ref["rope_freqs.weight"] = llama3_rope_freqs(head_dim, 10000.0, llama3_rope).astype(np.float64)
    model_config = {
        "hidden_size": dim, "intermediate_size": ffn, "num_attention_heads": n_head, "num_hidden_layers": n_layer,
        "num_key_value_heads": n_kv_head, "head_dim": head_dim, "rms_norm_eps": 1e-5, "vocab_size": vocab,
        "context_window_size": context, "prefill_chunk_size": 32, "tensor_parallel_shards": 1, "max_batch_size": 1,
        "tie_word_embeddings": tied,
    }
    if arch in ("llama", "mistral", "phi3"):
        model_config["position_embedding_base"] = 10000
    else:
        model_config |= {"rope_theta": 10000, "hidden_act": "silu", "dtype": "float32"}
    if arch == "qwen3":
        model_config["attention_bias"] = False
    if arch == "phi3":
        model_config |= {"model_type": "phi3", "max_position_embeddings": context, "original_max_position_embeddings": 0,
                         "partial_rotary_factor": 1.0}
    if arch == "mistral":
        model_config |= {"sliding_window_size": sliding_window, "attention_sink_size": 0}
    if rope_scaling:
        model_config["rope_scaling"] = rope_scaling
    tokenizer_size = write_tokenizer_json(directory / "tokenizer.json", vocab)
    chat_config = {
        "version": "0.1.0", "model_type": arch, "quantization": quantization, "model_config": model_config,
        "vocab_size": vocab, "context_window_size": context, "sliding_window_size": sliding_window,
        "prefill_chunk_size": 32, "attention_sink_size": -1, "tensor_parallel_shards": 1, **SAMPLING,
        "conv_template": conv_template or CHATML_CONV, "pad_token_id": 0, "bos_token_id": BOS_ID,
        "eos_token_id": [EOS_ID, 0], "tokenizer_files": ["tokenizer.json"], **(extra_config or {}),
    }
    (directory / "mlc-chat-config.json").write_text(json.dumps(chat_config, indent=1))

    hparams = LlamaHyperparameters(
        n_layer=n_layer, dim=dim, ffn=ffn, n_head=n_head, n_kv_head=n_kv_head, head_dim=head_dim, rope_dim=head_dim,
        rope_base=10000.0, rms_eps=1e-5, vocab=vocab, arch=gguf_arch, context_length=context,
        sliding_window=max(sliding_window, 0) if arch == "mistral" else 0)
    return TinyMLCModel(directory, arch, quantization, dense, LlamaWeights(hparams, ref), tokenizer_size)
