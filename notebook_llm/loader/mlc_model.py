"""Open a model directory in MLC-LLM's format: its config, tensors (repacked for the GPU), tokenizer and template.

A directory MLC-LLM's `convert_weight` + `gen_config` wrote (what `mlc-ai/*-MLC` repositories hold):

- `mlc-chat-config.json`: `model_type` (llama, mistral, qwen2, qwen3, phi3 are read here),
  `quantization` (q4f16_1, q4f32_1, q0f16, q0f32, and the variants in QUANTIZATIONS),
  `model_config` (the model's shapes: hidden_size, intermediate_size, num_attention_heads,
  num_key_value_heads, head_dim, num_hidden_layers, rms_norm_eps, vocab_size, rope_theta or
  position_embedding_base, rope_scaling, context_window_size, tie_word_embeddings, ...), runtime
  defaults (context_window_size, prefill_chunk_size, sliding_window_size), sampling defaults
  (temperature, top_p, presence_penalty, frequency_penalty, repetition_penalty), `conv_template`
  (loader/conv_template.py) and bos/eos/pad token ids (eos may be a list).
- `tensor-cache.json` (older conversions: `ndarray-cache.json`): {"metadata": {...}, "records":
  [shard, ...]}, a shard being {"dataPath", "format": "raw-shard", "nbytes", "md5sum"?, "records":
  [{"name", "shape", "dtype", "format": "raw" | "f32-to-bf16", "nbytes", "byteOffset"}]}.
  Each shard's size is checked, and its md5sum (when the record has one; WebLLM checks neither)
  the first time one of its tensors is read.
- `tokenizer.json` (+ tokenizer_config.json): a Hugging Face tokenizer (loader/hf_tokenizer.py).

Tensor names are MLC's, which follow Hugging Face's with MLC's fusions (mlc-llm
python/mlc_llm/model/<arch>/<arch>_model.py and _loader.py):

    llama, mistral:  model.embed_tokens, model.layers.{i}.input_layernorm, .self_attn.qkv_proj (q, k, v
                     stacked along the output dim), .self_attn.o_proj, .post_attention_layernorm,
                     .mlp.gate_up_proj (gate, then up), .mlp.down_proj, model.norm, lm_head (untied)
    qwen2, qwen3:    the same, but the fused q, k, v projection is .self_attn.c_attn (with .bias in qwen2);
                     qwen3 adds .self_attn.q_norm and .k_norm (one weight of head_dim per head)
    phi3:            transformer.embd, transformer.h.{i}.ln, .mixer.qkv_proj, .mixer.out_proj,
                     .post_attention_layernorm, .mlp.gate_up_proj, .mlp.down_proj, transformer.norm, lm_head

each matrix being `<name>.weight` (q0*) or `<name>.q_weight` + `<name>.q_scale` (group
quantization, loader/mlc_quant.py). Q and K stay in Hugging Face's row order, so RoPE rotates the
halves of each head (rope_neox), for llama too (GGUF llama files permute those rows instead).

`MLCModelFile` offers the interface the graph reads from a `GGUFModelFile` under llama.cpp's tensor
names (`blk.{i}.attn_qkv.weight`, `token_embd.weight`, ...; see `gguf_names`), so
models/llama.py and loader/architectures.py run it unchanged; the MLC tensors themselves are
`tensor_names()` / `tensor_record(name)` / `array(name)`. RoPE scalings that GGUF files carry as
tensors (Llama 3.x `rope_freqs`, Phi-3 LongRoPE factors) are computed from `rope_scaling`.
Files are memory-mapped and read tensor by tensor; nothing here touches the GPU.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFormatError, ModelNotFoundError
from .architectures import ArchitectureConfig
from .conv_template import ConvTemplate
from .hf_tokenizer import tokenizer_from_json
from .mlc_quant import FLOAT_DTYPES, decode_cache_array, repack_group_q4, repack_plain
from .repack import PackedWeight
from .tokenizer import GGUFTokenizer

CHAT_CONFIG = "mlc-chat-config.json"
TENSOR_CACHES = ("tensor-cache.json", "ndarray-cache.json")  # current name first
TOKENIZER_JSON = "tokenizer.json"


@dataclass(frozen=True)
class Quantization:
    """How an MLC quantization stores matrices: group-quantized or plain, and in which orientation."""

    group_quantized: bool
    kn_layout: bool = False  # q_weight [in / 8, out] for linear layers (the "_0" variants)


# mlc-llm python/mlc_llm/quantization/quantization.py, the int4 group and no-quant entries.
QUANTIZATIONS = {
    "q4f16_1": Quantization(True), "q4f32_1": Quantization(True), "q4bf16_1": Quantization(True),
    "q4f16_2": Quantization(True),  # embedding and lm_head unquantized
    "q4f16_0": Quantization(True, kn_layout=True), "q4bf16_0": Quantization(True, kn_layout=True),
    "q0f16": Quantization(False), "q0f32": Quantization(False), "q0bf16": Quantization(False),
}


@dataclass(frozen=True)
class Names:
    """MLC's module paths of one architecture family (see the module docstring)."""

    embedding: str
    layer: str  # "{i}" is the layer index
    attn_norm: str
    qkv: str
    attn_out: str
    ffn_norm: str
    gate_up: str
    down: str
    output_norm: str
    q_norm: str = "self_attn.q_norm"
    k_norm: str = "self_attn.k_norm"
    lm_head: str = "lm_head"


LLAMA_NAMES = Names("model.embed_tokens", "model.layers.{i}", "input_layernorm", "self_attn.qkv_proj", "self_attn.o_proj",
                    "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj", "model.norm")
QWEN_NAMES = Names("model.embed_tokens", "model.layers.{i}", "input_layernorm", "self_attn.c_attn", "self_attn.o_proj",
                   "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj", "model.norm")
PHI3_NAMES = Names("transformer.embd", "transformer.h.{i}", "ln", "mixer.qkv_proj", "mixer.out_proj",
                   "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj", "transformer.norm")
NAMES = {"llama": LLAMA_NAMES, "mistral": LLAMA_NAMES, "qwen2": QWEN_NAMES, "qwen3": QWEN_NAMES, "phi3": PHI3_NAMES}
# The architecture the graph runs each model_type as (ArchitectureConfig.architecture).
ARCHITECTURE = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3"}
SUPPORTED_MODEL_TYPES = tuple(NAMES)
# Sampling defaults an mlc-chat-config may state, and the ranges a request allows for them.
SAMPLING_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "presence_penalty": (-2.0, 2.0),
                   "frequency_penalty": (-2.0, 2.0), "repetition_penalty": (0.0, 10.0)}
RUNTIME_KEYS = ("context_window_size", "prefill_chunk_size", "sliding_window_size")


@dataclass(frozen=True)
class TensorRecord:
    """One tensor of the cache: where its bytes are and how to read them."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    encoding: str  # the record's "format": "raw" or "f32-to-bf16"
    nbytes: int
    byte_offset: int
    shard: int  # index into MLCModelFile.shards


@dataclass(frozen=True)
class ShardRecord:
    data_path: str
    nbytes: int
    md5sum: str | None


def find_tensor_cache(directory: Path) -> Path:
    """tensor-cache.json, else ndarray-cache.json, in `directory`."""
    for name in TENSOR_CACHES:
        if (directory / name).is_file():
            return directory / name
    raise ModelFormatError(f"{directory}: no {' or '.join(TENSOR_CACHES)}; an MLC model directory has one")


def is_mlc_directory(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CHAT_CONFIG).is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFormatError(f"{path} is not readable JSON: {error}") from error


def _parse_tensor_cache(path: Path) -> tuple[list[ShardRecord], dict[str, TensorRecord]]:
    data = _read_json(path)
    shards, tensors = [], {}
    try:
        for index, shard in enumerate(data["records"]):
            if shard.get("format", "raw-shard") != "raw-shard":
                raise ModelFormatError(f"{path.name}: shard {shard.get('dataPath')!r} has format "
                                       f"{shard.get('format')!r}; 'raw-shard' is supported")
            shards.append(ShardRecord(str(shard["dataPath"]), int(shard["nbytes"]), shard.get("md5sum")))
            for record in shard["records"]:
                tensors[record["name"]] = TensorRecord(
                    str(record["name"]), tuple(int(n) for n in record["shape"]), str(record["dtype"]),
                    str(record.get("format", "raw")), int(record["nbytes"]), int(record["byteOffset"]), index)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFormatError(f"{path.name}: malformed shard or tensor record ({type(error).__name__}: {error})") from error
    return shards, tensors


class MLCModelFile:
    """An MLC-LLM model directory, memory-mapped shard by shard (see the module docstring).

    verify_md5: hash each shard with an md5sum in its record before its first tensor is used
    (one extra read of the weights, usually from the page cache the hash just filled).
    """

    def __init__(self, directory: str | Path, verify_md5: bool = True):
        self.path = Path(directory)
        if not is_mlc_directory(self.path):
            raise ModelNotFoundError(f"{str(self.path)!r} is not an MLC model directory (it has no {CHAT_CONFIG})")
        self.chat_config: dict[str, Any] = _read_json(self.path / CHAT_CONFIG)
        self.model_type = str(self.chat_config.get("model_type"))
        if self.model_type not in NAMES:
            raise ModelFormatError(f"{self.path.name}: model_type {self.model_type!r} is not supported; supported: "
                                   f"{list(SUPPORTED_MODEL_TYPES)}")
        self.quantization_name = str(self.chat_config.get("quantization"))
        if self.quantization_name not in QUANTIZATIONS:
            raise ModelFormatError(f"{self.path.name}: quantization {self.quantization_name!r} is not supported; "
                                   f"supported: {list(QUANTIZATIONS)}")
        self.quantization = QUANTIZATIONS[self.quantization_name]
        self.names = NAMES[self.model_type]
        self.model_config: dict[str, Any] = dict(self.chat_config.get("model_config") or {})
        self.tensor_cache_path = find_tensor_cache(self.path)
        self.shards, self._records = _parse_tensor_cache(self.tensor_cache_path)
        self._maps: dict[int, np.ndarray] = {}
        self._verify_md5 = verify_md5
        self._check_shard_sizes()
        self._tokenizer: GGUFTokenizer | None = None

    def __repr__(self) -> str:
        return f"MLCModelFile({str(self.path)!r}, {self.model_type} {self.quantization_name}, {len(self._records)} tensors)"

    # --- the tensor cache -----------------------------------------------------------------------

    def _check_shard_sizes(self) -> None:
        for shard in self.shards:
            path = self.path / shard.data_path
            if not path.is_file():
                raise ModelFormatError(f"{self.path.name}: shard {shard.data_path!r} is missing")
            size = path.stat().st_size
            if size != shard.nbytes:
                raise ModelFormatError(f"{self.path.name}: shard {shard.data_path!r} has {size} bytes; its record "
                                       f"in {self.tensor_cache_path.name} says {shard.nbytes}")

    def _shard(self, index: int) -> np.ndarray:
        """The shard's bytes as a read-only uint8 view of its memory map, md5-checked on first use."""
        if index not in self._maps:
            shard = self.shards[index]
            path = self.path / shard.data_path
            mapped = np.memmap(path, dtype=np.uint8, mode="r") if shard.nbytes else np.zeros(0, np.uint8)
            if self._verify_md5 and shard.md5sum:
                digest = hashlib.md5()
                for start in range(0, shard.nbytes, 1 << 24):
                    digest.update(mapped[start: start + (1 << 24)])
                if digest.hexdigest() != shard.md5sum:
                    raise ModelFormatError(f"{self.path.name}: shard {shard.data_path!r} has md5 {digest.hexdigest()}; "
                                           f"its record in {self.tensor_cache_path.name} says {shard.md5sum} "
                                           "(a damaged or partial download: delete it and fetch it again)")
            self._maps[index] = mapped.view(np.ndarray)
        return self._maps[index]

    def tensor_names(self) -> list[str]:
        """MLC's tensor names, in the cache's order."""
        return list(self._records)

    def tensor_record(self, name: str) -> TensorRecord:
        record = self._records.get(name)
        if record is None:
            raise ModelFormatError(f"{self.path.name}: tensor {name!r} is missing ({len(self._records)} tensors in "
                                   f"{self.tensor_cache_path.name})")
        return record

    def array(self, name: str) -> np.ndarray:
        """An MLC tensor decoded to its dtype: a view of the mapping for raw storage, float32 for
        bfloat16 and f32-to-bf16 (widened exactly)."""
        record = self.tensor_record(name)
        data = self._shard(record.shard)
        if record.byte_offset + record.nbytes > data.size:
            raise ModelFormatError(f"{self.path.name}: tensor {name!r} ends at byte {record.byte_offset + record.nbytes} "
                                   f"of shard {self.shards[record.shard].data_path!r}, which has {data.size}")
        raw = data[record.byte_offset: record.byte_offset + record.nbytes]
        return decode_cache_array(raw, record.dtype, record.encoding, record.shape, name)

    # --- config ---------------------------------------------------------------------------------

    def metadata(self, key: str, default: Any = None) -> Any:
        """A top-level mlc-chat-config.json value (the ModelFile protocol's metadata)."""
        return self.chat_config.get(key, default)

    @cached_property
    def config(self) -> ArchitectureConfig:
        return read_mlc_config(self)

    @property
    def sampling_defaults(self) -> dict[str, float]:
        """The mlc-chat-config's temperature, top_p and penalties (those it states), checked
        against the ranges a request allows."""
        out = {}
        for key, (low, high) in SAMPLING_RANGES.items():
            value = self.chat_config.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                    or (key in ("top_p", "repetition_penalty") and value == 0):
                raise ModelFormatError(f"{self.path.name}: {CHAT_CONFIG} has {key} = {value!r}; a number in "
                                       f"[{low}, {high}] is allowed" + (" (not 0)" if key in ("top_p", "repetition_penalty") else ""))
            out[key] = float(value)
        return out

    @property
    def runtime_defaults(self) -> dict[str, int]:
        """The mlc-chat-config's context_window_size, prefill_chunk_size and sliding_window_size
        where they are set (−1 and 0 mean "not limited" and are left out)."""
        out = {}
        for key in RUNTIME_KEYS:
            value = self.chat_config.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                out[key] = value
        return out

    # --- tokenizer and conversation template ----------------------------------------------------

    def tokenizer(self) -> GGUFTokenizer:
        """The directory's tokenizer.json with the config's BOS/EOS, and the conversation template's
        stop ids among the stop tokens (built once, then cached)."""
        if self._tokenizer is None:
            path = self.path / TOKENIZER_JSON
            if not path.is_file():
                raise ModelFormatError(f"{self.path.name}: no {TOKENIZER_JSON}; MLC models are supported with a "
                                       "Hugging Face tokenizer.json (tokenizer.model alone is not)")
            cfg = self.config
            conv = self.chat_config.get("conv_template")
            conv_stops = ConvTemplate.from_dict(conv).stop_token_ids if isinstance(conv, dict) else ()
            self._tokenizer = tokenizer_from_json(
                path, vocab_size=cfg.vocab_size, bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                extra_stop_token_ids=[*_token_ids(self.chat_config.get("eos_token_id"))[1:], *conv_stops])
        return self._tokenizer

    def prompt_template(self) -> ConvTemplate | None:
        """The config's conv_template, its system_prefix_token_ids written as their tokens' text
        (checked to tokenize back to exactly those ids); None without a conv_template."""
        conv = self.chat_config.get("conv_template")
        if conv is None:
            return None
        template = ConvTemplate.from_dict(conv)
        prefix_ids = list(template.system_prefix_token_ids)
        if not prefix_ids:
            return template
        tok = self.tokenizer()
        prefix_text = "".join(tok.id_to_token(i) for i in prefix_ids)
        if tok.encode(prefix_text, add_special_tokens=False) != prefix_ids:
            raise ModelFormatError(
                f"{self.path.name}: conv_template.system_prefix_token_ids {prefix_ids} are not special tokens of "
                f"tokenizer.json (their text {prefix_text!r} tokenizes to other ids), so the prompt cannot carry them")
        return ConvTemplate.from_dict(conv, prefix_text=prefix_text)

    # --- tensors under llama.cpp's names (what models/llama.py reads) ---------------------------

    @cached_property
    def gguf_names(self) -> dict[str, tuple[str, Any]]:
        """llama.cpp tensor name → (how to read it, argument): ("matrix", MLC module path),
        ("vector", MLC tensor name), ("bias", (MLC name, first row, rows)), ("computed", array)."""
        n, cfg = self.names, self.config
        table: dict[str, tuple[str, Any]] = {"token_embd.weight": ("matrix", n.embedding),
                                             "output_norm.weight": ("vector", f"{n.output_norm}.weight")}
        if self._has_module(n.lm_head):
            table["output.weight"] = ("matrix", n.lm_head)
        for i in range(cfg.n_layer):
            layer, blk = n.layer.format(i=i), f"blk.{i}."
            table |= {
                blk + "attn_norm.weight": ("vector", f"{layer}.{n.attn_norm}.weight"),
                blk + "attn_qkv.weight": ("matrix", f"{layer}.{n.qkv}"),
                blk + "attn_output.weight": ("matrix", f"{layer}.{n.attn_out}"),
                blk + "ffn_norm.weight": ("vector", f"{layer}.{n.ffn_norm}.weight"),
                blk + "ffn_up.weight": ("matrix", f"{layer}.{n.gate_up}"),  # gate rows, then up rows
                blk + "ffn_down.weight": ("matrix", f"{layer}.{n.down}"),
            }
            bias = f"{layer}.{n.qkv}.bias"
            if bias in self._records:
                for part, start, rows in (("q", 0, cfg.q_dim), ("k", cfg.q_dim, cfg.kv_dim),
                                          ("v", cfg.q_dim + cfg.kv_dim, cfg.kv_dim)):
                    table[f"{blk}attn_{part}.bias"] = ("bias", (bias, start, rows))
            for part, module in (("q", n.q_norm), ("k", n.k_norm)):
                if f"{layer}.{module}.weight" in self._records:
                    table[f"{blk}attn_{part}_norm.weight"] = ("vector", f"{layer}.{module}.weight")
        table |= {name: ("computed", values) for name, values in rope_tensors(self.model_type, self.model_config, cfg).items()}
        return table

    def _has_module(self, module: str) -> bool:
        return f"{module}.weight" in self._records or f"{module}.q_weight" in self._records

    def _entry(self, name: str) -> tuple[str, Any]:
        entry = self.gguf_names.get(name)
        if entry is None:
            raise ModelFormatError(f"{self.path.name}: no tensor for {name!r} in this {self.model_type} model")
        return entry

    def has_tensor(self, name: str) -> bool:
        """Whether the model has the tensor llama.cpp would call `name`."""
        return name in self.gguf_names

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape in GGUF order (the contiguous dimension first: [cols, rows] for a matrix)."""
        kind, source = self._entry(name)
        if kind == "matrix":
            rows, cols = self._matrix_shape(source)
            return (cols, rows)
        if kind == "bias":
            return (source[2],)
        if kind == "computed":
            return tuple(reversed(source.shape))
        return tuple(reversed(self.tensor_record(source).shape))

    def _matrix_shape(self, module: str) -> tuple[int, int]:
        """(rows = out features, cols = in features) of a linear layer or embedding."""
        if f"{module}.weight" in self._records:
            rows, cols = self.tensor_record(f"{module}.weight").shape
            return rows, cols
        rows, words = self.tensor_record(f"{module}.q_weight").shape
        if self.quantization.kn_layout and module != self.names.embedding:
            rows, words = words, rows
        return rows, words * 8

    def packed(self, name: str) -> PackedWeight:
        """A matrix repacked into its GPU layout (mlc_quant: exact for every supported encoding)."""
        kind, module = self._entry(name)
        if kind != "matrix":
            raise ModelFormatError(f"{self.path.name}: {name!r} is not a matrix; use vector()")
        if f"{module}.weight" in self._records:
            return repack_plain(self._float_array(f"{module}.weight"), f"{module}.weight")
        q_weight, q_scale = self.array(f"{module}.q_weight"), self._float_array(f"{module}.q_scale")
        if self.quantization.kn_layout and module != self.names.embedding:
            q_weight, q_scale = q_weight.T, q_scale.T  # [in / 8, out] → [out, in / 8]
        rows, cols = q_weight.shape[0], q_weight.shape[1] * 8
        return repack_group_q4(q_weight, q_scale, rows, cols, module)

    def _float_array(self, name: str) -> np.ndarray:
        record = self.tensor_record(name)
        if record.dtype not in FLOAT_DTYPES:
            raise ModelFormatError(f"{self.path.name}: tensor {name!r} has dtype {record.dtype!r}; a float dtype "
                                   f"({', '.join(FLOAT_DTYPES)}) is expected")
        return self.array(name)

    def vector(self, name: str) -> np.ndarray:
        """A 1-D tensor (norm weights, biases, RoPE factors) as a float32 copy."""
        kind, source = self._entry(name)
        if kind == "computed":
            return np.asarray(source, np.float32).copy()
        if kind == "bias":
            bias, start, rows = source
            values = self._float_array(bias)
            if values.shape != (self.config.qkv_dim,):
                raise ModelFormatError(f"{self.path.name}: {bias!r} has shape {list(values.shape)}, not "
                                       f"[{self.config.qkv_dim}] (q, k and v biases)")
            return np.asarray(values[start: start + rows], np.float32).copy()
        if kind != "vector":
            raise ModelFormatError(f"{self.path.name}: {name!r} is a matrix; use packed()")
        values = self._float_array(source)
        if values.ndim != 1:
            raise ModelFormatError(f"{self.path.name}: {source!r} has shape {list(values.shape)}; a vector is expected")
        return np.asarray(values, np.float32).copy()


# --- mlc-chat-config → ArchitectureConfig -------------------------------------------------------


def _token_ids(value: Any) -> list[int]:
    """A config token id given as an int, a list of ints, or nothing."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [int(v) for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0]


def _positive(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def read_mlc_config(f: MLCModelFile) -> ArchitectureConfig:
    """The model's ArchitectureConfig from mlc-chat-config.json (and which tensors exist);
    ModelFormatError for a variant the graph does not run."""
    mc, chat, name = f.model_config, f.chat_config, f.path.name

    def need(key: str) -> Any:
        if key not in mc:
            raise ModelFormatError(f"{name}: model_config.{key} is missing; a {f.model_type} config has it")
        return mc[key]

    dim, n_head, n_layer = int(need("hidden_size")), int(need("num_attention_heads")), int(need("num_hidden_layers"))
    n_kv_head = _positive(mc.get("num_key_value_heads")) or n_head
    head_dim = _positive(mc.get("head_dim")) or dim // n_head
    activation = mc.get("hidden_act", "silu")
    if activation not in ("silu", "swish"):
        raise ModelFormatError(f"{name}: model_config.hidden_act is {activation!r}; 'silu' (SwiGLU) is supported")
    if mc.get("attention_bias"):  # qwen3: the o_proj bias has no place in the graph
        raise ModelFormatError(f"{name}: model_config.attention_bias is true; projections without bias are supported")
    sliding_window = _positive(chat.get("sliding_window_size"), mc.get("sliding_window_size")) or 0
    context = _positive(mc.get("context_window_size"), mc.get("max_position_embeddings"), chat.get("context_window_size"))
    if context is None:
        if not sliding_window:
            raise ModelFormatError(f"{name}: no context_window_size in model_config or the chat config")
        context = 32768  # a sliding-window model (Mistral) runs any length; the KV cache is the limit
    eos = _token_ids(chat.get("eos_token_id"))
    bos = _token_ids(chat.get("bos_token_id"))
    embedding = f.names.embedding
    rows_key = f"{embedding}.weight" if f"{embedding}.weight" in f._records else f"{embedding}.q_weight"
    vocab = int(f.tensor_record(rows_key).shape[0])
    rope_dim = int(head_dim * float(mc.get("partial_rotary_factor", 1.0)))
    layer0 = f.names.layer.format(i=0)
    original = _positive(mc.get("original_max_position_embeddings")) if f.model_type == "phi3" else None
    return ArchitectureConfig(
        architecture=ARCHITECTURE[f.model_type],
        name=f.path.name,
        n_layer=n_layer,
        dim=dim,
        ffn_dim=int(need("intermediate_size")),
        n_head=n_head,
        n_kv_head=n_kv_head,
        head_dim=head_dim,
        rope_dim=rope_dim,
        rope_freq_base=float(mc.get("rope_theta") or mc.get("position_embedding_base") or 10000.0),
        rms_eps=float(need("rms_norm_eps")),
        context_length=context,
        vocab_size=vocab,
        tied_embeddings=not f._has_module(f.names.lm_head),
        bos_token_id=bos[0] if bos else None,
        eos_token_id=eos[0] if eos else None,
        rope_neox=True,  # Hugging Face's q/k row order: RoPE rotates each head's two halves
        rope_attn_factor=_longrope_attn_factor(mc) if f.model_type == "phi3" and mc.get("rope_scaling") else 1.0,
        rope_original_context_length=original if mc.get("rope_scaling") else None,
        sliding_window=sliding_window,
        qkv_bias=f"{layer0}.{f.names.qkv}.bias" in f._records,
        qk_norm=f"{layer0}.{f.names.q_norm}.weight" in f._records,
    )


def _longrope_attn_factor(mc: dict[str, Any]) -> float:
    """Phi-3 LongRoPE's cos/sin magnitude, sqrt(1 + ln(s) / ln(original)) with s = max / original
    positions (transformers' Phi3 rotary embedding, the factor GGUF files carry as attn_factor)."""
    original = _positive(mc.get("original_max_position_embeddings"))
    longest = _positive(mc.get("max_position_embeddings"))
    if not original or not longest or longest <= original:
        return 1.0
    return math.sqrt(1 + math.log(longest / original) / math.log(original))


def rope_tensors(model_type: str, mc: dict[str, Any], cfg: ArchitectureConfig) -> dict[str, np.ndarray]:
    """RoPE frequency divisors under their GGUF tensor names, from model_config.rope_scaling:
    Llama 3.x's "llama3" scaling as rope_freqs.weight, Phi-3's LongRoPE long/short factors."""
    scaling = mc.get("rope_scaling")
    if not scaling:
        return {}
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind is None:  # MLC drops a rope_scaling without a type (llama_model.py)
        return {}
    if model_type in ("llama", "mistral") and kind == "llama3":
        return {"rope_freqs.weight": llama3_frequency_divisors(cfg.rope_dim, cfg.rope_freq_base, scaling)}
    if model_type == "phi3" and kind in ("longrope", "su"):
        factors = {"long": scaling.get("long_factor"), "short": scaling.get("short_factor")}
        for which, values in factors.items():
            if not isinstance(values, list) or len(values) != cfg.rope_dim // 2:
                raise ModelFormatError(f"rope_scaling.{which}_factor must list rope_dim / 2 = {cfg.rope_dim // 2} "
                                       f"numbers, got {values!r}")
        if cfg.rope_original_context_length is None:
            raise ModelFormatError("LongRoPE needs model_config.original_max_position_embeddings")
        return {f"rope_factors_{which}.weight": np.asarray(values, np.float32) for which, values in factors.items()}
    raise ModelFormatError(f"rope_scaling {scaling!r} is not supported for {model_type}; supported: llama3 "
                           "(llama), longrope (phi3)")


def llama3_frequency_divisors(rope_dim: int, base: float, scaling: dict[str, Any]) -> np.ndarray:
    """Divisors of each RoPE frequency for Llama 3.1's "llama3" scaling: 1 for wavelengths below
    original / high_freq_factor, `factor` above original / low_freq_factor, and between them the
    inverse of the linear blend (1 − smooth) / factor + smooth, smooth = (original / wavelength −
    low) / (high − low) — Meta's apply_scaling, as a divisor like GGUF's rope_freqs."""
    try:
        factor = float(scaling["factor"])
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        original = float(scaling["original_max_position_embeddings"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFormatError(f"rope_scaling {scaling!r}: the llama3 scaling needs factor, low_freq_factor, "
                               "high_freq_factor and original_max_position_embeddings") from error
    divisors = []
    for i in range(rope_dim // 2):
        wavelength = 2 * math.pi * base ** (2 * i / rope_dim)
        if wavelength < original / high:
            divisors.append(1.0)
        elif wavelength > original / low:
            divisors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(divisors, np.float32)
