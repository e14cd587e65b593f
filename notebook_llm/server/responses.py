"""Bodies the server sends: JSON for one object, server-sent events for a stream, and the one
reply that a stream adds up to.

The server always runs the engine in streaming mode (so any request can be stopped after any
token); a non-streaming request's reply is the merge of its chunks, field for field what
`create(stream=False)` returns. No engine, no HTTP here.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..api.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceLogprobs,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
)

DONE_EVENT = b"data: [DONE]\n\n"
KEEP_ALIVE_EVENT = b": keep-alive\n\n"  # an SSE comment: clients skip it, idle proxies see traffic
NEGATIVE_INFINITY_LOGPROB = -9999.0  # what OpenAI sends for a token that could not be sampled


def to_json(record: Any) -> bytes:
    """A response record (or a plain dict) as JSON; -inf logprobs become -9999.0 as OpenAI's do."""
    data = record.to_dict() if hasattr(record, "to_dict") else record
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:  # a non-finite float somewhere: rare (masked tokens among top_logprobs)
        return json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return NEGATIVE_INFINITY_LOGPROB if value < 0 else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def sse_event(record: Any) -> bytes:
    return b"data: " + to_json(record) + b"\n\n"


def merge_chat_chunks(chunks: list[ChatCompletionChunk], logprobs: bool) -> ChatCompletion:
    """The `ChatCompletion` a chat stream adds up to; its last chunk carries the usage."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    tokens: dict[int, list] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for c in chunk.choices:
            texts.setdefault(c.index, []).append(c.delta.content or "")
            tokens.setdefault(c.index, []).extend(c.logprobs.content if c.logprobs and c.logprobs.content else [])
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    choices = [
        Choice(i, ChatCompletionMessage("".join(texts[i])), finish.get(i, "length"),
               ChoiceLogprobs(tokens[i]) if logprobs else None)
        for i in sorted(texts)
    ]
    first = chunks[0]
    return ChatCompletion(id=first.id, created=first.created, model=first.model, choices=choices, usage=usage)


def merge_completion_chunks(chunks: list[Completion], logprobs: bool) -> Completion:
    """The `Completion` a text-completion stream adds up to (text offsets counted from 0: echo and
    logprobs never come together)."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    parts: dict[int, list[CompletionLogprobs]] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for c in chunk.choices:
            texts.setdefault(c.index, []).append(c.text)
            if c.logprobs is not None:
                parts.setdefault(c.index, []).append(c.logprobs)
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    choices = [
        CompletionChoice("".join(texts[i]), i, finish.get(i, "length"),
                         _joined_logprobs(parts.get(i, [])) if logprobs else None)
        for i in sorted(texts)
    ]
    first = chunks[0]
    return Completion(id=first.id, created=first.created, model=first.model, choices=choices, usage=usage)


def _joined_logprobs(parts: list[CompletionLogprobs]) -> CompletionLogprobs:
    tokens = [t for p in parts for t in p.tokens]
    offsets, offset = [], 0
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return CompletionLogprobs(
        tokens=tokens,
        token_logprobs=[lp for p in parts for lp in p.token_logprobs],
        top_logprobs=[top for p in parts for top in (p.top_logprobs or [])],
        text_offset=offsets,
    )
