"""`ModelPicker`: choose, load, cancel and unload models of one engine from a notebook.

Owns the load state as a front end sees it (which model is chosen, loaded, loading, how far, what
went wrong) and the loader thread. The engine does the loading; the registry says which models
exist and which this adapter can run (notebook_llm.widgets.model_list). With a `RemoteEngine`
the list is its server's models and loading one selects it there. Never touches wgpu.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets import Dict, Enum, List, Unicode

from ..api.remote import RemoteEngine
from ..errors import EngineBusyError, InvalidRequestError, LoadCancelledError, NotebookLLMError
from ..progress import InitProgressReport, ProgressCallback
from ..registry import DEFAULT_MODEL_ID, AppConfig
from .base import KernelStateWidget
from .bundle import bundle_file
from .frontend_messages import MessageSchema, error_text, log, parse_message
from .model_list import adapter_text, current_adapter, engine_model_entries
from .timing import LatestValueThrottle

if TYPE_CHECKING:
    from ..api.engine import Engine

PICKER_MESSAGES: MessageSchema = {"load": {"model_id": str}, "cancel": {}, "unload": {}, "refresh": {}}

LOAD_CANCELLED = "load cancelled"


class ModelPicker(KernelStateWidget):
    """A list of the registry's models with Load / Cancel / Unload, bound to one `Engine`.

    `ModelPicker(engine=None, app_config=None, model_id=None)`: without an engine, the first load
    creates one (`.engine`). `model_id` preselects a model (default: the loaded one, else
    DEFAULT_MODEL_ID). ipywidgets keeps `.model_id` for the widget's comm id, hence
    `selected_model_id` for the chosen model.
    """

    _lock: threading.RLock  # guards _engine, _loader, _cancel and every commit of traits

    _esm = bundle_file("picker.js")
    _css = bundle_file("widgets.css")
    _kernel_owned: ClassVar[frozenset[str]] = frozenset(
        {"models", "loaded_model_id", "status", "progress", "error", "adapter"})

    models = List(Dict()).tag(sync=True)
    """One entry per registry record (keys in notebook_llm.widgets). - Type: list of dict"""
    selected_model_id = Unicode("").tag(sync=True)
    """The chosen model; the front end sets it when a row is clicked. - Type: str"""
    loaded_model_id = Unicode("").tag(sync=True)
    """What the engine has loaded now. - Default: "" (nothing)"""
    status = Enum(("unloaded", "loading", "loaded", "error"), "unloaded").tag(sync=True)
    """- Default: "unloaded" """
    progress = Dict().tag(sync=True)
    """The last load report: {"progress": 0..1, "time_elapsed": s, "text": str}. - Default: {}"""
    error = Unicode("").tag(sync=True)
    """Why the last load failed. - Default: "" """
    adapter = Unicode("").tag(sync=True)
    """The GPU adapter's description. - Type: str"""

    progress_interval: ClassVar[float] = 0.1  # seconds between progress updates (the last one always goes)

    def __init__(self, engine: "Engine | None" = None, app_config: AppConfig | None = None,
                 model_id: str | None = None, **unknown: Any):
        if unknown:
            raise InvalidRequestError(
                f"ModelPicker got unknown argument(s) {sorted(unknown)}; allowed are "
                "['engine', 'app_config', 'model_id']", param=sorted(unknown)[0])
        if model_id is not None and (not isinstance(model_id, str) or not model_id):
            raise InvalidRequestError(f"model_id is {model_id!r}; a model id (non-empty str) or None is allowed",
                                      param="model_id")
        self._engine = engine
        self.app_config = app_config
        self._loader: threading.Thread | None = None
        self._cancel = threading.Event()
        adapter = current_adapter(engine)
        loaded = _loaded_id(engine, model_id)
        super().__init__(
            models=engine_model_entries(engine, app_config, adapter), adapter=adapter_text(adapter, engine),
            selected_model_id=model_id or loaded or DEFAULT_MODEL_ID, loaded_model_id=loaded,
            status="loaded" if loaded else "unloaded")
        self.on_msg(self._on_frontend_message)

    @property
    def engine(self) -> "Engine | None":
        """The engine loads go to: the one passed, or the one the first load created (None before)."""
        return self._engine

    @property
    def loading(self) -> bool:
        loader = self._loader
        return loader is not None and loader.is_alive()

    # -- actions (the front end's messages call these) ------------------------------------------
    def load(self, model_id: str | None = None, wait: bool = False) -> None:
        """Load `model_id` (default: the selected one) on a worker thread; `wait=True` blocks until done."""
        if model_id is not None and (not isinstance(model_id, str) or not model_id):
            raise InvalidRequestError(f"model_id is {model_id!r}; a model id (non-empty str) or None is allowed",
                                      param="model_id")
        with self._lock:
            if self.loading:
                raise EngineBusyError(f"{self.selected_model_id!r} is still loading; cancel() it or wait() first")
            target = model_id or self.selected_model_id or DEFAULT_MODEL_ID
            self._cancel = threading.Event()
            with self._committing():
                self.selected_model_id = target
                self.status = "loading"
                self.error = ""
                self.progress = {"progress": 0.0, "time_elapsed": 0.0, "text": f"Starting to load {target}"}
            self._loader = threading.Thread(target=self._load, args=(target, self._cancel), daemon=True,
                                            name="notebook_llm-picker-load")
            self._loader.start()
        if wait:
            self.wait()

    def cancel(self) -> bool:
        """Stop the load in progress at its next progress report; False when nothing is loading."""
        with self._lock:
            if not self.loading:
                return False
            self._cancel.set()
            return True

    def unload(self) -> None:
        """Unload the engine's models (a load in progress is cancelled instead: it has unloaded them)."""
        with self._lock:
            if self.cancel():
                return
            if self._engine is not None:
                self._engine.unload()
            with self._committing():
                self.loaded_model_id = ""
                self.status = "unloaded"
                self.error = ""

    def refresh(self) -> None:
        """Recompute `models` (cached marks, runnable reasons) and what the engine has loaded."""
        adapter = current_adapter(self._engine)
        models = engine_model_entries(self._engine, self.app_config, adapter)
        with self._committing():
            self.models = models
            self.adapter = adapter_text(adapter, self._engine)
            if not self.loading:
                self.loaded_model_id = _loaded_id(self._engine, self.selected_model_id)
                if self.loaded_model_id:
                    self.status = "loaded"
                elif self.status == "loaded":
                    self.status = "unloaded"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the load in progress; True when none is running any more."""
        loader = self._loader
        if loader is None:
            return True
        loader.join(timeout)
        return not loader.is_alive()

    # -- the loader thread ----------------------------------------------------------------------
    def _load(self, model_id: str, cancel: threading.Event) -> None:
        throttle = LatestValueThrottle(self.progress_interval, self._show_progress)

        def report(progress: InitProgressReport) -> None:
            if cancel.is_set():
                raise LoadCancelledError(f"loading {model_id} was cancelled")
            throttle.offer(progress, final=progress.progress >= 1.0)

        failure: BaseException | None = None
        try:
            self._reload(model_id, report)
        except Exception as error:  # noqa: BLE001 — any failure ends this load, not the widget
            failure = error
            if not isinstance(error, NotebookLLMError):
                log.exception("ModelPicker: loading %s failed", model_id)
        throttle.flush()
        self._end_load(failure)

    def _reload(self, model_id: str, report: ProgressCallback) -> None:
        engine = self._engine
        if engine is None:
            from ..api.engine import Engine

            engine = Engine(model_id, init_progress_callback=report, app_config=self.app_config)
            engine.set_init_progress_callback(None)
            with self._lock:
                self._engine = engine
            return
        if isinstance(engine, RemoteEngine):  # selecting a served model: one GET /models, no progress to report
            engine.reload(model_id)
            return
        previous = engine.get_init_progress_callback()

        def both(progress: InitProgressReport) -> None:
            report(progress)
            if previous is not None:
                previous(progress)

        engine.set_init_progress_callback(both)
        try:
            engine.reload(model_id)
        finally:
            engine.set_init_progress_callback(previous)

    def _show_progress(self, report: InitProgressReport) -> None:
        with self._committing():
            self.progress = {"progress": float(report.progress), "time_elapsed": float(report.time_elapsed),
                             "text": report.text}

    def _end_load(self, failure: BaseException | None) -> None:
        models = None
        if failure is None:
            try:
                models = engine_model_entries(self._engine, self.app_config, current_adapter(self._engine))
            except Exception:  # noqa: BLE001 — the load worked; stale marks are not worth failing it
                log.exception("ModelPicker: refreshing the model list after a load failed")
        with self._committing():
            self.loaded_model_id = _loaded_id(self._engine, self.selected_model_id)
            if failure is None:
                self.status, self.error = "loaded", ""
                if models is not None:
                    self.models = models
                    self.adapter = adapter_text(current_adapter(self._engine), self._engine)
            elif isinstance(failure, LoadCancelledError):
                self.status = "loaded" if self.loaded_model_id else "unloaded"
                self.error = LOAD_CANCELLED
            else:
                self.status, self.error = "error", error_text(failure)
            self._loader = None  # the load is over: a new one may start while this thread exits

    # -- the front end ----------------------------------------------------------------------------
    def _on_frontend_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        message = parse_message(content, PICKER_MESSAGES, "ModelPicker")
        if message is None:
            return
        kind = message["type"]
        try:
            if kind == "load":
                self.load(message["model_id"] or None)
            elif kind == "cancel":
                self.cancel()
            elif kind == "unload":
                self.unload()
            else:
                self.refresh()
        except Exception as error:  # noqa: BLE001 — a front-end action must never raise in the kernel
            if not isinstance(error, NotebookLLMError):
                log.exception("ModelPicker: %r from the front end failed", kind)
            else:
                log.warning("ModelPicker: %r from the front end failed: %s", kind, error)
            self.error = error_text(error)

    def _repr_fields(self) -> dict[str, Any]:
        return {"selected_model_id": self.selected_model_id, "loaded_model_id": self.loaded_model_id,
                "status": self.status, "models": len(self.models)}


def _loaded_id(engine: "Engine | None", preferred: str | None) -> str:
    """The engine's loaded model: `preferred` when it is one of several, else the first; "" when none."""
    loaded = engine.loaded_models if engine is not None else []
    if preferred in loaded:
        return preferred
    return loaded[0] if loaded else ""
