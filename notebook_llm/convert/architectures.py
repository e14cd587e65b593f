"""Per architecture: the `model_config` MLC-LLM derives from a Hugging Face config.json, and which
Hugging Face tensors make each MLC parameter.

From mlc-llm's python/mlc_llm/model/<arch>/<arch>_model.py (the config dataclasses and their
`__post_init__`) and <arch>_loader.py (the fusions):

- model_config holds the fields of MLC's config class for the architecture, taken from
  config.json or defaulted, after MLC's derivations: `position_embedding_base` from rope_theta
  (llama, mistral, phi3), `context_window_size` from max_position_embeddings, `num_key_value_heads`
  and `head_dim` from the head count, `prefill_chunk_size` = min(context, 8192) (2048 for Qwen),
  Mistral's `sliding_window_size` from sliding_window. Overrides (`--context-window-size`, ...)
  are applied to those fields and the derivations run again, as MLC's ConfigOverride does; a
  field the architecture lacks is refused here (MLC ignores it with a warning).
- Parameters, in MLC's module order, each a concatenation along the output dimension of
  Hugging Face tensors: q, k, v → `self_attn.qkv_proj` (Qwen's `self_attn.c_attn`, with the
  biases likewise), gate, up → `mlp.gate_up_proj`; Phi-3's checkpoints are fused already and
  only renamed (`model.` → `transformer.`, `layers` → `h`, `self_attn` → `mixer`). A tied
  embedding has no lm_head (Mistral always has one).

Owns names and shapes only; nothing here reads tensors or touches the GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidRequestError, ModelFormatError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3")
_REQUIRED = object()

# MLC's config class fields, in order, with their defaults (_REQUIRED: config.json must have it).
_FIELDS: dict[str, dict[str, Any]] = {
    "llama": {"hidden_size": _REQUIRED, "intermediate_size": _REQUIRED, "num_attention_heads": _REQUIRED,
              "num_hidden_layers": _REQUIRED, "rms_norm_eps": _REQUIRED, "vocab_size": _REQUIRED,
              "tie_word_embeddings": False, "position_embedding_base": 0, "rope_scaling": None,
              "context_window_size": 0, "prefill_chunk_size": 0, "num_key_value_heads": 0, "head_dim": 0,
              "tensor_parallel_shards": 1, "pipeline_parallel_stages": 1, "max_batch_size": 1,
              "disaggregation": False},
    "mistral": {"hidden_size": _REQUIRED, "intermediate_size": _REQUIRED, "num_attention_heads": _REQUIRED,
                "num_hidden_layers": _REQUIRED, "rms_norm_eps": _REQUIRED, "vocab_size": _REQUIRED,
                "position_embedding_base": 0, "num_key_value_heads": 0, "head_dim": 0, "context_window_size": 0,
                "sliding_window_size": 0, "prefill_chunk_size": 0, "attention_sink_size": 4,
                "tensor_parallel_shards": 1, "max_batch_size": 1},
    "qwen2": {"hidden_act": _REQUIRED, "hidden_size": _REQUIRED, "intermediate_size": _REQUIRED,
              "num_attention_heads": _REQUIRED, "num_hidden_layers": _REQUIRED, "num_key_value_heads": _REQUIRED,
              "rms_norm_eps": _REQUIRED, "rope_theta": _REQUIRED, "vocab_size": _REQUIRED,
              "tie_word_embeddings": False, "context_window_size": 0, "prefill_chunk_size": 0,
              "tensor_parallel_shards": 1, "head_dim": 0, "dtype": "float32", "max_batch_size": 1},
    "qwen3": {"hidden_act": _REQUIRED, "hidden_size": _REQUIRED, "intermediate_size": _REQUIRED,
              "attention_bias": _REQUIRED, "num_attention_heads": _REQUIRED, "num_hidden_layers": _REQUIRED,
              "num_key_value_heads": _REQUIRED, "rms_norm_eps": _REQUIRED, "rope_theta": _REQUIRED,
              "vocab_size": _REQUIRED, "tie_word_embeddings": False, "context_window_size": 0,
              "prefill_chunk_size": 0, "tensor_parallel_shards": 1, "head_dim": 0, "dtype": "float32",
              "max_batch_size": 1, "weight_block_size": None},
    "phi3": {"model_type": _REQUIRED, "hidden_size": _REQUIRED, "vocab_size": _REQUIRED,
             "num_hidden_layers": _REQUIRED, "num_attention_heads": _REQUIRED, "intermediate_size": _REQUIRED,
             "rms_norm_eps": _REQUIRED, "num_key_value_heads": _REQUIRED, "max_position_embeddings": _REQUIRED,
             "position_embedding_base": 0, "rope_scaling": None, "original_max_position_embeddings": 0,
             "context_window_size": 0, "prefill_chunk_size": 0, "head_dim": 0, "tensor_parallel_shards": 1,
             "max_batch_size": 1, "tie_word_embeddings": False, "partial_rotary_factor": 1.0},
}
_PREFILL_CAP = {"llama": 8192, "mistral": 8192, "phi3": 8192, "qwen2": 2048, "qwen3": 2048}
OVERRIDE_FIELDS = ("context_window_size", "prefill_chunk_size", "sliding_window_size", "attention_sink_size",
                   "max_batch_size")


def detect_model_type(hf_config: Mapping[str, Any]) -> str:
    """config.json's model_type, checked against the architectures converted here."""
    model_type = hf_config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        architectures = hf_config.get("architectures")
        raise ModelFormatError(f"config.json has model_type {model_type!r} (architectures {architectures!r}); "
                               f"supported: {list(SUPPORTED_MODEL_TYPES)}")
    return model_type


def model_config(model_type: str, hf_config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """MLC's model_config for a config.json (module docstring), with `overrides` applied."""
    fields = _FIELDS[model_type]
    values, kwargs = {}, {}
    for key, value in hf_config.items():
        (values if key in fields and key != "kwargs" else kwargs)[key] = value
    missing = [key for key, default in fields.items() if default is _REQUIRED and key not in values]
    if missing:
        raise ModelFormatError(f"config.json lacks {missing}; a {model_type} config has them")
    config = _derive(model_type, {key: values.get(key, default) for key, default in fields.items()}, kwargs)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in config:
            having = [t for t in SUPPORTED_MODEL_TYPES if key in _FIELDS[t]]
            raise InvalidRequestError(f"{key} cannot be set for {model_type}: MLC's {model_type} model has no such "
                                      f"field (architectures that have it: {having})", param=key)
        config[key] = value
    return _derive(model_type, config, {}) if overrides else config


def _derive(model_type: str, c: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The derivations of MLC's `__post_init__` for the architecture (module docstring)."""
    c = dict(c)
    if "position_embedding_base" in c and c["position_embedding_base"] == 0:
        c["position_embedding_base"] = kwargs.pop("rope_theta", 10000)
    if model_type == "llama" and c["rope_scaling"] is not None:
        if "rope_type" not in c["rope_scaling"]:
            c["rope_scaling"] = None
        elif c["rope_scaling"]["rope_type"] != "llama3":
            raise ModelFormatError(f"rope_scaling {c['rope_scaling']!r}: MLC's llama supports rope_type 'llama3'")
    if model_type == "phi3":
        _derive_phi3_rope(c)
    if model_type == "mistral":
        if c["sliding_window_size"] == 0:
            c["sliding_window_size"] = kwargs.pop("sliding_window", -1)
        if c["sliding_window_size"] is None:
            c["sliding_window_size"] = -1
    if c["context_window_size"] == 0:
        if model_type == "phi3":
            c["context_window_size"] = c["max_position_embeddings"]
        elif model_type == "mistral" and c["sliding_window_size"] != -1:
            c["context_window_size"] = -1
        else:
            for name in ("max_position_embeddings", "max_sequence_length"):
                if name in kwargs:
                    c["context_window_size"] = kwargs.pop(name)
                    break
            else:
                raise ModelFormatError("config.json has none of context_window_size, max_position_embeddings or "
                                       "max_sequence_length; give --context-window-size")
    if "num_key_value_heads" in c and not c["num_key_value_heads"]:
        c["num_key_value_heads"] = c["num_attention_heads"]
    if not c["head_dim"]:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    if c["num_attention_heads"] % c["num_key_value_heads"]:
        raise ModelFormatError(f"num_attention_heads {c['num_attention_heads']} is not a multiple of "
                               f"num_key_value_heads {c['num_key_value_heads']}")
    cap = _PREFILL_CAP[model_type]
    if model_type == "mistral":
        if c["prefill_chunk_size"] == 0:
            windows = [w for w in (c["sliding_window_size"], c["context_window_size"]) if w != -1]
            c["prefill_chunk_size"] = min(*windows, cap)
    elif c["prefill_chunk_size"] == 0 or c["prefill_chunk_size"] > c["context_window_size"]:
        c["prefill_chunk_size"] = min(c["context_window_size"], cap)
    return c


def _derive_phi3_rope(c: dict[str, Any]) -> None:
    scaling = c["rope_scaling"]
    if scaling is None:
        return
    if "type" not in scaling:
        c["rope_scaling"] = None
        return
    scaling = dict(scaling)
    if scaling["type"] == "su":
        scaling["type"] = "longrope"
    if scaling["type"] != "longrope":
        raise ModelFormatError(f"rope_scaling {scaling!r}: MLC's phi3 supports type 'longrope' (or 'su')")
    scaling |= {"rope_type": scaling["type"], "max_position_embeddings": c["max_position_embeddings"],
                "original_max_position_embeddings": c["original_max_position_embeddings"]}
    c["rope_scaling"] = scaling


# --- parameters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One MLC parameter and the Hugging Face tensors it is made of."""

    name: str  # a module path for matrices ("model.layers.0.self_attn.qkv_proj"), a tensor name for vectors
    sources: tuple[str, ...]  # concatenated along the first axis
    shape: tuple[int, ...]
    kind: Literal["linear", "embedding", "vector"]

    @property
    def is_matrix(self) -> bool:
        return self.kind != "vector"


def parameters(model_type: str, mc: Mapping[str, Any], hf_config: Mapping[str, Any],
               has_tensor=lambda name: True) -> list[Param]:
    """The MLC parameters of a model, in MLC's module order. `has_tensor` tells which Hugging
    Face tensors exist (a Mistral lm_head falls back to the embedding when the file ties them)."""
    if model_type == "llama" and (hf_config.get("attention_bias") or hf_config.get("mlp_bias")):
        raise ModelFormatError("config.json sets attention_bias or mlp_bias; MLC's llama has no biases")
    dim, ffn, vocab = mc["hidden_size"], mc["intermediate_size"], mc["vocab_size"]
    head_dim, n_head, n_kv = mc["head_dim"], mc["num_attention_heads"], mc["num_key_value_heads"]
    q, kv = n_head * head_dim, n_kv * head_dim
    phi3 = model_type == "phi3"
    qwen = model_type in ("qwen2", "qwen3")
    embedding = "transformer.embd" if phi3 else "model.embed_tokens"
    params = [Param(embedding, ("model.embed_tokens.weight",), (vocab, dim), "embedding")]
    for i in range(mc["num_hidden_layers"]):
        hf, mlc = f"model.layers.{i}.", f"transformer.h.{i}." if phi3 else f"model.layers.{i}."
        attn = "mixer." if phi3 else "self_attn."
        qkv = f"{mlc}self_attn.c_attn" if qwen else f"{mlc}{attn}qkv_proj"
        out = f"{mlc}{attn}{'out_proj' if phi3 else 'o_proj'}"
        qkv_sources = (f"{hf}self_attn.qkv_proj.weight",) if phi3 else \
            tuple(f"{hf}self_attn.{x}_proj.weight" for x in "qkv")
        params.append(Param(qkv, qkv_sources, (q + 2 * kv, dim), "linear"))
        bias = model_type == "qwen2" or (model_type == "qwen3" and mc["attention_bias"])
        if bias:
            params.append(Param(f"{qkv}.bias", tuple(f"{hf}self_attn.{x}_proj.bias" for x in "qkv"), (q + 2 * kv,),
                                "vector"))
        params.append(Param(out, (f"{hf}self_attn.o_proj.weight",), (dim, q), "linear"))
        if model_type == "qwen3" and mc["attention_bias"]:
            params.append(Param(f"{out}.bias", (f"{hf}self_attn.o_proj.bias",), (dim,), "vector"))
        if model_type == "qwen3":
            params += [Param(f"{mlc}self_attn.{x}_norm.weight", (f"{hf}self_attn.{x}_norm.weight",), (head_dim,),
                             "vector") for x in "qk"]
        gate_up_sources = (f"{hf}mlp.gate_up_proj.weight",) if phi3 else \
            (f"{hf}mlp.gate_proj.weight", f"{hf}mlp.up_proj.weight")
        params += [
            Param(f"{mlc}mlp.gate_up_proj", gate_up_sources, (2 * ffn, dim), "linear"),
            Param(f"{mlc}mlp.down_proj", (f"{hf}mlp.down_proj.weight",), (dim, ffn), "linear"),
            Param(f"{mlc}{'ln' if phi3 else 'input_layernorm'}.weight", (f"{hf}input_layernorm.weight",), (dim,),
                  "vector"),
            Param(f"{mlc}post_attention_layernorm.weight", (f"{hf}post_attention_layernorm.weight",), (dim,),
                  "vector"),
        ]
    params.append(Param("transformer.norm.weight" if phi3 else "model.norm.weight", ("model.norm.weight",), (dim,),
                        "vector"))
    if model_type == "mistral" or not mc["tie_word_embeddings"]:
        source = "lm_head.weight" if has_tensor("lm_head.weight") or model_type != "mistral" else "model.embed_tokens.weight"
        params.append(Param("lm_head", (source,), (vocab, dim), "linear"))
    return params
