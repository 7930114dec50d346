"""The sweep benchmark still runs end to end in its small `--quick` form: with 1, 2 and 4
worker processes on PostgreSQL every account is claimed once and every stack lands once at its
planned name (the script checks that itself, and stops otherwise), and each run prints its
figure; the figures themselves are not judged here (timings belong to the benchmark, never to
tests)."""

from __future__ import annotations

import re

import postgres_server
from bench_runs import quick_run

ACCOUNTS = 12

RUN = re.compile(
    rf"sweep {ACCOUNTS} accounts, (?P<workers>\d) worker\(s\), 20 ms: (?P<seconds>[\d.]+) s, "
    r"(?P<rate>[\d.]+) claims/s; every account claimed once, every stack once at its planned "
    r"name\n  (?P<calls>\d+) calls \([\d.]+ per claim: at most [\d.]+ s of added latency per "
    r"claim\); CPU: the workers [\d.]+ s \([\d.]+ cores busy\)"
    r"(?:, the emulator [\d.]+ s)?"
)


def test_quick_sweep_benchmark_claims_every_account_once_with_1_2_and_4_workers(
    postgres: postgres_server.PostgresServer,
) -> None:
    result = quick_run("sweep.py", "--database-url", postgres.url("postgres"), timeout=600)
    runs = [match.groupdict() for match in RUN.finditer(result.stdout)]
    assert [run["workers"] for run in runs] == ["1", "2", "4"], result.stdout
    for run in runs:
        seconds, rate = float(run["seconds"]), float(run["rate"])
        assert abs(rate * seconds - ACCOUNTS) < 0.1 * ACCOUNTS + 0.5
        assert int(run["calls"]) >= 3 * ACCOUNTS  # at least a dry run, a claim, a look each
    assert re.search(
        rf"sweep {ACCOUNTS} accounts, speed-up 1 -> 4 workers +[\d.]+x +>= 3x +n/a",
        result.stdout,
    )
    assert "(quick run: small worlds, so the targets do not apply)" in result.stdout
    assert "claim-agent" not in result.stdout + result.stderr
