"""Submitting steps and reading one step's small result back while later steps run.

wgpu-py maps a buffer through its poll thread, which blocks in `wgpuDevicePoll(wait=True)` until
*every* submitted command buffer is done, and wgpu 29 holds the device's fence lock through that
wait, which `queue.submit` also needs (gfx-rs/wgpu#9470, fixed after wgpu 29). So while the token
of step t was being read, the submit of step t+1 (recorded meanwhile) waited for step t to finish:
the GPU went idle for a submit, a wake-up and the Python in between, every token. Same H100, this
path against wgpu-py's: decode 716-794 -> 1,038-1,047 tok/s (SmolLM2 shape), 797-822 -> 1,072-1,075
(Llama-3.2-1B shape) (benchmarks/results/2026-12-07-nvidia-h100-s8-readback-ab.txt).

`QueueReader` submits with `wgpuQueueSubmitForIndex` and waits on the calling thread for one
submission's index only, with a map callback of its own, so no other thread holds the lock and a
step submitted after the one being read runs on. Where wgpu-native's C functions are not at hand
(another wgpu backend or version), or with NOTEBOOK_LLM_WGPU_PY_READBACK=1 (debugging, A/B), it
uses wgpu-py's submit and map.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import wgpu

try:
    from wgpu.backends.wgpu_native._ffi import ffi as _ffi, lib as _lib

    _NATIVE = all(hasattr(_lib, name) for name in (
        "wgpuQueueSubmitForIndex", "wgpuDevicePoll", "wgpuBufferMapAsync",
        "wgpuBufferGetConstMappedRange", "wgpuBufferUnmap"))
except ImportError:
    _NATIVE = False

# The wgpu-native path where it is available (module constant: benchmarks.ab_constant A/Bs it).
USE_NATIVE = _NATIVE and not os.environ.get("NOTEBOOK_LLM_WGPU_PY_READBACK")


class QueueReader:
    """Submits command buffers and reads a mappable buffer once a given submission is done.

    One reader per device, used from one thread at a time (the token loop's)."""

    def __init__(self, device: wgpu.GPUDevice, native: bool | None = None):
        self.device = device
        self.queue = device.queue
        self.native = USE_NATIVE if native is None else (native and _NATIVE)
        self._pending = False
        if self.native:
            self._statuses: dict[int, int] = {}  # request id -> the map callback's status
            self._last_request = 0
            self._callback = _ffi.callback("void(WGPUMapAsyncStatus, WGPUStringView, void *, void *)", self._on_mapped)
            self._callback_info = _ffi.new("WGPUBufferMapCallbackInfo *")
            self._callback_info.mode = _lib.WGPUCallbackMode_AllowProcessEvents
            self._callback_info.callback = self._callback
            self._index = _ffi.new("WGPUSubmissionIndex *")

    def _on_mapped(self, status, _message, request, _userdata2) -> None:
        self._statuses[int(_ffi.cast("uintptr_t", request))] = int(status)

    def submit(self, command_buffer: wgpu.GPUCommandBuffer) -> int:
        """Submit; returns the submission's index (0 on the fallback path: read waits for all)."""
        if not self.native:
            self.queue.submit([command_buffer])
            return 0
        handles = _ffi.new("WGPUCommandBuffer[1]", [command_buffer._internal])
        return int(_lib.wgpuQueueSubmitForIndex(self.queue._internal, 1, handles))

    def request(self, buffer: wgpu.GPUBuffer, nbytes: int, submission: int) -> "PendingRead":
        """Start mapping the first `nbytes` of `buffer` (MAP_READ), which submission `submission`
        wrote. Nothing waits yet; later submits proceed. One read may be pending at a time."""
        if self._pending:
            raise RuntimeError("a readback is already pending; finish it first")
        self._pending = True
        if not self.native:
            return PendingRead(buffer, nbytes, submission, _map_with_wgpu_py(buffer, nbytes))
        self._last_request += 1
        self._statuses.clear()  # late callbacks of maps an interruption cancelled
        self._callback_info.userdata1 = _ffi.cast("void *", self._last_request)
        _lib.wgpuBufferMapAsync(buffer._internal, _lib.WGPUMapMode_Read, 0, nbytes, self._callback_info[0])
        return PendingRead(buffer, nbytes, submission, None, self._last_request)

    def finish(self, pending: "PendingRead") -> bytes:
        """Wait for `pending`'s submission (only that one: work submitted after it runs on), copy
        the bytes out and unmap. Whatever interrupts it (KeyboardInterrupt included), the buffer is
        left unmapped, a map still pending cancelled, so the next read of it works."""
        buffer, nbytes = pending.buffer, pending.nbytes
        if pending.promise is not None:
            try:
                pending.promise.sync_wait()
                try:
                    return bytes(buffer.read_mapped(0, nbytes, copy=False))
                finally:
                    buffer.unmap()
            finally:
                self._pending = False
        mapped = True  # mapped or pending: a failed map leaves the buffer unmapped
        try:
            device = self.device._internal
            self._index[0] = pending.submission
            _lib.wgpuDevicePoll(device, True, self._index)
            while pending.request not in self._statuses:  # another thread's poll got there first, or triage lags
                _lib.wgpuDevicePoll(device, True, _ffi.NULL)
            status = self._statuses.pop(pending.request)
            if status != _lib.WGPUMapAsyncStatus_Success:
                mapped = False
                raise RuntimeError(f"could not map the readback buffer (status {status})")
            return bytes(_ffi.buffer(_lib.wgpuBufferGetConstMappedRange(buffer._internal, 0, nbytes), nbytes))
        finally:
            if mapped:
                _lib.wgpuBufferUnmap(buffer._internal)
            self._pending = False

    def read(self, buffer: wgpu.GPUBuffer, nbytes: int, submission: int) -> bytes:
        return self.finish(self.request(buffer, nbytes, submission))


@dataclass(frozen=True)
class PendingRead:
    buffer: wgpu.GPUBuffer
    nbytes: int
    submission: int
    promise: object  # wgpu-py's map promise on the fallback path, else None
    request: int = 0  # the wgpu-native path's request id (its map callback's userdata)


def _map_with_wgpu_py(buffer: wgpu.GPUBuffer, nbytes: int):
    """wgpu-py's map. Every byte read here was copied by a submitted command buffer, so its READ
    mode's extra empty submit (for data no submit flushed) is skipped where it offers READ_NOSYNC."""
    try:
        return buffer.map_async("READ_NOSYNC", 0, nbytes)
    except (KeyError, ValueError, TypeError):
        return buffer.map_async(wgpu.MapMode.READ, 0, nbytes)
