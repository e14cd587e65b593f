"""Loading a model onto the GPU and running generations on it.

Owns: the GPU context, the model graph, tokenizer and chat template of one loaded model,
the token loop, and what a model is loaded with: its source (a .gguf file, an MLC directory, or
a registry record whose hub repository is fetched through loader.download first), its ChatOptions
and its sampling defaults. The OpenAI request/response protocol is the api layer's business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from pathlib import Path

from ..errors import EngineBusyError, InvalidRequestError, ModelNotFoundError
from ..gpu.compute import GpuContext
from ..gpu.device import AdapterInfo
from ..loader.chat_template import ChatTemplate, PromptTemplate
from ..loader.download import download_model
from ..loader.mlc_model import MLCModelFile, is_mlc_directory
from ..loader.model_files import ModelFileType, open_model_file
from ..loader.models_offline import default_model_path
from ..models.llama import LlamaModel
from ..progress import InitProgressReport, ProgressCallback
from ..registry import DEFAULT_MODEL_ID, KV_CACHE_DTYPES, AppConfig, ModelRecord, check_can_run, find_model
from .generation import GenerationConfig, GenerationStats, TokenConstraint, TokenLoop
from .sampler import SampledToken



@dataclass(frozen=True)
class ChatOptions:
    """Per-model settings chosen at load (WebLLM's ChatOptions, the part this engine uses)."""

    context_window_size: int | None = 2048
    prefill_chunk_size: int = 128
    # None: the model's own (GGUF {arch}.attention.sliding_window, else none); -1: off; n >= 1: each
    # query sees itself and the n - 1 tokens before it. The KV cache stays context_window_size long.
    sliding_window_size: int | None = None
    # what a chat prompt that does not fit does: raise ContextLengthError, or drop the oldest
    # turns (never the system prompt or the last message) and report it in usage.extra
    context_overflow: Literal["error", "drop_oldest_turns"] = "error"
    # what keys and values are cached as: float16 (llama.cpp's default: half the memory) or float32
    # (keys and values kept as computed; see LlamaModel)
    kv_cache_dtype: Literal["float16", "float32"] = "float16"

    def __post_init__(self):
        if self.context_window_size is not None and (not isinstance(self.context_window_size, int) or self.context_window_size < 2):
            raise InvalidRequestError(
                f"context_window_size is {self.context_window_size!r}; an integer >= 2 or None (the model's own) is allowed",
                param="context_window_size")
        if not isinstance(self.prefill_chunk_size, int) or not 1 <= self.prefill_chunk_size <= 4096:
            raise InvalidRequestError(
                f"prefill_chunk_size is {self.prefill_chunk_size!r}; an integer in [1, 4096] is allowed",
                param="prefill_chunk_size")
        window = self.sliding_window_size
        if window is not None and (not isinstance(window, int) or isinstance(window, bool) or not (window >= 1 or window == -1)):
            raise InvalidRequestError(
                f"sliding_window_size is {window!r}; an integer >= 1, -1 (off) or None (the model's own) is allowed",
                param="sliding_window_size")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise InvalidRequestError(f"kv_cache_dtype is {self.kv_cache_dtype!r}; allowed: "
                                      f"{', '.join(map(repr, KV_CACHE_DTYPES))}", param="kv_cache_dtype")
        if self.context_overflow not in ("error", "drop_oldest_turns"):
            raise InvalidRequestError(
                f"context_overflow is {self.context_overflow!r}; allowed: 'error', 'drop_oldest_turns'",
                param="context_overflow")




# ChatOptions fields a registry record's overrides and an MLC model's mlc-chat-config may set.
WINDOW_OPTIONS = ("context_window_size", "prefill_chunk_size", "sliding_window_size")
SAMPLING_DEFAULTS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty")
DOWNLOAD_SHARE = 0.5  # of the load progress, when the weights are fetched first


@dataclass(frozen=True)
class ModelSource:
    """What a `model` argument names: the id it is loaded as, where its weights are, and its record."""

    model_id: str
    path: Path | None  # a .gguf file or an MLC directory; None: on a hub, fetched when it loads
    record: ModelRecord | None = None  # None for a bare path (and the embedded default model)


def resolve_model_source(
    model: str | Path | None, app_config: AppConfig | None = None, adapter: AdapterInfo | None = None,
) -> ModelSource:
    """The source of a path to a .gguf file or an MLC model directory (one holding
    mlc-chat-config.json), or of a registry id (None: the default model).

    A registry record is checked against this engine and the adapter (its model_lib, required
    features, buffer limit and NOTEBOOK_LLM_VRAM_MB) before anything is loaded or downloaded."""
    if model is not None:
        path = Path(model).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelNotFoundError(f"no GGUF file at {str(path)!r}")
            return ModelSource(path.stem, path)
        if is_mlc_directory(path):
            return ModelSource(path.resolve().name, path)
    if model is None or model == DEFAULT_MODEL_ID:
        return ModelSource(DEFAULT_MODEL_ID, default_model_path())
    record = find_model(str(model), app_config)  # ModelNotFoundError naming the closest ids
    check_can_run(record, adapter)  # ModelFormatError / DeviceLimitError, before any download
    return ModelSource(record.model_id, record.local_path, record)


def resolve_model_path(
    model: str | Path | None, app_config: AppConfig | None = None, adapter: AdapterInfo | None = None,
) -> tuple[str, Path | None]:
    """(model_id, path) of `resolve_model_source`; the path is None for a record on a model hub
    (its weights are fetched when the model loads)."""
    source = resolve_model_source(model, app_config, adapter)
    return source.model_id, source.path


def effective_chat_options(given: ChatOptions | None, record: ModelRecord | None,
                           model_defaults: Mapping[str, int]) -> ChatOptions:
    """The ChatOptions a model loads with. A window field (WINDOW_OPTIONS) the caller set to other
    than its default wins; one left at its default takes the record's override, else the model's
    own setting (an MLC model's mlc-chat-config), else stays. A record's context_window_size of -1
    ("off") means the model's whole context."""
    options = given or ChatOptions()
    defaults, overrides = ChatOptions(), dict(record.overrides) if record is not None else {}
    updates: dict[str, Any] = {}
    for key in WINDOW_OPTIONS:
        if getattr(options, key) != getattr(defaults, key):
            continue
        value = overrides.get(key, model_defaults.get(key))
        if value is not None:
            updates[key] = None if key == "context_window_size" and value == -1 else value
    return replace(options, **updates) if updates else options


class EngineCore:
    """One model loaded on one GPU context. Generations run one at a time (`lock`)."""

    lock: threading.Lock

    def __init__(
        self,
        model: str | Path | None = None,
        chat_options: ChatOptions | None = None,
        adapter: str | None = None,
        ctx: GpuContext | None = None,
        progress: ProgressCallback | None = None,
        app_config: AppConfig | None = None,
    ):
        self.lock = threading.Lock()
        t0 = time.perf_counter()
        self.ctx = ctx or GpuContext.create(adapter)
        source = resolve_model_source(model, app_config, self.ctx.gpu.adapter)
        self.model_id = source.model_id

        def report(fraction: float, text: str) -> None:
            if progress is not None:
                progress(InitProgressReport(fraction, time.perf_counter() - t0, text))

        start = 0.0
        if source.path is None:  # a hub record: fetch (or find in the cache), then upload
            self.model_path = download_model(
                source.record, app_config=app_config,
                progress=lambda r: report(DOWNLOAD_SHARE * r.progress, r.text))
            start = DOWNLOAD_SHARE
        else:
            self.model_path = source.path
        report(start, f"Opening {self.model_path.name}")
        model_file = open_model_file(self.model_path)
        mlc = model_file if isinstance(model_file, MLCModelFile) else None
        self.options = effective_chat_options(chat_options, source.record, mlc.runtime_defaults if mlc else {})
        self.sampling_defaults = self._sampling_defaults(source.record, mlc)
        self.config = model_file.config
        self.tokenizer = model_file.tokenizer()
        self.chat_template = self._prompt_template(model_file)
        upload_start = start + 0.05 * (1 - start)
        report(upload_start, f"Uploading weights to {self.ctx.gpu.adapter.description}")
        self.model = LlamaModel(
            self.ctx, model_file, self.options.context_window_size, self.options.prefill_chunk_size,
            progress=lambda done, total: report(upload_start + (0.95 - upload_start) * done / total,
                                                f"Loading layer {done}/{total}"),
            sliding_window_size=self.options.sliding_window_size,
            kv_cache_dtype=self.options.kv_cache_dtype,
        )
        self.loop = TokenLoop(self.model)
        self.load_seconds = time.perf_counter() - t0
        report(1.0, f"Finished loading {self.model_id} in {self.load_seconds:.1f} s")

    @staticmethod
    def _sampling_defaults(record: ModelRecord | None, mlc: MLCModelFile | None) -> dict[str, float]:
        """Request defaults for the sampling fields a request leaves out: the MLC model's
        mlc-chat-config values, under the record's overrides."""
        defaults = dict(mlc.sampling_defaults) if mlc is not None else {}
        if record is not None:
            defaults |= {key: float(record.overrides[key]) for key in SAMPLING_DEFAULTS if key in record.overrides}
        return defaults

    def _prompt_template(self, model_file: ModelFileType) -> PromptTemplate | None:
        if isinstance(model_file, MLCModelFile):
            return model_file.prompt_template()
        return self._chat_template(model_file.chat_template)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Text that ends every reply besides a request's `stop` (an MLC conv_template's stop_str)."""
        return self.chat_template.stop_strings if self.chat_template is not None else ()

    def _chat_template(self, template: str | None) -> ChatTemplate | None:
        if not template:
            return None
        tok = self.tokenizer
        name = lambda token_id: tok.id_to_token(token_id) if token_id is not None else ""  # noqa: E731
        return ChatTemplate(template, bos_token=name(tok.bos_token_id), eos_token=name(tok.eos_token_id))

    @property
    def adapter_description(self) -> str:
        return self.ctx.gpu.adapter.description

    def generate(
        self, prompt_ids: list[int], config: GenerationConfig, stats: GenerationStats,
        constraint: TokenConstraint | None = None,
    ) -> Iterator[SampledToken]:
        """Sampled tokens for `prompt_ids`, holding the model's lock until the iterator ends or is
        closed. A second generation meanwhile is refused rather than queued: in a notebook the
        usual cause is a stream left open in the same thread, where waiting would hang forever."""
        if not self.lock.acquire(blocking=False):
            raise EngineBusyError(
                f"a generation is already running on {self.model_id!r} (or a stream from it is still open): "
                "iterate the stream to its end or call its .close(), or call engine.interrupt_generate()")
        try:
            yield from self.loop.generate(prompt_ids, config, stats, constraint)
        finally:
            self.lock.release()
