"""Open a GGUF file: its model config, metadata, tensors (repacked for the GPU), tokenizer and chat template.

The file is memory-mapped by `gguf.GGUFReader`; a tensor's bytes are read only when it is
repacked, one tensor at a time, so the model is never held twice in RAM. This module knows
nothing of wgpu: it hands out `PackedWeight`s and float32 vectors for the GPU layer to upload.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType

from ..errors import ModelFormatError, ModelNotFoundError
from .architectures import SUPPORTED_ARCHITECTURES, ArchitectureConfig, read_config  # noqa: F401
from .chat_template import builtin_template
from .repack import PackedWeight, repack
from .tokenizer import GGUFTokenizer

_MISSING = object()


class _PlainViewReader(GGUFReader):
    """`GGUFReader` slicing a plain ndarray view of its memmap instead of the memmap itself, and
    reading arrays of numbers in one piece.

    Same mapping, no copy; but slicing a `np.memmap` runs `__array_finalize__` on every piece,
    and the reader slices ~250k pieces for SmolLM2's 98k vocabulary strings and merges: opening
    took ~9 s instead of ~3 s. Tensor data comes back as ndarray views into the mapping.
    GGUFReader also reads arrays one element at a time, two numpy slices per string: Gemma 3's
    262k tokens, scores and types took ~6 s to open. Here an array of numbers is one view, and an
    array of strings one memoryview slice per string (in a file of the machine's byte order), so
    such a field's `contents()` (the whole list) is the same, but `contents(i)` is not supported.
    """

    @property
    def data(self) -> np.ndarray:
        return self._mapped

    @data.setter
    def data(self, mapped: np.ndarray) -> None:
        self._mapped = mapped.view(np.ndarray) if isinstance(mapped, np.memmap) else mapped

    def _get_field_parts(self, orig_offs: int, raw_type: int):
        if GGUFValueType(raw_type) == GGUFValueType.ARRAY:
            item_type = self._get(orig_offs, np.uint32)
            length = self._get(orig_offs + 4, np.uint64)
            numpy_type = self.gguf_scalar_to_np.get(GGUFValueType(int(item_type[0])))
            if numpy_type is not None:
                values = self._get(orig_offs + 12, numpy_type, int(length[0]))
                size = int(item_type.nbytes + length.nbytes + values.nbytes)
                return size, [item_type, length, values], [2], [GGUFValueType.ARRAY, GGUFValueType(int(item_type[0]))]
            if GGUFValueType(int(item_type[0])) == GGUFValueType.STRING and self.byte_order == "I":
                return self._string_array(orig_offs, item_type, length)
        return super()._get_field_parts(orig_offs, raw_type)

    def _string_array(self, orig_offs: int, item_type: np.ndarray, length: np.ndarray):
        view = memoryview(self._mapped)
        offset, strings = orig_offs + 12, []
        for _ in range(int(length[0])):
            n = int.from_bytes(view[offset : offset + 8], "little")
            strings.append(view[offset + 8 : offset + 8 + n])  # .tobytes() and .nbytes, as ndarray parts have
            offset += 8 + n
        parts = [item_type, length, *strings]
        return offset - orig_offs, parts, list(range(2, len(parts))), [GGUFValueType.ARRAY, GGUFValueType.STRING]


# The name the config had while llama was the only architecture.
LlamaConfig = ArchitectureConfig


class GGUFModelFile:
    """A GGUF model file, memory-mapped. Tensor names follow llama.cpp (`blk.{i}.attn_q.weight`, ...)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelNotFoundError(f"GGUF file {str(self.path)!r} does not exist")
        try:
            self._reader = _PlainViewReader(self.path, "r")
        except (ValueError, OSError, IndexError, KeyError) as error:  # bad magic, truncation, duplicate keys
            raise ModelFormatError(f"{str(self.path)!r} is not a readable GGUF file: {error}") from error
        self._tensors = {tensor.name: tensor for tensor in self._reader.tensors}
        self._tokenizer = None

    def __repr__(self) -> str:
        return f"GGUFModelFile({str(self.path)!r}, {len(self._tensors)} tensors)"

    # --- metadata -------------------------------------------------------------------------------

    def metadata(self, key: str, default: Any = None) -> Any:
        """The value of a metadata key as a Python scalar, string or list; `default` when absent."""
        field = self._reader.fields.get(key)
        return default if field is None else field.contents()

    def _required(self, key: str) -> Any:
        value = self.metadata(key, _MISSING)
        if value is _MISSING:
            raise ModelFormatError(
                f"{self.path.name}: metadata key {key!r} is missing; every model GGUF has it"
            )
        return value

    @property
    def architecture(self) -> str:
        return str(self._required("general.architecture"))

    @cached_property
    def config(self) -> ArchitectureConfig:
        """Shapes and variant of the model (notebook_llm/loader/architectures.py reads them)."""
        return read_config(self)

    @property
    def chat_template(self) -> str | None:
        """The file's tokenizer.chat_template, else its architecture's built-in format (Gemma 3
        files converted without one), else None."""
        return self.metadata("tokenizer.chat_template") or builtin_template(str(self.metadata("general.architecture")))

    def tokenizer(self) -> GGUFTokenizer:
        """The file's tokenizer as a `GGUFTokenizer` (built once, then cached)."""
        if self._tokenizer is None:
            self._tokenizer = GGUFTokenizer.from_gguf(self)
        return self._tokenizer

    # --- tensors --------------------------------------------------------------------------------

    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def has_tensor(self, name: str) -> bool:
        return name in self._tensors

    def _tensor(self, name: str):
        tensor = self._tensors.get(name)
        if tensor is None:
            raise ModelFormatError(
                f"{self.path.name}: tensor {name!r} is missing ({len(self._tensors)} tensors in the file)"
            )
        return tensor

    def raw(self, name: str) -> tuple[np.ndarray, QT]:
        """The tensor's data as the reader maps it (no copy) and its ggml type."""
        tensor = self._tensor(name)
        return tensor.data, QT(tensor.tensor_type)

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape in GGUF order (ne[0] first: the contiguous dimension)."""
        return tuple(int(n) for n in self._tensor(name).shape)

    def packed(self, name: str) -> PackedWeight:
        """A matrix repacked into its GPU layout. GGUF's ne = [cols, rows]: ne[0] is the input features K."""
        shape = self.shape(name)
        if len(shape) != 2:
            raise ModelFormatError(
                f"{self.path.name}: tensor {name!r} has shape {list(shape)}; packed() takes a matrix, use vector()"
            )
        data, qtype = self.raw(name)
        return repack(data, qtype, rows=shape[1], cols=shape[0])

    def vector(self, name: str) -> np.ndarray:
        """A 1-D F32 or F16 tensor (norm weights) as a float32 copy."""
        shape = self.shape(name)
        data, qtype = self.raw(name)
        if len(shape) != 1 or qtype not in (QT.F32, QT.F16):
            raise ModelFormatError(
                f"{self.path.name}: tensor {name!r} is {qtype.name} {list(shape)}; "
                "vector() takes a 1-D F32 or F16 tensor"
            )
        return np.array(data, dtype=np.float32).reshape(shape[0])
