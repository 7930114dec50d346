"""The emulator's ASGI middlewares: the instrumentation tests steer (latency, the rate limit,
faults, fault rates, the request log) around every service request, and gzip-encoded request
bodies inflated before any route reads them.
"""

from __future__ import annotations

import asyncio
import gzip
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.emulator import serializers
from toolkit.emulator.faults import FaultInjector, FaultRule, RecordedRequest, RequestLog
from toolkit.emulator.rate_limit import RateLimiter
from toolkit.emulator.routes.control import CONTROL_PREFIX
from toolkit.redaction import redact


class Instrumentation:
    """ASGI middleware: latency, the rate limit, faults and the request log around service
    requests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultInjector,
        requests: RequestLog,
        rate_limits: RateLimiter,
    ) -> None:
        self.app = app
        self.faults = faults
        self.requests = requests
        self.rate_limits = rate_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status: int | None = None
        rule: FaultRule | None = None
        recorded = False

        def record() -> None:
            # Recorded as the answer starts to leave, so a client that has its answer always
            # finds the request in the log.
            nonlocal recorded
            if not recorded:
                recorded = True
                self.requests.finished(
                    RecordedRequest(
                        method=scope["method"],
                        path=redact(scope["path"]),
                        query=redact(scope["query_string"].decode("latin-1")),
                        status=status,
                        started=started,
                        finished=time.monotonic(),
                        injected=rule is not None,
                    )
                )

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                record()
            await send(message)

        async def discard(message: Message) -> None:
            pass

        self.requests.started()
        try:
            latency_ms = self.faults.latency_ms
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            retry_after = self.rate_limits.take(_caller(scope))
            if retry_after is not None:
                refused = serializers.error(
                    429, "Too Many Requests: rate limit exceeded", retry_after=retry_after
                )
                await refused(scope, receive, send_recording)
                return
            rule = self.faults.take(scope["method"], scope["path"])
            if rule is not None and rule.action == "hold":
                await self.faults.held()
            if rule is None or rule.action == "hold":
                await self.app(scope, receive, send_recording)
                return
            if rule.action in ("after", "dropAfterApply"):
                # Carried out in full (the state change is committed when the app returns),
                # its answer thrown away.
                await self.app(scope, receive, discard)
            if rule.action in ("drop", "dropAfterApply"):
                record()
                await _drop_connection(receive)
            else:
                response = serializers.error(
                    rule.status, rule.message, retry_after=rule.retry_after
                )
                await response(scope, receive, send_recording)
        except asyncio.CancelledError:
            # Only a stop or restart of the server cancels a request, once it has cut the
            # request's connection: there is no one left to answer, and no error of the app
            # for uvicorn to log. Returning lets the stop finish.
            pass
        finally:
            record()


class GzipRequestBodies:
    """ASGI middleware: inflate request bodies sent with `Content-Encoding: gzip`, as the CLI
    sends checkpoints, engine events, imports and batch encryptions."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        if headers.get(b"content-encoding", b"").lower() != b"gzip":
            await self.app(scope, receive, send)
            return
        compressed = bytearray()
        while True:
            message = await receive()
            compressed += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            body = gzip.decompress(bytes(compressed))
        except (OSError, EOFError):
            corrupt = serializers.error(400, "Bad Request: the gzip-encoded body is corrupt")
            await corrupt(scope, receive, send)
            return
        scope = {
            **scope,
            "headers": [
                (name, value)
                for name, value in scope["headers"]
                if name not in (b"content-encoding", b"content-length")
            ]
            + [(b"content-length", str(len(body)).encode())],
        }
        delivered = False

        async def inflated() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, inflated, send)


def _caller(scope: Scope) -> str:
    """Whom a request's rate limit counts against: the token it carries, else its address."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    client: tuple[str, int] | None = scope.get("client")
    return f"address {client[0]}" if client else "address unknown"


async def _drop_connection(receive: Receive) -> None:
    """Close the client's connection without an answer, as a network failure would.

    ASGI has no message for this, so reach the connection's transport through the server's
    receive callable (uvicorn's request cycle object holds it).
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError("this ASGI server does not let the emulator drop connections")
    transport.abort()
    # Let the server see the connection go before the app returns, so it sends nothing.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
