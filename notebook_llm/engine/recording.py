"""Recording decode steps on worker threads, ahead of their submit.

A decode step's commands depend neither on the token (the embedding reads it from the GPU buffer
the sampler wrote) nor on the position (a uniform written just before the submit); only the
staging buffer its result record is copied into alternates. So the steps of a generation can be
recorded before the tokens before them are known. Recording is CPU work in wgpu-native, ~4-6 us
a dispatch (H100 host): for SmolLM2's 154 dispatches about as long as the GPU's whole step, so
recorded on the thread that also submits and reads tokens it set the pace. On worker threads
(the C calls release the GIL) it overlaps the submit, the wait for the token and the caller's
handling of it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import wgpu

# Steps recorded before they are needed: one covers the main thread's submit; a second absorbs
# a slow recording (a GC pause, a busy host). Each is a command buffer of a few hundred dispatches.
# 0 records each step when it is taken (on the worker still; for A/Bs).
STEPS_AHEAD = 2
# Worker threads: with two, two steps record at once (wgpu-native's encoders are independent and
# its calls release the GIL), so a recording slower than the GPU's step still keeps up (on the H100
# host one thread kept up too: decode alike with 1 and 2).
RECORDER_THREADS = 2


class StepRecorder:
    """Worker threads that record command buffers; `recording` starts a generation's steps."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def recording(self, record: Callable[[int], wgpu.GPUCommandBuffer], steps: Iterable[int]) -> "Recording":
        """Record `record(k)` for each k of `steps`, in order, STEPS_AHEAD of them before they are taken."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=RECORDER_THREADS, thread_name_prefix="notebook_llm-record")
        return Recording(self._pool, record, steps)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class Recording:
    """The recorded steps of one generation, taken in order with `next`."""

    def __init__(self, pool: ThreadPoolExecutor, record: Callable[[int], wgpu.GPUCommandBuffer], steps: Iterable[int]):
        self._pool = pool
        self._record = record
        self._steps = iter(steps)
        self._futures: deque[Future] = deque()
        self.seconds = 0.0  # recording time of the steps taken so far (on the workers)
        self._fill()

    def _schedule(self) -> bool:
        step = next(self._steps, None)
        if step is not None:
            self._futures.append(self._pool.submit(self._timed, step))
        return step is not None

    def _fill(self) -> None:
        while len(self._futures) < STEPS_AHEAD and self._schedule():
            pass

    def _timed(self, step: int) -> tuple[wgpu.GPUCommandBuffer, float]:
        t0 = time.perf_counter()
        command_buffer = self._record(step)
        return command_buffer, time.perf_counter() - t0

    def next(self) -> wgpu.GPUCommandBuffer:
        """The next step's command buffer (waiting for its recording); schedules one more."""
        if not self._futures and not self._schedule():
            raise RuntimeError("no more steps were asked of this recording")
        future = self._futures.popleft()
        self._fill()
        command_buffer, seconds = future.result()
        self.seconds += seconds
        return command_buffer

    def cancel(self) -> None:
        """Drop the steps not taken (a stop token, an interruption, an error). A recording already
        running finishes on its worker; its command buffer is never submitted."""
        while self._futures:
            self._futures.pop().cancel()
