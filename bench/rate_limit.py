"""Benchmark: a commit against a service that rate-limits each token to R requests a second.

Commits the same stacks (transfer, the emulator answering after 20 ms, as in
`preview_commit.py`) against an emulator that allows R requests a second, at each R, with the
client as it is (it paces its sends on a 429: `toolkit.cloud.concurrency`) and, for comparison,
with 16 calls in flight whatever the answers (as the client was before). Each figure is set
against the floor R sets, the calls the service carried out divided by R, and counts the
share of requests answered 429; both from the emulator's request log.

    uv run python bench/rate_limit.py           # the full run: 1,000 stacks, a few minutes
    uv run python bench/rate_limit.py --quick   # a small smoke run: seconds; targets n/a

It is a benchmark, not a test: it asserts only that every commit moved every stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from _emulator import Emulator, announce, emulators, sign_off
from preview_commit import (
    LATENCY_MS,
    TARGET,
    admin_credentials,
    check_landed_once,
    claim_world,
)

from toolkit.claim import commit_claim, plan_claim
from toolkit.cloud import concurrency, transport
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides

FLOOR_TARGET = 1.15
"""A commit takes at most this many times the calls it needs divided by R."""
REFUSED_TARGET = 0.02
"""At most this share of its requests are answered 429."""


@dataclass(frozen=True)
class Scale:
    stacks: int
    rates: tuple[float, ...]


FULL = Scale(stacks=1_000, rates=(50.0, 200.0))
QUICK = Scale(stacks=60, rates=(50.0, 200.0))


@dataclass(frozen=True)
class Figure:
    name: str
    shown: str
    target: str
    met: bool


class FixedLimit(concurrency.AdaptiveLimit):
    """The client as it was before its limit adapted: 16 calls in flight whatever the answers."""

    def answered(
        self, epoch: int, status: int, seconds: float, *, now: float, retry_after: float | None
    ) -> concurrency.LimitChange | None:
        return None


@contextmanager
def client_limit(kind: str) -> Iterator[None]:
    """Clients made inside adapt their limit (`adaptive`) or keep 16 in flight (`fixed-16`)."""
    if kind == "adaptive":
        yield
        return
    with mock.patch.object(transport, "AdaptiveLimit", FixedLimit):
        yield


def measure(service: Emulator, rate: float, kind: str) -> list[Figure]:
    """Plan the commit without a limit, then commit it at `rate` requests a second."""
    sides = Sides.of(TARGET, admin_credentials(service))
    plan = asyncio.run(plan_claim(sides, ResolutionMap.empty(), "transfer"))
    service.set_rate_limit(rate)
    service.clear_requests()
    with client_limit(kind):
        started = time.perf_counter()
        result = asyncio.run(commit_claim(sides, plan))
        seconds = time.perf_counter() - started
    served = service.served().requests
    if result.failed_moves:
        raise SystemExit(f"the commit at {rate:g}/s ({kind}) failed moves: {result.failed_moves}")
    service.set_rate_limit(None)
    asyncio.run(check_landed_once(admin_credentials(service), plan))
    refused = sum(1 for request in served if request.status == 429)
    calls = len(served) - refused
    floor = calls / rate
    ratio = seconds / floor
    share = refused / len(served)
    print(
        f"commit {len(plan.moves)} stacks at {rate:g} requests/s, {kind}: {seconds:.2f} s, "
        f"{calls} calls carried out / {rate:g} = {floor:.2f} s: {ratio:.2f}x, target <= "
        f"{FLOOR_TARGET:g}x; {refused} of {len(served)} requests answered 429 "
        f"({share:.1%}), target <= {REFUSED_TARGET:.0%}",
        flush=True,
    )
    name = f"commit {len(plan.moves)} at {rate:g}/s, {kind}"
    return [
        Figure(
            f"{name} vs calls/R", f"{ratio:.2f}x", f"<= {FLOOR_TARGET:g}x", ratio <= FLOOR_TARGET
        ),
        Figure(f"{name} 429s", f"{share:.1%}", f"<= {REFUSED_TARGET:.0%}", share <= REFUSED_TARGET),
    ]


def run(scale: Scale, *, quick: bool) -> None:
    kind = "quick" if quick else "full"
    announce(f"rate-limit benchmark ({kind})")
    runs = [(rate, kind) for rate in scale.rates for kind in ("adaptive", "fixed-16")]
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-") as name:
        world = Path(name) / "world.json"
        world.write_text(
            json.dumps(
                claim_world(
                    agent_stacks=scale.stacks,
                    projects=20,
                    environments=0,
                    destination_stacks=0,
                    collisions=0,
                )
            ),
            encoding="utf-8",
        )
        print(f"world: {scale.stacks:,} agent stacks in 20 projects; {LATENCY_MS:g} ms a call")
        figures: list[Figure] = []
        with emulators(*[(world, LATENCY_MS)] * len(runs)) as services:
            for service, (rate, limit) in zip(services, runs, strict=True):
                figures += measure(service, rate, limit)
    print_table(figures, quick=quick)
    sign_off()


def print_table(figures: list[Figure], *, quick: bool) -> None:
    width = max(len(figure.name) for figure in figures)
    print()
    print(f"{'figure':<{width}}  {'measured':>8}  {'target':>8}  met")
    for figure in figures:
        met = "n/a" if quick or "fixed" in figure.name else ("yes" if figure.met else "NO")
        print(f"{figure.name:<{width}}  {figure.shown:>8}  {figure.target:>8}  {met}")
    if quick:
        print("(quick run: a small world, so the targets do not apply)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark a commit against a rate limit.")
    parser.add_argument("--quick", action="store_true", help="a small world: a smoke run")
    args = parser.parse_args()
    run(QUICK if args.quick else FULL, quick=args.quick)


if __name__ == "__main__":
    main()
