"""`Engine` and `create_engine`: WebLLM's MLCEngine for Python, plus `AsyncEngine`.

Owns the engine's lifecycle — one GPU context, one or more loaded models addressed by the
request's `model` field, reload/unload, interrupting a generation from another thread, logit
processors, per-model last message and stats — and the OpenAI-style entry points
`engine.chat.completions.create` and `engine.completions.create`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.core import ChatOptions, EngineCore, resolve_model_path
from ..progress import ProgressCallback
from ..registry import AppConfig
from ..engine.generation import LogitProcessor
from ..errors import EngineNotLoadedError, InvalidRequestError
from ..gpu.compute import GpuContext
from .chat import Chat
from .completions import Completions
from .runner import RunStats

if TYPE_CHECKING:
    from .remote import RemoteEngine


class Engine:
    """A local engine with OpenAI's API. `Engine(model=None)` loads the default model; pass a list
    to load several (requests then name one with `model=`)."""

    _lock: threading.Lock  # guards the table of loaded models, not generation (each core has its own)

    def __init__(
        self,
        model: str | Path | list[str | Path] | None = None,
        chat_options: ChatOptions | list[ChatOptions] | None = None,
        adapter: str | None = None,
        init_progress_callback: ProgressCallback | None = None,
        logit_processor_registry: dict[str, LogitProcessor] | None = None,
        app_config: AppConfig | None = None,
    ):
        self._lock = threading.Lock()
        self._app_config = app_config
        self._adapter = adapter
        self._ctx: GpuContext | None = None
        self._cores: dict[str, EngineCore] = {}
        self._last_message: dict[str, str] = {}
        self._last_stats: dict[str, RunStats] = {}
        self._progress = init_progress_callback
        self._logit_processors = dict(logit_processor_registry or {})
        self.chat = Chat(self)
        self.completions = Completions(self)
        self.reload(model, chat_options)

    # -- lifecycle -------------------------------------------------------------------------------
    def reload(self, model: str | Path | list[str | Path] | None = None,
               chat_options: ChatOptions | list[ChatOptions] | None = None) -> None:
        """Unload everything, then load `model` (one id or path, or a list of them)."""
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        options = list(chat_options) if isinstance(chat_options, (list, tuple)) else [chat_options] * len(models)
        if len(options) != len(models):
            raise InvalidRequestError(
                f"chat_options has {len(options)} entries for {len(models)} models; give one per model", param="chat_options")
        if self._ctx is None:
            self._ctx = GpuContext.create(self._adapter)
        # unknown ids, unimplemented formats and device limits fail before anything is unloaded
        ids = [resolve_model_path(m, self._app_config, self._ctx.gpu.adapter)[0] for m in models]
        if len(set(ids)) != len(ids):
            raise InvalidRequestError(f"model ids must be distinct, got {ids}", param="model")
        self.unload()
        for m, o in zip(models, options):
            core = EngineCore(m, o, ctx=self._ctx, progress=self._progress, app_config=self._app_config)
            core.loop.logit_processor = self._logit_processors.get(core.model_id)
            with self._lock:
                self._cores[core.model_id] = core

    def unload(self) -> None:
        """Drop every loaded model (GPU buffers are released when the last reference goes)."""
        self.interrupt_generate()  # a generation still running elsewhere ends at its next token
        with self._lock:
            self._cores = {}
        self._last_message.clear()
        self._last_stats.clear()

    def interrupt_generate(self) -> None:
        """Stop the generation in progress (from any thread); it ends with finish_reason "abort"."""
        for core in list(self._cores.values()):
            core.loop.interrupt.set()

    def reset_chat(self, keep_stats: bool = False, model: str | None = None) -> None:
        """Forget the conversation held in the KV cache (the next prompt is prefilled in full)."""
        core = self.core_for(model)
        core.loop.reset()
        if not keep_stats:
            self._last_stats.pop(core.model_id, None)

    def set_init_progress_callback(self, callback: ProgressCallback | None) -> None:
        self._progress = callback

    def get_init_progress_callback(self) -> ProgressCallback | None:
        return self._progress

    def set_logit_processor(self, model: str, processor: LogitProcessor | None) -> None:
        """Run `processor` on every step's logits (CPU; generation runs lock-step while it is set)."""
        self._logit_processors[model] = processor
        if model in self._cores:
            self._cores[model].loop.logit_processor = processor

    # -- models ----------------------------------------------------------------------------------
    @property
    def loaded_models(self) -> list[str]:
        return list(self._cores)

    @property
    def model_id(self) -> str:
        return self.core_for(None).model_id

    @property
    def core(self) -> EngineCore:
        """The loaded model's core (the only one, or an error when several are loaded)."""
        return self.core_for(None)

    @property
    def tokenizer(self):
        return self.core.tokenizer

    def core_for(self, model: str | None) -> EngineCore:
        with self._lock:
            cores = dict(self._cores)
        if not cores:
            raise EngineNotLoadedError("no model is loaded; call engine.reload(model_id) first")
        if model is None:
            if len(cores) > 1:
                raise InvalidRequestError(
                    f"several models are loaded ({', '.join(cores)}); name one with model=...", param="model")
            return next(iter(cores.values()))
        if model not in cores:
            raise InvalidRequestError(f"model {model!r} is not loaded; loaded: {', '.join(cores)}", param="model")
        return cores[model]

    # -- what the last request left ----------------------------------------------------------------
    def remember(self, core: EngineCore, stats: RunStats) -> None:
        self._last_stats[core.model_id] = stats

    def set_last_message(self, core: EngineCore, text: str) -> None:
        self._last_message[core.model_id] = text

    def get_message(self, model: str | None = None) -> str:
        """The text of the last reply (its first choice) from `model`."""
        return self._last_message.get(self.core_for(model).model_id, "")

    def last_stats(self, model: str | None = None) -> RunStats | None:
        return self._last_stats.get(self.core_for(model).model_id)

    def runtime_stats_text(self, model: str | None = None) -> str:
        core = self.core_for(model)
        stats = self._last_stats.get(core.model_id)
        if stats is None or not stats.per_choice:
            return f"{core.model_id} on {core.adapter_description}: no request yet (loaded in {core.load_seconds:.2f} s)"
        extra = stats.usage().extra
        return (f"prefill: {extra.prefill_tokens_per_s:.1f} tokens/sec, decode: {extra.decode_tokens_per_s:.1f} tokens/sec"
                f" ({core.model_id} on {core.adapter_description})")

    # -- serving -----------------------------------------------------------------------------------
    def serve(self, port: int = 8000, host: str = "127.0.0.1", api_key: str | None = None, *,
              max_queue: int = 64, log_level: str = "warning", cors_origins: list[str] | None = None):
        """Serve this engine over OpenAI's HTTP API from a daemon thread of this process (the kernel
        keeps running cells). Returns a `BackgroundServer`: `.url` is the clients' `base_url`
        (`http://127.0.0.1:8000/v1`), `.stop()` ends it. `port=0` picks a free port; `api_key`
        requires `Authorization: Bearer <key>`. Requests queue and run one at a time; while one
        runs, this engine's own `create` calls raise EngineBusyError. `cors_origins` (default none)
        lets web pages of those origins call it from a browser, e.g. ["http://localhost:3000"];
        "*" lets any page the browser opens use the models, so pair it with `api_key`."""
        from ..server.background import BackgroundServer  # a front end: imported only when serving

        return BackgroundServer(self, host=host, port=port, api_key=api_key, max_queue=max_queue, log_level=log_level,
                                cors_origins=cors_origins)


def create_engine(
    model: str | Path | list[str | Path] | None = None,
    chat_options: ChatOptions | list[ChatOptions] | None = None,
    init_progress_callback: ProgressCallback | None = None,
    adapter: str | None = None,
    logit_processor_registry: dict[str, LogitProcessor] | None = None,
    app_config: AppConfig | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
) -> "Engine | RemoteEngine":
    """WebLLM's `CreateMLCEngine`: load `model` (default: SmolLM2-135M-Instruct) and return the engine.
    `model` is a registry id (`app_config`, default the prebuilt list) or a path to a .gguf file.

    With `base_url` ("http://host:8000/v1") nothing loads here: a `RemoteEngine` sends the same calls
    to an OpenAI-compatible server (`engine.serve()`, `notebook-llm serve`), with `api_key` as its
    bearer token and `model` one the server lists (default: its first)."""
    if base_url is not None:
        from .remote import RemoteEngine

        local_only = {"chat_options": chat_options, "init_progress_callback": init_progress_callback,
                      "adapter": adapter, "logit_processor_registry": logit_processor_registry,
                      "app_config": app_config}
        for name, value in local_only.items():
            if value is not None:
                raise InvalidRequestError(
                    f"{name} is {value!r} but base_url is set; a remote engine's models are loaded by its server, "
                    f"so allowed: leave {name} out", param=name)
        if model is not None and not isinstance(model, str):
            raise InvalidRequestError(f"model is {model!r}; a remote engine takes one model id the server lists",
                                      param="model")
        return RemoteEngine(base_url, api_key=api_key, model=model)
    if api_key is not None:
        raise InvalidRequestError("api_key is set without base_url; allowed: api_key only with base_url",
                                  param="api_key")
    return Engine(model, chat_options, adapter, init_progress_callback, logit_processor_registry, app_config)


class _AsyncCreate:
    def __init__(self, create):
        self._create = create

    async def create(self, **kwargs: Any):
        """Like the sync `create`; a stream comes back as an async iterator (`async for`)."""
        result = await asyncio.to_thread(self._create, **kwargs)
        if kwargs.get("stream"):
            return _aiter(result)
        return result


async def _aiter(iterator: Iterable) -> AsyncIterator:
    it = iter(iterator)
    done = object()
    try:
        while (item := await asyncio.to_thread(next, it, done)) is not done:
            yield item
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


class _AsyncChat:
    def __init__(self, engine: Engine):
        self.completions = _AsyncCreate(engine.chat.completions.create)


class AsyncEngine:
    """The same engine for `asyncio` code: `await engine.chat.completions.create(...)`; generation
    runs in a worker thread so the event loop (e.g. Jupyter's) stays responsive."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.chat = _AsyncChat(engine)
        self.completions = _AsyncCreate(engine.completions.create)

    @classmethod
    async def create(cls, *args: Any, **kwargs: Any) -> "AsyncEngine":
        return cls(await asyncio.to_thread(create_engine, *args, **kwargs))

    def interrupt_generate(self) -> None:
        self.engine.interrupt_generate()

    async def reload(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.engine.reload, *args, **kwargs)

    async def unload(self) -> None:
        await asyncio.to_thread(self.engine.unload)

    def __getattr__(self, name: str):
        return getattr(self.engine, name)
