"""OpenAI chat-completion response types, field for field, as frozen dataclasses.

Owns the shapes that cross from the engine to users: `ChatCompletion` (non-streaming) and
`ChatCompletionChunk` (streaming), with `usage` carrying WebLLM's `extra` timing fields.
`to_dict()` gives the JSON the OpenAI HTTP API would send. No wgpu, no engine state here.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "abort"]


class _Record:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    # pydantic-style spelling, so code written for the openai client's objects keeps working
    model_dump = to_dict


@dataclass(frozen=True)
class ChatCompletionMessage(_Record):
    content: str | None
    role: Literal["assistant"] = "assistant"


@dataclass(frozen=True)
class Choice(_Record):
    index: int
    message: ChatCompletionMessage
    finish_reason: FinishReason
    logprobs: None = None


@dataclass(frozen=True)
class UsageExtra(_Record):
    """WebLLM's timing fields, reported with every usage block."""

    e2e_latency_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    time_to_first_token_s: float
    time_per_output_token_s: float


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


@dataclass(frozen=True)
class ChunkChoice(_Record):
    index: int
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


@dataclass(frozen=True)
class ChatCompletionChunk(_Record):
    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    usage: CompletionUsage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    system_fingerprint: str | None = None


@dataclass(frozen=True)
class RequestIdentity:
    """The id and creation time shared by every chunk of one response."""

    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
