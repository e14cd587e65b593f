"""Rotary-embedding tables, computed on the CPU in float64 and uploaded once at load.

The GPU reads cos/sin from this table (kernels/rope_kv_write.wgsl) instead of calling sin/cos:
WGSL promises sin/cos only to 2^-11 absolute and only inside [-pi, pi], while the angles reach
thousands of radians at long positions.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelFormatError


def rope_table(max_context: int, rope_dim: int, freq_base: float) -> np.ndarray:
    """(cos θ, sin θ) for θ = p * freq_base^(-2i / rope_dim): float32 [max_context, rope_dim / 2, 2]."""
    if rope_dim % 2:
        raise ModelFormatError(f"rope_dim (rope.dimension_count) must be even, got {rope_dim}")
    inv_freq = float(freq_base) ** (-np.arange(0, rope_dim, 2, dtype=np.float64) / rope_dim)
    angles = np.arange(max_context, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)
