"""Benchmark: the emulator's own CPU a request, route by route, on the calls a preview, a
commit and a REST migration make.

The emulator's app is called in this process over ASGI (no sockets, no uvicorn), one request
at a time, and the CPU time of this thread is divided by the requests: what the app itself
(middlewares, routing, FastAPI's parameter handling, the route, the answer) costs a call,
which the machine's load changes much less than wall time. The world is the commit's: an
agent org of 1,000 stacks and 300 environments, pages of 100.

    uv run python bench/emulator_routes.py           # 1,000 requests a route, median of 3
    uv run python bench/emulator_routes.py --quick   # 30 requests a route, once: a smoke run

It is a benchmark, not a test: it asserts only that every request was answered as it must.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _emulator import announce, check, sign_off
from preview_commit import ADMIN_TOKEN, AGENT, DESTINATION, claim_world, write_world

from toolkit.emulator.app import create_app
from toolkit.emulator.in_process import answer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import load_world

AGENT_STACKS = 1_000
Request = tuple[str, str, str, Any]
"""A request: method, path, query string, JSON body (None for none)."""


def agent_stack(i: int) -> str:
    """The path of one of the agent's first 500 stacks (the rest move back and forth)."""
    j = i % 500
    return f"/api/stacks/{AGENT}/app-{j % 10:02d}/dev-{j:06d}"


def moved_stack(i: int, org: str) -> str:
    j = 500 + i % 500
    return f"/api/stacks/{org}/app-{j % 10:02d}/dev-{j:06d}"


CREATED = itertools.count()
"""Numbers the created stacks' names, unique across the runs."""
SECRET = base64.b64encode(b"a secret").decode()

ROUTES: dict[str, Callable[[int], list[Request]]] = {
    "GET /api/user/stacks (a page of 100)": lambda i: [
        ("GET", "/api/user/stacks", f"organization={AGENT}&maxResults=100", None)
    ],
    "GET /api/esc/environments/{org} (a page of 100)": lambda i: [
        ("GET", f"/api/esc/environments/{AGENT}", "maxResults=100", None)
    ],
    "GET a stack": lambda i: [("GET", agent_stack(i), "", None)],
    "PATCH a stack's tags": lambda i: [("PATCH", agent_stack(i) + "/tags", "", {"o": f"{i}"})],
    "POST a transfer (there and back: 2 requests)": lambda i: [
        ("POST", moved_stack(i, AGENT) + "/transfer", "", {"toOrg": DESTINATION}),
        ("POST", moved_stack(i, DESTINATION) + "/transfer", "", {"toOrg": AGENT}),
    ],
    "POST a stack (create)": lambda i: [
        ("POST", f"/api/stacks/{DESTINATION}/new", "", {"stackName": f"new-{next(CREATED)}"})
    ],
    "GET a stack's export": lambda i: [("GET", agent_stack(i) + "/export", "", None)],
    "POST batch-encrypt (2 secrets)": lambda i: [
        ("POST", agent_stack(i) + "/batch-encrypt", "", {"plaintexts": [SECRET, SECRET]})
    ],
}


class App:
    """The emulator's app over a fresh state of `world`, called in-process."""

    def __init__(self, world: Path) -> None:
        self._app = create_app(ServiceState.from_world(load_world(world)))

    async def answer(self, request: Request) -> int:
        method, path, query, body = request
        status, _ = await answer(self._app, method, path, token=ADMIN_TOKEN, query=query, body=body)
        return status


async def cpu_a_request(app: App, route: Callable[[int], list[Request]], requests: int) -> float:
    """Milliseconds of this thread's CPU a request of `route`."""
    made = 0
    started = time.thread_time()
    for i in range(requests):
        for request in route(i):
            status = await app.answer(request)
            check(status < 300, f"{request[0]} {request[1]} answered {status}")
            made += 1
    return (time.thread_time() - started) / made * 1000


def run(requests: int, repeats: int) -> None:
    announce(f"the emulator's CPU a request ({requests:,} requests a route, median of {repeats})")
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-") as name:
        world = write_world(
            Path(name),
            "routes",
            claim_world(
                agent_stacks=AGENT_STACKS,
                projects=10,
                environments=300,
                destination_stacks=100,
                collisions=10,
            ),
        )
        app = App(world)
        asyncio.run(cpu_a_request(app, ROUTES["GET a stack"], 50))  # warm the caches
        width = max(len(name) for name in ROUTES)
        for name, route in ROUTES.items():
            runs = [asyncio.run(cpu_a_request(app, route, requests)) for _ in range(repeats)]
            print(f"{name:<{width}}  {statistics.median(runs):.3f} ms of CPU a request")
    sign_off()


def main() -> None:
    parser = argparse.ArgumentParser(description="The emulator's CPU a request, by route.")
    parser.add_argument("--quick", action="store_true", help="30 requests a route: a smoke run")
    args = parser.parse_args()
    if args.quick:
        run(requests=30, repeats=1)
    else:
        run(requests=1_000, repeats=3)


if __name__ == "__main__":
    main()
