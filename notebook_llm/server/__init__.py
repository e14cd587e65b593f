"""An OpenAI-compatible HTTP server for an engine: a front end, like the magics and widgets.

    server = engine.serve(port=8000)            # in a notebook: a daemon thread of the kernel
    client = openai.OpenAI(base_url=server.url, api_key="unused")
    server.stop()

or `notebook-llm serve --model ID --port 8000` in a shell. Modules: `app` (the ASGI app and its
endpoints), `scheduler` (one generation at a time, first come first served), `errors` (typed
errors to HTTP statuses and OpenAI's error JSON), `responses` (JSON, server-sent events, merging
a stream), `background` (the thread or foreground runner), `cli` (the `serve` command).
Imports starlette and uvicorn (on first use of these names, so the CLI's argument parsing does
not); nothing outside this package imports it except lazily.
"""

from __future__ import annotations

__all__ = ["BackgroundServer", "OpenAIServer", "create_app"]


def __getattr__(name: str):
    if name == "BackgroundServer":
        from .background import BackgroundServer

        return BackgroundServer
    if name in ("OpenAIServer", "create_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
