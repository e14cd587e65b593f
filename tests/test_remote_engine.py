"""`create_engine(base_url=...)`: a `RemoteEngine` against our own server on 127.0.0.1 gives the
local engine's Python API and types: model selection, replies and streams that the logprob views
read, interrupting a stream from another thread, and typed errors."""

from __future__ import annotations

import math
import threading
import time

import pytest

from notebook_llm import (
    ChatOptions,
    ContextLengthError,
    EngineNotLoadedError,
    InvalidRequestError,
    ModelNotFoundError,
    NotebookLLMError,
    create_engine,
)
from notebook_llm.api.remote import RemoteEngine
from notebook_llm.api.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionTokenLogprob,
    Completion,
    CompletionLogprobs,
    UsageExtra,
)
from notebook_llm.viz import Heatmap, alternatives_table_html, perplexity, token_view

pytestmark = pytest.mark.slow

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server(engine):
    with engine.serve(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def remote(server):
    engine = create_engine(base_url=server.url)
    yield engine
    engine.close()


def test_a_base_url_gives_a_remote_engine_that_selects_among_the_served_models(server, remote, engine):
    assert isinstance(remote, RemoteEngine)
    assert remote.model_id == engine.model_id and remote.loaded_models == [engine.model_id]
    assert remote.served_models() == engine.loaded_models
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        remote.reload("no-such-model")
    assert remote.model_id == engine.model_id  # a refused reload changes nothing
    remote.unload()
    assert remote.loaded_models == []
    with pytest.raises(EngineNotLoadedError):
        _ = remote.model_id
    remote.reload(engine.model_id)
    assert remote.loaded_models == [engine.model_id]
    with pytest.raises(InvalidRequestError) as local_only:
        create_engine(base_url=server.url, chat_options=ChatOptions())
    assert local_only.value.param == "chat_options"


def test_a_remote_reply_is_a_notebook_llm_record_that_the_logprob_views_read(remote):
    reply = remote.chat.completions.create(messages=HI, max_tokens=3, seed=2, logprobs=True, top_logprobs=3)
    assert isinstance(reply, ChatCompletion) and isinstance(reply.usage.extra, UsageExtra)
    entries = reply.choices[0].logprobs.content
    assert all(isinstance(e, ChatCompletionTokenLogprob) and len(e.top_logprobs) == 3 for e in entries)
    assert "".join(e.token for e in entries) == reply.choices[0].message.content == remote.get_message()
    view = token_view(reply)
    assert list(view.tokens) == [e.token for e in entries]
    assert math.isfinite(perplexity(reply)) and perplexity(reply) >= 1.0
    assert "<table" in alternatives_table_html(reply)
    assert entries[0].token.strip()[:1] in Heatmap(reply)._repr_html_()
    assert "decode" in remote.runtime_stats_text()


def test_a_remote_text_completion_keeps_the_legacy_logprobs(remote):
    reply = remote.completions.create(prompt="The capital of France is", max_tokens=2, seed=1, logprobs=2)
    assert isinstance(reply, Completion) and isinstance(reply.choices[0].logprobs, CompletionLogprobs)
    assert "".join(reply.choices[0].logprobs.tokens) == reply.choices[0].text
    assert len(token_view(reply).tokens) == reply.usage.completion_tokens


def test_interrupt_from_another_thread_ends_a_remote_stream_with_abort_and_frees_the_server(server, remote, engine):
    stream = remote.chat.completions.create(messages=HI, max_tokens=200, temperature=0, stream=True,
                                            extra_body={"ignore_eos": True})
    chunks = []
    for chunk in stream:
        assert isinstance(chunk, ChatCompletionChunk)
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content and len(chunks) == 2:
            threading.Thread(target=remote.interrupt_generate).start()  # as a widget's stop button does
    assert chunks[-1].choices[0].finish_reason == "abort"
    assert len(chunks) < 40  # it ended within a few tokens, far short of 200
    queue = server.app.state.openai_server.queue
    deadline = time.monotonic() + 120
    while queue.busy:  # the server saw the connection close and stopped the generation
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert engine.last_stats().per_choice[0].completion_tokens < 40
    assert remote.get_message() == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_server_errors_come_back_as_typed_errors(server, remote, engine):
    with pytest.raises(InvalidRequestError) as bad:
        remote.chat.completions.create(messages=HI, temperature=5)
    assert bad.value.param == "temperature"
    with pytest.raises(ContextLengthError):
        remote.chat.completions.create(messages=[{"role": "user", "content": "word " * 2100}])
    with pytest.raises(ModelNotFoundError):
        remote.chat.completions.create(model="no-such-model", messages=HI)
    with engine.serve(port=0, api_key="s3cret") as guarded:
        with pytest.raises(NotebookLLMError, match="401"):
            create_engine(base_url=guarded.url, api_key="wrong")
        assert create_engine(base_url=guarded.url, api_key="s3cret").model_id == engine.model_id
    with pytest.raises(NotebookLLMError, match="cannot reach"):
        create_engine(base_url=guarded.url)  # stopped: nothing listens there any more
