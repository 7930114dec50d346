"""The emulator's app answering one request in this process over ASGI, with no socket and no
server: how the benchmark and the tests measure the app's own work a request (its CPU, the
Python calls it makes), apart from uvicorn's and the network's."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp


async def answer(
    app: ASGIApp, method: str, path: str, *, token: str, query: str = "", body: Any = None
) -> tuple[int, bytes]:
    """The status and body `app` answers to one request with `token` and `body` as JSON."""
    sent = b"" if body is None else json.dumps(body).encode()
    headers = [(b"host", b"emulator"), (b"authorization", f"token {token}".encode())]
    if sent:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(sent))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    messages: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": sent, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])
