"""Benchmark: every StackReference of a large org, by the service's resource search and by
exporting every stack's state.

An org of 10,000 stacks in 20 projects, one in ten of them holding two StackReferences (one
fully qualified, one by its stack's name alone), served by the emulator in its own process at
20 ms a call. `find_stack_references` runs twice on it: with the resource search answering,
then with the search absent (the emulator's `resource-search` knob), when it exports each
stack's latest state with the client's concurrency. Both must find exactly the references the
world seeded; the figures are the time each way took, its calls and the most in flight, and
the emulator's CPU.

    uv run python bench/references.py           # 10,000 stacks: about a minute on 2 cores
    uv run python bench/references.py --quick   # 200 stacks: seconds

It is a benchmark, not a test: it asserts only that both ways find the same references.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _emulator import Emulator, announce, check, emulators, sign_off

from toolkit.cloud import CloudClient
from toolkit.collectors.stack_references import StackReferenceSearch, find_stack_references
from toolkit.stack_references import StackReferenceFound

ORG = "acme"
TOKEN = "tok-alice"
PROJECTS = 20
HOLDING_ONE_IN = 10
LATENCY_MS = 20.0

FULL_STACKS = 10_000
QUICK_STACKS = 200


@dataclass(frozen=True)
class Measured:
    """One way's run: what it found, how long it took, and what the emulator served."""

    found: StackReferenceSearch
    seconds: float
    calls: int
    peak_in_flight: int
    emulator_cpu_seconds: float | None


def stack_name(n: int) -> tuple[str, str]:
    return f"p{n % PROJECTS}", f"s{n}"


def references_of(n: int, stacks: int) -> list[str]:
    """What stack `n` references, if it holds any: the next stack by its full name, and the
    one after by its stack name alone (as a program in its project would write it)."""
    if n % HOLDING_ONE_IN:
        return []
    project, stack = stack_name((n + 1) % stacks)
    return [f"{ORG}/{project}/{stack}", stack_name((n + 2) % stacks)[1]]


def world(stacks: int) -> dict[str, Any]:
    seeded = []
    for n in range(stacks):
        project, stack = stack_name(n)
        entry: dict[str, Any] = {"project": project, "stack": stack, "resourceCount": 3}
        if references := references_of(n, stacks):
            entry["stackReferences"] = references
        seeded.append(entry)
    return {
        "users": [{"login": "alice", "token": TOKEN, "orgs": {ORG: "member"}}],
        "orgs": {ORG: {"stacks": seeded}},
    }


def expected(stacks: int) -> tuple[StackReferenceFound, ...]:
    found = [
        StackReferenceFound(ORG, *stack_name(n), name)
        for n in range(stacks)
        for name in references_of(n, stacks)
    ]
    return tuple(sorted(found, key=lambda r: (r.org, r.project, r.stack, r.name)))


def measure(service: Emulator, find: Callable[[], StackReferenceSearch]) -> Measured:
    service.clear_requests()
    cpu = service.cpu_seconds()
    started = time.perf_counter()
    found = find()
    seconds = time.perf_counter() - started
    emulator_cpu_seconds = service.cpu_seconds_since(cpu)
    served = service.served()
    return Measured(
        found=found,
        seconds=seconds,
        calls=len(served.requests),
        peak_in_flight=served.peak_in_flight,
        emulator_cpu_seconds=emulator_cpu_seconds,
    )


def find_all(service: Emulator) -> StackReferenceSearch:
    async def scenario() -> StackReferenceSearch:
        async with CloudClient(service.url, TOKEN) as client:
            return await find_stack_references(client, ORG)

    return asyncio.run(scenario())


def report(way: str, measured: Measured) -> None:
    cpu = measured.emulator_cpu_seconds
    shown_cpu = "n/a" if cpu is None else f"{cpu:.1f} s"
    print(
        f"  {way}: {measured.seconds:.2f} s, {measured.calls:,} "
        f"{'call' if measured.calls == 1 else 'calls'}, at most "
        f"{measured.peak_in_flight} in flight; the emulator's CPU {shown_cpu}",
        flush=True,
    )


def run(stacks: int, *, quick: bool) -> None:
    announce(f"stack references benchmark ({'quick' if quick else 'full'})")
    wanted = expected(stacks)
    holding = len({(r.project, r.stack) for r in wanted})
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-") as folder:
        world_file = Path(folder) / "world.json"
        world_file.write_text(json.dumps(world(stacks)), encoding="utf-8")
        print(
            f"world: {stacks:,} stacks of {ORG} in {PROJECTS} projects, {holding:,} of them "
            f"holding {len(wanted):,} StackReferences; {LATENCY_MS:g} ms a call"
        )
        with emulators((world_file, LATENCY_MS)) as (service,):
            searched = measure(service, lambda: find_all(service))
            service.set_resource_search("absent")
            exported = measure(service, lambda: find_all(service))
    check(searched.found.exported is None, "the search was not used")
    check(exported.found.exported == stacks, f"exported {exported.found.exported} states")
    check(searched.found.references == wanted, "the search did not find the seeded references")
    check(exported.found.references == wanted, "the exports did not find the seeded references")
    check(not exported.found.unreadable, f"unreadable stacks: {exported.found.unreadable}")
    print(f"every StackReference of {stacks:,} stacks, {LATENCY_MS:g} ms a call:")
    report(searched.found.found_by, searched)
    report(exported.found.found_by, exported)
    print(
        f"  both found the same {len(wanted):,} StackReferences; exporting took "
        f"{exported.seconds / searched.seconds:.1f}x the search's time"
    )
    sign_off()


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark finding an org's StackReferences.")
    parser.add_argument("--quick", action="store_true", help="a small world: a smoke run")
    args = parser.parse_args()
    run(QUICK_STACKS if args.quick else FULL_STACKS, quick=args.quick)


if __name__ == "__main__":
    main()
