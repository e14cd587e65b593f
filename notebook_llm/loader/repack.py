"""Repack file tensors into the GPU weight layouts of DESIGN.md (numpy only, no wgpu).

Every matrix is [rows = output features, cols = input features K], row-major, as two u32
arrays the kernels bind as `weight_codes` and `weight_scales`:

- `q4g32`: codes  [rows, K/8]   eight 4-bit codes per word, element k in bits 4*(k%8)..+3;
           scales [rows, K/32]  one word per group of 32: low half f16 scale, high half f16 min;
           w = scale * q + min. Exact for GGUF Q4_0 (min = -8·d) and Q4_1 (min = m).
- `q8g32`: codes  [rows, K/4]   four int8 codes per word, element k in byte k%4;
           scales [rows, ceil(K/64)] f16 scale per group of 32, two per word (group g in half g%2);
           w = scale * q. Exact for GGUF Q8_0.
- `f16`:   codes  [rows, K/2]   two f16 per word (element k in half k%2); scales unused.
- `f32`:   codes  [rows, K]     float32 bits; scales unused.

`dequantize()` evaluates the layout's formula in float32, the way the kernels do, so tests can
compare it bit for bit with `gguf.quants.dequantize` on the file's own bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as QT

from ..errors import ModelFormatError

GROUP = 32
LAYOUT_OF_TYPE = {QT.Q4_0: "q4g32", QT.Q4_1: "q4g32", QT.Q8_0: "q8g32", QT.F16: "f16", QT.F32: "f32"}


@dataclass(frozen=True)
class PackedWeight:
    """A matrix in a GPU layout; `codes` and `scales` are uploaded as they are."""

    layout: str
    rows: int
    cols: int
    codes: np.ndarray  # uint32, 1-D
    scales: np.ndarray  # uint32, 1-D (one zero word where the layout has no scales)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes


def _f16_bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float16).view(np.uint16).astype(np.uint32)


def _pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """[..., 8*n] values 0..15 → [..., n] u32, element j of each word in bits 4j."""
    c = codes.astype(np.uint32).reshape(*codes.shape[:-1], -1, 8)
    shifts = np.arange(8, dtype=np.uint32) * 4
    return np.bitwise_or.reduce(c << shifts, axis=-1)


def _blocks(raw: np.ndarray, rows: int, cols: int, qtype: QT) -> np.ndarray:
    """The file's bytes as [rows, cols/32, block_bytes]."""
    if cols % GROUP:
        raise ModelFormatError(f"{qtype.name} tensor has {cols} columns; a multiple of {GROUP} is required")
    return np.ascontiguousarray(raw, dtype=np.uint8).reshape(rows, cols // GROUP, -1)


def repack(raw: np.ndarray, qtype: QT, rows: int, cols: int) -> PackedWeight:
    """Repack a GGUF tensor's data (as `gguf.GGUFReader` gives it) of shape [rows, cols]."""
    if qtype in (QT.Q4_0, QT.Q4_1):
        blocks = _blocks(raw, rows, cols, qtype)
        d = blocks[..., 0:2].copy().view(np.float16)[..., 0]
        if qtype == QT.Q4_0:
            minimum = (d.astype(np.float32) * np.float32(-8)).astype(np.float16)  # exact: ×8 is a shift
            qs = blocks[..., 2:18]
        else:
            minimum = blocks[..., 2:4].copy().view(np.float16)[..., 0]
            qs = blocks[..., 4:20]
        # A GGUF block stores element j in the low nibble of byte j and element j+16 in the high one.
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [rows, groups, 32] in element order
        packed_codes = _pack_nibbles(codes.reshape(rows, cols))
        scales = _f16_bits(d) | (_f16_bits(minimum) << 16)
        return PackedWeight("q4g32", rows, cols, packed_codes.ravel(), scales.ravel())
    if qtype == QT.Q8_0:
        blocks = _blocks(raw, rows, cols, qtype)
        d = blocks[..., 0:2].copy().view(np.float16)[..., 0]  # [rows, groups]
        codes = np.ascontiguousarray(blocks[..., 2:34]).reshape(rows, cols).view(np.uint32)
        groups = cols // GROUP
        if groups % 2:
            d = np.concatenate([d, np.zeros((rows, 1), np.float16)], axis=1)
        bits = _f16_bits(d).reshape(rows, -1, 2)
        scales = bits[..., 0] | (bits[..., 1] << 16)
        return PackedWeight("q8g32", rows, cols, codes.ravel().copy(), scales.ravel())
    if qtype == QT.F16:
        if cols % 2:
            raise ModelFormatError(f"F16 tensor has {cols} columns; an even number is required")
        values = np.ascontiguousarray(raw).view(np.float16).reshape(rows, cols)
        return PackedWeight("f16", rows, cols, values.view(np.uint32).ravel().copy(), np.zeros(1, np.uint32))
    if qtype == QT.F32:
        values = np.ascontiguousarray(raw).view(np.float32).reshape(rows, cols)
        return PackedWeight("f32", rows, cols, values.view(np.uint32).ravel().copy(), np.zeros(1, np.uint32))
    raise ModelFormatError(f"tensor type {qtype.name} is not supported; supported: {[t.name for t in LAYOUT_OF_TYPE]}")


def concat_rows(parts: list[PackedWeight]) -> PackedWeight:
    """Stack matrices of one layout and width along rows (fused QKV, fused gate·up)."""
    first = parts[0]
    if any(p.layout != first.layout or p.cols != first.cols for p in parts):
        raise ModelFormatError(
            "fused matrices need one layout and width; got " + ", ".join(f"{p.layout}[{p.rows}x{p.cols}]" for p in parts)
        )
    return PackedWeight(
        first.layout,
        sum(p.rows for p in parts),
        first.cols,
        np.concatenate([p.codes for p in parts]),
        np.concatenate([p.scales for p in parts]) if first.layout in ("q4g32", "q8g32") else first.scales,
    )


def _half(bits: np.ndarray) -> np.ndarray:
    return (bits & 0xFFFF).astype(np.uint16).view(np.float16).astype(np.float32)


def dequantize(w: PackedWeight) -> np.ndarray:
    """The float32 matrix [rows, cols] the kernels see, computed with the layout's formula."""
    rows, cols = w.rows, w.cols
    if w.layout == "q4g32":
        shifts = np.arange(8, dtype=np.uint32) * 4
        q = ((w.codes.reshape(rows, cols // 8, 1) >> shifts) & 0xF).reshape(rows, cols // GROUP, GROUP)
        scales = w.scales.reshape(rows, cols // GROUP, 1)
        return (_half(scales) * q.astype(np.float32) + _half(scales >> 16)).reshape(rows, cols)
    if w.layout == "q8g32":
        q = w.codes.view(np.int8).reshape(rows, cols // GROUP, GROUP).astype(np.float32)
        halves = np.stack([_half(w.scales), _half(w.scales >> 16)], axis=-1).reshape(rows, -1)
        return (halves[:, : cols // GROUP, None] * q).reshape(rows, cols)
    if w.layout == "f16":
        return w.codes.view(np.float16).astype(np.float32).reshape(rows, cols)
    if w.layout == "f32":
        return w.codes.view(np.float32).reshape(rows, cols).copy()
    raise ModelFormatError(f"unknown layout {w.layout!r}")
