"""Write MLC-LLM's tensor cache: `params_shard_{n}.bin` files and their index `tensor-cache.json`.

What TVM's `tvmjs.dump_tensor_cache` writes for `mlc_llm convert_weight` (python/tvm/contrib/tvmjs.py),
and what loader/mlc_model.py reads:

    tensor-cache.json  {"metadata": {"ParamSize", "ParamBytes", "BitsPerParam"},
                        "records": [{"dataPath": "params_shard_0.bin", "format": "raw-shard", "nbytes",
                                     "md5sum", "records": [{"name", "shape", "dtype", "format",
                                                            "nbytes", "byteOffset"}, ...]}, ...]}

- Tensors are appended in order to the current shard; one that would bring the shard to the cap
  (32 MiB) closes it first, except that a tensor of at least half the cap goes alone into a shard
  of its own ("out of band") while the pending shard stays open.
- float32 tensors are stored as bfloat16 with record format "f32-to-bf16" (the dtype stays
  "float32"); `float32_storage="raw"` keeps them as float32 ("raw"), which tvmjs also writes and
  every MLC/WebLLM reader reads. tvmjs labels *every* record with the cache's encoding, uint32 and
  float16 ones included (readers pass those through); records here say "raw" for them, the
  encoding their bytes actually have, which the same readers accept.
- Every shard record carries the md5sum of its file.

Owns the file layout only; the numbers come from convert/quantize.py. Never touches the GPU.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .quantize import f32_to_bf16_bits

TENSOR_CACHE_FILE = "tensor-cache.json"
SHARD_PREFIX = "params_shard"
DEFAULT_SHARD_MB = 32
FLOAT32_STORAGES = ("bf16", "raw")
_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.uint32): "uint32"}


class TensorCacheWriter:
    """Appends tensors to shards in `directory`; `finish()` writes tensor-cache.json.

    At most one shard's bytes (the cap) are held in memory besides the tensor being added."""

    def __init__(self, directory: str | Path, shard_mb: float = DEFAULT_SHARD_MB, float32_storage: str = "bf16"):
        if float32_storage not in FLOAT32_STORAGES:
            raise ValueError(f"float32_storage is {float32_storage!r}; one of {FLOAT32_STORAGES} is allowed")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_cap = int(shard_mb * (1 << 20))
        self.float32_storage = float32_storage
        self.shards: list[dict[str, Any]] = []
        self._pending = bytearray()
        self._pending_records: list[dict[str, Any]] = []
        self._names: set[str] = set()
        self.param_bytes = 0  # bytes of the tensors in their dtypes, before bf16 storage (tvmjs' ParamBytes)

    @property
    def tensor_count(self) -> int:
        return len(self._names)

    def add(self, name: str, values: np.ndarray) -> None:
        """Store one float32, float16 or uint32 tensor under `name`."""
        if name in self._names:
            raise ValueError(f"tensor {name!r} is already in the cache")
        dtype = _DTYPE_NAMES.get(values.dtype)
        if dtype is None:
            raise ValueError(f"tensor {name!r} has dtype {values.dtype}; float32, float16 or uint32 is stored")
        self._names.add(name)
        self.param_bytes += values.nbytes
        if dtype == "float32" and self.float32_storage == "bf16":
            data, encoding = f32_to_bf16_bits(values).tobytes(), "f32-to-bf16"
        else:
            data, encoding = np.ascontiguousarray(values).tobytes(), "raw"
        record = {"name": name, "shape": [int(n) for n in values.shape], "dtype": dtype, "format": encoding,
                  "nbytes": len(data)}
        if len(self._pending) + len(data) >= self.shard_cap:
            if 2 * len(data) >= self.shard_cap:  # out of band: a shard of its own
                self._write_shard(data, [record | {"byteOffset": 0}])
                return
            self._commit()
        self._pending_records.append(record | {"byteOffset": len(self._pending)})
        self._pending += data

    def _commit(self) -> None:
        if self._pending:
            self._write_shard(bytes(self._pending), self._pending_records)
            self._pending, self._pending_records = bytearray(), []

    def _write_shard(self, data: bytes, records: list[dict[str, Any]]) -> None:
        path = f"{SHARD_PREFIX}_{len(self.shards)}.bin"
        (self.directory / path).write_bytes(data)
        self.shards.append({"dataPath": path, "format": "raw-shard", "nbytes": len(data), "records": records,
                            "md5sum": hashlib.md5(data).hexdigest()})

    def finish(self, total_parameters: int) -> Path:
        """Write the last shard and tensor-cache.json; `total_parameters` counts the source
        model's weights (for BitsPerParam). Returns the JSON's path."""
        self._commit()
        metadata = {"ParamSize": len(self._names), "ParamBytes": float(self.param_bytes),
                    "BitsPerParam": self.param_bytes * 8.0 / total_parameters if total_parameters else 0.0}
        path = self.directory / TENSOR_CACHE_FILE
        path.write_text(json.dumps({"metadata": metadata, "records": self.shards}, indent=4), encoding="utf-8")
        return path
