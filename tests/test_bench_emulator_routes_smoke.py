"""The emulator's route benchmark still runs end to end in its small `--quick` form and prints
the CPU a request of each route; the figures themselves are not judged here (timings belong to
the benchmark, never to tests)."""

from __future__ import annotations

import re

from bench_runs import quick_run

ROUTES = (
    "GET /api/user/stacks (a page of 100)",
    "GET /api/esc/environments/{org} (a page of 100)",
    "GET a stack",
    "PATCH a stack's tags",
    "POST a transfer (there and back: 2 requests)",
    "POST a stack (create)",
    "GET a stack's export",
    "POST batch-encrypt (2 secrets)",
)


def test_quick_benchmark_prints_the_cpu_a_request_of_each_route() -> None:
    result = quick_run("emulator_routes.py", timeout=120)
    assert "(30 requests a route, median of 1)" in result.stdout
    for route in ROUTES:
        line = re.search(
            rf"^{re.escape(route)} +(?P<ms>[\d.]+) ms of CPU a request$", result.stdout, re.M
        )
        assert line, (route, result.stdout)
        assert float(line["ms"]) > 0
