"""`RemoteEngine`: the engine's Python API for models served elsewhere over OpenAI's HTTP API
(`engine.serve()`, `notebook-llm serve`, or another OpenAI-compatible server).

Owns the transport (httpx), turning the server's JSON and server-sent events back into the
records of `api.types` (so the viz functions, magics and widgets read a remote reply as they read a
local one), and turning the server's error JSON back into the typed errors of `notebook_llm.errors`.
Requests are validated by the server, not here: another server may accept fields this one rejects.
No wgpu, no engine state beyond which model this client uses.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import types
import typing
from collections.abc import Iterator
from typing import Any

import httpx

from ..errors import (
    ContextLengthError,
    EngineBusyError,
    EngineNotLoadedError,
    InvalidRequestError,
    ModelNotFoundError,
    NotebookLLMError,
)
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    Completion,
    CompletionChoice,
    CompletionUsage,
)

DEFAULT_TIMEOUT_S = 600.0  # a generation on a slow adapter can take minutes, as with the openai client
CONNECT_TIMEOUT_S = 10.0


class RemoteEngine:
    """An engine whose models run on a server: `create_engine(base_url="http://host:8000/v1")`.

    The same calls as a local `Engine` (`chat.completions.create`, `completions.create`, streamed or
    not, `interrupt_generate`, `reload`, `unload`, `get_message`, `runtime_stats_text`) returning
    the same `notebook_llm.api.types` records. `reload(model)` selects one of the models the server
    lists; nothing is loaded or unloaded on the server."""

    _lock: threading.Lock  # guards _open: the replies being read now, closed by interrupt_generate from any thread

    def __init__(self, base_url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidRequestError(f"base_url is {base_url!r}; allowed: an http(s) URL such as "
                                      "'http://127.0.0.1:8000/v1'", param="base_url")
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S))
        self._lock = threading.Lock()
        self._open: set[_OpenReply] = set()
        self._model: str | None = None
        self._last_message = ""
        self._last_usage: CompletionUsage | None = None
        self.chat = _Chat(self)
        self.completions = _Completions(self)
        try:
            self.reload(model)
        except BaseException:  # no server, a refused key, a model not served: nothing stays open
            self._http.close()
            raise

    # -- models ----------------------------------------------------------------------------------
    def served_models(self) -> list[str]:
        """The ids the server lists at GET /models."""
        reply = self._request("GET", "/models")
        return [entry["id"] for entry in reply.json().get("data", [])]

    def reload(self, model: str | None = None, chat_options: Any = None) -> None:
        """Use `model` (default: the server's first) for requests that name none; ModelNotFoundError
        if the server does not list it."""
        if chat_options is not None:
            raise InvalidRequestError("chat_options is set; a remote model's options are chosen by its server, so "
                                      "allowed: leave chat_options out", param="chat_options")
        served = self.served_models()
        if model is None:
            if not served:
                raise EngineNotLoadedError(f"the server at {self.base_url} lists no models")
            model = served[0]
        if model not in served:
            raise ModelNotFoundError(f"model {model!r} is not served at {self.base_url}; served: "
                                     f"{', '.join(served) or 'none'}")
        self.interrupt_generate()
        self._model = model
        self._last_message, self._last_usage = "", None

    def unload(self) -> None:
        """Stop using the server's model (the server keeps it loaded); reload() picks one again."""
        self.interrupt_generate()
        self._model = None
        self._last_message, self._last_usage = "", None

    @property
    def model_id(self) -> str:
        if self._model is None:
            raise EngineNotLoadedError(f"no model of {self.base_url} is selected; call engine.reload(model_id)")
        return self._model

    @property
    def loaded_models(self) -> list[str]:
        """The model this client uses, as a list like the local engine's (empty after unload)."""
        return [] if self._model is None else [self._model]

    # -- a generation in progress ------------------------------------------------------------------
    def interrupt_generate(self) -> None:
        """Stop the replies being received (from any thread): a stream ends with finish_reason
        "abort"; the server sees the connection close and stops generating."""
        with self._lock:
            replies = list(self._open)
        for reply in replies:
            reply.interrupt()

    def reset_chat(self, keep_stats: bool = False, model: str | None = None) -> None:
        """Nothing to forget here: the server reuses its KV cache by prompt prefix, per request."""
        if not keep_stats:
            self._last_usage = None

    # -- what the last reply left ------------------------------------------------------------------
    def get_message(self, model: str | None = None) -> str:
        """The text of the last reply's first choice."""
        return self._last_message

    def runtime_stats_text(self, model: str | None = None) -> str:
        extra = self._last_usage.extra if self._last_usage is not None else None
        if extra is None:
            return f"{self.model_id} at {self.base_url}: no timing yet (ask for usage, or stream_options.include_usage)"
        return (f"prefill: {extra.prefill_tokens_per_s:.1f} tokens/sec, decode: {extra.decode_tokens_per_s:.1f} "
                f"tokens/sec ({self.model_id} at {self.base_url})")

    def close(self) -> None:
        """Close the connections to the server."""
        self.interrupt_generate()
        self._http.close()

    def __repr__(self) -> str:
        return f"<RemoteEngine {self.base_url} model={self._model!r}>"

    # -- transport ---------------------------------------------------------------------------------
    def _create(self, path: str, kwargs: dict, reply_type: type, chunk_type: type):
        body = _json_body(kwargs)
        if body.get("model") is None:
            body["model"] = self.model_id
        response = self._request("POST", path, body, stream=True)
        reply = _OpenReply(response)
        with self._lock:
            self._open.add(reply)
        if body.get("stream") is True:
            return self._stream(reply, chunk_type)
        try:
            data = reply.read_json(self.base_url)
        finally:
            self._close(reply)
        result = _parse(reply_type, data)
        self._last_message = _first_text(result)
        self._last_usage = result.usage
        return result

    def _stream(self, reply: _OpenReply, chunk_type: type) -> Iterator:
        first_texts: list[str] = []
        last = None
        finished: set[int] = set()
        started: list[int] = []
        try:
            for data in reply.events(self.base_url):
                chunk = _parse(chunk_type, data)
                last = chunk
                for choice in chunk.choices:
                    if choice.index not in started:
                        started.append(choice.index)
                    if choice.finish_reason:
                        finished.add(choice.index)
                if chunk.usage is not None:
                    self._last_usage = chunk.usage
                first_texts.append(_first_text(chunk))
                yield chunk
        finally:
            self._close(reply)
            self._last_message = "".join(first_texts)
        if reply.interrupted and last is not None:  # as the local engine ends an interrupted choice
            aborted = [i for i in started if i not in finished]
            if aborted:
                yield _aborted(last, aborted)

    def _close(self, reply: _OpenReply) -> None:
        with self._lock:
            self._open.discard(reply)
        reply.close()

    def _request(self, method: str, path: str, body: dict | None = None, *, stream: bool = False) -> httpx.Response:
        try:
            request = self._http.build_request(method, path, json=body)
        except (TypeError, ValueError) as error:
            raise InvalidRequestError(f"the request cannot be sent as JSON: {error}") from error
        try:
            response = self._http.send(request, stream=stream)
        except httpx.HTTPError as error:
            raise NotebookLLMError(f"cannot reach {self.base_url} ({type(error).__name__}: {error}); is the server "
                                   "running there? (engine.serve() or `notebook-llm serve` starts one)") from error
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _typed_error(response.status_code, _json_or_none(response), response.text, self.base_url)
        return response


class _Create:
    def __init__(self, engine: RemoteEngine, path: str, reply_type: type, chunk_type: type):
        self._engine, self._path, self._types = engine, path, (reply_type, chunk_type)

    def create(self, **kwargs: Any):
        """As the local engine's `create`, sent to the server; `stream=True` gives an iterator of chunks
        (close it, or call interrupt_generate, to stop the generation on the server)."""
        return self._engine._create(self._path, kwargs, *self._types)


class _Chat:
    def __init__(self, engine: RemoteEngine):
        self.completions = _Create(engine, "/chat/completions", ChatCompletion, ChatCompletionChunk)


class _Completions(_Create):
    def __init__(self, engine: RemoteEngine):
        super().__init__(engine, "/completions", Completion, Completion)


class _OpenReply:
    """One HTTP reply being read, which another thread may interrupt."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.interrupted = False

    def interrupt(self) -> None:
        """From any thread: shut the connection's socket, which wakes a read blocked on it (closing the
        socket alone would not) and tells the server the client has gone; the reader then ends."""
        self.interrupted = True
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            self.response.close()
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def close(self) -> None:
        self.response.close()

    def read_json(self, url: str) -> Any:
        try:
            self.response.read()
        except (httpx.HTTPError, httpx.StreamError) as error:
            if self.interrupted:
                raise NotebookLLMError("the request was interrupted (interrupt_generate) before the reply came") from error
            raise NotebookLLMError(f"the reply from {url} broke off: {error}") from error
        return self.response.json()

    def events(self, url: str) -> Iterator[Any]:
        """The JSON payloads of the reply's server-sent events until `data: [DONE]`; an error event
        raises its typed error."""
        data: list[str] = []
        try:
            for line in self.response.iter_lines():
                if self.interrupted:
                    return
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and data:  # a blank line ends an event
                    payload, data = "\n".join(data), []
                    if payload == "[DONE]":
                        return
                    event = json.loads(payload)
                    if isinstance(event, dict) and event.get("error"):
                        raise _typed_error(200, event, payload, url)
                    yield event
        except (httpx.HTTPError, httpx.StreamError, RuntimeError) as error:
            if not self.interrupted:
                raise NotebookLLMError(f"the stream from {url} broke off: {error}") from error


# -- JSON to records -------------------------------------------------------------------------------


def _parse(cls: type, data: Any) -> Any:
    """A dataclass of `api.types` from its JSON object; unknown keys (another server's extras) are
    ignored and missing ones take the field's default, or None."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            values[f.name] = None
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        return _parse(hint, value) if isinstance(value, dict) else value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None) and _fits(arg, value):
                return _convert(arg, value)
        return value
    if origin is list and isinstance(value, list):
        return [_convert(args[0], v) for v in value]
    if origin is dict and isinstance(value, dict):
        return {k: _convert(args[1], v) for k, v in value.items()}
    return value


def _fits(hint: Any, value: Any) -> bool:
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    origin = typing.get_origin(hint)
    if origin is list:
        return isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    return True


def _first_text(reply: Any) -> str:
    for choice in reply.choices:
        if choice.index == 0:
            if isinstance(reply, (ChatCompletion, ChatCompletionChunk)):
                content = choice.message.content if isinstance(reply, ChatCompletion) else choice.delta.content
                return content or ""
            return choice.text or ""
    return ""


def _aborted(last: Any, indices: list[int]) -> Any:
    """The last chunk of each interrupted choice, as the local engine sends it."""
    if isinstance(last, ChatCompletionChunk):
        choices = [ChunkChoice(i, ChoiceDelta(), "abort") for i in indices]
        return ChatCompletionChunk(id=last.id, choices=choices, created=last.created, model=last.model)
    choices = [CompletionChoice("", i, "abort") for i in indices]
    return Completion(id=last.id, choices=choices, created=last.created, model=last.model)


# -- requests and errors ---------------------------------------------------------------------------


def _json_body(kwargs: dict) -> dict:
    """The JSON object the openai client would send: `extra_body` entries at the top level."""
    body = {k: v for k, v in kwargs.items() if k != "extra_body"}
    extra = kwargs.get("extra_body")
    if extra is not None:
        if not isinstance(extra, dict):
            raise InvalidRequestError(f"extra_body is {extra!r}; allowed: a dict", param="extra_body")
        body.update(extra)
    return body


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _typed_error(status: int, body: Any, text: str, url: str) -> NotebookLLMError:
    """The notebook_llm error for an error reply (OpenAI's `{"error": {...}}`, or anything else)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    message = error.get("message") or f"HTTP {status}: {text[:300]}"
    code, param = error.get("code"), error.get("param")
    if code == "context_length_exceeded":
        return ContextLengthError(message, param=param)
    if status in (400, 413, 422):
        return InvalidRequestError(message, param=param)
    if status == 404:
        return ModelNotFoundError(message)
    if code == "model_not_loaded":
        return EngineNotLoadedError(message)
    if status in (429, 503) or code in ("engine_busy", "queue_full"):
        return EngineBusyError(message)
    if status in (401, 403):
        return NotebookLLMError(f"{url} refused the request ({status}): {message}")
    return NotebookLLMError(f"{url} answered {status}: {message}")
