"""GPU time of a compute pass through timestamp queries, where the adapter offers them.

Used by benchmarks (never on the generation path): `PassTimer.timestamp_writes()` goes into
`GpuContext.encode`, `resolve(encoder)` after the pass, `read_ns()` after the submit.
"""

from __future__ import annotations

import numpy as np
import wgpu

from .compute import GpuContext


class PassTimer:
    """Start and end timestamps of one compute pass, in nanoseconds."""

    def __init__(self, ctx: GpuContext):
        if not ctx.gpu.has_timestamps:
            raise RuntimeError(f"adapter {ctx.gpu.adapter.description!r} has no timestamp-query feature")
        self.ctx = ctx
        self.query_set = ctx.device.create_query_set(type=wgpu.QueryType.timestamp, count=2)
        self.resolved = ctx.device.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)

    def timestamp_writes(self) -> dict:
        return {"query_set": self.query_set, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1}

    def resolve(self, encoder: wgpu.GPUCommandEncoder) -> None:
        encoder.resolve_query_set(self.query_set, 0, 2, self.resolved, 0)

    def read_ns(self) -> float:
        start, end = np.frombuffer(self.ctx.queue.read_buffer(self.resolved), np.uint64)
        return float(end - start)
