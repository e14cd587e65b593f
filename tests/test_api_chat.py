"""`engine.chat.completions.create` on the real default model: OpenAI shapes, streaming, seeds,
stopping, and typed errors that leave the engine usable."""

from __future__ import annotations

import pytest

from notebook_llm import ContextLengthError, InvalidRequestError
from notebook_llm.api.types import ChatCompletion, ChatCompletionChunk

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def _text(engine, **kwargs) -> str:
    return engine.chat.completions.create(messages=HELLO, **kwargs).choices[0].message.content


def test_non_streaming_reply_has_openai_shape_and_consistent_usage(engine):
    reply = engine.chat.completions.create(messages=HELLO, temperature=0, max_tokens=8)
    assert isinstance(reply, ChatCompletion)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == engine.model_id
    (choice,) = reply.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens == len(engine.prompt_ids(engine.core, HELLO))
    assert 1 <= usage.completion_tokens <= 8
    assert "Paris" in choice.message.content
    assert reply.to_dict()["choices"][0]["message"]["content"] == choice.message.content


def test_max_tokens_is_honoured_exactly(engine):
    reply = engine.chat.completions.create(
        messages=[{"role": "user", "content": "Count from 1 to 100, separated by commas."}], temperature=0, max_tokens=5)
    assert reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"


def test_stream_chunks_concatenate_to_the_non_streamed_reply(engine):
    expected = _text(engine, temperature=0, max_tokens=20)
    chunks = list(engine.chat.completions.create(
        messages=HELLO, temperature=0, max_tokens=20, stream=True, stream_options={"include_usage": True}))
    assert all(isinstance(c, ChatCompletionChunk) and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == expected
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens >= 1
    assert usage_chunk.usage.extra.decode_tokens_per_s > 0


def test_generation_stops_at_end_of_turn_without_emitting_it(engine):
    reply = engine.chat.completions.create(
        messages=[{"role": "user", "content": "Reply with just the word OK."}], temperature=0, max_tokens=64)
    assert reply.choices[0].finish_reason == "stop"
    assert "<|im_end|>" not in reply.choices[0].message.content
    assert reply.usage.completion_tokens < 64


def test_same_seed_gives_same_tokens_and_seeds_vary_the_sample(engine):
    first = _text(engine, temperature=1.0, seed=123, max_tokens=12)
    assert _text(engine, temperature=1.0, seed=123, max_tokens=12) == first
    others = {_text(engine, temperature=1.0, seed=s, max_tokens=12) for s in (1, 2, 3)}
    assert len(others | {first}) >= 2


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"temperature": 5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": 1.5}, "seed"),
        ({"top_p": 0.5}, "top_p"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"model": "no-such-model"}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_requests_raise_typed_errors_and_leave_the_engine_usable(engine, kwargs, param):
    request = {"messages": HELLO, **kwargs}
    with pytest.raises(InvalidRequestError) as info:
        engine.chat.completions.create(**request)
    assert info.value.param == param
    assert param in str(info.value) or param == "messages"
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


def test_prompt_longer_than_the_context_window_is_rejected_before_the_gpu(engine):
    long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(ContextLengthError, match="context window"):
        engine.chat.completions.create(messages=long, max_tokens=4)
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


def test_abandoned_stream_does_not_break_the_next_request(engine):
    stream = engine.chat.completions.create(messages=HELLO, temperature=0, max_tokens=30, stream=True)
    next(stream), next(stream)
    stream.close()
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


def test_content_given_as_text_parts_equals_plain_string(engine):
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]}]
    a = engine.chat.completions.create(messages=parts, temperature=0, max_tokens=8).choices[0].message.content
    assert a == _text(engine, temperature=0, max_tokens=8)
