"""Convert a Hugging Face model directory's weights into MLC-LLM's format, tensor by tensor.

`convert_weights` walks the MLC parameters of the architecture (convert/architectures.py),
builds each from its Hugging Face tensors (memory-mapped, fused along the output dimension),
casts it to the quantization's model dtype, quantizes matrices (convert/quantize.py) and appends
the result to the tensor cache (convert/tensor_cache.py). One parameter is in memory at a time
besides the open shard (≤ 32 MiB), so a model is never held twice. `convert_model` does that and
writes mlc-chat-config.json with the tokenizer files (convert/gen_config.py): a directory that
`notebook_llm.create_engine(path)` and loader/mlc_model.py open.

Never touches the GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidRequestError, ModelFormatError
from .architectures import detect_model_type, model_config, parameters
from .gen_config import ChatConfigResult, generate_chat_config
from .hf_checkpoint import HFCheckpoint
from .quantize import group_quantize, quantization, to_model_dtype
from .tensor_cache import (
    DEFAULT_SHARD_MB,
    SHARD_PREFIX,
    TENSOR_CACHE_FILE,
    TensorCacheWriter,
)

ProgressCallback = Callable[[int, int, str], None]  # (done, total, parameter name)


@dataclass(frozen=True)
class ConvertedWeights:
    """What convert_weights wrote."""

    path: Path  # tensor-cache.json
    model_type: str
    quantization: str
    tensors: int
    shards: int
    source_parameters: int  # weights read from the checkpoint
    stored_bytes: int  # bytes of the shards on disk
    seconds: float


def convert_weights(hf_dir: str | Path, quantization_name: str, output: str | Path, *,
                    shard_mb: float = DEFAULT_SHARD_MB, float32_storage: str = "bf16",
                    progress: ProgressCallback | None = None) -> ConvertedWeights:
    """Write the tensor cache of the model in `hf_dir` quantized as `quantization_name` into
    `output`. float32_storage: "bf16" (MLC's f32-to-bf16, the default) or "raw" (exact float32)."""
    t0 = time.perf_counter()
    quant = quantization(quantization_name)
    checkpoint = HFCheckpoint(hf_dir)
    model_type = detect_model_type(checkpoint.config)
    mc = model_config(model_type, checkpoint.config)
    plan = parameters(model_type, mc, checkpoint.config, checkpoint.has)
    missing = [s for p in plan for s in p.sources if not checkpoint.has(s)]
    if missing:
        raise ModelFormatError(f"{checkpoint.path.name}: {len(missing)} tensor(s) a {model_type} model needs are "
                               f"missing from the *.safetensors files, e.g. {missing[:3]}")
    writer = TensorCacheWriter(output, shard_mb, float32_storage)
    source_parameters = 0
    for index, param in enumerate(plan):
        parts = [checkpoint.read(source) for source in param.sources]
        values = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if values.shape != param.shape:
            raise ModelFormatError(f"{checkpoint.path.name}: {' + '.join(param.sources)} make shape "
                                   f"{list(values.shape)}; {param.name} needs {list(param.shape)} (config.json's "
                                   "sizes)")
        source_parameters += values.size
        values = to_model_dtype(values, quant.model_dtype)
        if param.is_matrix and quant.group_quantized:
            q_weight, q_scale = group_quantize(values, param.name)
            writer.add(f"{param.name}.q_weight", q_weight)
            writer.add(f"{param.name}.q_scale", q_scale)
        else:
            writer.add(f"{param.name}.weight" if param.is_matrix else param.name, values)
        del parts, values
        if progress is not None:
            progress(index + 1, len(plan), param.name)
    path = writer.finish(source_parameters)
    checkpoint.close()
    stored = sum(shard["nbytes"] for shard in writer.shards)
    return ConvertedWeights(path, model_type, quant.name, writer.tensor_count, len(writer.shards), source_parameters,
                            stored, time.perf_counter() - t0)


def _old_conversion(output: Path) -> list[Path]:
    """The tensor cache and shards of a model already converted into `output`."""
    if not output.is_dir():
        return []
    return [path for path in [output / TENSOR_CACHE_FILE, *sorted(output.glob(f"{SHARD_PREFIX}_*.bin"))]
            if path.exists()]


def convert_model(hf_dir: str | Path, quantization_name: str, output: str | Path, *,
                  conv_template_name: str | None = None, overrides: Mapping[str, Any] | None = None,
                  shard_mb: float = DEFAULT_SHARD_MB, float32_storage: str = "bf16", overwrite: bool = False,
                  progress: ProgressCallback | None = None) -> tuple[ConvertedWeights, ChatConfigResult]:
    """The whole MLC model directory: mlc-chat-config.json and tokenizer files first (so bad
    arguments fail before any weight is written), then the weights. A folder that already holds
    a converted model is refused unless `overwrite` (its old shards are then removed: a
    conversion into fewer shards would leave stale ones)."""
    output = Path(output).expanduser()
    old = _old_conversion(output)
    if old and not overwrite:
        raise InvalidRequestError(f"{str(output)!r} already holds a converted model ({old[0].name}); choose another "
                                  "folder or overwrite it", param="output")
    chat = generate_chat_config(hf_dir, quantization_name, output, conv_template_name=conv_template_name,
                                overrides=overrides)
    for path in old:
        path.unlink()
    weights = convert_weights(hf_dir, quantization_name, output, shard_mb=shard_mb, float32_storage=float32_storage,
                              progress=progress)
    return weights, chat
