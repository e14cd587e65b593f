"""A Hugging Face model directory: `config.json`, `generation_config.json` and the tensors of its
`*.safetensors` files, memory-mapped and read one tensor at a time.

The safetensors format (huggingface/safetensors, docs/safetensors.md): a little-endian uint64 N,
N bytes of JSON {tensor name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"?},
then the data, offsets counted from the end of the header, C order, little-endian. The
`safetensors` package's numpy API cannot return bfloat16 (numpy has no such dtype), the dtype
most checkpoints are published in, so the header is read here and each tensor is a view of the
file's memory map: float32 and float16 as they are, bfloat16 widened exactly to float32.
`write_safetensors` writes the same format (tests/test_convert.py reads its files back with the
`safetensors` package).

Owns reading and writing these files; nothing here quantizes or touches the GPU.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFormatError, ModelNotFoundError

CONFIG_FILE = "config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
_FLOAT_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}
_HEADER_LIMIT = 100 << 20  # the format's own bound on the header's size


@dataclass(frozen=True)
class TensorEntry:
    path: Path
    dtype: str  # safetensors' name: "BF16", "F16", "F32", ...
    shape: tuple[int, ...]
    begin: int  # absolute byte offsets in the file
    end: int


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelFormatError(f"{path} is not a readable JSON file ({what}): {error}") from error
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path} holds {type(data).__name__}; a JSON object is expected ({what})")
    return data


def _read_header(path: Path) -> dict[str, TensorEntry]:
    with path.open("rb") as file:
        head = file.read(8)
        if len(head) != 8:
            raise ModelFormatError(f"{path.name} is not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        if length > _HEADER_LIMIT:
            raise ModelFormatError(f"{path.name} is not a safetensors file (header length {length})")
        try:
            header = json.loads(file.read(length))
        except ValueError as error:
            raise ModelFormatError(f"{path.name}: the safetensors header is not JSON: {error}") from error
    size, start = path.stat().st_size, 8 + length
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(n) for n in info["data_offsets"])
            entry = TensorEntry(path, str(info["dtype"]), tuple(int(n) for n in info["shape"]), start + begin, start + end)
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFormatError(f"{path.name}: malformed header entry for {name!r}: {info!r}") from error
        if entry.end > size or entry.begin > entry.end:
            raise ModelFormatError(f"{path.name}: tensor {name!r} lies at bytes {entry.begin}..{entry.end} of a "
                                   f"{size}-byte file (truncated download?)")
        entries[name] = entry
    return entries


class HFCheckpoint:
    """The config and safetensors tensors of a Hugging Face model directory."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory).expanduser()
        if not self.path.is_dir():
            raise ModelNotFoundError(f"{str(self.path)!r} is not a directory; give the folder of a Hugging Face "
                                     f"model (its {CONFIG_FILE} and *.safetensors files)")
        if not (self.path / CONFIG_FILE).is_file():
            raise ModelFormatError(f"{str(self.path)!r} has no {CONFIG_FILE}; a Hugging Face model directory has one")
        self.config = read_json(self.path / CONFIG_FILE, "the model's config")
        generation = self.path / GENERATION_CONFIG_FILE
        self.generation_config = read_json(generation, "generation defaults") if generation.is_file() else {}
        self._entries: dict[str, TensorEntry] | None = None
        self._maps: dict[Path, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"HFCheckpoint({str(self.path)!r}, model_type={self.config.get('model_type')!r})"

    @property
    def entries(self) -> dict[str, TensorEntry]:
        """Tensor name → where it is, over every *.safetensors file (read when first needed)."""
        if self._entries is None:
            files = sorted(self.path.glob("*.safetensors"))
            if not files:
                others = sorted(p.name for p in self.path.glob("*.bin")) + sorted(p.name for p in self.path.glob("*.pt"))
                hint = f" (it has {others[:3]}: PyTorch checkpoints are not read; save the model with " \
                       "save_pretrained(..., safe_serialization=True))" if others else ""
                raise ModelFormatError(f"{str(self.path)!r} has no *.safetensors files{hint}")
            entries: dict[str, TensorEntry] = {}
            for path in files:
                for name, entry in _read_header(path).items():
                    if name in entries:
                        raise ModelFormatError(f"tensor {name!r} is in both {entries[name].path.name} and {path.name}")
                    entries[name] = entry
            self._entries = entries
        return self._entries

    def has(self, name: str) -> bool:
        return name in self.entries

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def _entry(self, name: str) -> TensorEntry:
        entry = self.entries.get(name)
        if entry is None:
            raise ModelFormatError(f"{self.path.name}: tensor {name!r} is missing from the *.safetensors files "
                                   f"({len(self.entries)} tensors)")
        return entry

    def read(self, name: str) -> np.ndarray:
        """A float tensor: float32 / float16 as a read-only view of the file's mapping, bfloat16
        widened to float32 and float64 as it is (copies)."""
        entry = self._entry(name)
        stored = _FLOAT_DTYPES.get(entry.dtype)
        if stored is None:
            raise ModelFormatError(f"{self.path.name}: tensor {name!r} has dtype {entry.dtype}; a float tensor "
                                   f"({', '.join(_FLOAT_DTYPES)}) is expected")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if entry.end - entry.begin != count * np.dtype(stored).itemsize:
            raise ModelFormatError(f"{self.path.name}: tensor {name!r} has {entry.end - entry.begin} bytes for "
                                   f"{entry.dtype} {list(entry.shape)}")
        if entry.path not in self._maps:
            self._maps[entry.path] = np.memmap(entry.path, dtype=np.uint8, mode="r").view(np.ndarray)
        raw = self._maps[entry.path][entry.begin: entry.end]
        values = raw.view(stored).reshape(entry.shape)
        if entry.dtype == "BF16":
            return (values.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return values

    def close(self) -> None:
        """Drop the memory maps (they also close when the object is collected)."""
        self._maps.clear()


def _stored(values: np.ndarray, bfloat16: bool) -> tuple[str, np.ndarray]:
    """(safetensors dtype, little-endian array to write) of a float32 / float16 array."""
    if values.dtype == np.float32 and bfloat16:
        bits = np.ascontiguousarray(values).view(np.uint32).astype(np.uint64)
        return "BF16", ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    if values.dtype == np.float32:
        return "F32", values.astype("<f4", copy=False)
    if values.dtype == np.float16:
        return "F16", values.astype("<f2", copy=False)
    raise ValueError(f"dtype {values.dtype}: float32 or float16 is written")


def write_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray], *, bfloat16: bool = False,
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write float32 / float16 arrays as one safetensors file, one tensor at a time; with
    `bfloat16`, float32 arrays are stored as BF16 (rounded to nearest even), as most published
    checkpoints are."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, values in tensors.items():
        if values.dtype not in (np.float32, np.float16):
            raise ValueError(f"tensor {name!r} has dtype {values.dtype}; float32 or float16 is written")
        dtype = "BF16" if values.dtype == np.float32 and bfloat16 else "F32" if values.dtype == np.float32 else "F16"
        nbytes = values.size * (4 if dtype == "F32" else 2)
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    path = Path(path)
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(text)))
        file.write(text)
        for values in tensors.values():
            file.write(np.ascontiguousarray(_stored(values, bfloat16)[1]).tobytes())
    return path
