"""The rate-limit benchmark still runs end to end in its small `--quick` form: at 50 and 200
requests a second, with the adaptive client and with 16 calls in flight fixed, every commit
moves every stack (the script checks that itself, and stops otherwise) and each prints its
time against calls / R and its share of 429s, consistent with the counts it prints; the
figures themselves are not judged here (timings belong to the benchmark, never to tests)."""

from __future__ import annotations

import re

from bench_runs import quick_run

RUN = re.compile(
    r"commit 60 stacks at (?P<rate>\d+) requests/s, (?P<kind>adaptive|fixed-16): "
    r"(?P<seconds>[\d.]+) s, (?P<calls>\d+) calls carried out / (?P=rate) = "
    r"(?P<floor>[\d.]+) s: (?P<ratio>[\d.]+)x, target <= 1.15x; (?P<refused>\d+) of "
    r"(?P<requests>\d+) requests answered 429 \((?P<share>[\d.]+)%\), target <= 2%"
)


def test_quick_rate_limit_benchmark_commits_at_each_rate_with_both_clients() -> None:
    result = quick_run("rate_limit.py", timeout=300)
    runs = [match.groupdict() for match in RUN.finditer(result.stdout)]
    assert [(run["rate"], run["kind"]) for run in runs] == [
        ("50", "adaptive"),
        ("50", "fixed-16"),
        ("200", "adaptive"),
        ("200", "fixed-16"),
    ], result.stdout
    for run in runs:
        calls, refused, requests = int(run["calls"]), int(run["refused"]), int(run["requests"])
        assert calls >= 60  # a transfer a stack at least, besides the listings
        assert requests == calls + refused
        assert float(run["floor"]) == round(calls / int(run["rate"]), 2)
        assert abs(float(run["share"]) - 100 * refused / requests) <= 0.05
    assert "(quick run: a small world, so the targets do not apply)" in result.stdout
