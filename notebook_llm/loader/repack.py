"""Repack file tensors into the GPU weight layouts of DESIGN.md (numpy only, no wgpu).

Every matrix is [rows = output features, cols = input features K], row-major, as two u32
arrays the kernels bind as `weight_codes` and `weight_scales`:

- `q4g32`: codes  [rows, K/8]   eight 4-bit codes per word, element k in bits 4*(k%8)..+3;
           scales [rows, K/32]  one word per group of 32: low half f16 scale, high half f16 min;
           w = scale * q + min. Exact for GGUF Q4_0 (min = -8·d) and Q4_1 (min = m).
- `q4g32f`: codes as q4g32; scales [rows, K/32, 2] float32 bits: (scale, min) per group of 32;
           w = scale * q + min. Exact for GGUF Q4_K, whose per-32 scale d·sc and min −dmin·m carry
           up to 17 significant bits (an f16 scale and a 6-bit multiplier): f16 would round them.
- `q8g32`: codes  [rows, K/4]   four int8 codes per word, element k in byte k%4;
           scales [rows, ceil(K/64)] f16 scale per group of 32, two per word (group g in half g%2);
           w = scale * q. Exact for GGUF Q8_0 and Q5_0 (its 5-bit code minus 16 as the int8 code).
- `q8g16f`: codes as q8g32; scales [rows, K/16] float32 bits, one per group of 16; w = scale * q.
           Exact for GGUF Q6_K (code q − 32 in −32..31, scale d·sc with sc an int8: 19 bits).
- `q8g32f`: codes as q8g32; scales as q4g32f, (scale, min) float32 per group of 32;
           w = scale * q + min. Exact for GGUF Q5_K (5-bit codes, d·sc and −dmin·m as for Q4_K)
           and Q5_1 (f16 d and m).
- `f16`:   codes  [rows, K/2]   two f16 per word (element k in half k%2); scales unused.
- `f32`:   codes  [rows, K]     float32 bits; scales unused.

`dequantize()` evaluates the layout's formula in float32, the way the kernels do, so tests can
compare it bit for bit with `gguf.quants.dequantize` on the file's own bytes. Every product
scale · q is exact in float32 (at most 11 + 7 + 5 significant bits), so only Q4_K's `+ min` rounds,
once, as gguf's `d·q − dm` does; a shader compiler that fuses it into an fma gives the same bits.

K-quant block layouts (ggml's, 256 weights per super-block):
- Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of eight 6-bit scales sc and eight 6-bit mins m,
  128 bytes of nibbles. Sub-block s (32 weights) is w = d·sc[s]·q − dmin·m[s]; weights 64j..64j+31
  are the low nibbles of bytes 32j..32j+31, weights 64j+32..64j+63 their high nibbles.
- Q5_K, 176 bytes: d, dmin and the 12 scale bytes as Q4_K, then 32 bytes qh, 128 bytes of nibbles
  laid out as Q4_K's; bit s of qh[l] is the fifth bit of weight l of sub-block s.
- Q6_K, 210 bytes: 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales, f16 d.
  Group g of 16 weights is w = d·scale[g]·(q − 32). In half h (128 weights), weight 32k + l takes
  its low bits from byte l (k = 0, 2) or l + 32 (k = 1, 3) of ql[64h:], low nibble for k < 2, and
  bits 2k..2k+1 of byte l of qh[32h:] as its high bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as QT

from ..errors import ModelFormatError

GROUP = 32
SUPER_BLOCK = 256  # weights per K-quant block
LAYOUT_OF_TYPE = {
    QT.Q4_0: "q4g32", QT.Q4_1: "q4g32", QT.Q4_K: "q4g32f", QT.Q5_0: "q8g32", QT.Q5_1: "q8g32f",
    QT.Q5_K: "q8g32f", QT.Q8_0: "q8g32", QT.Q6_K: "q8g16f", QT.F16: "f16", QT.F32: "f32",
}
SCALED_LAYOUTS = ("q4g32", "q4g32f", "q8g32", "q8g32f", "q8g16f")  # the others bind one unused zero word as scales


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


def _f32_bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)


def _blocks(raw: np.ndarray, rows: int, cols: int, qtype: QT, block: int = GROUP) -> np.ndarray:
    """The file's bytes as [rows, cols/block, block_bytes]."""
    if cols % block:
        raise ModelFormatError(f"{qtype.name} tensor has {cols} columns; a multiple of {block} is required")
    return np.ascontiguousarray(raw, dtype=np.uint8).reshape(rows, cols // block, -1)


def _f16_field(blocks: np.ndarray, start: int) -> np.ndarray:
    """The f16 at byte `start` of every block, as float16 [rows, blocks]."""
    return blocks[..., start : start + 2].copy().view(np.float16)[..., 0]


def _q8g32(codes: np.ndarray, d: np.ndarray, rows: int, cols: int) -> PackedWeight:
    """int8 codes [rows, cols] and f16 scales [rows, cols/32] → q8g32."""
    if d.shape[1] % 2:
        d = np.concatenate([d, np.zeros((rows, 1), np.float16)], axis=1)
    bits = _f16_bits(d).reshape(rows, -1, 2)
    scales = bits[..., 0] | (bits[..., 1] << 16)
    words = np.ascontiguousarray(codes, dtype=np.int8).reshape(rows, cols).view(np.uint32)
    return PackedWeight("q8g32", rows, cols, words.ravel().copy(), scales.ravel())


def _k_scales(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K / Q5_K super-blocks [..., bytes] → (scale, min) float32 [..., 8] of their sub-blocks:
    d·sc and −dmin·m, both exact (11 × 6 bits; negation is exact)."""
    d = _f16_field(blocks, 0).astype(np.float32)[..., None]
    dmin = _f16_field(blocks, 2).astype(np.float32)[..., None]
    packed = blocks[..., 4:16]
    low6, high2 = packed & 0x3F, packed >> 6
    # Sub-blocks 0..3: 6 bits in bytes 0..3 (scale) and 4..7 (min). Sub-blocks 4..7: the low
    # nibble (scale) or high nibble (min) of bytes 8..11, plus the top two bits of bytes 0..3 / 4..7.
    sc = np.concatenate([low6[..., 0:4], (packed[..., 8:12] & 0x0F) | (high2[..., 0:4] << 4)], axis=-1)
    m = np.concatenate([low6[..., 4:8], (packed[..., 8:12] >> 4) | (high2[..., 4:8] << 4)], axis=-1)
    return d * sc.astype(np.float32), -(dmin * m.astype(np.float32))


def _scale_min_words(scale: np.ndarray, minimum: np.ndarray) -> np.ndarray:
    """float32 (scale, min) per group, interleaved, as u32 words."""
    return np.stack([_f32_bits(scale), _f32_bits(minimum)], axis=-1).ravel()


def _k_nibbles(qs: np.ndarray) -> np.ndarray:
    """128 bytes per super-block [..., 128] → 256 codes in weight order [..., 8, 32]: weights 64j..
    64j+31 are the low nibbles of bytes 32j..32j+31, the next 32 their high nibbles."""
    qs = qs.reshape(*qs.shape[:-1], 4, 1, 32)
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-2).reshape(*qs.shape[:-3], 8, 32)


def _q4_k(raw: np.ndarray, rows: int, cols: int) -> PackedWeight:
    blocks = _blocks(raw, rows, cols, QT.Q4_K, SUPER_BLOCK)  # [rows, n, 144]
    scale, minimum = _k_scales(blocks)
    codes = _k_nibbles(blocks[..., 16:144])
    return PackedWeight("q4g32f", rows, cols, _pack_nibbles(codes.reshape(rows, cols)).ravel(), _scale_min_words(scale, minimum))


def _q5_k(raw: np.ndarray, rows: int, cols: int) -> PackedWeight:
    blocks = _blocks(raw, rows, cols, QT.Q5_K, SUPER_BLOCK)  # [rows, n, 176]
    scale, minimum = _k_scales(blocks)
    qh = blocks[..., 16:48][..., None, :]  # [rows, n, 1, 32]
    high = (qh >> np.arange(8, dtype=np.uint8)[:, None]) & 1  # [rows, n, sub-block s, 32]
    codes = (_k_nibbles(blocks[..., 48:176]) | (high << 4)).astype(np.int8)
    words = np.ascontiguousarray(codes).reshape(rows, cols).view(np.uint32)
    return PackedWeight("q8g32f", rows, cols, words.ravel().copy(), _scale_min_words(scale, minimum))


def _q5_1(raw: np.ndarray, rows: int, cols: int) -> PackedWeight:
    blocks = _blocks(raw, rows, cols, QT.Q5_1)  # [rows, groups, 24]: f16 d, f16 m, u32 high bits, 16 bytes
    high_bits = blocks[..., 4:8].copy().view(np.uint32)
    high = ((high_bits >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)
    qs = blocks[..., 8:24]
    codes = (np.concatenate([qs & 0x0F, qs >> 4], axis=-1) | (high << 4)).astype(np.int8)
    words = np.ascontiguousarray(codes).reshape(rows, cols).view(np.uint32)
    scale, minimum = _f16_field(blocks, 0).astype(np.float32), _f16_field(blocks, 2).astype(np.float32)
    return PackedWeight("q8g32f", rows, cols, words.ravel().copy(), _scale_min_words(scale, minimum))


def _q6_k(raw: np.ndarray, rows: int, cols: int) -> PackedWeight:
    blocks = _blocks(raw, rows, cols, QT.Q6_K, SUPER_BLOCK)  # [rows, n, 210]
    ql = blocks[..., 0:128].reshape(rows, -1, 2, 2, 32)  # [rows, n, half, byte l or l + 32, 32]
    qh = blocks[..., 128:192].reshape(rows, -1, 2, 1, 32)  # [rows, n, half, 1, 32]
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=-2)  # quarter k = 0..3 of each half
    high = (qh >> (2 * np.arange(4, dtype=np.uint8))[:, None]) & 0x03
    codes = ((low | (high << 4)).astype(np.int16) - 32).astype(np.int8).reshape(rows, cols)
    d = _f16_field(blocks, 208).astype(np.float32)[..., None]
    scale = d * blocks[..., 192:208].view(np.int8).astype(np.float32)  # exact: 11 × 8 bits
    words = np.ascontiguousarray(codes).view(np.uint32)
    return PackedWeight("q8g16f", rows, cols, words.ravel().copy(), _f32_bits(scale).ravel().copy())


def _q5_0(raw: np.ndarray, rows: int, cols: int) -> PackedWeight:
    blocks = _blocks(raw, rows, cols, QT.Q5_0)  # [rows, groups, 22]
    high_bits = blocks[..., 2:6].copy().view(np.uint32)  # [rows, groups, 1]: bit j is element j's 5th bit
    high = ((high_bits >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)
    qs = blocks[..., 6:22]
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # element j < 16: low nibble of byte j
    codes = ((low | (high << 4)).astype(np.int16) - 16).astype(np.int8)
    return _q8g32(codes.reshape(rows, cols), _f16_field(blocks, 0), rows, cols)


def repack(raw: np.ndarray, qtype: QT, rows: int, cols: int) -> PackedWeight:
    """Repack a GGUF tensor's data (as `gguf.GGUFReader` gives it) of shape [rows, cols]."""
    if qtype in (QT.Q4_0, QT.Q4_1):
        blocks = _blocks(raw, rows, cols, qtype)
        d = _f16_field(blocks, 0)
        if qtype == QT.Q4_0:
            minimum = (d.astype(np.float32) * np.float32(-8)).astype(np.float16)  # exact: ×8 is a shift
            qs = blocks[..., 2:18]
        else:
            minimum = _f16_field(blocks, 2)
            qs = blocks[..., 4:20]
        # A GGUF block stores element j in the low nibble of byte j and element j+16 in the high one.
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [rows, groups, 32] in element order
        packed_codes = _pack_nibbles(codes.reshape(rows, cols))
        scales = _f16_bits(d) | (_f16_bits(minimum) << 16)
        return PackedWeight("q4g32", rows, cols, packed_codes.ravel(), scales.ravel())
    if qtype == QT.Q4_K:
        return _q4_k(raw, rows, cols)
    if qtype == QT.Q5_K:
        return _q5_k(raw, rows, cols)
    if qtype == QT.Q5_1:
        return _q5_1(raw, rows, cols)
    if qtype == QT.Q6_K:
        return _q6_k(raw, rows, cols)
    if qtype == QT.Q5_0:
        return _q5_0(raw, rows, cols)
    if qtype == QT.Q8_0:
        blocks = _blocks(raw, rows, cols, qtype)
        codes = blocks[..., 2:34].view(np.int8).reshape(rows, cols)
        return _q8g32(codes, _f16_field(blocks, 0), rows, cols)
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
        np.concatenate([p.scales for p in parts]) if first.layout in SCALED_LAYOUTS else first.scales,
    )


def stack_rows(parts: list[PackedWeight]) -> list[PackedWeight]:
    """Matrices of one width stacked along rows, as row blocks: consecutive parts of one layout
    joined (concat_rows), a change of layout starting a new block. A Q4_K_M file's attn_q and attn_k
    (Q4_K, q4g32f) and attn_v (Q6_K, q8g16f) become two blocks of one fused QKV matrix."""
    if any(p.cols != parts[0].cols for p in parts):
        raise ModelFormatError("stacked matrices need one width; got " + ", ".join(f"[{p.rows}x{p.cols}]" for p in parts))
    runs: list[list[PackedWeight]] = []
    for part in parts:
        if runs and runs[-1][0].layout == part.layout:
            runs[-1].append(part)
        else:
            runs.append([part])
    return [run[0] if len(run) == 1 else concat_rows(run) for run in runs]


def split_rows(w: PackedWeight, max_bytes: int) -> list[tuple[int, PackedWeight]]:
    """(first row, block) pairs of consecutive rows whose codes and scales each fit in `max_bytes`
    (a storage binding): a 262k-row embedding in int8 codes exceeds 128 MiB. One block if it fits."""
    codes_per_row = w.codes.size // w.rows
    scales_per_row = w.scales.size // w.rows if w.layout in SCALED_LAYOUTS else 0
    row_bytes = 4 * max(codes_per_row, scales_per_row)
    rows_per_block = min(w.rows, max_bytes // row_bytes)
    if rows_per_block < 1:
        raise ModelFormatError(f"one row of a [{w.rows} x {w.cols}] {w.layout} matrix needs {row_bytes} bytes; "
                               f"a binding holds at most {max_bytes}")
    blocks = []
    for start in range(0, w.rows, rows_per_block):
        stop = min(start + rows_per_block, w.rows)
        scales = w.scales[start * scales_per_row : stop * scales_per_row] if scales_per_row else w.scales
        blocks.append((start, PackedWeight(w.layout, stop - start, w.cols,
                                           w.codes[start * codes_per_row : stop * codes_per_row], scales)))
    return blocks


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
    if w.layout == "q4g32f":
        shifts = np.arange(8, dtype=np.uint32) * 4
        q = ((w.codes.reshape(rows, cols // 8, 1) >> shifts) & 0xF).reshape(rows, cols // GROUP, GROUP)
        scale_min = w.scales.view(np.float32).reshape(rows, cols // GROUP, 2, 1)
        return (scale_min[:, :, 0] * q.astype(np.float32) + scale_min[:, :, 1]).reshape(rows, cols)
    if w.layout == "q8g32":
        q = w.codes.view(np.int8).reshape(rows, cols // GROUP, GROUP).astype(np.float32)
        halves = np.stack([_half(w.scales), _half(w.scales >> 16)], axis=-1).reshape(rows, -1)
        return (halves[:, : cols // GROUP, None] * q).reshape(rows, cols)
    if w.layout == "q8g32f":
        q = w.codes.view(np.int8).reshape(rows, cols // GROUP, GROUP).astype(np.float32)
        scale_min = w.scales.view(np.float32).reshape(rows, cols // GROUP, 2, 1)
        return (scale_min[:, :, 0] * q + scale_min[:, :, 1]).reshape(rows, cols)
    if w.layout == "q8g16f":
        q = w.codes.view(np.int8).reshape(rows, cols // 16, 16).astype(np.float32)
        return (w.scales.view(np.float32).reshape(rows, cols // 16, 1) * q).reshape(rows, cols)
    if w.layout == "f16":
        return w.codes.view(np.float16).astype(np.float32).reshape(rows, cols)
    if w.layout == "f32":
        return w.codes.view(np.float32).reshape(rows, cols).copy()
    raise ModelFormatError(f"unknown layout {w.layout!r}")
