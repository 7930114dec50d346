"""Running the emulator as a real HTTP server, from a background thread: for tests, and for
`pulumi-claim emulator`, whose main thread waits for Ctrl-C.

The listening socket is bound before uvicorn starts, so port 0 works (the OS picks a free
port, read back from the socket) and the URL is known before the first request can arrive.
A restart stops uvicorn and starts another on the same address; the state, faults and
request log are the same objects throughout, so they survive it.
"""

from __future__ import annotations

import gc
import ipaddress
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI

from toolkit.emulator.app import create_app
from toolkit.emulator.faults import FaultInjector, FaultRates, RequestLog
from toolkit.emulator.rate_limit import RateLimiter
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import load_world
from toolkit.errors import ClaimError, InvalidInputError

_STARTUP_TIMEOUT_S = 10.0


class EmulatorServer:
    """The emulator serving `state` on a loopback port from a background thread.

    Use as a context manager; `.url` is valid inside it. `.faults` arms misbehaviour (rules,
    rates, latency), `.rate_limits` holds the rate limit (the world's at first) and
    `.requests` records what clients asked, all shared with the running app. `restart()`
    (or `POST /_emulator/restart`) plays a service restart. `on_restart_failure` hears of a
    restart asked over HTTP that could not listen again.
    """

    def __init__(
        self,
        state: ServiceState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
        max_page_size: int | None = None,
        latency_ms: float = 0.0,
        on_restart_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self.state = state
        self.faults = FaultInjector(latency_ms=latency_ms)
        self.requests = RequestLog()
        self.rate_limits = RateLimiter(state.rate_limit())
        self.restarts = 0
        """Restarts completed so far."""
        self._host = host
        self._port = port
        self._on_restart_failure = on_restart_failure
        self._app = create_app(
            state,
            page_size=page_size,
            max_page_size=max_page_size,
            faults=self.faults,
            requests=self.requests,
            rate_limits=self.rate_limits,
            restarter=self,
        )
        self._lifecycle = threading.RLock()
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
        with self._lifecycle:
            sock = _listening_socket(self._host, self._port)
            self._port = sock.getsockname()[1]
            self._url = _url_of(sock)
            server = _Server(_uvicorn_config(self._app))
            thread = threading.Thread(
                target=server.run,
                kwargs={"sockets": [sock]},
                name="pulumi-cloud-emulator",
                daemon=True,
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
        """Stop listening and close every connection, cutting the requests still in flight
        (a crash, as clients see it: no answer, changes already made stay made)."""
        with self._lifecycle:
            if self._server is not None and self._thread is not None:
                if threading.current_thread() is self._thread:
                    raise RuntimeError("the emulator cannot be stopped from its own thread")
                # force_exit skips uvicorn's polling wait for connections to finish closing,
                # which would add 0.1 s to every stop.
                self._server.should_exit = True
                self._server.force_exit = True
                self._thread.join(timeout=_STARTUP_TIMEOUT_S)
            self._server = self._thread = None
            self._url = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Close every connection, stop listening, and after `down_seconds` listen again on
        the same host and port with the same state. Clients meet connection errors meanwhile.
        """
        with self._lifecycle:
            if self._server is None:
                raise RuntimeError("the emulator is not running; start it before a restart")
            self.stop()
            time.sleep(down_seconds)
            self.start()
            self.restarts += 1

    def restart_soon(self, down_seconds: float) -> None:
        """`restart()` from a thread of its own, for `POST /_emulator/restart`: the request
        that asks runs on the server's thread, which a restart stops."""
        running = self._server

        def restart_if_still_running() -> None:
            with self._lifecycle:
                if self._server is not running:
                    return  # stopped (or restarted) meanwhile: nothing left to restart
                try:
                    self.restart(down_seconds)
                except Exception as exc:
                    if self._on_restart_failure is None:
                        raise
                    self._on_restart_failure(exc)

        threading.Thread(
            target=restart_if_still_running, name="pulumi-cloud-emulator-restart", daemon=True
        ).start()

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
    max_page_size: int | None = None,
    latency_ms: float = 0.0,
    fault_rates: FaultRates | None = None,
    signup_difficulty: int | None = None,
    claim_seconds_per_stack: float | None = None,
    rate_limit: float | None = None,
) -> None:
    """Serve the emulator in the foreground until interrupted (Ctrl-C or SIGTERM).

    The first line on stdout names the URL. With a `db_path` file, state lives in that file:
    an existing file is served as it is (the world file is not read again), so what clients
    changed survives a restart of the process. None or ":memory:" keeps state in memory
    (it survives `POST /_emulator/restart`, which keeps the process).
    `fault_rates` are in force from the first request; `signup_difficulty`,
    `claim_seconds_per_stack` and `rate_limit`, when given, replace the world's.
    """
    state = _load_state(world_path, db_path)
    try:
        if signup_difficulty is not None:
            state.set_signup_difficulty(signup_difficulty)
        if claim_seconds_per_stack is not None:
            state.set_claim_seconds_per_stack(claim_seconds_per_stack)
        if rate_limit is not None:
            state.set_rate_limit(rate_limit)
        failures: list[Exception] = []
        with _stop_requested() as stopped:

            def restart_failed(exc: Exception) -> None:
                failures.append(exc)
                stopped.set()

            server = EmulatorServer(
                state,
                host=host,
                port=port,
                page_size=page_size,
                max_page_size=max_page_size,
                latency_ms=latency_ms,
                on_restart_failure=restart_failed,
            )
            if fault_rates is not None:
                server.faults.set_rates(fault_rates)
            with server:
                if not listens_on_loopback(server.url):
                    print(
                        f"warning: the emulator listens on {server.url}, beyond this machine: "
                        "anyone who reaches it can drive its control API under /_emulator/ "
                        "(faults, clock, restarts), which asks for no token; serve it on "
                        "127.0.0.1 unless others must reach it",
                        file=sys.stderr,
                        flush=True,
                    )
                _freeze_what_lives_as_long_as_the_process()
                print(f"Pulumi Cloud emulator listening on {server.url}", flush=True)
                stopped.wait()
        if failures:
            raise ClaimError(f"the emulator could not listen again after a restart: {failures[0]}")
    finally:
        state.close()


def _freeze_what_lives_as_long_as_the_process() -> None:
    """Collect once, then keep every object alive now (the modules, the app and its routes,
    uvicorn's) out of the collector's passes (`gc.freeze`): they last as long as the process,
    and a full collection walking them all took 40-100 ms, a single slow answer on a busy
    machine. Collections then walk only what requests made."""
    gc.collect()
    gc.freeze()


def _load_state(world_path: Path, db_path: str | Path | None) -> ServiceState:
    """The state a database file holds when it exists, else the world's (in that file, or in
    memory for None and ":memory:")."""
    db = ":memory:" if db_path is None else str(db_path)
    if db != ":memory:" and Path(db).exists():
        try:
            return ServiceState(db)
        except (ValueError, sqlite3.DatabaseError) as exc:
            raise InvalidInputError(
                f"cannot serve {db} as emulator state: {exc}",
                hint="Pass another --db path, or delete this file to start from the world file.",
            ) from None
    world = load_world(world_path)
    try:
        return ServiceState.from_world(world, db)
    except sqlite3.Error as exc:
        raise InvalidInputError(
            f"cannot keep emulator state in {db}: {exc}",
            hint="Pass a --db path in a folder that exists and can be written.",
        ) from None


@contextmanager
def _stop_requested() -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) or SIGTERM sets, for the main thread to wait on; the
    previous handlers come back afterwards."""
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Server(uvicorn.Server):
    """uvicorn, but a stop cuts the requests in flight instead of letting them finish."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                connection.transport.abort()
        # uvicorn closes the idle connections (after what they were sending has left).
        await super().shutdown(sockets)


def _uvicorn_config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        # The compiled parser (httptools), not the pure-Python h11: under a benchmark's
        # thousands of calls, the emulator's own CPU is part of every figure.
        http="httptools",
        # A client's own X-Forwarded-For changes nothing: no proxy stands in front of the
        # emulator, and a caller without a token is its connection's address (the rate limit).
        proxy_headers=False,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        # An idle connection is kept a minute, as load balancers in front of web services
        # commonly keep one, not uvicorn's 5 s.
        timeout_keep_alive=65,
    )


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on `host:port`; an address that does not resolve or cannot be
    bound (taken, not this machine's, a port out of range) is refused with the reason."""
    if not 0 <= port <= 65535:  # getaddrinfo would quietly take it modulo 65536
        raise InvalidInputError(f"cannot listen on port {port}: ports run from 0 to 65535")
    # The protocol must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on connections
    # whose socket says so, and without it every keep-alive answer waits ~40 ms (Nagle).
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise InvalidInputError(
            f"cannot listen on {host}:{port}: {_reason(exc)}",
            hint="Pass a --host that names this machine, such as 127.0.0.1.",
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InvalidInputError(
            f"cannot listen on {host}:{port}: {_reason(exc)}",
            hint="Pass another --port (0 picks a free one) or --host.",
        ) from None
    return sock


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def listens_on_loopback(url: str) -> bool:
    """Whether the emulator at `url` (as `_url_of` writes it) answers this machine only."""
    host = urlsplit(url).hostname or ""
    return ipaddress.ip_address(host).is_loopback


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    return f"http://{shown}:{port}"
