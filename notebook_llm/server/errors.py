"""From notebook_llm's typed errors to OpenAI's error JSON and an HTTP status.

Owns the table below and the shape `{"error": {"message", "type", "param", "code"}}`; raises
nothing itself. `RequestRejected` is the server's internal way to stop a request early (bad
body, wrong key, full queue); it never leaves the server.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from starlette.responses import JSONResponse

from ..errors import (
    ContextLengthError,
    EngineBusyError,
    EngineNotLoadedError,
    InvalidRequestError,
    ModelNotFoundError,
    NotebookLLMError,
)

log = logging.getLogger("notebook_llm.server")

BUSY_RETRY_AFTER_S = 1  # the engine is generating for someone outside the server (the notebook itself)
NOT_LOADED_RETRY_AFTER_S = 5  # a model is being (re)loaded


@dataclass(frozen=True)
class HttpError:
    """One error as the HTTP API reports it: status, OpenAI's body fields, and Retry-After for 503."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after_s: int | None = None

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)

    def event(self) -> bytes:
        """The error as one server-sent event, for a stream whose headers are already sent."""
        return b"data: " + json.dumps(self.body()).encode() + b"\n\n"


class RequestRejected(Exception):
    """Internal: a request the server answers with `error` before it reaches the engine."""

    def __init__(self, error: HttpError):
        super().__init__(error.message)
        self.error = error


def http_error(error: BaseException) -> HttpError:
    """The HTTP form of an error raised while handling a request (subclasses before their bases)."""
    if isinstance(error, RequestRejected):
        return error.error
    if isinstance(error, ContextLengthError):
        return HttpError(413, str(error), code="context_length_exceeded", param=error.param)
    if isinstance(error, InvalidRequestError):
        return HttpError(400, str(error), param=error.param)
    if isinstance(error, ModelNotFoundError):
        return HttpError(404, str(error), code="model_not_found", param="model")
    if isinstance(error, EngineBusyError):
        return HttpError(503, str(error), type="server_error", code="engine_busy", retry_after_s=BUSY_RETRY_AFTER_S)
    if isinstance(error, EngineNotLoadedError):
        return HttpError(503, str(error), type="server_error", code="model_not_loaded",
                         retry_after_s=NOT_LOADED_RETRY_AFTER_S)
    if isinstance(error, NotebookLLMError):  # device, format, adapter: the server's side, not the request's
        return HttpError(500, str(error), type="server_error", code=type(error).__name__)
    log.error("unexpected error while handling a request", exc_info=error)
    return HttpError(500, f"internal error: {type(error).__name__}: {error}", type="server_error")


def unknown_model(model: str, served: list[str]) -> RequestRejected:
    served_text = ", ".join(served) or "none"
    return RequestRejected(HttpError(
        404, f"model {model!r} is not served here; served models: {served_text} (GET /v1/models lists them)",
        code="model_not_found", param="model"))


def not_an_embedding_model(model: str) -> RequestRejected:
    """OpenAI's answer to a model used on an endpoint it does not support ("This is not a chat model
    and thus not supported in the v1/chat/completions endpoint"): 404, invalid_request_error, param
    model, code null."""
    return RequestRejected(HttpError(
        404, f"model {model!r} is not an embedding model, so /v1/embeddings cannot serve it (it serves "
             "/v1/chat/completions and /v1/completions); notebook_llm runs no embedding models yet",
        param="model"))
