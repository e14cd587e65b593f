"""Request validation: every rule of `validate_chat_request` / `validate_completion_request`.

Pure Python, no GPU: bad input is rejected with `InvalidRequestError` whose `param` is the
field's path and whose message names the field; good input comes back normalized.
"""

from __future__ import annotations

import json

import openai
import pytest

from notebook_llm.api.requests import (
    CHAT_UNSUPPORTED,
    ChatRequest,
    CompletionRequest,
    validate_chat_request,
    validate_completion_request,
)
from notebook_llm.api.types import ChatCompletionMessage
from notebook_llm.errors import InvalidRequestError

from .test_api_types import OpenAIStub, chat_completion_dict

HELLO = [{"role": "user", "content": "Hello"}]
VOCAB = 49152  # SmolLM2


def chat(vocab_size: int | None = VOCAB, **kwargs) -> ChatRequest:
    return validate_chat_request({"messages": HELLO, **kwargs}, vocab_size=vocab_size)


def completion(vocab_size: int | None = VOCAB, **kwargs) -> CompletionRequest:
    return validate_completion_request({"prompt": "Once upon a time", **kwargs}, vocab_size=vocab_size)


def rejected(validate, kwargs: dict, vocab_size: int | None = VOCAB) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        validate(kwargs, vocab_size=vocab_size)
    return info.value


def assert_rejected(validate, kwargs: dict, param: str) -> InvalidRequestError:
    error = rejected(validate, kwargs)
    assert error.param == param, str(error)
    assert param in str(error)
    return error


# --- defaults --------------------------------------------------------------------------------


def test_minimal_chat_request_gets_openai_and_webllm_defaults():
    assert chat() == ChatRequest(
        messages=HELLO, model=None, stream=False, include_usage=False, n=1, temperature=1.0, top_p=1.0,
        top_k=0, min_p=0.0, max_tokens=None, stop=[], seed=None, frequency_penalty=0.0, presence_penalty=0.0,
        repetition_penalty=1.0, logit_bias={}, logprobs=False, top_logprobs=0, ignore_eos=False,
        response_format=None, enable_thinking=None, user=None,
    )


def test_none_means_default_for_every_optional_field():
    nones = {name: None for name in (
        "model", "stream", "stream_options", "n", "temperature", "top_p", "top_k", "min_p", "max_tokens",
        "max_completion_tokens", "stop", "seed", "frequency_penalty", "presence_penalty", "repetition_penalty",
        "logit_bias", "logprobs", "top_logprobs", "ignore_eos", "response_format", "enable_thinking", "user",
    )}
    assert chat(**nones) == chat()


def test_minimal_completion_request_defaults_to_16_tokens_like_openai():
    request = completion()
    assert request.prompt == "Once upon a time"
    assert request.max_tokens == 16
    assert (request.logprobs, request.top_logprobs, request.echo) == (False, 0, False)
    assert (request.temperature, request.top_p, request.n, request.stop) == (1.0, 1.0, 1, [])
    assert completion(max_tokens=None).max_tokens is None  # explicit None: no limit


def test_numbers_are_normalized_to_plain_python_types():
    import numpy as np

    request = chat(temperature=np.float32(0.5), top_k=np.int64(40), seed=np.uint32(7), n=2)
    assert (request.temperature, request.top_k, request.seed) == (0.5, 40, 7)
    assert type(request.temperature) is float and type(request.top_k) is int and type(request.seed) is int


# --- field names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHAT_UNSUPPORTED)
def test_unsupported_openai_fields_are_rejected_by_name(name):
    error = assert_rejected(validate_chat_request, {"messages": HELLO, name: [{"type": "function"}]}, name)
    assert f"{name} is not supported by notebook_llm" in str(error)


def test_unsupported_fields_set_to_none_count_as_left_out():
    assert chat(**{name: None for name in CHAT_UNSUPPORTED}) == chat()


def test_unknown_field_error_suggests_the_near_name_and_lists_allowed_ones():
    error = assert_rejected(validate_chat_request, {"messages": HELLO, "temprature": 0.5}, "temprature")
    assert "did you mean 'temperature'" in str(error)
    assert "top_logprobs" in str(error) and "extra_body" in str(error)


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"messages": HELLO}, "messages"),  # chat field on the legacy endpoint
        ({"max_completion_tokens": 5}, "max_completion_tokens"),
        ({"response_format": {"type": "text"}}, "response_format"),
        ({"tools": None}, "tools"),  # unknown here, not merely unsupported
    ],
)
def test_completion_endpoint_rejects_chat_only_fields(kwargs, param):
    assert_rejected(validate_completion_request, {"prompt": "x", **kwargs}, param)


def test_required_fields_missing():
    assert_rejected(validate_chat_request, {}, "messages")
    assert_rejected(validate_completion_request, {}, "prompt")


# --- scalar types and ranges -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"model": ""}, "model"),
        ({"model": 3}, "model"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"n": 2.0}, "n"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": True}, "temperature"),  # bool is an int in Python; not a number here
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 40.5}, "top_k"),
        ({"top_k": False}, "top_k"),
        ({"min_p": -0.01}, "min_p"),
        ({"min_p": 1.01}, "min_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_completion_tokens": -3}, "max_completion_tokens"),
        ({"max_completion_tokens": True}, "max_completion_tokens"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "42"}, "seed"),
        ({"seed": True}, "seed"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": -2.5}, "presence_penalty"),
        ({"presence_penalty": [1]}, "presence_penalty"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"repetition_penalty": 10.5}, "repetition_penalty"),
        ({"logprobs": 1}, "logprobs"),  # chat takes a bool; the legacy int belongs to completions
        ({"ignore_eos": "true"}, "ignore_eos"),
        ({"enable_thinking": "no"}, "enable_thinking"),
        ({"user": 12}, "user"),
    ],
)
def test_bad_scalar_is_rejected_with_its_name(kwargs, param):
    assert_rejected(validate_chat_request, {"messages": HELLO, **kwargs}, param)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0}, {"temperature": 2}, {"top_p": 1}, {"top_p": 1e-6}, {"top_k": 0}, {"top_k": 10_000},
        {"min_p": 0}, {"min_p": 1}, {"n": 1}, {"n": 128}, {"max_tokens": 1}, {"seed": -5}, {"seed": 2**70},
        {"frequency_penalty": -2}, {"presence_penalty": 2}, {"repetition_penalty": 10}, {"repetition_penalty": 0.01},
    ],
)
def test_boundary_values_are_accepted(kwargs):
    request = chat(**kwargs)
    (name, value), = kwargs.items()
    assert getattr(request, name) == value


def test_error_message_names_field_value_and_allowed_range():
    message = str(rejected(validate_chat_request, {"messages": HELLO, "temperature": 5}))
    assert message == "temperature is 5; allowed: a number in [0, 2]"
    message = str(rejected(validate_chat_request, {"messages": HELLO, "top_p": 0}))
    assert message == "top_p is 0; allowed: a number in (0, 1]"


def test_long_bad_values_are_shortened_in_messages():
    message = str(rejected(validate_chat_request, {"messages": HELLO, "temperature": "x" * 10_000}))
    assert len(message) < 300


# --- max_tokens ------------------------------------------------------------------------------


def test_max_tokens_comes_from_either_name_and_both_must_agree():
    assert chat(max_tokens=7).max_tokens == 7
    assert chat(max_completion_tokens=7).max_tokens == 7
    assert chat(max_completion_tokens=7, max_tokens=7).max_tokens == 7
    error = assert_rejected(validate_chat_request, {"messages": HELLO, "max_completion_tokens": 7, "max_tokens": 8},
                            "max_completion_tokens")
    assert "max_tokens is 8" in str(error)


# --- stop ------------------------------------------------------------------------------------


def test_stop_string_becomes_a_list_and_lists_are_kept():
    assert chat(stop="\n\n").stop == ["\n\n"]
    assert chat(stop=("a", "b")).stop == ["a", "b"]
    assert chat(stop=[]).stop == []
    assert chat(stop=[f"s{i}" for i in range(16)]).stop == [f"s{i}" for i in range(16)]


@pytest.mark.parametrize("stop", ["", [""], ["ok", 3], [f"s{i}" for i in range(17)], 5, {"a"}])
def test_bad_stop_is_rejected(stop):
    assert_rejected(validate_chat_request, {"messages": HELLO, "stop": stop}, "stop")


# --- logit_bias ------------------------------------------------------------------------------


def test_logit_bias_keys_become_ints_and_values_floats():
    assert chat(logit_bias={"50": 5, 7: -100, "0": 100.0}).logit_bias == {50: 5.0, 7: -100.0, 0: 100.0}
    assert chat(logit_bias={"50": 5, 50: 5}).logit_bias == {50: 5.0}  # same token, same value
    assert chat(vocab_size=None, logit_bias={10**6: 1}).logit_bias == {10**6: 1.0}  # no vocab: no upper bound


@pytest.mark.parametrize(
    "bias",
    [
        {str(VOCAB): 1},  # one past the last token id
        {VOCAB + 5: 1},
        {"-1": 1},
        {-1: 1},
        {"abc": 1},
        {" 5": 1},
        {True: 1},
        {1.0: 1},
        {"5": 101},
        {"5": -100.5},
        {"5": "1"},
        {"5": True},
        {"5": 1, 5: 2},  # one token, two values
        [(5, 1)],
    ],
)
def test_bad_logit_bias_is_rejected(bias):
    assert_rejected(validate_chat_request, {"messages": HELLO, "logit_bias": bias}, "logit_bias")


# --- logprobs --------------------------------------------------------------------------------


def test_top_logprobs_needs_logprobs_true_and_stays_in_0_to_20():
    assert (chat(logprobs=True).logprobs, chat(logprobs=True).top_logprobs) == (True, 0)
    assert chat(logprobs=True, top_logprobs=20).top_logprobs == 20
    assert_rejected(validate_chat_request, {"messages": HELLO, "top_logprobs": 3}, "top_logprobs")
    assert_rejected(validate_chat_request, {"messages": HELLO, "logprobs": False, "top_logprobs": 0}, "top_logprobs")
    assert_rejected(validate_chat_request, {"messages": HELLO, "logprobs": True, "top_logprobs": 21}, "top_logprobs")
    assert_rejected(validate_chat_request, {"messages": HELLO, "logprobs": True, "top_logprobs": -1}, "top_logprobs")


def test_legacy_integer_logprobs_become_top_logprobs():
    assert (completion(logprobs=0).logprobs, completion(logprobs=0).top_logprobs) == (True, 0)
    assert (completion(logprobs=5).logprobs, completion(logprobs=5).top_logprobs) == (True, 5)
    assert (completion(logprobs=None).logprobs, completion(logprobs=None).top_logprobs) == (False, 0)
    for bad in (6, -1, True, 2.0):
        assert_rejected(validate_completion_request, {"prompt": "x", "logprobs": bad}, "logprobs")


# --- streaming -------------------------------------------------------------------------------


def test_stream_options_only_with_stream_and_only_known_keys():
    assert chat(stream=True, stream_options={"include_usage": True}).include_usage is True
    assert chat(stream=True, stream_options={"include_usage": False}).include_usage is False
    assert chat(stream=True, stream_options={}).include_usage is False
    assert chat(stream=True, stream_options={"include_obfuscation": False}).include_usage is False
    assert_rejected(validate_chat_request, {"messages": HELLO, "stream_options": {"include_usage": True}},
                    "stream_options")
    assert_rejected(validate_chat_request, {"messages": HELLO, "stream": False, "stream_options": {}},
                    "stream_options")
    assert_rejected(validate_chat_request, {"messages": HELLO, "stream": True, "stream_options": "usage"},
                    "stream_options")
    assert_rejected(validate_chat_request, {"messages": HELLO, "stream": True, "stream_options": {"usage": 1}},
                    "stream_options.usage")
    assert_rejected(validate_chat_request,
                    {"messages": HELLO, "stream": True, "stream_options": {"include_usage": "yes"}},
                    "stream_options.include_usage")


# --- extra_body and enable_thinking ------------------------------------------------------------


def test_extra_body_fields_count_as_top_level_fields():
    assert chat(extra_body={"top_k": 40, "enable_thinking": False}) == chat(top_k=40, enable_thinking=False)
    assert chat(extra_body={"top_k": 40}, top_k=40).top_k == 40  # same value twice is fine
    assert chat(extra_body=None) == chat()
    assert chat(enable_thinking=True).enable_thinking is True
    assert chat(extra_body={"enable_thinking": True}).enable_thinking is True


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"extra_body": {"top_k": 40}, "top_k": 50}, "top_k"),  # given twice, different values
        ({"extra_body": "enable_thinking"}, "extra_body"),
        ({"extra_body": {"extra_body": {}}}, "extra_body"),
        ({"extra_body": {"tools": [{}]}}, "tools"),  # extra_body fields obey the same rules
        ({"extra_body": {"thinking": True}}, "thinking"),
        ({"extra_body": {"enable_thinking": 1}}, "enable_thinking"),
    ],
)
def test_bad_extra_body_is_rejected(kwargs, param):
    assert_rejected(validate_chat_request, {"messages": HELLO, **kwargs}, param)


def test_request_body_sent_by_the_openai_client_validates():
    """OpenAI's client flattens extra_body into the JSON body; that body is a valid request."""
    with OpenAIStub(chat_completion_dict()) as stub:
        client = openai.OpenAI(base_url=stub.base_url, api_key="local", max_retries=0)
        client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=HELLO, temperature=0.2, max_completion_tokens=9, stop="END",
            logit_bias={"42": -100}, logprobs=True, top_logprobs=2, seed=1, stream=False,
            extra_body={"enable_thinking": False, "top_k": 40, "repetition_penalty": 1.1},
        )
    body = stub.requests[0]
    assert "extra_body" not in body and body["top_k"] == 40
    request = validate_chat_request(body, vocab_size=VOCAB)
    assert (request.model, request.temperature, request.max_tokens, request.stop) == (
        "SmolLM2-135M-Instruct", 0.2, 9, ["END"])
    assert (request.logit_bias, request.top_logprobs, request.top_k, request.repetition_penalty) == (
        {42: -100.0}, 2, 40, 1.1)
    assert request.enable_thinking is False


# --- messages --------------------------------------------------------------------------------

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}


@pytest.mark.parametrize(
    "messages, param",
    [
        ([], "messages"),
        ("Hello", "messages"),
        (None, "messages"),
        ({"role": "user", "content": "hi"}, "messages"),
        (["Hello"], "messages[0]"),
        ([{"content": "hi"}], "messages[0].role"),
        ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
        ([{"role": "developer", "content": "hi"}], "messages[0].role"),
        ([{"role": "user"}], "messages[0].content"),
        ([{"role": "user", "content": None}], "messages[0].content"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
        ([{"role": "user", "content": ["hi"]}], "messages[0].content[0]"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
         "messages[0].content[0].type"),
        ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "messages[0].content[0].text"),
        ([{"role": "user", "content": "hi", "name": ""}], "messages[0].name"),
        ([{"role": "user", "content": "hi", "name": 7}], "messages[0].name"),
        ([{"role": "user", "content": "hi", "mood": "happy"}], "messages[0].mood"),
        ([{"role": "user", "content": "hi", "tool_calls": [TOOL_CALL]}], "messages[0].tool_calls"),
        ([{"role": "assistant", "content": None}], "messages[0].content"),
        ([{"role": "assistant", "content": "hi", "refusal": "no"}], "messages[0].refusal"),
        ([{"role": "assistant", "content": "hi", "audio": {"id": "a"}}], "messages[0].audio"),
        ([{"role": "assistant", "content": None, "tool_calls": "weather"}], "messages[0].tool_calls"),
        ([{"role": "assistant", "content": None, "tool_calls": []}], "messages[0].content"),
        ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "id": ""}]}],
         "messages[0].tool_calls[0].id"),
        ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "type": "code"}]}],
         "messages[0].tool_calls[0].type"),
        ([{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]}],
         "messages[0].tool_calls[0].function"),
        ([{"role": "assistant", "content": None,
           "tool_calls": [{**TOOL_CALL, "function": {"name": "w", "arguments": {"city": "Paris"}}}]}],
         "messages[0].tool_calls[0].function.arguments"),
        ([{"role": "assistant", "content": None,
           "tool_calls": [{**TOOL_CALL, "function": {"arguments": "{}"}}]}],
         "messages[0].tool_calls[0].function.name"),
    ],
)
def test_bad_messages_are_rejected_with_their_path(messages, param):
    assert_rejected(validate_chat_request, {"messages": messages}, param)


def test_text_parts_are_flattened_and_names_kept():
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
        {"role": "user", "content": "hi", "name": "ada"},
        {"role": "assistant", "content": [], "refusal": None, "tool_calls": None, "audio": None},
    ]
    assert chat(messages=messages).messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi", "name": "ada"},
        {"role": "assistant", "content": ""},
    ]


def test_assistant_message_objects_from_a_previous_reply_are_accepted():
    ours = ChatCompletionMessage("Paris.")
    theirs = openai.types.chat.ChatCompletionMessage(role="assistant", content="Paris.")
    messages = [*HELLO, ours, {"role": "user", "content": "And Rome?"}]
    assert chat(messages=messages).messages[1] == {"role": "assistant", "content": "Paris."}
    messages[1] = theirs
    assert chat(messages=messages).messages[1] == {"role": "assistant", "content": "Paris."}


def test_tool_messages_answer_the_tool_calls_of_the_assistant_message_before_them():
    second = {**TOOL_CALL, "id": "call_2"}
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, second]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "sunny"}]},
        {"role": "assistant", "content": "18 C and sunny."},
    ]
    normalized = chat(messages=messages).messages
    assert normalized[1] == {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, second]}
    assert normalized[3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_2"}


@pytest.mark.parametrize(
    "messages, param",
    [
        ([{"role": "tool", "tool_call_id": "call_1", "content": "18 C"}], "messages[0].role"),
        ([*HELLO, {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}], "messages[1].role"),
        ([*HELLO, {"role": "assistant", "content": "Let me check."},
          {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}], "messages[2].role"),
        ([*HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
          {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}, *HELLO,
          {"role": "tool", "tool_call_id": "call_1", "content": "19 C"}], "messages[4].role"),
        ([*HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
          {"role": "tool", "tool_call_id": "call_9", "content": "18 C"}], "messages[2].tool_call_id"),
        ([*HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
          {"role": "tool", "content": "18 C"}], "messages[2].tool_call_id"),
        ([*HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
          {"role": "tool", "tool_call_id": "call_1"}], "messages[2].content"),
    ],
)
def test_tool_message_out_of_place_is_rejected(messages, param):
    assert_rejected(validate_chat_request, {"messages": messages}, param)


# --- response_format -------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_object", "schema": json.dumps(SCHEMA)},  # WebLLM's spelling
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}},
        {"type": "grammar", "grammar": 'root ::= "yes" | "no"'},
    ],
)
def test_good_response_formats_are_kept_as_given(response_format):
    assert chat(response_format=response_format).response_format == response_format


@pytest.mark.parametrize(
    "response_format, param",
    [
        ("json", "response_format"),
        ({}, "response_format.type"),
        ({"type": "yaml"}, "response_format.type"),
        ({"type": "text", "schema": "{}"}, "response_format.schema"),
        ({"type": "json_object", "schema": 5}, "response_format.schema"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, "response_format.json_schema.name"),
        ({"type": "json_schema", "json_schema": {"name": "a"}}, "response_format.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"name": "a", "schema": "{}"}}, "response_format.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": "yes"}},
         "response_format.json_schema.strict"),
        ({"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "format": 1}},
         "response_format.json_schema.format"),
        ({"type": "grammar"}, "response_format.grammar"),
        ({"type": "grammar", "grammar": ""}, "response_format.grammar"),
    ],
)
def test_bad_response_format_shape_is_rejected(response_format, param):
    assert_rejected(validate_chat_request, {"messages": HELLO, "response_format": response_format}, param)


# --- legacy completions ------------------------------------------------------------------------


def test_prompt_forms_are_normalized_to_text_or_token_ids():
    assert completion(prompt=["Once"]).prompt == "Once"
    assert completion(prompt=[1, 2, 3]).prompt == [1, 2, 3]
    assert completion(prompt=[[1, 2, 3]]).prompt == [1, 2, 3]
    assert completion(prompt=(VOCAB - 1,)).prompt == [VOCAB - 1]
    assert completion(prompt="x", echo=True).echo is True


@pytest.mark.parametrize(
    "prompt", ["", [], [""], ["a", "b"], [[1], [2]], [1, "a"], [-1], [VOCAB], [1.0], [True], None, 5, {"text": "a"}]
)
def test_bad_prompt_is_rejected(prompt):
    assert_rejected(validate_completion_request, {"prompt": prompt}, "prompt")


def test_batched_prompt_error_says_one_prompt_per_request():
    assert "one prompt per request" in str(rejected(validate_completion_request, {"prompt": ["a", "b"]}))


def test_suffix_and_best_of_are_rejected_unless_harmless():
    assert completion(suffix=None, best_of=None) == completion()
    assert completion(n=3, best_of=3).n == 3
    error = assert_rejected(validate_completion_request, {"prompt": "def f(", "suffix": "return x"}, "suffix")
    assert "not supported" in str(error)
    assert_rejected(validate_completion_request, {"prompt": "x", "best_of": 2}, "best_of")
    assert_rejected(validate_completion_request, {"prompt": "x", "n": 2, "best_of": 2.0}, "best_of")


def test_completion_shares_the_sampling_rules_with_chat():
    request = completion(temperature=0, top_p=0.9, top_k=5, min_p=0.1, stop="\n", seed=3, frequency_penalty=1,
                         presence_penalty=-1, repetition_penalty=1.2, logit_bias={"9": 2}, ignore_eos=True, user="u",
                         stream=True, stream_options={"include_usage": True}, extra_body={"model": "m"})
    assert (request.temperature, request.top_p, request.top_k, request.min_p, request.stop, request.seed) == (
        0.0, 0.9, 5, 0.1, ["\n"], 3)
    assert (request.frequency_penalty, request.presence_penalty, request.repetition_penalty) == (1.0, -1.0, 1.2)
    assert (request.logit_bias, request.ignore_eos, request.include_usage, request.model) == ({9: 2.0}, True, True, "m")
    for kwargs, param in [({"temperature": 3}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
                          ({"logit_bias": {"-3": 1}}, "logit_bias"), ({"stream_options": {}}, "stream_options")]:
        assert_rejected(validate_completion_request, {"prompt": "x", **kwargs}, param)


def test_requests_are_immutable():
    request = chat()
    with pytest.raises(AttributeError):
        request.temperature = 0.0  # type: ignore[misc]
