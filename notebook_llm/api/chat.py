"""`engine.chat.completions.create`: OpenAI's chat API over the local engine.

Owns request validation (bad input never reaches the GPU), prompt building through the
model's chat template, and turning the token loop's output into `ChatCompletion` objects or
a stream of `ChatCompletionChunk`s. This issue's parameter set: messages, model, stream,
stream_options, max_tokens / max_completion_tokens, temperature, seed; the rest of OpenAI's
parameters are rejected by name until the engine implements them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..engine.core import ChatOptions, EngineCore
from ..engine.generation import GenerationConfig, GenerationStats
from ..errors import ContextLengthError, InvalidRequestError
from ..loader.tokenizer import StreamDecoder
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
    RequestIdentity,
    UsageExtra,
)

ROLES = ("system", "user", "assistant", "tool")
NOT_YET_SUPPORTED = (
    "n", "top_p", "stop", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs",
    "top_logprobs", "response_format", "tools", "tool_choice",
)


def _validate_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {'role', 'content'} dicts", param="messages")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be a dict, got {type(message).__name__}", param="messages")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequestError(f"messages[{i}].role is {role!r}; allowed: {', '.join(ROLES)}", param="messages")
        if isinstance(content, list):
            parts = []
            for part in content:
                if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                    raise InvalidRequestError(
                        f"messages[{i}].content parts must be {{'type': 'text', 'text': str}}; got {part!r}",
                        param="messages")
                parts.append(part["text"])
            content = "".join(parts)
        if not isinstance(content, str):
            raise InvalidRequestError(
                f"messages[{i}].content must be a string or a list of text parts, got {type(content).__name__}",
                param="messages")
        clean.append({**message, "content": content})
    return clean


def _validate_sampling(temperature: Any, seed: Any, max_tokens: Any) -> tuple[float, int, int | None]:
    if temperature is None:
        temperature = 1.0
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise InvalidRequestError(f"temperature is {temperature!r}; a number in [0, 2] is allowed", param="temperature")
    if seed is None:
        seed = secrets.randbits(32)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidRequestError(f"seed is {seed!r}; an integer is allowed", param="seed")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidRequestError(f"max_tokens is {max_tokens!r}; a positive integer is allowed", param="max_tokens")
    return float(temperature), seed & 0xFFFFFFFF, max_tokens


class Completions:
    def __init__(self, engine: "Engine"):
        self._engine = engine

    def create(
        self,
        *,
        messages: list[dict],
        model: str | None = None,
        stream: bool = False,
        stream_options: dict | None = None,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        **unsupported: Any,
    ) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """Create a chat completion (OpenAI's signature); `stream=True` returns an iterator of chunks."""
        for name, value in unsupported.items():
            if name in NOT_YET_SUPPORTED:
                raise InvalidRequestError(f"{name} is not supported yet by notebook_llm", param=name)
            raise InvalidRequestError(f"unknown parameter {name!r}", param=name)
        core = self._engine.core_for(model)
        messages = _validate_messages(messages)
        temperature, seed, max_tokens = _validate_sampling(temperature, seed, max_completion_tokens or max_tokens)
        include_usage = bool((stream_options or {}).get("include_usage", False))
        if stream_options is not None and not stream:
            raise InvalidRequestError("stream_options is only allowed with stream=True", param="stream_options")
        prompt_ids = self._engine.prompt_ids(core, messages)
        window = core.model.context_window_size
        if len(prompt_ids) >= window:
            raise ContextLengthError(
                f"the prompt has {len(prompt_ids)} tokens; the context window holds {window} "
                "(prompt plus at least one new token)", param="messages")
        config = GenerationConfig(
            max_new_tokens=max_tokens or window,
            temperature=temperature,
            seed=seed,
            stop_token_ids=frozenset(core.tokenizer.stop_token_ids),
        )
        stats = GenerationStats()
        tokens = core.generate(prompt_ids, config, stats)
        if stream:
            return self._stream(core, tokens, stats, include_usage)
        decoder = StreamDecoder(core.tokenizer)
        text = "".join(decoder.push(t) for t in tokens) + decoder.flush()
        ident = RequestIdentity()
        return ChatCompletion(
            id=ident.id, created=ident.created, model=core.model_id,
            choices=[Choice(0, ChatCompletionMessage(text), stats.finish_reason)],
            usage=_usage(stats),
        )

    def _stream(self, core: EngineCore, tokens: Iterator[int], stats: GenerationStats, include_usage: bool):
        ident = RequestIdentity()

        def chunk(delta: ChoiceDelta, finish_reason=None, usage=None, choices=True) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=ident.id, created=ident.created, model=core.model_id, usage=usage,
                choices=[ChunkChoice(0, delta, finish_reason)] if choices else [],
            )

        decoder = StreamDecoder(core.tokenizer)
        yield chunk(ChoiceDelta(role="assistant", content=""))
        for token in tokens:
            text = decoder.push(token)
            if text:
                yield chunk(ChoiceDelta(content=text))
        tail = decoder.flush()
        if tail:
            yield chunk(ChoiceDelta(content=tail))
        yield chunk(ChoiceDelta(), finish_reason=stats.finish_reason)
        if include_usage:
            yield chunk(ChoiceDelta(), usage=_usage(stats), choices=False)


def _usage(stats: GenerationStats) -> CompletionUsage:
    e2e = time.perf_counter() - stats.started
    completion = stats.completion_tokens
    return CompletionUsage(
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=completion,
        total_tokens=stats.prompt_tokens + completion,
        extra=UsageExtra(
            e2e_latency_s=e2e,
            prefill_tokens_per_s=stats.prefill_tokens_per_s,
            decode_tokens_per_s=stats.decode_tokens_per_s,
            time_to_first_token_s=stats.prefill_seconds,
            time_per_output_token_s=(1 / stats.decode_tokens_per_s) if stats.decode_tokens_per_s else 0.0,
        ),
    )


class Chat:
    def __init__(self, engine: "Engine"):
        self.completions = Completions(engine)


class Engine:
    """A local engine with OpenAI's chat API: `Engine(model=None)` loads the default model."""

    def __init__(
        self,
        model: str | Path | None = None,
        chat_options: ChatOptions | None = None,
        adapter: str | None = None,
    ):
        self._core = EngineCore(model, chat_options, adapter)
        self.chat = Chat(self)

    @property
    def model_id(self) -> str:
        return self._core.model_id

    @property
    def core(self) -> EngineCore:
        return self._core

    @property
    def tokenizer(self):
        return self._core.tokenizer

    def core_for(self, model: str | None) -> EngineCore:
        if model is not None and model != self._core.model_id:
            raise InvalidRequestError(
                f"model {model!r} is not loaded; loaded: {self._core.model_id!r}", param="model")
        return self._core

    def prompt_ids(self, core: EngineCore, messages: list[dict]) -> list[int]:
        if core.chat_template is None:
            raise InvalidRequestError(f"model {core.model_id!r} has no chat template", param="messages")
        prompt = core.chat_template.render(messages, add_generation_prompt=True)
        return core.tokenizer.encode(prompt, add_special_tokens=False)

    def runtime_stats_text(self) -> str:
        return f"adapter: {self._core.adapter_description}; loaded in {self._core.load_seconds:.2f} s"


def create_engine(model: str | Path | None = None, chat_options: ChatOptions | None = None, adapter: str | None = None) -> Engine:
    """WebLLM's `CreateMLCEngine`: load `model` (default: SmolLM2-135M-Instruct) and return the engine."""
    return Engine(model, chat_options, adapter)
