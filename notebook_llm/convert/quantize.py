"""MLC-LLM's weight quantizations, computed with numpy: what `mlc_llm convert_weight` stores.

Owns the numbers only (no files, no GPU). Taken from mlc-llm's
python/mlc_llm/quantization/group_quantization.py (`GroupQuantize._quantize`) and
quantization.py (the q4f16_1 / q4f32_1 / q0f16 / q0f32 entries), and TVM's
python/tvm/contrib/tvmjs.py (`_convert_f32_to_bf16`, which stores the converted weights):

- The whole model is first cast to the model dtype (`model.to(dtype)`): float16 for q4f16_1 and
  q0f16, float32 for q4f32_1 and q0f32. bfloat16 sources are widened exactly first.
- Group quantization ("_1": int4 codes, uint32 storage, groups of 32 along the input features,
  the NK layout), every step in the model dtype:
      scale = max|w| over the group / 7                  (rounded to the model dtype)
      q     = min(max(round(w / scale + 7), 0), 14)      (each operation rounded to the model dtype)
  `round` is TVM's `tir.round`, which the CPU (LLVM `llvm.round`), CUDA and Metal backends
  lower to round-half-away-from-zero (the Vulkan backend to GLSL's Round, whose ties are
  implementation-defined); numpy's `rint` rounds ties to even, so it is not used here.
  Eight codes fill one uint32, element r of the eight in bits 4r..4r+3 (low nibble first):
  q_weight uint32 [out, in / 8], q_scale [out, in / 32] in the model dtype, standing for
  w ≈ (q − 7) · scale. A group of zeros has scale 0 and 0 / 0 codes; MLC leaves those codes to
  the backend's NaN-to-int conversion, here they are 7 (the code of 0), which changes no value.
- Every linear layer (the lm_head included) and the embedding are quantized; norms and biases
  stay in the model dtype. q0f16 / q0f32 store every tensor plainly in the model dtype.
- The tensor cache stores float32 tensors as bfloat16 (format "f32-to-bf16"): the upper 16 bits,
  rounded to nearest even, except magnitudes at or above bfloat16's largest finite value (and
  NaN), which are truncated. q4f32_1's codes are computed from the float32 scales and then the
  scales are stored rounded, as MLC does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidRequestError, ModelFormatError

GROUP_SIZE = 32
MAX_INT = 7  # int4: 2**(4 - 1) - 1; codes 0..14 stand for −7..7
CODES_PER_WORD = 8  # 32-bit storage / 4-bit codes


@dataclass(frozen=True)
class Quantization:
    """One of MLC's quantizations this converter writes."""

    name: str
    model_dtype: str  # "float16" or "float32": the dtype of everything that is not a code
    group_quantized: bool


QUANTIZATIONS = {
    "q4f16_1": Quantization("q4f16_1", "float16", True),
    "q4f32_1": Quantization("q4f32_1", "float32", True),
    "q0f16": Quantization("q0f16", "float16", False),
    "q0f32": Quantization("q0f32", "float32", False),
}


def quantization(name: str) -> Quantization:
    """The quantization called `name`, or InvalidRequestError naming the ones written here."""
    if name not in QUANTIZATIONS:
        raise InvalidRequestError(f"quantization is {name!r}; one of {list(QUANTIZATIONS)} is allowed",
                                  param="quantization")
    return QUANTIZATIONS[name]


def to_model_dtype(values: np.ndarray, model_dtype: str) -> np.ndarray:
    """`values` (float16, float32 or float64) rounded to the model dtype, as a new array."""
    return np.array(values, dtype=np.float16 if model_dtype == "float16" else np.float32)


def _round_half_away_from_zero(x: np.ndarray) -> np.ndarray:
    """TVM's tir.round on CPU, CUDA and Metal; exact in float32 for |x| < 2**22."""
    x = x.astype(np.float32)
    return np.copysign(np.floor(np.abs(x) + np.float32(0.5)), x)


def group_quantize(weight: np.ndarray, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """MLC's int4 group quantization of a [rows, cols] float16 or float32 matrix (already in the
    model dtype) → (q_weight uint32 [rows, cols / 8], q_scale [rows, cols / 32] in that dtype)."""
    if weight.ndim != 2 or weight.dtype not in (np.float16, np.float32):
        raise ModelFormatError(f"{name}: group quantization takes a float16 or float32 matrix, "
                               f"got {weight.dtype} {list(weight.shape)}")
    rows, cols = weight.shape
    if cols % GROUP_SIZE:
        raise ModelFormatError(f"{name}: {cols} input features is not a multiple of {GROUP_SIZE}; MLC pads the "
                               "last group of such a matrix, a layout the engine does not read")
    dtype = weight.dtype.type
    groups = weight.reshape(rows, cols // GROUP_SIZE, GROUP_SIZE)
    scale = (np.abs(groups).max(axis=-1) / dtype(MAX_INT)).astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = (groups / scale[..., None]).astype(dtype) + dtype(MAX_INT)  # two roundings, as in TVM
    codes = np.clip(_round_half_away_from_zero(shifted), 0, 2 * MAX_INT)
    codes = np.where(scale[..., None] == 0, MAX_INT, codes).astype(np.uint32)
    codes = codes.reshape(rows, cols // CODES_PER_WORD, CODES_PER_WORD)
    shifts = np.arange(CODES_PER_WORD, dtype=np.uint32) * np.uint32(4)
    words = np.bitwise_or.reduce(codes << shifts, axis=-1).astype(np.uint32)
    return words, scale


def f32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (uint16) as the tensor cache stores them (module docstring)."""
    values = np.ascontiguousarray(values, np.float32)
    bits = values.view(np.uint32)
    limit = np.float32(np.uint32(0x7F7F0000).view(np.float32))  # bfloat16's largest finite value
    in_range = (values < limit) & (values > -limit)
    bias = np.where(in_range, ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF), np.uint32(0))
    return ((bits.astype(np.uint64) + bias) >> np.uint64(16)).astype(np.uint16)
