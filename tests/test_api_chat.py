"""`engine.chat.completions.create` on the real default model: OpenAI shapes, every request
parameter, streaming, seeds, stopping, logprobs, KV reuse, and typed errors that leave the
engine usable. Responses are validated against the official `openai` package's types."""

from __future__ import annotations

import json

import numpy as np
import openai.types.chat as oai
import pytest

from notebook_llm import ContextLengthError, EngineBusyError, InvalidRequestError
from notebook_llm.api.chat import chat_prompt_ids
from notebook_llm.api.requests import validate_chat_request
from notebook_llm.api.types import ChatCompletion, ChatCompletionChunk

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def _create(engine, **kwargs):
    return engine.chat.completions.create(**{"messages": HELLO, **kwargs})


def _text(engine, **kwargs) -> str:
    return _create(engine, **kwargs).choices[0].message.content


def _prompt_ids(engine, messages) -> list[int]:
    return chat_prompt_ids(engine.core, validate_chat_request({"messages": messages}))


def test_non_streaming_reply_has_openai_shape_and_consistent_usage(engine):
    reply = _create(engine, temperature=0, max_tokens=8)
    assert isinstance(reply, ChatCompletion)
    oai.ChatCompletion.model_validate(reply.to_dict())
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == engine.model_id
    (choice,) = reply.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens == len(_prompt_ids(engine, HELLO))
    assert 1 <= usage.completion_tokens <= 8
    assert "Paris" in choice.message.content
    assert engine.get_message() == choice.message.content
    assert "decode" in engine.runtime_stats_text()


def test_max_tokens_and_max_completion_tokens_are_honoured_exactly(engine):
    count = [{"role": "user", "content": "Count from 1 to 100, separated by commas."}]
    for key in ("max_tokens", "max_completion_tokens"):
        reply = engine.chat.completions.create(messages=count, temperature=0, **{key: 5})
        assert reply.usage.completion_tokens == 5 and reply.choices[0].finish_reason == "length"


def test_stream_chunks_concatenate_to_the_non_streamed_reply(engine):
    expected = _text(engine, temperature=0, max_tokens=20)
    chunks = list(_create(engine, temperature=0, max_tokens=20, stream=True, stream_options={"include_usage": True}))
    for c in chunks:
        assert isinstance(c, ChatCompletionChunk)
        oai.ChatCompletionChunk.model_validate(c.to_dict())
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == expected
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens >= 1
    assert usage_chunk.usage.extra.decode_tokens_per_s > 0


def test_generation_stops_at_end_of_turn_without_emitting_it_unless_ignore_eos(engine):
    ok = [{"role": "user", "content": "Reply with just the word OK."}]
    reply = engine.chat.completions.create(messages=ok, temperature=0, max_tokens=40)
    assert reply.choices[0].finish_reason == "stop"
    assert "<|im_end|>" not in reply.choices[0].message.content
    stopped_at = reply.usage.completion_tokens
    assert stopped_at < 40
    longer = engine.chat.completions.create(messages=ok, temperature=0, max_tokens=stopped_at + 3, ignore_eos=True)
    assert longer.usage.completion_tokens == stopped_at + 3 and longer.choices[0].finish_reason == "length"


def test_stop_strings_cut_the_text_and_are_not_emitted(engine):
    full = _text(engine, temperature=0, max_tokens=12)
    word = full.split()[2]  # a word from the middle of the greedy reply
    for stream in (False, True):
        reply = _create(engine, temperature=0, max_tokens=12, stop=[word], stream=stream)
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
        else:
            text = reply.choices[0].message.content
            assert reply.choices[0].finish_reason == "stop"
        assert text == full[: full.index(word)]


def test_same_seed_gives_same_tokens_and_seeds_vary_the_sample(engine):
    first = _text(engine, temperature=1.0, seed=123, max_tokens=10)
    assert _text(engine, temperature=1.0, seed=123, max_tokens=10) == first
    others = {_text(engine, temperature=1.0, seed=s, max_tokens=10) for s in (1, 2, 3)}
    assert len(others | {first}) >= 2


def test_n_choices_share_the_prefill_and_differ_by_seed(engine):
    _text(engine, temperature=0, max_tokens=1)  # the prompt is now in the KV cache
    reply = _create(engine, temperature=1.0, seed=5, n=3, max_tokens=8)
    oai.ChatCompletion.model_validate(reply.to_dict())
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) >= 2
    stats = engine.last_stats()
    assert [s.prefilled_tokens for s in stats.per_choice] == [1, 1, 1]  # only the last prompt token re-run
    assert reply.usage.completion_tokens == sum(s.completion_tokens for s in stats.per_choice)
    again = _create(engine, temperature=1.0, seed=5, n=3, max_tokens=8)
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]


def test_multi_turn_request_reuses_the_kv_cache_of_the_previous_turn(engine):
    engine.reset_chat()
    first = _create(engine, temperature=0, max_tokens=10)
    assert engine.last_stats().per_choice[0].prefilled_tokens == first.usage.prompt_tokens
    turn2 = HELLO + [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "And of Italy?"}]
    second = engine.chat.completions.create(messages=turn2, temperature=0, max_tokens=8)
    prefilled = engine.last_stats().per_choice[0].prefilled_tokens
    assert prefilled < second.usage.prompt_tokens - first.usage.prompt_tokens + 8
    assert "Rome" in second.choices[0].message.content
    engine.reset_chat()
    again = engine.chat.completions.create(messages=turn2, temperature=0, max_tokens=8)
    assert engine.last_stats().per_choice[0].prefilled_tokens == again.usage.prompt_tokens
    assert again.choices[0].message.content == second.choices[0].message.content


def test_logprobs_and_top_logprobs_match_the_models_distribution(engine):
    reply = _create(engine, temperature=0, max_tokens=6, logprobs=True, top_logprobs=20)
    oai.ChatCompletion.model_validate(reply.to_dict())
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for entry in content:
        assert len(entry.top_logprobs) == 20
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely token
        assert abs(entry.logprob - values[0]) < 1e-6
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
        assert sum(np.exp(values)) <= 1 + 1e-4
    chunks = list(_create(engine, temperature=0, max_tokens=6, logprobs=True, top_logprobs=2, stream=True))
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in content]
    assert all(len(t.top_logprobs) == 2 for t in streamed)


def test_logit_bias_forces_and_forbids_tokens(engine):
    forced = engine.tokenizer.encode(" banana", add_special_tokens=False)[0]
    text = _text(engine, temperature=0, max_tokens=3, logit_bias={str(forced): 100})
    assert text == engine.tokenizer.decode([forced] * 3)
    greedy = _create(engine, temperature=0, max_tokens=1, logprobs=True).choices[0].logprobs.content[0]
    first_id = engine.tokenizer.encode(greedy.token, add_special_tokens=False)[0]
    banned = _create(engine, temperature=0, max_tokens=1, logit_bias={first_id: -100}, logprobs=True)
    assert banned.choices[0].logprobs.content[0].token != greedy.token


def test_penalties_reduce_greedy_repetition(engine):
    def repeats(**kwargs) -> tuple[str, int]:
        reply = engine.completions.create(prompt="one one one one one one one one", max_tokens=10, temperature=0,
                                          ignore_eos=True, logprobs=0, **kwargs)
        tokens = reply.choices[0].logprobs.tokens
        return reply.choices[0].text, len(tokens) - len(set(tokens))

    plain_text, plain_repeats = repeats()
    assert plain_repeats >= 4  # greedy loops on this prompt
    for kwargs in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"repetition_penalty": 2.0}):
        text, n = repeats(**kwargs)
        assert text != plain_text and n < plain_repeats, (kwargs, text)


def test_truncation_samplers_keep_greedy_when_they_leave_one_token(engine):
    greedy = _text(engine, temperature=0, max_tokens=8)
    for kwargs in ({"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}):
        assert _text(engine, temperature=1.5, seed=9, max_tokens=8, **kwargs) == greedy, kwargs


def test_json_mode_and_json_schema_in_both_dialects(engine):
    ask = [{"role": "user", "content": "Give a person's name and age as JSON."}]
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    formats = [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
        {"type": "json_object", "schema": json.dumps(schema)},
    ]
    for response_format in formats:
        reply = engine.chat.completions.create(messages=ask, temperature=0, max_tokens=60, response_format=response_format)
        value = json.loads(reply.choices[0].message.content)
        assert isinstance(value, dict), response_format
        if "schema" in response_format or response_format["type"] == "json_schema":
            assert set(value) == {"name", "age"} and isinstance(value["age"], int)


def test_grammar_response_format_constrains_the_reply(engine):
    ask = [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]
    grammar = 'start: answer\nanswer: "yes" | "no"'
    reply = engine.chat.completions.create(messages=ask, temperature=1.0, seed=3, max_tokens=10,
                                           response_format={"type": "grammar", "grammar": grammar})
    assert reply.choices[0].message.content in ("yes", "no")
    assert reply.choices[0].finish_reason == "stop"


def test_enable_thinking_is_passed_to_the_template(engine):
    reply = _create(engine, temperature=0, max_tokens=4, extra_body={"enable_thinking": False})
    assert reply.choices[0].message.content


def test_interrupt_from_another_thread_ends_the_stream_with_abort(engine):
    import threading

    stream = _create(engine, temperature=0, max_tokens=200, ignore_eos=True, stream=True)
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 3:
            threading.Thread(target=engine.interrupt_generate).start()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["abort"]
    assert len(chunks) < 20
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


def test_open_stream_makes_a_second_request_fail_clearly_not_hang(engine):
    stream = _create(engine, temperature=0, max_tokens=30, stream=True)
    next(stream), next(stream)
    with pytest.raises(EngineBusyError, match="close"):
        _text(engine, temperature=0, max_tokens=2)
    stream.close()
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"temperature": 5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": 1.5}, "seed"),
        ({"n": 0}, "n"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logit_bias": {"999999": 1}}, "logit_bias"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"model": "no-such-model"}, "model"),
        ({"messages": []}, "messages"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}}, None),
        ({"response_format": {"type": "grammar", "grammar": "start: ("}}, None),
    ],
)
def test_bad_requests_raise_typed_errors_and_leave_the_engine_usable(engine, kwargs, param):
    with pytest.raises(InvalidRequestError) as info:
        _create(engine, **kwargs)
    if param is not None:
        assert info.value.param == param
    else:
        assert info.value.param.startswith("response_format")
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


def test_prompt_longer_than_the_context_window_is_rejected_naming_the_window(engine):
    long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(ContextLengthError, match="context_window_size.*2048"):
        engine.chat.completions.create(messages=long, max_tokens=4)
    assert "Paris" in _text(engine, temperature=0, max_tokens=8)


def test_content_given_as_text_parts_equals_plain_string(engine):
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]}]
    a = engine.chat.completions.create(messages=parts, temperature=0, max_tokens=8).choices[0].message.content
    assert a == _text(engine, temperature=0, max_tokens=8)
