"""Loading a model onto the GPU and running generations on it.

Owns: the GPU context, the model graph, tokenizer and chat template of one loaded model,
and the token loop. The OpenAI request/response protocol is the api layer's business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from pathlib import Path

from ..errors import EngineBusyError, InvalidRequestError, ModelNotFoundError
from ..gpu.compute import GpuContext
from ..gpu.device import AdapterInfo
from ..loader.chat_template import ChatTemplate
from ..loader.gguf_file import GGUFModelFile
from ..loader.models_offline import default_model_path
from ..models.llama import LlamaModel
from ..progress import InitProgressReport, ProgressCallback
from ..registry import DEFAULT_MODEL_ID, AppConfig, check_can_run, find_model
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
        if self.context_overflow not in ("error", "drop_oldest_turns"):
            raise InvalidRequestError(
                f"context_overflow is {self.context_overflow!r}; allowed: 'error', 'drop_oldest_turns'",
                param="context_overflow")




def resolve_model_path(
    model: str | Path | None, app_config: AppConfig | None = None, adapter: AdapterInfo | None = None,
) -> tuple[str, Path]:
    """(model_id, path) for a path to a .gguf file, or a registry id (None: the default model).

    A registry record is checked against this engine and the adapter (its model_lib, required
    features, buffer limit and NOTEBOOK_LLM_VRAM_MB) before anything is loaded or downloaded."""
    if model is not None:
        path = Path(model).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelNotFoundError(f"no GGUF file at {str(path)!r}")
            return path.stem, path
    if model is None or model == DEFAULT_MODEL_ID:
        return DEFAULT_MODEL_ID, default_model_path()
    record = find_model(str(model), app_config)  # ModelNotFoundError naming the closest ids
    check_can_run(record, adapter)  # ModelFormatError / DeviceLimitError, before any download
    if record.local_path is None:
        raise ModelNotFoundError(f"model {record.model_id!r} is remote; downloading records is not wired into the engine yet")
    return record.model_id, record.local_path


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
        self.options = chat_options or ChatOptions()
        t0 = time.perf_counter()
        self.ctx = ctx or GpuContext.create(adapter)
        self.model_id, self.model_path = resolve_model_path(model, app_config, self.ctx.gpu.adapter)

        def report(fraction: float, text: str) -> None:
            if progress is not None:
                progress(InitProgressReport(fraction, time.perf_counter() - t0, text))

        report(0.0, f"Opening {self.model_path.name}")
        model_file = GGUFModelFile(self.model_path)
        self.config = model_file.config
        self.tokenizer = model_file.tokenizer()
        self.chat_template = self._chat_template(model_file.chat_template)
        report(0.05, f"Uploading weights to {self.ctx.gpu.adapter.description}")
        self.model = LlamaModel(
            self.ctx, model_file, self.options.context_window_size, self.options.prefill_chunk_size,
            progress=lambda done, total: report(0.05 + 0.9 * done / total, f"Loading layer {done}/{total}"),
            sliding_window_size=self.options.sliding_window_size,
        )
        self.loop = TokenLoop(self.model)
        self.load_seconds = time.perf_counter() - t0
        report(1.0, f"Finished loading {self.model_id} in {self.load_seconds:.1f} s")

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
