"""OpenAI response types, field for field, as frozen dataclasses.

Owns the shapes that cross from the engine to users: `ChatCompletion` (non-streaming chat),
`ChatCompletionChunk` (streaming chat) and `Completion` (the legacy text endpoint, streamed or
not: OpenAI streams `Completion` objects too), with `usage` carrying WebLLM's `extra` timing
fields. `to_dict()` gives the JSON the OpenAI HTTP API would send; the official `openai`
package's models accept it (tests/test_api_types.py), with one exception:

finish_reason "abort" is WebLLM's (generation interrupted by the user). OpenAI's client types
list only "stop", "length", "tool_calls", "content_filter" and "function_call", so
`openai.types.chat.ChatCompletion.model_validate` rejects "abort". The `openai` client itself
does not validate responses by default and passes "abort" through unchanged; only a client
built with `_strict_response_validation=True` raises `APIResponseValidationError` on it.

No wgpu, no engine state, no pydantic here.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "abort"]


class _Record:
    def to_dict(self, *, exclude_none: bool = False) -> dict:
        """The OpenAI JSON object; `exclude_none` drops null fields at every level, as pydantic's does."""
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return _without_none(data) if exclude_none else data

    # pydantic-style spelling, so code written for the openai client's objects keeps working
    model_dump = to_dict


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


# --- log-probabilities ------------------------------------------------------------------------


@dataclass(frozen=True)
class TopLogprob(_Record):
    """One of the most likely tokens at a position, with its log-probability."""

    token: str
    logprob: float
    bytes: list[int] | None = None  # UTF-8 bytes of the token; None when it has no byte form


@dataclass(frozen=True)
class ChatCompletionTokenLogprob(_Record):
    """A sampled token, its log-probability and the `top_logprobs` most likely alternatives."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass(frozen=True)
class ChoiceLogprobs(_Record):
    """Per-token log-probabilities of one chat choice (of one chunk's delta when streaming)."""

    content: list[ChatCompletionTokenLogprob] | None
    refusal: None = None


@dataclass(frozen=True)
class CompletionLogprobs(_Record):
    """The legacy endpoint's log-probabilities: parallel lists, one entry per token."""

    tokens: list[str]
    # None for the first echoed prompt token, which has no context to be predicted from (OpenAI
    # sends null there too, although the openai package's types only allow floats)
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] | None  # token -> logprob of the `logprobs` best
    text_offset: list[int]  # character offset of each token in the choice's text


# --- chat -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatCompletionMessage(_Record):
    content: str | None
    role: Literal["assistant"] = "assistant"
    refusal: None = None
    tool_calls: None = None


@dataclass(frozen=True)
class Choice(_Record):
    index: int
    message: ChatCompletionMessage
    finish_reason: FinishReason
    logprobs: ChoiceLogprobs | None = None


@dataclass(frozen=True)
class UsageExtra(_Record):
    """WebLLM's timing fields, reported with every usage block, plus how many of the oldest
    messages were dropped to fit the context window (ChatOptions.context_overflow)."""

    e2e_latency_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    time_to_first_token_s: float
    time_per_output_token_s: float
    dropped_messages: int = 0


@dataclass(frozen=True)
class CompletionUsage(_Record):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    extra: UsageExtra | None = None


@dataclass(frozen=True)
class ChatCompletion(_Record):
    id: str
    choices: list[Choice]
    created: int
    model: str
    usage: CompletionUsage | None = None
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None


@dataclass(frozen=True)
class ChoiceDelta(_Record):
    content: str | None = None
    role: Literal["assistant"] | None = None
    refusal: None = None
    tool_calls: None = None


@dataclass(frozen=True)
class ChunkChoice(_Record):
    index: int
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


@dataclass(frozen=True)
class ChatCompletionChunk(_Record):
    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    usage: CompletionUsage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    system_fingerprint: str | None = None


# --- legacy text completion -----------------------------------------------------------------


@dataclass(frozen=True)
class CompletionChoice(_Record):
    text: str
    index: int
    finish_reason: FinishReason | None  # None only in a streamed chunk before the last one
    logprobs: CompletionLogprobs | None = None


@dataclass(frozen=True)
class Completion(_Record):
    """A text completion, or one chunk of a streamed one (OpenAI uses the same object for both)."""

    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    usage: CompletionUsage | None = None
    object: Literal["text_completion"] = "text_completion"
    system_fingerprint: str | None = None


@dataclass(frozen=True)
class RequestIdentity:
    """The id and creation time shared by every chunk of one response.

    `RequestIdentity()` gives a chat id (`chatcmpl-…`); `RequestIdentity.for_completion()` a
    legacy text-completion id (`cmpl-…`), as OpenAI names them.
    """

    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def for_completion(cls) -> RequestIdentity:
        return cls(id=f"cmpl-{uuid.uuid4().hex}")
