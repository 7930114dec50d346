"""Benchmark: where a preview's time goes along its longest chain of pages, at 20 ms a call.

The preview of `bench/preview_commit.py` (10,000 agent stacks and 1,000 environments against
a 10,000-stack destination, with a map resolving every collision and without one), taken
apart: the time before the chain's first page is asked, the gaps between one page's answer and
the next page's arrival, the emulator's handling beyond the latency, and the time after the
chain's last answer (the plan built once every listing is in). Beside them, the CPU of both
processes and the garbage collector's pauses in the toolkit's. The emulator runs as its own
process; both read the same monotonic clock, so the emulator's request log and the toolkit's
own marks line up.

    uv run python bench/preview_chain.py           # the full run: about a minute on 2 cores
    uv run python bench/preview_chain.py --quick   # a small smoke run: seconds

It is a benchmark, not a test: it checks only that every plan has the moves and conflicts the
world makes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from _emulator import Emulator, announce, check, emulators, sign_off
from preview_commit import (
    FULL,
    LATENCY_MS,
    PREVIEW_CHAIN_TARGET,
    QUICK,
    RENAME_SUFFIX,
    TARGET,
    Scale,
    admin_credentials,
    claim_world,
    longest_page_chain,
    write_world,
)

from toolkit.claim import plan_claim, suggest_resolutions
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides


@dataclass(frozen=True)
class Preview:
    """One preview taken apart, in seconds."""

    wall: float
    chain_pages: int
    served: float
    """The chain as the emulator answered it: the latency and its own handling."""
    before_first_page: float
    gaps: float
    """Between each chain page's answer and the next page's arrival, summed."""
    after_last_page: float
    toolkit_cpu: float
    emulator_cpu: float
    gc_pauses: float
    gc_collections: int

    @property
    def ratio(self) -> float:
        return self.wall / (self.chain_pages * LATENCY_MS / 1000)


@contextmanager
def collector_pauses() -> Iterator[list[float]]:
    """The length of each garbage collection that runs within, in seconds."""
    pauses: list[float] = []
    started = 0.0

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.monotonic()
        else:
            pauses.append(time.monotonic() - started)

    gc.callbacks.append(on_collection)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(on_collection)


def one_preview(service: Emulator, resolution_map: ResolutionMap, scale: Scale) -> Preview:
    sides = Sides.of(TARGET, admin_credentials(service))
    service.clear_requests()
    emulator_cpu = service.cpu_seconds() or 0.0
    cpu = time.process_time()
    with collector_pauses() as pauses:
        started = time.monotonic()
        plan = asyncio.run(plan_claim(sides, resolution_map, "transfer"))
        ended = time.monotonic()
    cpu = time.process_time() - cpu
    emulator_cpu = (service.cpu_seconds() or 0.0) - emulator_cpu
    check(len(plan.moves) == scale.agent_stacks, f"plan has {len(plan.moves)} moves")
    conflicts = 0 if resolution_map.renames else scale.collisions
    check(len(plan.conflicts) == conflicts, f"{len(plan.conflicts)} conflicts")
    served = service.served().requests
    chain = longest_page_chain(served)
    pages = sorted((r for r in served if r.listing == chain.listing), key=lambda r: r.started)
    return Preview(
        wall=ended - started,
        chain_pages=chain.pages,
        served=chain.served_seconds,
        before_first_page=pages[0].started - started,
        gaps=sum(after.started - before.finished for before, after in pairwise(pages)),
        after_last_page=ended - pages[-1].finished,
        toolkit_cpu=cpu,
        emulator_cpu=emulator_cpu,
        gc_pauses=sum(pauses),
        gc_collections=len(pauses),
    )


def report(label: str, previews: list[Preview]) -> None:
    def median(figure: str) -> float:
        return float(statistics.median(getattr(preview, figure) for preview in previews))

    chain = previews[0].chain_pages
    walls = ", ".join(f"{preview.wall:.2f}" for preview in previews)
    print(
        f"preview {LATENCY_MS:g} ms, {label}: {median('wall'):.2f} s (median of {walls}) = "
        f"{median('ratio'):.2f}x its longest chain ({chain} pages x {LATENCY_MS:g} ms = "
        f"{chain * LATENCY_MS / 1000:.2f} s), target <= {PREVIEW_CHAIN_TARGET:g}x\n"
        f"  before the chain's first page {median('before_first_page'):.3f} s; the chain as "
        f"answered {median('served'):.3f} s ({median('served') - chain * LATENCY_MS / 1000:.3f} s "
        f"of it the emulator's handling); gaps between its pages {median('gaps'):.3f} s; after "
        f"its last answer {median('after_last_page'):.3f} s\n"
        f"  CPU: toolkit {median('toolkit_cpu'):.3f} s, emulator {median('emulator_cpu'):.3f} s; "
        f"the toolkit's collector paused {median('gc_collections'):.0f} times, "
        f"{median('gc_pauses'):.3f} s"
    )


def run(scale: Scale, *, quick: bool) -> None:
    announce(f"pulumi-claim preview chain benchmark ({'quick' if quick else 'full'})")
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-") as folder:
        world = claim_world(
            agent_stacks=scale.agent_stacks,
            projects=scale.projects,
            environments=scale.environments,
            destination_stacks=scale.destination_stacks,
            collisions=scale.collisions,
        )
        with emulators((write_world(Path(folder), "preview", world), LATENCY_MS)) as (service,):
            resolution_map, conflicts = asyncio.run(
                suggest_resolutions(
                    Sides.of(TARGET, admin_credentials(service)), suffix=RENAME_SUFFIX
                )
            )
            check(conflicts == scale.collisions, f"{conflicts} conflicts")
            for label, chosen in (("map", resolution_map), ("no map", ResolutionMap.empty())):
                report(label, [one_preview(service, chosen, scale) for _ in range(scale.repeats)])
    sign_off()


def main() -> None:
    parser = argparse.ArgumentParser(description="Where a preview's time goes along its chain.")
    parser.add_argument("--quick", action="store_true", help="a small world: a smoke run")
    args = parser.parse_args()
    run(QUICK if args.quick else FULL, quick=args.quick)


if __name__ == "__main__":
    main()
