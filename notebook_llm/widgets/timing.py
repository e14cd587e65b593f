"""Pacing kernel → front-end updates: a ticker thread and a rate limit that keeps the last value.

Streaming a reply token by token, or a load report per layer, would send one comm message per
event; these helpers batch them to a few per second without ever dropping the final state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("notebook_llm.widgets")


class Ticker:
    """Calls `tick()` every `interval` seconds on a daemon thread, from `start()` until `stop()`.

    `stop()` returns after the thread has ended, so no tick runs after it. A tick that raises is
    logged and ends the ticking (the owner's final flush still runs)."""

    def __init__(self, interval: float, tick: Callable[[], None], name: str = "notebook_llm-ticker"):
        self.interval = interval
        self._tick = tick
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "Ticker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 — logged, not raised into a thread nobody joins for errors
                log.exception("%s: a tick failed; ticking stops", self._thread.name)
                return


class LatestValueThrottle(Generic[T]):
    """Passes values on to `deliver` at most once per `interval` seconds; a value held back is
    delivered by `flush()` (or by the next `offer` once the interval has passed), so the last one
    always gets through. `offer(value, final=True)` delivers at once."""

    lock: threading.Lock

    def __init__(self, interval: float, deliver: Callable[[T], None]):
        self.lock = threading.Lock()
        self.interval = interval
        self._deliver = deliver
        self._held: list[T] = []  # at most one value, waiting for the interval to pass
        self._last = float("-inf")

    def offer(self, value: T, final: bool = False) -> None:
        with self.lock:
            now = time.monotonic()
            if not final and now - self._last < self.interval:
                self._held = [value]
                return
            self._held = []
            self._last = now
        self._deliver(value)

    def flush(self) -> None:
        with self.lock:
            held, self._held = self._held, []
            if held:
                self._last = time.monotonic()
        if held:
            self._deliver(held[0])
