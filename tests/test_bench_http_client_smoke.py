"""The HTTP client benchmark still runs end to end in its small `--quick` form and prints the
CPU per call of each client; the figures themselves are not judged here (timings belong to the
benchmark, never to tests)."""

from __future__ import annotations

import re

from bench_runs import quick_run

CLIENTS = (
    "toolkit (CloudClient, aiohttp)",
    "plain httpx AsyncClient",
    "plain aiohttp ClientSession",
)


def test_quick_benchmark_prints_the_cpu_per_call_of_each_client() -> None:
    result = quick_run("http_client.py", timeout=120)
    assert "200 calls a client, 16 in flight, median of 1" in result.stdout
    for client in CLIENTS:
        line = re.search(
            rf"^{re.escape(client)}: (?P<ms>[\d.]+) ms of CPU a call$", result.stdout, re.M
        )
        assert line, (client, result.stdout)
        assert float(line["ms"]) > 0
