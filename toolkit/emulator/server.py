"""Running the emulator as a real HTTP server: in a background thread for tests, or in the
foreground for `pulumi-claim emulator`.

The listening socket is bound before uvicorn starts, so port 0 works (the OS picks a free
port, read back from the socket) and the URL is known before the first request can arrive.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from toolkit.emulator.app import create_app
from toolkit.emulator.faults import FaultInjector, RequestLog
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import load_world
from toolkit.errors import InvalidInputError

_STARTUP_TIMEOUT_S = 10.0


class EmulatorServer:
    """The emulator serving `state` on a loopback port from a background thread.

    Use as a context manager; `.url` is valid inside it. `.faults` arms misbehaviour and
    `.requests` records what clients asked, both shared with the running app.
    """

    def __init__(
        self,
        state: ServiceState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
        latency_ms: float = 0.0,
    ) -> None:
        self.state = state
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self._host = host
        self._port = port
        self._app = create_app(
            state,
            page_size=page_size,
            latency_ms=latency_ms,
            faults=self.faults,
            requests=self.requests,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321`, without a trailing slash."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; start it (or enter its `with`)")
        return self._url

    def start(self) -> EmulatorServer:
        """Start serving; after a `stop()`, start again on the same port with the same state
        (a service restart, as clients see it)."""
        sock = _listening_socket(self._host, self._port)
        self._port = sock.getsockname()[1]
        self._url = _url_of(sock)
        server = uvicorn.Server(_uvicorn_config(self._app))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="pulumi-cloud-emulator", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start on {self._url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            # Idle keep-alive connections are closed at once; force_exit skips uvicorn's
            # polling wait for them to finish closing, which would add 0.1 s to every stop.
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(timeout=_STARTUP_TIMEOUT_S)
        self._server = self._thread = None
        self._url = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    world_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    db_path: str | Path | None = None,
    page_size: int = 100,
    latency_ms: float = 0.0,
    signup_difficulty: int | None = None,
) -> None:
    """Serve the emulator in the foreground until interrupted (Ctrl-C or SIGTERM).

    The first line on stdout names the URL. With a `db_path` file, state lives in that file:
    an existing file is served as it is (the world file is not read again), so what clients
    changed survives a restart. None or ":memory:" keeps state in memory.
    `signup_difficulty`, when given, replaces the world's proof-of-work difficulty.
    """
    db = ":memory:" if db_path is None else str(db_path)
    if db != ":memory:" and Path(db).exists():
        try:
            state = ServiceState(db)
        except (ValueError, sqlite3.DatabaseError) as exc:
            raise InvalidInputError(
                f"cannot serve {db} as emulator state: {exc}",
                hint="Pass another --db path, or delete this file to start from the world file.",
            ) from None
    else:
        state = ServiceState.from_world(load_world(world_path), db)
    if signup_difficulty is not None:
        state.set_signup_difficulty(signup_difficulty)
    sock = _listening_socket(host, port)
    app = create_app(state, page_size=page_size, latency_ms=latency_ms)
    print(f"Pulumi Cloud emulator listening on {_url_of(sock)}", flush=True)
    try:
        uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the emulator is meant to stop; uvicorn re-raises it once stopped
    finally:
        state.close()


def _uvicorn_config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


def _listening_socket(host: str, port: int) -> socket.socket:
    # The protocol must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on connections
    # whose socket says so, and without it every keep-alive answer waits ~40 ms (Nagle).
    family, kind, proto, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    return f"http://{shown}:{port}"
