"""Loading a model onto the GPU and running generations on it.

Owns: the GPU context, the model graph, tokenizer and chat template of one loaded model,
and the token loop. The OpenAI request/response protocol is the api layer's business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFoundError
from ..gpu.compute import GpuContext
from ..loader.chat_template import ChatTemplate
from ..loader.gguf_file import GGUFModelFile
from ..loader.models_offline import default_model_path
from ..models.llama import LlamaModel
from .generation import GenerationConfig, GenerationStats, TokenLoop

DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"


@dataclass(frozen=True)
class ChatOptions:
    """Per-model settings chosen at load (WebLLM's ChatOptions, the part this engine uses)."""

    context_window_size: int | None = 2048
    prefill_chunk_size: int = 128


def resolve_model_path(model: str | Path | None) -> tuple[str, Path]:
    """(model_id, path) for the default model, its id, or a path to a GGUF file."""
    if model is None or model == DEFAULT_MODEL_ID:
        return DEFAULT_MODEL_ID, default_model_path()
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path.stem, path
    raise ModelNotFoundError(
        f"model {str(model)!r} is neither a known model id ({DEFAULT_MODEL_ID!r}) nor a path to a .gguf file"
    )


class EngineCore:
    """One model loaded on one GPU context. Generations run one at a time (`lock`)."""

    lock: threading.Lock

    def __init__(
        self,
        model: str | Path | None = None,
        chat_options: ChatOptions | None = None,
        adapter: str | None = None,
        ctx: GpuContext | None = None,
    ):
        self.lock = threading.Lock()
        options = chat_options or ChatOptions()
        self.model_id, self.model_path = resolve_model_path(model)
        t0 = time.perf_counter()
        self.ctx = ctx or GpuContext.create(adapter)
        model_file = GGUFModelFile(self.model_path)
        self.config = model_file.config
        self.tokenizer = model_file.tokenizer()
        self.chat_template = self._chat_template(model_file.chat_template)
        self.model = LlamaModel(self.ctx, model_file, options.context_window_size, options.prefill_chunk_size)
        self.loop = TokenLoop(self.model)
        self.load_seconds = time.perf_counter() - t0

    def _chat_template(self, template: str | None) -> ChatTemplate | None:
        if not template:
            return None
        tok = self.tokenizer
        name = lambda token_id: tok.id_to_token(token_id) if token_id is not None else ""  # noqa: E731
        return ChatTemplate(template, bos_token=name(tok.bos_token_id), eos_token=name(tok.eos_token_id))

    @property
    def adapter_description(self) -> str:
        return self.ctx.gpu.adapter.description

    def generate(self, prompt_ids: list[int], config: GenerationConfig, stats: GenerationStats) -> Iterator[int]:
        """New token ids for `prompt_ids`; holds the engine's lock while running."""
        with self.lock:
            yield from self.loop.generate(prompt_ids, config, stats)
