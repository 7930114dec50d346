"""Benchmark: CPU per call of the toolkit's HTTP stack against plain httpx and aiohttp clients.

Each client makes the same calls (`GET` of one stack, decoded into the same wire model) to the
emulator in its own process at no added latency, 16 in flight, and the CPU time this process
spent is divided by the calls: what one call costs the client, whatever the machine's load
does to the wall time. The toolkit's row is `CloudClient.get_stack`, with its slots, retry
policy, answer bounds and typed errors; the plain rows are the least a client of that library
can do for the same call.

    uv run python bench/http_client.py           # 4,000 calls a client, each run 3 times
    uv run python bench/http_client.py --quick   # 200 calls a client, once: a smoke run

It is a benchmark, not a test: it asserts only that every call got its stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from _emulator import announce, check, emulators

from toolkit.cloud import ACCEPT, DEFAULT_MAX_CONCURRENCY, CloudClient
from toolkit.models import AppStack

TOKEN = "tok-alice"
ORG, PROJECT, STACK = "acme", "web", "dev"
PATH = f"/api/stacks/{ORG}/{PROJECT}/{STACK}"
HEADERS = {"Accept": ACCEPT, "Authorization": f"token {TOKEN}"}


@dataclass(frozen=True)
class Scale:
    calls: int
    repeats: int


FULL = Scale(calls=4_000, repeats=3)
QUICK = Scale(calls=200, repeats=1)

Call = Callable[[], Awaitable[AppStack]]


def world() -> dict[str, object]:
    return {
        "users": [{"login": "alice", "token": TOKEN, "orgs": {ORG: "admin"}}],
        "orgs": {ORG: {"stacks": [{"project": PROJECT, "stack": STACK, "resourceCount": 3}]}},
    }


async def in_flight(call: Call, calls: int) -> float:
    """CPU seconds this process spent making `calls` calls, `DEFAULT_MAX_CONCURRENCY` at once."""
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            stack = await call()
            check(stack.stack_name == STACK, f"a call got {stack.stack_name!r}")

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(DEFAULT_MAX_CONCURRENCY)))
    return time.process_time() - started


async def toolkit_client(url: str, calls: int) -> float:
    async with CloudClient(url, TOKEN) as client:
        await client.get_stack(ORG, PROJECT, STACK)  # connections opened before measuring
        return await in_flight(lambda: client.get_stack(ORG, PROJECT, STACK), calls)


async def plain_httpx(url: str, calls: int) -> float:
    limits = httpx.Limits(max_connections=DEFAULT_MAX_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits) as http:

        async def call() -> AppStack:
            response = await http.get(PATH)
            return AppStack.model_validate_json(response.raise_for_status().content)

        await call()
        return await in_flight(call, calls)


async def plain_aiohttp(url: str, calls: int) -> float:
    connector = aiohttp.TCPConnector(limit=DEFAULT_MAX_CONCURRENCY)
    async with aiohttp.ClientSession(url, headers=HEADERS, connector=connector) as http:

        async def call() -> AppStack:
            async with http.get(PATH) as response:
                response.raise_for_status()
                return AppStack.model_validate_json(await response.read())

        await call()
        return await in_flight(call, calls)


CLIENTS: dict[str, Callable[[str, int], Coroutine[None, None, float]]] = {
    "toolkit (CloudClient, aiohttp)": toolkit_client,
    "plain httpx AsyncClient": plain_httpx,
    "plain aiohttp ClientSession": plain_aiohttp,
}


def run(scale: Scale) -> None:
    announce(
        f"HTTP client benchmark: {scale.calls:,} calls a client, {DEFAULT_MAX_CONCURRENCY} in "
        f"flight, median of {scale.repeats}"
    )
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-") as name:
        world_file = Path(name) / "world.json"
        world_file.write_text(json.dumps(world()), encoding="utf-8")
        with emulators((world_file, 0.0)) as (service,):
            for client, measure in CLIENTS.items():
                seconds = [
                    asyncio.run(measure(service.url, scale.calls)) for _ in range(scale.repeats)
                ]
                per_call = statistics.median(seconds) / scale.calls * 1000
                print(f"{client}: {per_call:.3f} ms of CPU a call")


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per call of HTTP clients.")
    parser.add_argument("--quick", action="store_true", help="200 calls a client: a smoke run")
    run(QUICK if parser.parse_args().quick else FULL)


if __name__ == "__main__":
    main()
