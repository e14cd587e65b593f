"""MLC-LLM's weight encodings, decoded and repacked exactly into the GPU layouts of loader/repack.py.

Owns the numbers only: the dtypes and on-disk formats of MLC's tensor cache, and MLC's group
quantization. It never opens files (loader/mlc_model.py does) and never touches the GPU.

What MLC writes (mlc-llm python/mlc_llm/quantization/group_quantization.py and utils.py, and
TVM's tvmjs.dump_ndarray_cache, which stores the converted weights):

- Group quantization, q4f16_1 / q4f32_1 / q4bf16_1 / q4f16_2 ("NK" layout): a linear weight
  [out, in] is cut into groups of 32 consecutive input features. Per group, scale =
  max|w| / 7 in the model dtype, and each weight is stored as the 4-bit code
  q = clamp(round(w / scale + 7), 0, 14). Eight codes fill one uint32, element r of the eight in
  bits 4r..4r+3 (low nibble first). `q_weight` is uint32 [out, in / 8], `q_scale` [out, in / 32] in
  the model dtype, and the weight they stand for is w = (q − 7) · scale. The embedding is quantized
  the same way along its feature axis ([vocab, dim / 8] and [vocab, dim / 32]), as is an untied
  lm_head, except in q4f16_2 which keeps both in plain float16.
- q4f16_0 / q4bf16_0 ("KN" layout): the same codes and scales, transposed — q_weight [in / 8, out]
  and q_scale [in / 32, out] for linear layers (embeddings keep the NK form).
- q0f16 / q0bf16 / q0f32: plain `weight` tensors in the model dtype.
- The tensor cache stores float32 tensors as bfloat16 (record format "f32-to-bf16", dtype still
  "float32": the upper 16 bits of each float32, rounded to nearest even when written); reading
  one back is exact widening, u32 = u16 << 16. Records of other dtypes in such a cache carry the
  same format label but raw bytes. q4f32_1's scales and every q0f32 weight arrive so.

Repacking is exact, so the kernels see exactly (q − 7) · scale:
- 4-bit codes go to `q4g32f` unchanged (its codes use the same nibble order), with a float32
  scale and min = −7 · scale per group. The kernel's scale · q + min is then exact in float32:
  a float16 or bfloat16 scale has at most 11 significant bits, so scale · q (q < 16) and 7 · scale
  fit in float32's 24 bits, and so does their exact sum (q − 7) · scale. A true float32 scale
  (a cache written with format "raw") may have 24 significant bits; then the codes become int8
  q − 7 in `q8g32f` with min 0, whose single product rounds once, as MLC's own float32 multiply.
- float16 weights stay `f16`; float32, bfloat16 and f32-to-bf16 weights become `f32`.

MLC's WebGPU kernels for q4f16 compute (q − 7) · scale in float16, which rounds the product to 11
significant bits (relative 2^-11 at most); the engine keeps the exact product, like it keeps every
other format's weights exactly and computes in float32.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelFormatError
from .repack import GROUP, PackedWeight

Q4_ZERO_POINT = 7  # MLC's int4 max_int_value: w = (q − 7) · scale
CODES_PER_WORD = 8

# numpy dtypes of the tensor cache's dtype strings; bfloat16 is read as its raw uint16 bits.
CACHE_DTYPES = {
    "float32": np.float32, "float16": np.float16, "bfloat16": np.uint16, "uint32": np.uint32,
    "int32": np.int32, "uint8": np.uint8, "int8": np.int8, "uint16": np.uint16,
}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def widen_bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) → float32, exactly (the bits become the float32's upper half)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def decode_cache_array(raw: np.ndarray, dtype: str, encoding: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A record's bytes (uint8, as mapped) → an array of `shape`: float16, uint32 and the other
    integer types as views of the mapping; bfloat16 and f32-to-bf16 widened to float32 (a copy)."""
    if dtype not in CACHE_DTYPES:
        raise ModelFormatError(f"tensor {name!r} has dtype {dtype!r}; supported: {sorted(CACHE_DTYPES)}")
    if encoding == "f32-to-bf16" and dtype != "float32":
        # tvmjs's dump_tensor_cache labels every record of a cache with the cache's encoding and
        # converts only the float32 ones (its runtime.ts reads the others as raw): real mlc-ai
        # folders carry uint32 codes and float16 scales marked "f32-to-bf16".
        encoding = "raw"
    if encoding == "f32-to-bf16":
        stored = np.uint16
    elif encoding == "raw":
        stored = CACHE_DTYPES[dtype]
    else:
        raise ModelFormatError(f"tensor {name!r} has format {encoding!r}; supported: 'raw', 'f32-to-bf16'")
    count = int(np.prod(shape, dtype=np.int64))
    itemsize = np.dtype(stored).itemsize
    if raw.nbytes != count * itemsize:
        raise ModelFormatError(f"tensor {name!r}: {raw.nbytes} bytes for shape {list(shape)} of {dtype} "
                               f"stored as {np.dtype(stored).name} (expected {count * itemsize})")
    values = raw.view(stored).reshape(shape)
    if encoding == "f32-to-bf16" or dtype == "bfloat16":
        return widen_bf16(values)
    return values


def as_float32(values: np.ndarray) -> np.ndarray:
    """A decoded float tensor (float16 or float32) as float32; exact."""
    return np.asarray(values, dtype=np.float32)


def _low_bits_zero(scales: np.ndarray, bits: int) -> bool:
    return not np.any(np.ascontiguousarray(scales, np.float32).view(np.uint32) & ((1 << bits) - 1))


def repack_group_q4(q_weight: np.ndarray, q_scale: np.ndarray, rows: int, cols: int, name: str = "") -> PackedWeight:
    """MLC int4 group quantization in NK form — q_weight uint32 [rows, cols / 8], q_scale [rows,
    cols / 32] (float16, or float32 decoded from any encoding) — as an exact GPU layout (see the
    module docstring for why each choice is exact)."""
    if cols % GROUP:
        raise ModelFormatError(f"{name}: {cols} input features; group quantization with a multiple of {GROUP} "
                               "is supported (MLC pads the last group of other widths, which is not)")
    if q_weight.dtype != np.uint32 or q_weight.shape != (rows, cols // CODES_PER_WORD):
        raise ModelFormatError(f"{name}: q_weight is {q_weight.dtype} {list(q_weight.shape)}; expected uint32 "
                               f"{[rows, cols // CODES_PER_WORD]}")
    if q_scale.shape != (rows, cols // GROUP):
        raise ModelFormatError(f"{name}: q_scale has shape {list(q_scale.shape)}; expected {[rows, cols // GROUP]}")
    scale = as_float32(q_scale)
    if _low_bits_zero(scale, 4):
        scale_min = np.stack([scale, scale * np.float32(-Q4_ZERO_POINT)], axis=-1)
        codes = np.ascontiguousarray(q_weight, np.uint32).ravel()
        return PackedWeight("q4g32f", rows, cols, codes, scale_min.view(np.uint32).ravel())
    # Full-precision float32 scales: int8 codes q − 7 and min 0, so scale · (q − 7) rounds once.
    shifts = np.arange(CODES_PER_WORD, dtype=np.uint32) * 4
    nibbles = (np.ascontiguousarray(q_weight, np.uint32)[..., None] >> shifts) & 0xF
    codes = (nibbles.astype(np.int8) - Q4_ZERO_POINT).reshape(rows, cols)
    scale_min = np.stack([scale, np.zeros_like(scale)], axis=-1)
    return PackedWeight("q8g32f", rows, cols, codes.view(np.uint32).ravel().copy(), scale_min.view(np.uint32).ravel())


def repack_plain(values: np.ndarray, name: str = "") -> PackedWeight:
    """A plain [rows, cols] matrix: float16 stays `f16`, float32 (decoded from any encoding) is `f32`."""
    if values.ndim != 2:
        raise ModelFormatError(f"{name}: shape {list(values.shape)}; a matrix is expected")
    rows, cols = values.shape
    zero = np.zeros(1, np.uint32)
    if values.dtype == np.float16:
        if cols % 2:
            raise ModelFormatError(f"{name}: float16 matrix with {cols} columns; an even number is required")
        return PackedWeight("f16", rows, cols, np.ascontiguousarray(values).view(np.uint32).ravel(), zero)
    if values.dtype == np.float32:
        return PackedWeight("f32", rows, cols, np.ascontiguousarray(values).view(np.uint32).ravel(), zero)
    raise ModelFormatError(f"{name}: a matrix of {values.dtype}; float16 or float32 weights are supported")

