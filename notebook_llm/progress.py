"""Load progress reports, shared by the loader (downloads) and the engine (uploads to the GPU)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class InitProgressReport:
    """WebLLM's InitProgressReport: how far loading has come (progress in [0, 1])."""

    progress: float
    time_elapsed: float
    text: str


ProgressCallback = Callable[[InitProgressReport], None]
