"""Rotary-embedding tables, computed on the CPU in float64 and uploaded once at load.

The GPU reads cos/sin from this table (kernels/rope_kv_write.wgsl) instead of calling sin/cos:
WGSL promises sin/cos only to 2^-11 absolute and only inside [-pi, pi], while the angles reach
thousands of radians at long positions. Every RoPE variant the architectures need is a change of
this table, not of the kernel:

- frequency factors (Llama 3.x `rope_freqs`, Phi-3 LongRoPE `rope_factors_long/short`): pair i
  turns at base^(-2i / rope_dim) / factor[i], as ggml's rope applies its `freq_factors`;
- an attention factor (Phi-3 LongRoPE): cos and sin are both multiplied by it, so q·k scores
  grow by its square, as llama.cpp's `attn_factor` and transformers' `attention_scaling` do;
- "linear" scaling (Gemma 3 4B-27B's global layers): positions divided by a factor, which is every
  frequency divided by it (llama.cpp's freq_scale = 1 / factor).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelFormatError


def inverse_frequencies(rope_dim: int, freq_base: float, freq_factors: np.ndarray | None = None) -> np.ndarray:
    """Angle per position of each pair i < rope_dim / 2: freq_base^(-2i / rope_dim) / freq_factors[i], float64."""
    if rope_dim % 2:
        raise ModelFormatError(f"rope_dim (rope.dimension_count) must be even, got {rope_dim}")
    inv_freq = float(freq_base) ** (-np.arange(0, rope_dim, 2, dtype=np.float64) / rope_dim)
    if freq_factors is None:
        return inv_freq
    factors = np.asarray(freq_factors, np.float64)
    if factors.shape != inv_freq.shape or not np.all(factors > 0):
        raise ModelFormatError(
            f"RoPE frequency factors must be {inv_freq.size} positive numbers (rope_dim / 2), got shape "
            f"{factors.shape} with minimum {factors.min() if factors.size else None}")
    return inv_freq / factors


def rope_table(
    max_context: int, rope_dim: int, freq_base: float,
    freq_factors: np.ndarray | None = None, attn_factor: float = 1.0, linear_factor: float = 1.0,
) -> np.ndarray:
    """(attn_factor · cos θ, attn_factor · sin θ) for θ = p / linear_factor · inverse_frequencies(...)[i]:
    float32 [max_context, rope_dim / 2, 2]."""
    inv_freq = inverse_frequencies(rope_dim, freq_base, freq_factors) / float(linear_factor)
    angles = np.arange(max_context, dtype=np.float64)[:, None] * inv_freq[None, :]
    return (float(attn_factor) * np.stack([np.cos(angles), np.sin(angles)], axis=-1)).astype(np.float32)
