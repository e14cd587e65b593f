"""Running the server: in a daemon thread of the current process (a notebook's kernel keeps
working while it serves), or in the foreground (the `serve` command).

Owns the listening socket (bound here, so a port in use fails in the caller's thread with
`OSError` instead of killing the process as uvicorn's own binding would) and the uvicorn server's
lifetime. One thread per server, with its own event loop; the engine's generations run in the
app's worker thread, never on that loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time

import uvicorn

from .app import MAX_QUEUE, check_cors_origins, create_app

STARTUP_TIMEOUT_S = 30.0
GRACEFUL_SHUTDOWN_S = 3  # open streams are cancelled first, so this is rarely reached


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one. Raises OSError when taken."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """The URL clients put in `base_url` for a server listening on `sock` (ends in /v1)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # reachable from here; others use the machine's name
    if ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1"


class BackgroundServer:
    """An OpenAI-compatible server for `engine`, in a daemon thread of this process.

    `url` is what clients take as `base_url` (`http://127.0.0.1:8000/v1`); `stop()` cancels the
    requests in flight and closes the port. Made by `engine.serve(...)`."""

    def __init__(self, engine, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 max_queue: int = MAX_QUEUE, log_level: str = "warning", cors_origins: list[str] | None = None):
        origins = check_cors_origins(cors_origins)  # before binding: a bad origin leaves nothing behind
        self._socket = bind_socket(host, port)  # first: a port in use leaves nothing behind
        self.app = create_app(engine, api_key=api_key, max_queue=max_queue, cors_origins=origins)
        self.url = base_url(self._socket)
        config = uvicorn.Config(self.app, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        self._server = uvicorn.Server(config)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"notebook-llm-server {self.url}", daemon=True)
        self._thread.start()
        self._wait_until_started()

    def _run(self) -> None:
        # a loop of our own rather than asyncio.run, which nest_asyncio (used in some kernels) replaces
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException as error:  # SystemExit from a failed startup included
            self._error = error
        finally:
            loop.close()

    def _wait_until_started(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server at {self.url} did not start: {self._error!r}")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel queued and running generations, stop serving and close the port (idempotent)."""
        self.app.state.openai_server.close()
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<BackgroundServer {self.url} {'running' if self.running else 'stopped'}>"


def serve_forever(engine, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                  max_queue: int = MAX_QUEUE, log_level: str = "info", on_ready=None,
                  cors_origins: list[str] | None = None) -> None:
    """Serve in the foreground until Ctrl-C (uvicorn handles the signals)."""
    origins = check_cors_origins(cors_origins)
    sock = bind_socket(host, port)
    app = create_app(engine, api_key=api_key, max_queue=max_queue, cors_origins=origins)
    if on_ready is not None:
        on_ready(base_url(sock))
    uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)).run(
        sockets=[sock])
