"""The line in front of one engine: generations run one at a time, in arrival order, in a single
worker thread, so the server's event loop never waits on the GPU.

Owns the jobs' lifecycle (waiting → running → finished, or cancelled at any point) and the limit on
how many may wait. A job takes its place when its request arrives, so the order is arrival order
even though requests are validated concurrently; its work is a validated generation that has not
started: an iterator of chunks. Knows nothing about HTTP or OpenAI's shapes.

Cancelling is per job: a waiting job leaves the line; a running one stops after the chunk being
generated, because the worker closes that job's own iterator (which ends the token loop and
releases the model's lock). The core-wide `interrupt_generate` flag is not used: the next
generation on the core clears it, so setting it from here could stop, or miss, the wrong request.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

# what the worker hands to the event loop: ("chunk", value), then ("end", None) | ("error", exception)
# | ("cancelled", None)
Item = tuple[str, Any]
MAX_QUEUE = 64  # requests that may wait for the engine before the server answers 503
MAX_RETRY_AFTER_S = 60  # the openai client does not retry after a longer Retry-After


class Job:
    """One request's turn on the engine. It takes its place in line on arrival (`submit`), is given
    its chunks once the request is validated (`start`), and the worker thread runs them to their
    end, handing each chunk to the event loop that made the job (read them with `await job.next()`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.chunks: Iterator | None = None
        self.cancelled = threading.Event()
        self._ready = threading.Event()  # set by start() or cancel(); the worker waits for it
        self._loop = loop
        self._items: asyncio.Queue[Item] = asyncio.Queue()
        self._line: GenerationQueue | None = None

    def start(self, chunks: Iterator) -> None:
        """The validated, not yet started generation this job runs when its turn comes."""
        self.chunks = chunks
        self._ready.set()

    def put(self, kind: str, value: Any = None) -> None:
        """From the worker thread: hand one item to the event loop."""
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: nobody reads this job any more
            self.cancelled.set()

    async def next(self) -> Item:
        return await self._items.get()

    def cancel(self) -> None:
        """From any thread: drop the job if it waits, stop it after its current chunk if it runs."""
        self.cancelled.set()
        self._ready.set()
        if self._line is not None:
            self._line.drop(self)

    def run(self) -> None:
        """In the worker thread, once its turn has come: every chunk, then "end"; or "error", or
        "cancelled"."""
        self._ready.wait()
        if self.cancelled.is_set() or self.chunks is None:
            self._close()
            self.put("cancelled")
            return
        try:
            for chunk in self.chunks:
                self.put("chunk", chunk)
                if self.cancelled.is_set():
                    self.put("cancelled")
                    return
        except Exception as error:  # a typed engine error (busy, not loaded, device); reported, not raised
            self.put("error", error)
            return
        finally:
            self._close()  # ends the generation and frees the engine, however the loop ended
        self.put("end")

    def _close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class GenerationQueue:
    """FIFO of jobs for one engine, run one at a time by one daemon worker thread."""

    _lock: threading.Condition  # guards _waiting, _running, _closed and _seconds

    def __init__(self, max_waiting: int = MAX_QUEUE):
        if max_waiting < 0:
            raise ValueError(f"max_waiting is {max_waiting}; allowed: an integer >= 0")
        self.max_waiting = max_waiting
        self._lock = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._closed = False
        self._seconds: deque[float] = deque(maxlen=16)  # durations of the last jobs, for Retry-After
        self._worker = threading.Thread(target=self._work, name="notebook-llm-generation", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> bool:
        """Put `job` at the end of the line; False (nothing queued) when `max_waiting` already wait."""
        with self._lock:
            if self._closed or len(self._waiting) >= self.max_waiting:
                return False
            job._line = self
            self._waiting.append(job)
            self._lock.notify()
        return True

    def drop(self, job: Job) -> None:
        """Take `job` out of the line if it is still waiting (a running job stops by itself)."""
        with self._lock:
            if job not in self._waiting:
                return
            self._waiting.remove(job)
        job.put("cancelled")

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._running is not None

    def retry_after_s(self) -> int:
        """A guess at when a place frees up: the median recent job's duration times the line's length."""
        with self._lock:
            per_job = statistics.median(self._seconds) if self._seconds else 1.0
            ahead = len(self._waiting) + (self._running is not None)
        return min(MAX_RETRY_AFTER_S, max(1, math.ceil(per_job * max(1, ahead))))

    def close(self) -> None:
        """Cancel every job (waiting and running) and let the worker thread end."""
        with self._lock:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            if self._running is not None:
                self._running.cancelled.set()
                self._running._ready.set()
            self._lock.notify_all()
        for job in dropped:
            job.put("cancelled")

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if not self._waiting:
                    return
                job = self._running = self._waiting.popleft()
            started = time.perf_counter()
            try:
                job.run()
            finally:
                with self._lock:
                    self._running = None
                    self._seconds.append(time.perf_counter() - started)
