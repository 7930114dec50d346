"""What a `CloudClient` puts on the wire and what comes back, as aiohttp's tracing hooks see
them: real HTTP to the emulator, each request with its headers and body as sent, and each
answer's body as the client reads it.

aiohttp reports an answer's body to its hooks only when it is read whole (`read()`); the client
reads it chunk by chunk (`content.iter_any()`, to stop at its largest answer), so the recorder
notes each chunk as the client takes it from the answer's stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL


@dataclass
class Exchange:
    """One request as sent (its body as on the wire, so gzip-encoded where it was) and the
    body of its answer (decoded)."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    content: bytearray = field(default_factory=bytearray)
    answer: bytearray = field(default_factory=bytearray)

    def answer_json(self) -> Any:
        return json.loads(self.answer)


class WireRecorder:
    """Pass `trace` to a client (`CloudClient(..., trace_configs=[recorder.trace])`); each of
    its requests is in `exchanges`, in the order they were sent."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)
        self.trace.on_request_chunk_sent.append(self._chunk_sent)
        self.trace.on_request_end.append(self._answered)

    def sent(self, method: str, path: str) -> list[Any]:
        """The JSON bodies of the requests of `method` to `path`."""
        return [
            json.loads(exchange.content)
            for exchange in self.exchanges
            if (exchange.method, exchange.url.path) == (method, path)
        ]

    async def _started(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        context.exchange = Exchange(params.method, params.url, CIMultiDict(params.headers))
        self.exchanges.append(context.exchange)

    async def _chunk_sent(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestChunkSentParams,
    ) -> None:
        context.exchange.content += params.chunk

    async def _answered(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        response.content = NotedStream(response.content, context.exchange.answer)  # type: ignore[assignment]


class NotedStream:
    """An answer's stream that notes in `answer` each chunk the client takes from it."""

    def __init__(self, stream: aiohttp.StreamReader, answer: bytearray) -> None:
        self._stream = stream
        self._answer = answer

    async def iter_any(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream.iter_any():
            self._answer.extend(chunk)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
