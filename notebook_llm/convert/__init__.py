"""Bring your own model: Hugging Face directories converted into MLC-LLM's format, offline.

    notebook-llm convert HF_DIR --quantization q4f16_1 -o OUT      # weights + mlc-chat-config.json
    notebook-llm gen-config HF_DIR --quantization q4f16_1 --conv-template chatml -o OUT

`convert_model` / `convert_weights` / `generate_chat_config` are the same steps from Python; the
result loads with `create_engine("OUT")` or a `ModelRecord(model="OUT", model_lib="llama-q4f16_1", ...)`.
What is written follows mlc-llm's `convert_weight` and `gen_config` (see each module's docstring):

    hf_checkpoint   config.json and *.safetensors (bf16 included), memory-mapped tensor by tensor
    architectures   MLC's model_config and the q/k/v and gate/up fusions per architecture
    quantize        MLC's group quantization (q4f16_1, q4f32_1) and bf16 storage of float32
    tensor_cache    params_shard_*.bin + tensor-cache.json
    conv_templates  MLC's named conversation templates
    gen_config      mlc-chat-config.json and the tokenizer files
    weights         the conversion itself
    from_gguf       a llama GGUF written back as a Hugging Face directory (tests, tutorial)
    cli             the two subcommands of `notebook-llm`

This package reads and writes files only: it never imports wgpu or the engine.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names and their modules, imported on first use so that `notebook-llm --help` (which
# imports convert.cli) loads no numpy, gguf or tokenizers.
_EXPORTS = {
    "SUPPORTED_MODEL_TYPES": "architectures", "CONV_TEMPLATE_NAMES": "conv_templates", "conv_template": "conv_templates",
    "gguf_to_hf": "from_gguf", "ChatConfigResult": "gen_config", "generate_chat_config": "gen_config",
    "QUANTIZATIONS": "quantize", "ConvertedWeights": "weights", "convert_model": "weights",
    "convert_weights": "weights",
}
__all__ = ["CONV_TEMPLATE_NAMES", "QUANTIZATIONS", "SUPPORTED_MODEL_TYPES", "ChatConfigResult", "ConvertedWeights",
           "conv_template", "convert_model", "convert_weights", "generate_chat_config", "gguf_to_hf"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
