"""Response types: `to_dict()` is JSON that the official `openai` package accepts, field for field.

Each response is checked two ways: strictly, with the `openai` package's pydantic models
(`model_validate`), and end to end, served over HTTP from a local stub to a real `openai.OpenAI`
client. finish_reason "abort" (WebLLM's) is the one value OpenAI's types do not list; the tests
pin down what each path does with it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pydantic
import pytest
from openai.types import Completion as OpenAICompletion
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChatCompletionChunk

from notebook_llm.api.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionTokenLogprob,
    Choice,
    ChoiceDelta,
    ChoiceLogprobs,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionUsage,
    RequestIdentity,
    TopLogprob,
    UsageExtra,
)

MODEL = "SmolLM2-135M-Instruct-q4f16_1-MLC"
IDENT = RequestIdentity(id="chatcmpl-test", created=1_700_000_000)


class OpenAIStub:
    """A local HTTP server that answers every POST with `reply` (a dict, or a list of SSE events).

    The JSON bodies it receives are kept in `requests`, so tests can see what the client sent.
    """

    def __init__(self, reply: dict | list[dict]):
        self.reply = reply
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                stub.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if isinstance(stub.reply, list):
                    body = "".join(f"data: {json.dumps(event)}\n\n" for event in stub.reply) + "data: [DONE]\n\n"
                    kind = "text/event-stream"
                else:
                    body, kind = json.dumps(stub.reply), "application/json"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStub:
        threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def client_for(stub: OpenAIStub, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.base_url, api_key="local", max_retries=0, **options)


def usage() -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=12, completion_tokens=3, total_tokens=15,
        extra=UsageExtra(e2e_latency_s=0.5, prefill_tokens_per_s=900.0, decode_tokens_per_s=60.0,
                         time_to_first_token_s=0.02, time_per_output_token_s=1 / 60),
    )


def token_logprobs() -> list[ChatCompletionTokenLogprob]:
    """Two sampled tokens, each with two alternatives; " Paris" spelled as its UTF-8 bytes."""
    return [
        ChatCompletionTokenLogprob("The", -0.1, list(b"The"),
                                   [TopLogprob("The", -0.1, list(b"The")), TopLogprob("It", -2.5, list(b"It"))]),
        ChatCompletionTokenLogprob(" Paris", -0.01, list(b" Paris"),
                                   [TopLogprob(" Paris", -0.01, list(b" Paris")), TopLogprob(" Rome", -5.0, None)]),
    ]


def chat_completion(finish_reason="stop") -> ChatCompletion:
    return ChatCompletion(
        id=IDENT.id, created=IDENT.created, model=MODEL, usage=usage(),
        choices=[
            Choice(0, ChatCompletionMessage("The Paris"), finish_reason, ChoiceLogprobs(token_logprobs())),
            Choice(1, ChatCompletionMessage("It"), "length"),
        ],
    )


def chat_completion_dict(finish_reason="stop") -> dict:
    return chat_completion(finish_reason).to_dict()


def chat_chunks(finish_reason="stop") -> list[ChatCompletionChunk]:
    """A stream as the engine sends it: role, two content deltas with logprobs, finish, usage."""
    def chunk(choices, usage=None):
        return ChatCompletionChunk(id=IDENT.id, created=IDENT.created, model=MODEL, choices=choices, usage=usage)

    first, second = token_logprobs()
    return [
        chunk([ChunkChoice(0, ChoiceDelta(role="assistant", content=""))]),
        chunk([ChunkChoice(0, ChoiceDelta("The"), None, ChoiceLogprobs([first]))]),
        chunk([ChunkChoice(0, ChoiceDelta(" Paris"), None, ChoiceLogprobs([second]))]),
        chunk([ChunkChoice(0, ChoiceDelta(), finish_reason)]),
        chunk([], usage()),
    ]


def text_completion(finish_reason="length") -> Completion:
    ident = RequestIdentity.for_completion()
    logprobs = CompletionLogprobs(
        tokens=[" upon", " a"], token_logprobs=[-0.2, -0.05],
        top_logprobs=[{" upon": -0.2, " there": -2.0}, {" a": -0.05, " the": -3.1}], text_offset=[0, 5],
    )
    return Completion(
        id=ident.id, created=ident.created, model=MODEL, usage=usage(),
        choices=[CompletionChoice(" upon a", 0, finish_reason, logprobs)],
    )


# --- strict validation against the openai package's models ------------------------------------


def test_chat_completion_with_logprobs_and_usage_validates_as_openai_chat_completion():
    data = chat_completion().to_dict()
    parsed = OpenAIChatCompletion.model_validate(data)
    content = parsed.choices[0].logprobs.content
    assert [t.token for t in content] == ["The", " Paris"]
    assert bytes(content[1].bytes).decode() == " Paris"
    assert [(t.token, t.logprob) for t in content[0].top_logprobs] == [("The", -0.1), ("It", -2.5)]
    assert content[1].top_logprobs[1].bytes is None
    assert parsed.choices[0].message.refusal is None and parsed.choices[0].message.tool_calls is None
    assert parsed.choices[1].logprobs is None and parsed.choices[1].finish_reason == "length"
    assert parsed.usage.total_tokens == 15
    assert parsed.usage.model_extra["extra"]["decode_tokens_per_s"] == 60.0  # WebLLM's extra survives
    assert json.loads(json.dumps(data)) == data  # plain JSON all the way down


def test_every_chat_chunk_validates_as_openai_chat_completion_chunk():
    parsed = [OpenAIChatCompletionChunk.model_validate(chunk.to_dict()) for chunk in chat_chunks()]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in parsed[:4]) == "The Paris"
    assert parsed[2].choices[0].logprobs.content[0].top_logprobs[1].token == " Rome"
    assert parsed[3].choices[0].finish_reason == "stop"
    assert parsed[4].choices == [] and parsed[4].usage.completion_tokens == 3


def test_text_completion_with_legacy_logprobs_validates_as_openai_completion():
    parsed = OpenAICompletion.model_validate(text_completion().to_dict())
    assert parsed.object == "text_completion" and parsed.id.startswith("cmpl-")
    choice = parsed.choices[0]
    assert (choice.text, choice.finish_reason) == (" upon a", "length")
    assert choice.logprobs.tokens == [" upon", " a"] and choice.logprobs.text_offset == [0, 5]
    assert choice.logprobs.top_logprobs[1] == {" a": -0.05, " the": -3.1}
    assert parsed.usage.model_extra["extra"]["e2e_latency_s"] == 0.5


@pytest.mark.parametrize("finish_reason", ["stop", "length"])
def test_finish_reasons_openai_lists_validate_in_all_three_shapes(finish_reason):
    OpenAIChatCompletion.model_validate(chat_completion(finish_reason).to_dict())
    for chunk in chat_chunks(finish_reason):
        OpenAIChatCompletionChunk.model_validate(chunk.to_dict())
    OpenAICompletion.model_validate(text_completion(finish_reason).to_dict())


def test_abort_is_outside_openais_finish_reason_literal():
    """WebLLM's "abort" fails the openai package's strict models (pinned here so a change is noticed)."""
    with pytest.raises(pydantic.ValidationError, match="finish_reason"):
        OpenAIChatCompletion.model_validate(chat_completion("abort").to_dict())
    with pytest.raises(pydantic.ValidationError, match="finish_reason"):
        OpenAIChatCompletionChunk.model_validate(chat_chunks("abort")[3].to_dict())
    with pytest.raises(pydantic.ValidationError, match="finish_reason"):
        OpenAICompletion.model_validate(text_completion("abort").to_dict())


# --- end to end through the openai client ------------------------------------------------------


def test_openai_client_parses_a_served_chat_completion_including_abort():
    """The client does not validate responses by default, so "abort" reaches the caller as is."""
    for finish_reason in ("stop", "abort"):
        with OpenAIStub(chat_completion_dict(finish_reason)) as stub:
            reply = client_for(stub).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "?"}])
        assert reply.choices[0].finish_reason == finish_reason
        assert reply.choices[0].message.content == "The Paris"
        assert reply.choices[0].logprobs.content[1].top_logprobs[0].token == " Paris"
        assert reply.usage.model_extra["extra"]["prefill_tokens_per_s"] == 900.0


def test_openai_client_streams_served_chunks_including_abort():
    for finish_reason in ("length", "abort"):
        with OpenAIStub([c.to_dict() for c in chat_chunks(finish_reason)]) as stub:
            chunks = list(client_for(stub).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "?"}], stream=True,
                stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The Paris"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish_reason
        assert chunks[-1].usage.total_tokens == 15


def test_openai_client_with_strict_validation_rejects_abort_only():
    with OpenAIStub(chat_completion_dict("stop")) as stub:
        client_for(stub, _strict_response_validation=True).chat.completions.create(model=MODEL, messages=[])
    with OpenAIStub(chat_completion_dict("abort")) as stub:
        with pytest.raises(openai.APIResponseValidationError):
            client_for(stub, _strict_response_validation=True).chat.completions.create(model=MODEL, messages=[])


def test_openai_client_parses_a_served_text_completion():
    with OpenAIStub(text_completion().to_dict()) as stub:
        reply = client_for(stub).completions.create(model=MODEL, prompt="Once", logprobs=2)
    assert reply.choices[0].text == " upon a"
    assert reply.choices[0].logprobs.token_logprobs == [-0.2, -0.05]


# --- the dataclasses themselves -----------------------------------------------------------------


def test_positional_constructors_stay_backward_compatible():
    message = ChatCompletionMessage("hi")
    assert Choice(0, message, "stop").to_dict() == {
        "index": 0, "finish_reason": "stop", "logprobs": None,
        "message": {"content": "hi", "role": "assistant", "refusal": None, "tool_calls": None},
    }
    assert ChunkChoice(0, ChoiceDelta("hi"), None).to_dict() == {
        "index": 0, "finish_reason": None, "logprobs": None,
        "delta": {"content": "hi", "role": None, "refusal": None, "tool_calls": None},
    }
    assert RequestIdentity().id.startswith("chatcmpl-")


def test_model_dump_is_to_dict_and_exclude_none_drops_nulls_at_every_level():
    chunk = chat_chunks()[1]
    assert chunk.model_dump() == chunk.to_dict()
    lean = chunk.model_dump(exclude_none=True)
    assert lean["choices"][0]["delta"] == {"content": "The"}
    assert "usage" not in lean and "refusal" not in lean["choices"][0]["logprobs"]
    assert lean["choices"][0]["logprobs"]["content"][0]["top_logprobs"][1] == {
        "token": "It", "logprob": -2.5, "bytes": list(b"It")}


def test_legacy_stream_chunk_has_null_finish_reason_which_openai_types_reject():
    """A streamed text completion's chunks before the last carry finish_reason null, as OpenAI's
    API sends them; the openai package types finish_reason as non-optional, so strict validation
    of such a chunk fails while the (non-validating) client accepts it."""
    chunk = Completion(id="cmpl-x", created=1, model=MODEL, choices=[CompletionChoice(" up", 0, None)])
    assert chunk.to_dict()["choices"][0]["finish_reason"] is None
    with pytest.raises(pydantic.ValidationError):
        OpenAICompletion.model_validate(chunk.to_dict())
    with OpenAIStub([chunk.to_dict(), text_completion("stop").to_dict()]) as stub:
        chunks = list(client_for(stub).completions.create(model=MODEL, prompt="Once", stream=True))
    assert [c.choices[0].finish_reason for c in chunks] == [None, "stop"]
