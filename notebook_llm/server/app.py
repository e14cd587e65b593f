"""The OpenAI-compatible HTTP API of one engine, as an ASGI app (Starlette).

    GET  /v1/models               the loaded models
    POST /v1/chat/completions     chat, streamed as server-sent events or not
    POST /v1/completions          legacy text completion, streamed or not
    POST /v1/embeddings           validated, then 404: no model the engine runs is an embedding model yet
    GET  /health                  liveness, without auth

Cross-origin requests from browsers (a web page or a JupyterLab extension served from another
origin) are refused by the browser unless the server is started with `cors_origins`; then
preflights (OPTIONS) are answered without auth, as browsers send them without credentials, and
the real request still needs the key.

Owns the HTTP side only: auth, body limits, mapping errors to statuses (`errors`), and handing
validated generations to the engine's `GenerationQueue` (`scheduler`). Validation, prompts and
generation stay in the api layer: an endpoint calls `engine.<endpoint>.create(stream=True)`
off the event loop (validation, template and grammar; no GPU work yet), queues the unstarted
stream, and sends its chunks as they come. A streamed reply sends its headers once the request
is validated and queued; an error after that (the engine busy with the notebook, a device error)
arrives as an `{"error": ...}` event, which the openai client raises as `APIError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..api.requests import validate_chat_request, validate_completion_request, validate_embedding_request
from ..errors import EngineNotLoadedError, InvalidRequestError
from .errors import HttpError, RequestRejected, http_error, not_an_embedding_model, unknown_model
from .responses import (
    DONE_EVENT,
    KEEP_ALIVE_EVENT,
    merge_chat_chunks,
    merge_completion_chunks,
    sse_event,
    to_json,
)
from .scheduler import MAX_QUEUE, GenerationQueue, Job

MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above any prompt a context window holds
KEEP_ALIVE_S = 15.0  # an SSE comment this often while a streamed request waits its turn
CORS_MAX_AGE_S = 600  # browsers may reuse a preflight's answer this long
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")  # scheme://host[:port], as browsers send Origin


class OpenAIServer:
    """The endpoints of one engine; generations go through `queue`, one at a time, in order."""

    def __init__(self, engine, *, api_key: str | None = None, max_queue: int = MAX_QUEUE,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.engine = engine
        self.queue = GenerationQueue(max_queue)
        self.max_body_bytes = max_body_bytes
        self._api_key = api_key.encode() if api_key else None
        self._created = int(time.time())

    def close(self) -> None:
        """Cancel every queued and running generation (the server is stopping)."""
        self.queue.close()

    # -- endpoints ---------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "waiting": self.queue.waiting, "busy": self.queue.busy})

    async def list_models(self, request: Request) -> Response:
        try:
            self._authorize(request)
        except RequestRejected as error:
            return error.error.response()
        return JSONResponse({"object": "list", "data": [self._model_card(m) for m in self.engine.loaded_models]})

    async def get_model(self, request: Request) -> Response:
        model = request.path_params["model"]
        try:
            self._authorize(request)
            if model not in self.engine.loaded_models:
                raise unknown_model(model, self.engine.loaded_models)
        except RequestRejected as error:
            return error.error.response()
        return JSONResponse(self._model_card(model))

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, self.engine.chat.completions.create, validate_chat_request,
                                    merge_chat_chunks)

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, self.engine.completions.create, validate_completion_request,
                                    merge_completion_chunks)

    async def embeddings(self, request: Request) -> Response:
        """Checked as OpenAI checks it (key, body, model served); a request for a served model is then
        answered as OpenAI answers a model used on an endpoint it does not support: 404, param model."""
        try:
            self._authorize(request)
            embedding = validate_embedding_request(await self._json_body(request))
            self._check_model(embedding.model)
            raise not_an_embedding_model(embedding.model or self.engine.loaded_models[0])
        except Exception as error:
            return http_error(error).response()

    async def http_exception(self, request: Request, error: HTTPException) -> Response:
        message = f"{request.method} {request.url.path}: {error.detail}"
        return HttpError(error.status_code, message, code="not_found" if error.status_code == 404 else None).response()

    # -- one generation ----------------------------------------------------------------------------
    async def _generate(self, request: Request, create: Callable, validate: Callable, merge: Callable) -> Response:
        job = Job(asyncio.get_running_loop())
        try:
            self._authorize(request)
            body = await self._json_body(request)
            self._check_model(body.get("model"))
            if not self.queue.submit(job):  # the place in line is taken on arrival: first come, first served
                return HttpError(
                    503, f"the server's queue is full ({self.queue.max_waiting} requests wait for the engine); "
                         "retry later", type="server_error", code="queue_full",
                    retry_after_s=self.queue.retry_after_s()).response()
            streaming = body.get("stream") is True
            if streaming:
                kwargs, logprobs = body, False
            else:  # run as a stream too, so the request can be stopped after any token
                logprobs = validate(body).logprobs  # the non-streamed request's own rules (no stream_options)
                kwargs = {**body, "stream": True, "stream_options": {"include_usage": True}}
            job.start(await anyio.to_thread.run_sync(lambda: create(**kwargs)))
        except Exception as error:
            job.cancel()
            return http_error(error).response()
        except BaseException:  # cancelled (the server is stopping): the worker must not wait for this job
            job.cancel()
            raise
        if streaming:
            return JobStream(job)
        return await self._reply(request, job, merge, logprobs)

    async def _reply(self, request: Request, job: Job, merge: Callable, logprobs: bool) -> Response:
        """The merged reply of a non-streamed request; the job is cancelled if the client leaves."""
        chunks = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_cancel_on_disconnect, request.receive, job)
            while (item := await job.next())[0] == "chunk":
                chunks.append(item[1])
            tasks.cancel_scope.cancel()
        kind, value = item
        if kind == "end":
            return Response(to_json(merge(chunks, logprobs)), media_type="application/json")
        if kind == "error":
            return http_error(value).response()
        # cancelled: either the client is gone (nobody reads this) or the server is stopping
        return HttpError(503, "the request was cancelled: the server is stopping", type="server_error",
                         code="cancelled").response()

    # -- checks ------------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        if self._api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._api_key):
            raise RequestRejected(HttpError(
                401, "missing or wrong API key: send the server's key as 'Authorization: Bearer <key>'",
                code="invalid_api_key"))

    async def _json_body(self, request: Request) -> dict:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large(int(declared))
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > self.max_body_bytes:
                raise self._too_large(len(body))
        try:
            data = json.loads(body)
        except ValueError as error:
            raise RequestRejected(HttpError(
                400, f"the request body is not valid JSON: {error}", code="invalid_json")) from error
        if not isinstance(data, dict):
            raise RequestRejected(HttpError(
                400, f"the request body is a JSON {type(data).__name__}; allowed: a JSON object", code="invalid_json"))
        return data

    def _too_large(self, size: int) -> RequestRejected:
        return RequestRejected(HttpError(
            413, f"the request body has {'more than ' if size > self.max_body_bytes else ''}{size} bytes; "
                 f"allowed: at most {self.max_body_bytes}", code="request_too_large"))

    def _check_model(self, model: object) -> None:
        loaded = self.engine.loaded_models
        if not loaded:
            raise EngineNotLoadedError("no model is loaded on the server (it may be loading one); retry shortly")
        if isinstance(model, str) and model not in loaded:  # other types: the validator names the problem
            raise unknown_model(model, loaded)

    def _model_card(self, model: str) -> dict:
        return {"id": model, "object": "model", "created": self._created, "owned_by": "notebook_llm"}


class JobStream(StreamingResponse):
    """A job's chunks as server-sent events, ending with `data: [DONE]`. However the response ends
    (the client disconnects, the server stops), the job is cancelled, which frees the engine."""

    def __init__(self, job: Job):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(_events(job), media_type="text/event-stream", headers=headers)
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)  # Starlette stops it when the client disconnects
        finally:
            self.job.cancel()  # a no-op when the job has finished


async def _events(job: Job) -> AsyncIterator[bytes]:
    while True:
        with anyio.move_on_after(KEEP_ALIVE_S) as waited:
            kind, value = await job.next()
        if waited.cancelled_caught:
            yield KEEP_ALIVE_EVENT
            continue
        if kind == "chunk":
            yield sse_event(value)
        elif kind == "error":
            yield http_error(value).event()
            return
        elif kind == "end":
            yield DONE_EVENT
            return
        else:  # cancelled: the server is stopping
            return


async def _cancel_on_disconnect(receive: Receive, job: Job) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    job.cancel()


def check_cors_origins(origins: str | Sequence[str] | None) -> list[str]:
    """The origins browsers may call the server from: "*" (any), or each `scheme://host[:port]` as a
    browser sends it in `Origin` (a trailing "/" is dropped). None or empty: no cross-origin access."""
    if origins is None:
        return []
    if isinstance(origins, str):
        origins = [origins]
    checked = []
    for origin in origins:
        value = origin.rstrip("/") if isinstance(origin, str) else origin
        if not isinstance(value, str) or not (value == "*" or _ORIGIN.fullmatch(value)):
            raise InvalidRequestError(
                f"cors_origins has {origin!r}; allowed: '*' or origins such as 'http://localhost:3000' "
                "(scheme://host[:port], no path)", param="cors_origins")
        checked.append(value)
    return checked


def cors_middleware(origins: list[str]) -> list[Middleware]:
    """Starlette's CORS middleware for `origins` (none: no middleware, responses carry no CORS headers).
    Any request header may be sent (the openai JS client adds its own); Retry-After is readable."""
    if not origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["*"],
                       expose_headers=["Retry-After"], max_age=CORS_MAX_AGE_S)]


def create_app(engine, *, api_key: str | None = None, max_queue: int = MAX_QUEUE,
               max_body_bytes: int = MAX_BODY_BYTES, cors_origins: str | Sequence[str] | None = None) -> Starlette:
    """The ASGI app serving `engine` (`app.state.openai_server` holds its state). Run it with any
    ASGI server; `notebook_llm.server.BackgroundServer` runs it inside a notebook's kernel.
    `cors_origins` lets browser pages of those origins call it (see `check_cors_origins`)."""
    origins = check_cors_origins(cors_origins)
    server = OpenAIServer(engine, api_key=api_key, max_queue=max_queue, max_body_bytes=max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        server.close()

    app = Starlette(
        routes=[
            Route("/health", server.health, methods=["GET"]),
            Route("/v1/models", server.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", server.get_model, methods=["GET"]),
            Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
            Route("/v1/completions", server.completions, methods=["POST"]),
            Route("/v1/embeddings", server.embeddings, methods=["POST"]),
        ],
        middleware=cors_middleware(origins),
        exception_handlers={HTTPException: server.http_exception},
        lifespan=lifespan,
    )
    app.state.openai_server = server
    return app
