"""`notebook-llm serve`: load models and serve them over OpenAI's HTTP API in the foreground.

Owns the command's arguments and its messages; the server itself is `background.serve_forever`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from .scheduler import MAX_QUEUE

API_KEY_ENV = "NOTEBOOK_LLM_API_KEY"


def add_serve_command(commands) -> None:
    """Add `serve` to the subcommands of `python -m notebook_llm` / `notebook-llm`."""
    serve = commands.add_parser("serve", help="serve models over OpenAI's HTTP API (/v1/chat/completions, ...)")
    serve.add_argument("--model", action="append", default=None,
                       help="model id or .gguf path; repeat to serve several (default: the built-in model)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                       help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else no auth)")
    serve.add_argument("--max-queue", type=int, default=MAX_QUEUE,
                       help=f"requests that may wait for the engine before 503s (default {MAX_QUEUE})")
    serve.add_argument("--cors-origins", action="append", default=None, metavar="ORIGINS",
                       help="let web pages of these origins call the server from a browser: comma-separated "
                            "scheme://host[:port], or '*' for any (default: none); repeatable")
    serve.add_argument("--adapter", default=None, help="substring of the adapter to use (or $NOTEBOOK_LLM_ADAPTER)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run_serve(args: argparse.Namespace) -> int:
    from ..api.engine import create_engine
    from ..errors import NotebookLLMError
    from .app import check_cors_origins
    from .background import serve_forever

    if args.max_queue < 0:
        print(f"error: --max-queue is {args.max_queue}; allowed: an integer >= 0", file=sys.stderr)
        return 2
    try:
        cors_origins = check_cors_origins(_split_origins(args.cors_origins))
    except NotebookLLMError as error:
        print(f"error: --cors-origins: {error}", file=sys.stderr)
        return 2
    if "*" in cors_origins and args.api_key is None:
        print("warning: --cors-origins '*' without --api-key: any web page open in a browser on this machine can "
              "use the models", file=sys.stderr)
    if args.api_key is None and not _is_loopback(args.host):
        print(f"warning: serving on {args.host} without --api-key: anyone who can reach this port can use the "
              "models", file=sys.stderr)
    models = args.model if args.model and len(args.model) > 1 else (args.model or [None])[0]
    try:
        engine = create_engine(models, adapter=args.adapter)
    except NotebookLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    def ready(url: str) -> None:
        print(f"Serving {', '.join(engine.loaded_models)} at {url} (Ctrl-C stops)", flush=True)

    try:
        serve_forever(engine, host=args.host, port=args.port, api_key=args.api_key, max_queue=args.max_queue,
                      log_level=args.log_level, on_ready=ready, cors_origins=cors_origins)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


def _split_origins(values: list[str] | None) -> list[str]:
    """`--cors-origins a,b --cors-origins c` -> [a, b, c]."""
    return [origin.strip() for value in values or [] for origin in value.split(",") if origin.strip()]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
