"""The OpenAI-compatible HTTP server (`engine.serve`) driven by the official `openai` client and raw
httpx: OpenAI's shapes, streaming, errors as the client's own exception classes, auth, one
generation at a time in arrival order, clients that leave, the queue limit, and a bounded load test.

Tests marked slow use the real model. Every generation costs seconds on lavapipe, so requests are short (max_tokens 1-3) and reuse one
prompt: its KV cache makes each prefill a single chunk.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

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
    TopLogprob,
)
from notebook_llm.server.responses import (
    merge_chat_chunks,
    merge_completion_chunks,
    to_json,
)
from notebook_llm.server.scheduler import GenerationQueue, Job

HI = [{"role": "user", "content": "Hi"}]
IDLE_TIMEOUT_S = 120.0  # a cancelled generation ends after its current token: seconds here, not minutes
# the load test: requests, concurrent clients (the full run is benchmarks/server_load.py)
LOAD_REQUESTS, LOAD_CLIENTS = map(int, os.environ.get("NOTEBOOK_LLM_SERVER_LOAD", "8,8").split(","))
LOAD_SEEDS = (101, 102)


@pytest.fixture(scope="module")
def server(engine):
    with engine.serve(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=300)


def _error(exc: openai.APIStatusError) -> dict:
    """OpenAI's error fields (the client keeps the inner object of `{"error": {...}}` as `body`)."""
    return exc.body.get("error", exc.body)


def _wait_until_idle(server) -> None:
    queue = server.app.state.openai_server.queue
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while queue.busy or queue.waiting:
        assert time.monotonic() < deadline, "the server's engine did not become free"
        time.sleep(0.05)


def _waiting_job(line: GenerationQueue, chunks, loop, start: bool = True) -> Job:
    job = Job(loop)
    assert line.submit(job)
    if start:
        job.start(iter(chunks))
    return job


def test_generation_queue_runs_jobs_in_arrival_order_and_drops_cancelled_ones():
    async def scenario():
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        started = []

        def gated(name):
            started.append(name)
            gate.wait(10)
            yield name

        line = GenerationQueue(max_waiting=3)
        first = _waiting_job(line, gated("first"), loop)
        while not line.busy:
            await asyncio.sleep(0.001)
        jobs = [_waiting_job(line, gated(name), loop, start=name != "a") for name in ("a", "b", "c")]
        assert not line.submit(Job(loop)) and line.waiting == 3  # the limit: nothing queued
        jobs[1].cancel()  # leaves the line before it starts
        assert 1 <= line.retry_after_s() <= 60
        gate.set()
        await asyncio.sleep(0.05)
        assert started == ["first"]  # "c" is ready but "a", still being validated, keeps its place
        jobs[0].start(gated("a"))
        results = [[await job.next() for _ in range(2)] for job in (first, jobs[0], jobs[2])]
        assert await jobs[1].next() == ("cancelled", None)
        line.close()
        return started, results

    started, results = asyncio.run(scenario())
    assert started == ["first", "a", "c"]
    assert results == [[("chunk", n), ("end", None)] for n in ("first", "a", "c")]


def test_cancelling_a_running_job_closes_its_stream_after_the_current_chunk():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield "token"
        finally:
            closed.set()

    async def scenario():
        line = GenerationQueue()
        job = Job(asyncio.get_running_loop())
        line.submit(job)
        job.start(endless())
        assert await job.next() == ("chunk", "token")
        job.cancel()
        while (item := await job.next())[0] == "chunk":
            pass
        line.close()
        return item

    assert asyncio.run(scenario()) == ("cancelled", None)
    assert closed.wait(10)


def test_a_merged_stream_equals_the_reply_field_for_field():
    logprob = ChatCompletionTokenLogprob("Hi", -0.5, [72, 105], [TopLogprob("Hi", -0.5, [72, 105])])
    usage = CompletionUsage(3, 2, 5)

    def chunk(choices, usage=None):
        return ChatCompletionChunk(id="chatcmpl-1", choices=choices, created=7, model="m", usage=usage)

    chunks = [
        chunk([ChunkChoice(0, ChoiceDelta(content="", role="assistant"))]),
        chunk([ChunkChoice(0, ChoiceDelta(content="Hi"), None, ChoiceLogprobs([logprob]))]),
        chunk([ChunkChoice(0, ChoiceDelta(content="!"), None, ChoiceLogprobs([logprob]))]),
        chunk([ChunkChoice(0, ChoiceDelta(), "length")]),
        chunk([ChunkChoice(1, ChoiceDelta(content="", role="assistant"))]),
        chunk([ChunkChoice(1, ChoiceDelta(), "stop")]),
        chunk([], usage),
    ]
    assert merge_chat_chunks(chunks, logprobs=True) == ChatCompletion(
        id="chatcmpl-1", created=7, model="m", usage=usage, choices=[
            Choice(0, ChatCompletionMessage("Hi!"), "length", ChoiceLogprobs([logprob, logprob])),
            Choice(1, ChatCompletionMessage(""), "stop", ChoiceLogprobs([])),
        ])
    text_chunks = [
        Completion(id="cmpl-1", choices=[CompletionChoice(" Par", 0, None, CompletionLogprobs([" Par"], [-1.0], [{" Par": -1.0}], [0]))], created=7, model="m"),
        Completion(id="cmpl-1", choices=[CompletionChoice("is", 0, "length", CompletionLogprobs(["is"], [-2.0], [{"is": -2.0}], [0]))], created=7, model="m"),
    ]
    merged = merge_completion_chunks(text_chunks, logprobs=True)
    assert merged.choices == [CompletionChoice(" Paris", 0, "length", CompletionLogprobs(
        [" Par", "is"], [-1.0, -2.0], [{" Par": -1.0}, {"is": -2.0}], [0, 4]))]


def test_non_finite_logprobs_are_sent_as_openai_sends_them():
    assert json.loads(to_json({"logprob": float("-inf"), "top": [{"logprob": -1.5}]})) == {
        "logprob": -9999.0, "top": [{"logprob": -1.5}]}


@pytest.mark.slow
def test_models_endpoint_lists_the_loaded_models(client, engine):
    assert [m.id for m in client.models.list()] == engine.loaded_models
    assert client.models.retrieve(engine.model_id).owned_by == "notebook_llm"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


@pytest.mark.slow
def test_streamed_chat_adds_up_to_the_non_streamed_reply_for_the_same_seed(client, engine):
    args = dict(model=engine.model_id, messages=HI, max_tokens=2, seed=7, temperature=1.0)
    reply = client.chat.completions.create(**args)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == engine.model_id and reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens <= 2 and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.model_extra["extra"]["decode_tokens_per_s"] >= 0  # WebLLM's timing block comes through
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reply.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    assert engine.get_message() == reply.choices[0].message.content


@pytest.mark.slow
def test_async_client_streams_a_reply(server, engine):
    async def streamed() -> list:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=300) as client:
            stream = await client.chat.completions.create(model=engine.model_id, messages=HI, max_tokens=2, seed=9,
                                                          stream=True, stream_options={"include_usage": True})
            return [chunk async for chunk in stream]

    chunks = asyncio.run(streamed())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-2].choices[0].finish_reason in ("length", "stop") and 1 <= chunks[-1].usage.completion_tokens <= 2


@pytest.mark.slow
def test_n_choices_carry_their_own_logprobs_and_top_logprobs(client, engine):
    reply = client.chat.completions.create(model=engine.model_id, messages=HI, max_tokens=2, seed=3, n=2,
                                           logprobs=True, top_logprobs=3)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.usage.completion_tokens == sum(len(c.logprobs.content) for c in reply.choices)
    for choice in reply.choices:
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        for entry in choice.logprobs.content:
            assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
            assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
            assert entry.top_logprobs[0].logprob >= entry.logprob - 1e-4  # the best alternative is at least as likely


@pytest.mark.slow
def test_json_schema_response_format_constrains_the_reply(client, engine):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    reply = client.chat.completions.create(
        model=engine.model_id, messages=[{"role": "user", "content": "Is water wet? Answer in JSON."}],
        max_tokens=12, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}})
    assert isinstance(json.loads(reply.choices[0].message.content)["ok"], bool)


@pytest.mark.slow
def test_text_completion_streams_as_server_sent_events_ending_with_done(server, engine):
    body = {"model": engine.model_id, "prompt": "The capital of France is", "max_tokens": 2, "seed": 1, "logprobs": 2,
            "stream": True}
    with httpx.stream("POST", f"{server.url}/completions", json=body, timeout=300) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["object"] == "text_completion" and c["id"] == chunks[0]["id"] for c in chunks)
    choices = [c["choices"][0] for c in chunks]
    assert "".join(c["text"] for c in choices) == "".join(t for c in choices if c["logprobs"] for t in c["logprobs"]["tokens"])
    assert choices[-1]["finish_reason"] in ("length", "stop")
    assert all(len(top) == 2 for c in choices if c["logprobs"] for top in c["logprobs"]["top_logprobs"])


@pytest.mark.slow
def test_errors_come_back_as_the_openai_clients_exception_classes(server, client, engine):
    model = engine.model_id
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model, messages=HI, temperature=5)
    assert _error(bad.value)["param"] == "temperature" and "[0, 2]" in _error(bad.value)["message"]
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model=model, messages=HI, extra_body={"bogus_field": 1})
    assert _error(unknown.value)["param"] == "bogus_field"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=HI)
    assert _error(missing.value)["code"] == "model_not_found" and model in _error(missing.value)["message"]
    with pytest.raises(openai.APIStatusError) as long:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 2100}])
    assert long.value.status_code == 413 and _error(long.value)["code"] == "context_length_exceeded"
    assert _error(long.value)["type"] == "invalid_request_error"


@pytest.mark.slow
def test_malformed_and_oversized_bodies_and_unknown_paths_get_json_errors(server):
    not_json = httpx.post(f"{server.url}/chat/completions", content=b"{not json", timeout=30)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    listed = httpx.post(f"{server.url}/chat/completions", json=[1, 2], timeout=30)
    assert listed.status_code == 400 and "JSON object" in listed.json()["error"]["message"]
    big = httpx.post(f"{server.url}/completions", content=b"x" * (2 << 20), timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    nowhere = httpx.get(f"{server.url}/nowhere", timeout=30)
    assert nowhere.status_code == 404 and set(nowhere.json()["error"]) == {"message", "type", "param", "code"}
    wrong_method = httpx.get(f"{server.url}/embeddings", timeout=30)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


@pytest.mark.slow
def test_api_key_is_required_when_the_server_has_one(engine):
    with engine.serve(port=0, api_key="s3cret") as guarded:
        for key in ("wrong", "s3cret-and-more"):
            with pytest.raises(openai.AuthenticationError) as refused:
                openai.OpenAI(base_url=guarded.url, api_key=key, max_retries=0).models.list()
            assert _error(refused.value)["code"] == "invalid_api_key"
        bare = httpx.post(f"{guarded.url}/chat/completions", json={"messages": HI}, timeout=30)
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        assert [m.id for m in openai.OpenAI(base_url=guarded.url, api_key="s3cret").models.list()] == engine.loaded_models


@pytest.mark.slow
def test_engine_busy_in_the_notebook_answers_503_with_retry_after(server, client, engine):
    local = engine.chat.completions.create(messages=HI, max_tokens=2, stream=True)
    try:
        next(local)  # the notebook's own generation now holds the model
        with pytest.raises(openai.InternalServerError) as busy:
            client.chat.completions.create(model=engine.model_id, messages=HI, max_tokens=1)
        # a stream's headers are sent once it is queued, so there the error comes as an event
        stream = client.chat.completions.create(model=engine.model_id, messages=HI, max_tokens=1, stream=True)
        with pytest.raises(openai.APIError, match="already running"):
            list(stream)
    finally:
        local.close()
    assert busy.value.status_code == 503 and _error(busy.value)["code"] == "engine_busy"
    assert int(busy.value.response.headers["retry-after"]) >= 1


@pytest.mark.slow
def test_client_timing_out_on_a_non_streamed_request_stops_its_generation(server, engine):
    body = {"model": engine.model_id, "messages": HI, "max_tokens": 200, "ignore_eos": True, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/chat/completions", json=body, timeout=httpx.Timeout(1.0, connect=10.0))
    _wait_until_idle(server)
    stats = engine.last_stats().per_choice[0]
    # stopped soon after the client's 1 s timeout (a token count would depend on the adapter's speed)
    assert stats.completion_tokens < 200 and stats.prefill_seconds + stats.decode_seconds < 1.0 + 2.0, stats


@pytest.mark.slow
def test_full_queue_answers_503_and_a_client_leaving_mid_stream_frees_the_engine_for_the_next(engine):
    """One request streams, one waits (max_queue=1), a third is refused; the streaming client leaves:
    its generation stops within a few tokens and the waiting request runs to its own end."""
    with engine.serve(port=0, max_queue=1) as small:
        client = openai.OpenAI(base_url=small.url, api_key="unused", max_retries=0, timeout=300)
        queue = small.app.state.openai_server.queue
        holder = client.chat.completions.create(model=engine.model_id, messages=HI, max_tokens=200, stream=True,
                                                extra_body={"ignore_eos": True})
        next(iter(holder))  # running
        holder_stats = engine.last_stats()
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(client.chat.completions.create, model=engine.model_id, messages=HI, max_tokens=2,
                                  extra_body={"ignore_eos": True}, seed=5)
            while queue.waiting < 1:
                assert not waiting.done(), waiting.result()
                time.sleep(0.02)
            with pytest.raises(openai.InternalServerError) as full:
                client.chat.completions.create(model=engine.model_id, messages=HI, max_tokens=1)
            holder.close()  # the running request's client leaves; the waiting one must run untouched
            reply = waiting.result(timeout=IDLE_TIMEOUT_S)
    assert holder_stats.per_choice[0].completion_tokens < 20  # stopped, far short of its 200 tokens
    assert full.value.status_code == 503 and _error(full.value)["code"] == "queue_full"
    assert 1 <= int(full.value.response.headers["retry-after"]) <= 60
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 2


@pytest.mark.slow
def test_concurrent_clients_each_get_the_reply_of_their_own_seed(server, engine):
    """LOAD_REQUESTS requests from LOAD_CLIENTS threads, half streamed, each checked against the reply
    generated sequentially (by the engine itself) for its seed: no mixed-up or cut-off replies."""
    args = dict(messages=HI, max_tokens=3, temperature=1.2)
    reference = {seed: engine.chat.completions.create(**args, seed=seed).choices[0].message.content
                 for seed in LOAD_SEEDS}
    print(f"references by seed: {reference}")
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=600)

    def one(i: int) -> tuple[int, str, float]:
        seed = LOAD_SEEDS[i % len(LOAD_SEEDS)]
        started = time.perf_counter()
        if i % 2:
            text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model=engine.model_id, **args, seed=seed, stream=True) if c.choices)
        else:
            text = client.chat.completions.create(model=engine.model_id, **args, seed=seed).choices[0].message.content
        return seed, text, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        results = list(pool.map(one, range(LOAD_REQUESTS)))
    wall = time.perf_counter() - started
    latencies = sorted(r[2] for r in results)
    p50, p99 = statistics.median(latencies), latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"{LOAD_REQUESTS} requests from {LOAD_CLIENTS} clients in {wall:.1f} s: "
          f"p50 {p50:.2f} s, p99 {p99:.2f} s, {LOAD_REQUESTS / wall:.2f} requests/s")
    assert [(seed, text) for seed, text, _ in results] == [(seed, reference[seed]) for seed, _, _ in results]


# --- CORS and /v1/embeddings: a random-weight tiny llama is served (nothing here generates) -----------

ORIGIN = "http://localhost:3000"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"}


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    from notebook_llm import create_engine

    from .tiny_llama import write_tiny_llama

    return create_engine(str(write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=7)))


def test_without_cors_origins_responses_carry_no_cors_headers_and_preflights_are_refused(tiny_engine):
    with tiny_engine.serve(port=0) as plain:
        models = httpx.get(f"{plain.url}/models", headers={"Origin": ORIGIN})
        preflight = httpx.options(f"{plain.url}/chat/completions", headers=PREFLIGHT)
    assert models.status_code == 200 and "access-control-allow-origin" not in models.headers
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers


def test_cors_origins_answer_preflights_without_the_key_and_real_requests_still_need_it(tiny_engine):
    with tiny_engine.serve(port=0, api_key="s3cret", cors_origins=[ORIGIN + "/"]) as server:
        preflight = httpx.options(f"{server.url}/chat/completions", headers=PREFLIGHT)
        stranger = httpx.options(f"{server.url}/chat/completions", headers={**PREFLIGHT, "Origin": "http://evil.test"})
        without_key = httpx.get(f"{server.url}/models", headers={"Origin": ORIGIN})
        with_key = httpx.get(f"{server.url}/models", headers={"Origin": ORIGIN, "Authorization": "Bearer s3cret"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "x-stainless-os" in preflight.headers["access-control-allow-headers"].lower()  # the JS client's own
    assert stranger.status_code == 400 and "access-control-allow-origin" not in stranger.headers
    # the browser lets the page read the 401 (and its message), not the models
    assert without_key.status_code == 401 and without_key.headers["access-control-allow-origin"] == ORIGIN
    assert without_key.json()["error"]["code"] == "invalid_api_key"
    assert with_key.status_code == 200 and with_key.headers["access-control-allow-origin"] == ORIGIN
    assert "retry-after" in with_key.headers["access-control-expose-headers"].lower()


def test_bad_cors_origins_are_refused_before_anything_listens(tiny_engine, capsys):
    import argparse

    from notebook_llm.errors import InvalidRequestError
    from notebook_llm.server.app import check_cors_origins
    from notebook_llm.server.cli import add_serve_command, run_serve

    assert check_cors_origins(None) == [] and check_cors_origins("*") == ["*"]
    assert check_cors_origins(["app://obsidian.md", "http://[::1]:8888/"]) == ["app://obsidian.md", "http://[::1]:8888"]
    for bad in ("localhost:3000", "http://h/path", "", 3000):
        with pytest.raises(InvalidRequestError, match="allowed: '\\*' or origins such as") as error:
            tiny_engine.serve(port=0, cors_origins=[bad])
        assert error.value.param == "cors_origins"
    commands = argparse.ArgumentParser().add_subparsers(dest="command")
    add_serve_command(commands)
    args = commands.choices["serve"].parse_args(["--cors-origins", "http://a.test,localhost:1", "--port", "0"])
    assert run_serve(args) == 2  # refused before a model loads
    assert "--cors-origins: cors_origins has 'localhost:1'" in capsys.readouterr().err


def test_embeddings_endpoint_answers_as_openai_does_for_a_model_that_is_not_an_embedding_model(tiny_engine):
    with tiny_engine.serve(port=0) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)
        with pytest.raises(openai.NotFoundError) as chat_model:
            client.embeddings.create(model="tiny", input="hello")  # the client asks for base64
        with pytest.raises(openai.NotFoundError) as unknown:
            client.embeddings.create(model="no-such-model", input=["a", "b"], encoding_format="float")
        with pytest.raises(openai.BadRequestError) as empty:
            client.embeddings.create(model="tiny", input=[])
        no_model = httpx.post(f"{server.url}/embeddings", json={"input": [[1, 2, 3]]})
    error = _error(chat_model.value)
    assert error["param"] == "model" and error["type"] == "invalid_request_error" and error["code"] is None
    assert "'tiny' is not an embedding model" in error["message"] and "/v1/chat/completions" in error["message"]
    assert _error(unknown.value)["code"] == "model_not_found"
    assert _error(empty.value)["param"] == "input" and "allowed: a non-empty string" in _error(empty.value)["message"]
    assert no_model.status_code == 404 and "'tiny' is not an embedding model" in no_model.json()["error"]["message"]
