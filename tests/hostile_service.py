"""A tiny real HTTP server on 127.0.0.1 that misbehaves as a test scripts it: the answers the
emulator should never give (a listing that never ends, a body dripped a byte at a time, a
huge body, a redirect), for testing the bounds the REST client keeps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """What the server sends back: a status, headers, and a body sent chunk by chunk (with
    chunked transfer encoding), waiting `pause` seconds before each chunk."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = ()
    pause: float = 0.0


Script = Callable[[Request], Answer]
"""Which answer a request gets; called on the server's thread, one request at a time."""


class HostileService:
    """Serves `script` on a free loopback port while in a `with` block; counts what it got and
    what it managed to send."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._body_bytes_sent = 0
        self._cut_off = 0
        self._port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def body_bytes_sent(self) -> int:
        """Bytes of answer bodies written to clients so far."""
        with self._lock:
            return self._body_bytes_sent

    @property
    def cut_off(self) -> int:
        """Answers whose client hung up before the whole body was sent."""
        with self._lock:
            return self._cut_off

    def __enter__(self) -> HostileService:
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(ready),))
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the hostile service did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._converse(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # The client hung up.
            except asyncio.CancelledError:
                pass  # The server stops: its tasks end quietly, as the server's own do.
            finally:
                connections.discard(task)
                writer.close()

        server = await asyncio.start_server(connected, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stop.wait()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the requests of one keep-alive connection, one after another."""
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            method, target, _ = request_line.decode("latin-1").split(" ", 2)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            url = urlsplit(target)
            request = Request(method, url.path, dict(parse_qsl(url.query)))
            with self._lock:
                self._requests.append(request)
            await self._answer(self._script(request), writer)

    async def _answer(self, answer: Answer, writer: asyncio.StreamWriter) -> None:
        head = [f"HTTP/1.1 {answer.status} Scripted", "Transfer-Encoding: chunked"]
        head += [f"{name}: {value}" for name, value in answer.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        try:
            for chunk in answer.chunks:
                if answer.pause:
                    await asyncio.sleep(answer.pause)
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
                with self._lock:
                    self._body_bytes_sent += len(chunk)
        except ConnectionError:
            with self._lock:
                self._cut_off += 1
            raise
        writer.write(b"0\r\n\r\n")
        await writer.drain()
