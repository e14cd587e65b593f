"""What both widgets share: the kernel owns their state, the front end may set only a few traits.

`KernelStateWidget` refuses front-end writes to kernel-owned traits and values its validators
reject, logs a warning, and sends the kernel's values back so the view shows them again. Every
multi-trait update from the kernel goes through `_committing()`, which holds the widget's lock
and batches the traits into one comm message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import anywidget
from traitlets import TraitError

from .frontend_messages import log


class KernelStateWidget(anywidget.AnyWidget):
    """An anywidget whose state is the kernel's, apart from the traits the front end may edit."""

    _lock: threading.RLock  # guards each subclass's worker state and every commit of traits
    _kernel_owned: ClassVar[frozenset[str]] = frozenset()  # synced traits the front end must not set

    def __init__(self, **traits: Any):
        self._lock = threading.RLock()  # re-entered by trait observers that run inside a commit
        self._commit_flag = threading.local()
        super().__init__(**traits)

    @contextmanager
    def _committing(self) -> Iterator[None]:
        """Set traits as one update (hold_sync), under the lock, marked as the kernel's own change."""
        with self._lock, self.hold_sync():
            self._commit_flag.on = True
            try:
                yield
            finally:
                self._commit_flag.on = False

    def _in_commit(self) -> bool:
        return getattr(self._commit_flag, "on", False)

    def _send_event(self, content: dict[str, Any]) -> None:
        """A custom message to the front end (ipywidgets' `Widget.send`)."""
        self.send(content)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A state update from the front end (ipywidgets calls this); never raises."""
        name = type(self).__name__
        refused = {key for key in sync_data if key in self._kernel_owned}
        if refused:
            log.warning("%s ignored front-end changes to the kernel-owned trait(s) %s", name, sorted(refused))
        accepted = {key: value for key, value in sync_data.items() if key not in refused}
        with self._lock:
            try:
                if accepted:
                    super().set_state(accepted)
            except TraitError as error:
                log.warning("%s rejected a front-end change: %s", name, error)
                refused |= set(accepted)
            if refused:
                self.send_state(sorted(refused & set(self.keys)))  # the view shows the kernel's values again

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self._repr_fields().items())
        return f"{type(self).__name__}({fields})"

    def _repr_fields(self) -> dict[str, Any]:
        return {}
