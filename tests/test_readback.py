"""gpu/readback.py: reading one submission's result while later submissions are queued."""

from __future__ import annotations

import numpy as np
import pytest
import wgpu

from notebook_llm.gpu import readback
from notebook_llm.gpu.readback import QueueReader

MAP_READ = wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST


def _copy_submission(ctx, reader: QueueReader, source: wgpu.GPUBuffer, target: wgpu.GPUBuffer, nbytes: int) -> int:
    encoder = ctx.device.create_command_encoder()
    encoder.copy_buffer_to_buffer(source, 0, target, 0, nbytes)
    return reader.submit(encoder.finish())


@pytest.mark.parametrize("native", [True, False], ids=["wgpu-native", "wgpu-py"])
def test_read_returns_the_bytes_its_submission_copied_while_later_ones_are_queued(ctx, rng, native):
    reader = QueueReader(ctx.device, native=native)
    assert reader.native == (native and readback._NATIVE)
    words = [rng.integers(0, 2**32, size=24, dtype=np.uint32) for _ in range(3)]
    sources = [ctx.buffer(w) for w in words]
    staging = [ctx.device.create_buffer(size=96, usage=MAP_READ) for _ in range(2)]
    first = _copy_submission(ctx, reader, sources[0], staging[0], 96)
    pending = reader.request(staging[0], 96, first)
    later = _copy_submission(ctx, reader, sources[1], staging[1], 96)  # queued while the read is pending
    if reader.native:
        assert later > first
    assert np.array_equal(np.frombuffer(reader.finish(pending), np.uint32), words[0])
    # the staging buffer is unmapped again: the next step can copy into it and be read
    again = _copy_submission(ctx, reader, sources[2], staging[0], 96)
    assert np.array_equal(np.frombuffer(reader.read(staging[1], 40, later), np.uint32), words[1][:10])
    assert np.array_equal(np.frombuffer(reader.read(staging[0], 96, again), np.uint32), words[2])


def test_a_second_pending_read_is_refused_and_the_reader_stays_usable(ctx, rng):
    reader = QueueReader(ctx.device)
    data = rng.integers(0, 2**32, size=4, dtype=np.uint32)
    staging = [ctx.device.create_buffer(size=16, usage=MAP_READ) for _ in range(2)]
    index = _copy_submission(ctx, reader, ctx.buffer(data), staging[0], 16)
    pending = reader.request(staging[0], 16, index)
    with pytest.raises(RuntimeError, match="already pending"):
        reader.request(staging[1], 16, index)
    assert np.array_equal(np.frombuffer(reader.finish(pending), np.uint32), data)
    assert np.array_equal(np.frombuffer(reader.read(staging[0], 16, index), np.uint32), data)


def test_wgpu_py_fallback_maps_with_read_nosync_and_plain_read_where_refused():
    """wgpu-py's READ mode submits an empty command buffer first (for data no submit flushed);
    every read here follows its copy's submit, so READ_NOSYNC is asked first."""
    modes = []

    class OldStaging:
        def map_async(self, mode, offset, size):
            modes.append(mode)
            if mode == "READ_NOSYNC":
                raise KeyError(mode)
            return "promise"

    assert readback._map_with_wgpu_py(OldStaging(), 4) == "promise"
    assert modes == ["READ_NOSYNC", wgpu.MapMode.READ]


def test_a_read_interrupted_while_waiting_leaves_the_buffer_readable(ctx, rng, monkeypatch):
    """A KeyboardInterrupt (a notebook's interrupt) inside the wait: the pending map is cancelled and
    the buffer unmapped, so the next read of it gives the next submission's bytes."""
    reader = QueueReader(ctx.device)
    if not reader.native:
        pytest.skip("wgpu-native's C functions are not at hand")

    class InterruptOnce:
        def __init__(self, lib):
            self.lib, self.armed = lib, True

        def __getattr__(self, name):
            if name == "wgpuDevicePoll" and self.armed:
                self.armed = False

                def interrupted(*args):
                    raise KeyboardInterrupt
                return interrupted
            return getattr(self.lib, name)

    words = [rng.integers(0, 2**32, size=8, dtype=np.uint32) for _ in range(2)]
    staging = ctx.device.create_buffer(size=32, usage=MAP_READ)
    first = _copy_submission(ctx, reader, ctx.buffer(words[0]), staging, 32)
    pending = reader.request(staging, 32, first)
    monkeypatch.setattr(readback, "_lib", InterruptOnce(readback._lib))
    with pytest.raises(KeyboardInterrupt):
        reader.finish(pending)
    second = _copy_submission(ctx, reader, ctx.buffer(words[1]), staging, 32)
    assert np.array_equal(np.frombuffer(reader.read(staging, 32, second), np.uint32), words[1])
