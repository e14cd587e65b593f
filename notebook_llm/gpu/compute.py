"""Buffers, bind groups and recorded dispatches: the vocabulary the model graphs are written in.

A `Dispatch` is a pipeline, a bind group made at load time, and a workgroup count. A step of
the model is a list of dispatches recorded into one compute pass and submitted once.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import wgpu

from .device import Device, create_device
from .shaders import PipelineCache

try:  # wgpu-native's C functions, called directly on the per-step path (see `encode`)
    from wgpu.backends.wgpu_native._ffi import ffi as _ffi, lib as _lib

    _RAW_ENCODE = all(hasattr(_lib, f"wgpuComputePassEncoder{name}") for name in ("SetPipeline", "SetBindGroup", "DispatchWorkgroups"))
except ImportError:  # another wgpu backend: the wrappers only
    _RAW_ENCODE = False

STORAGE = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.COPY_SRC
UNIFORM = wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST


@dataclass(frozen=True)
class Dispatch:
    """One compute dispatch with everything bound; built at load, replayed every step."""

    pipeline: wgpu.GPUComputePipeline
    bind_group: wgpu.GPUBindGroup
    workgroups: tuple[int, int, int]
    label: str = ""
    # Prefill graphs hold the token-dependent workgroup count as 0; a chunk of n tokens makes it
    # ceil(n / tokens_per_workgroup) (LlamaModel._sized).
    tokens_per_workgroup: int = 1


class GpuContext:
    """A device, its pipeline cache, and helpers to move arrays and run dispatches."""

    def __init__(self, device: Device):
        self.gpu = device
        self.device = device.device
        self.queue = device.device.queue
        self.pipelines = PipelineCache(device.device, subgroups=device.has_subgroups)

    @classmethod
    def create(cls, adapter_name: str | None = None, required_features: tuple[str, ...] = ()) -> "GpuContext":
        return cls(create_device(adapter_name, required_features))

    # -- buffers ---------------------------------------------------------------------------
    def buffer(self, data: np.ndarray | bytes, usage: int = STORAGE, label: str = "") -> wgpu.GPUBuffer:
        """A storage buffer holding `data` (padded to 4 bytes; bindings need non-empty buffers)."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        size = max(4, (len(raw) + 3) // 4 * 4)
        buffer = self.device.create_buffer(size=size, usage=usage, label=label)
        if raw:
            self.queue.write_buffer(buffer, 0, raw + b"\0" * (size - len(raw)))
        return buffer

    def empty(self, nbytes: int, usage: int = STORAGE, label: str = "") -> wgpu.GPUBuffer:
        return self.device.create_buffer(size=max(4, (nbytes + 3) // 4 * 4), usage=usage, label=label)

    def uniform(self, data: np.ndarray | bytes, label: str = "") -> wgpu.GPUBuffer:
        """A uniform buffer (size rounded up to 16 bytes, as uniform structs require)."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        size = max(16, (len(raw) + 15) // 16 * 16)
        buffer = self.device.create_buffer(size=size, usage=UNIFORM, label=label)
        self.queue.write_buffer(buffer, 0, raw + b"\0" * (size - len(raw)))
        return buffer

    def read(self, buffer: wgpu.GPUBuffer, dtype=np.float32, count: int | None = None, offset: int = 0) -> np.ndarray:
        """Copy a buffer back to the CPU (tests and load time only; steps use staging rings)."""
        itemsize = np.dtype(dtype).itemsize
        size = buffer.size - offset if count is None else count * itemsize
        raw = self.queue.read_buffer(buffer, offset, size)
        return np.frombuffer(raw, dtype=dtype).copy()

    def fill(self, buffer: wgpu.GPUBuffer, value: float = np.nan) -> None:
        """Overwrite a float32 buffer with `value`: tests poison outputs before a kernel runs."""
        self.queue.write_buffer(buffer, 0, np.full(buffer.size // 4, value, np.float32).tobytes())

    # -- dispatches ------------------------------------------------------------------------
    def dispatch(
        self,
        kernel: str,
        buffers: list[wgpu.GPUBuffer],
        workgroups: int | tuple[int, ...],
        weights: str | None = None,
        prologue: str | None = None,
        tokens_per_workgroup: int = 1,
        **constants: float,
    ) -> Dispatch:
        """Bind `buffers` to @binding(0..n) of group 0 of `kernel`, in the kernel's declared order
        (`weights`: the weight layout of a matrix kernel; `prologue`: matvec's input prologue)."""
        pipeline = self.pipelines.get(kernel, weights, prologue, **constants)
        entries = [{"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}} for i, b in enumerate(buffers)]
        bind_group = self.device.create_bind_group(
            label=kernel, layout=pipeline.get_bind_group_layout(0), entries=entries
        )
        groups = (workgroups, 1, 1) if isinstance(workgroups, int) else tuple(workgroups) + (1,) * (3 - len(workgroups))
        label = "_".join(part for part in (kernel, weights, prologue) if part)
        return Dispatch(pipeline, bind_group, groups, label=label, tokens_per_workgroup=tokens_per_workgroup)

    def encode(self, encoder: wgpu.GPUCommandEncoder, dispatches: list[Dispatch], timestamp_writes=None) -> None:
        """Record `dispatches` into one compute pass of `encoder`.

        A decode step records a few hundred dispatches, so this loop is on the per-token path.
        wgpu-py's wrappers cost about 4x the C calls they make (error capture, argument
        conversion; measured in DESIGN.md), so the loop calls wgpu-native directly. Errors the
        wrappers would raise here surface at `encoder.finish()` instead, where WebGPU reports
        encoding errors anyway; NOTEBOOK_LLM_SAFE_ENCODE=1 selects the wrappers (debugging).
        """
        kwargs = {"timestamp_writes": timestamp_writes} if timestamp_writes else {}
        compute_pass = encoder.begin_compute_pass(**kwargs)
        if _RAW_ENCODE and not os.environ.get("NOTEBOOK_LLM_SAFE_ENCODE"):
            _record_raw(compute_pass, dispatches)
        else:
            last_pipeline = None
            for d in dispatches:
                if d.pipeline is not last_pipeline:
                    compute_pass.set_pipeline(d.pipeline)
                    last_pipeline = d.pipeline
                compute_pass.set_bind_group(0, d.bind_group)
                compute_pass.dispatch_workgroups(*d.workgroups)
        compute_pass.end()

    @functools.cached_property
    def subgroup_size(self) -> int:
        """The subgroup width a compute dispatch gets, measured once (kernels/subgroup_size.wgsl);
        0 without subgroups. Fixed on CPU drivers (lavapipe: its SIMD width, 8 lanes with AVX2);
        GPU compilers may pick it per pipeline, so only CPU kernels size themselves by it."""
        if not self.gpu.has_subgroups:
            return 0
        out = self.empty(4)
        self.run([self.dispatch("subgroup_size", [out], (1, 1, 1))])
        return int(self.read(out, np.uint32, 1)[0])

    def run(self, dispatches: list[Dispatch]) -> None:
        """Record `dispatches` in one compute pass and submit (tests and load time)."""
        encoder = self.device.create_command_encoder()
        self.encode(encoder, dispatches)
        self.queue.submit([encoder.finish()])


def _record_raw(compute_pass: wgpu.GPUComputePassEncoder, dispatches: list[Dispatch]) -> None:
    """The dispatch loop as bare wgpu-native calls (the handles stay alive: each Dispatch holds
    its pipeline and bind group, and the caller holds the dispatches until submit)."""
    handle = compute_pass._internal
    set_pipeline = _lib.wgpuComputePassEncoderSetPipeline
    set_bind_group = _lib.wgpuComputePassEncoderSetBindGroup
    dispatch = _lib.wgpuComputePassEncoderDispatchWorkgroups
    no_offsets = _ffi.NULL
    last_pipeline = None
    for d in dispatches:
        if d.pipeline is not last_pipeline:
            set_pipeline(handle, d.pipeline._internal)
            last_pipeline = d.pipeline
        set_bind_group(handle, 0, d.bind_group._internal, 0, no_offsets)
        x, y, z = d.workgroups
        dispatch(handle, x, y, z)
