"""Benchmark: preview and commit at scale, memory at 100,000 entities, `--help` start-up.

Measures the performance targets (docs/performance.md), printing each figure as it is
measured, then a table of figure against target. The emulator runs as its own process
(`pulumi-claim emulator`), as the service would, so the times, calls and memory measured here
are the toolkit's alone; its request log (`/_emulator/requests`) counts the calls.

Figures at an added latency are set against floors counted from what the emulator served: a
preview against its longest chain of pages that must follow each other, a commit against its
calls made one at a time and its calls spread over the client's concurrency.

    uv run python bench/preview_commit.py           # the full run: a few minutes on 2 cores
    uv run python bench/preview_commit.py --quick   # a small smoke run: seconds; targets n/a

It is a benchmark, not a test: it asserts only that every commit landed each stack exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from _emulator import (
    CONSOLE_SCRIPT,
    Emulator,
    ServedRequest,
    SlotCycle,
    announce,
    check,
    children_cpu_seconds,
    emulators,
    sign_off,
)

from toolkit.claim import commit_claim, plan_claim, suggest_resolutions
from toolkit.cloud import DEFAULT_MAX_CONCURRENCY, CloudClient
from toolkit.credentials import Credentials
from toolkit.entities import stack_name
from toolkit.errors import NotFoundError
from toolkit.plan import ClaimPlan, ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides

AGENT = "agent-bench"
DESTINATION = "acme"
ADMIN_TOKEN = "tok-alice"
"""alice administers both orgs: she previews and commits."""
AGENT_TOKEN = "tok-agent"
CLAIM_TOKEN = "claim-bench"
"""The agent's own token reads the source inventory, as in a claim."""
TARGET = ClaimTarget(source_org=AGENT, destination_org=DESTINATION)
LATENCY_MS = 20.0
PREVIEW_CHAIN_TARGET = 1.2
"""A preview at LATENCY_MS takes at most this many times its longest chain of pages."""
REAL_LATENCY_MS = 200.0
"""A real service's latency, far away: every call before the first page shows."""
PREVIEW_WALK_TARGET = 1.1
"""A preview at REAL_LATENCY_MS takes at most this many times a plain walk of its longest
chain of pages."""
COMMIT_FLOOR_TARGET = 1.2
"""A commit at LATENCY_MS takes at most this many times its in-flight floor."""
RENAME_SUFFIX = "-agent"


@dataclass(frozen=True)
class Scale:
    """How big each world is, and how often each preview and commit is repeated (the median
    counts)."""

    agent_stacks: int
    projects: int
    environments: int
    destination_stacks: int
    collisions: int
    commit_stacks: int
    commit_collisions: int
    memory_stacks: int
    memory_environments: int
    memory_destination_stacks: int
    far_agent_stacks: int
    far_destination_stacks: int
    """The preview at REAL_LATENCY_MS: its orgs' stacks."""
    repeats: int


FULL = Scale(
    agent_stacks=10_000,
    projects=20,
    environments=1_000,
    destination_stacks=10_000,
    collisions=1_000,
    commit_stacks=1_000,
    commit_collisions=100,
    memory_stacks=90_000,
    memory_environments=10_000,
    memory_destination_stacks=10_000,
    far_agent_stacks=1_540,
    far_destination_stacks=1_500,
    repeats=3,
)
QUICK = Scale(
    agent_stacks=300,
    projects=5,
    environments=30,
    destination_stacks=300,
    collisions=30,
    commit_stacks=60,
    commit_collisions=10,
    memory_stacks=1_800,
    memory_environments=200,
    memory_destination_stacks=200,
    far_agent_stacks=154,
    far_destination_stacks=150,
    repeats=1,
)


@dataclass(frozen=True)
class Figure:
    """One line of the final table."""

    name: str
    shown: str
    target: str
    met: bool


# --- Worlds and the emulator process ----------------------------------------------------------


def claim_world(
    *,
    agent_stacks: int,
    projects: int,
    environments: int,
    destination_stacks: int,
    collisions: int,
) -> dict[str, Any]:
    """An agent org and a destination org, in world-file shape.

    The destination holds the first `collisions` agent stacks' names (spread over every
    project) and other stacks of its own; alice is admin of both orgs.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    agent = [
        {"project": f"app-{i % projects:02d}", "stack": f"dev-{i:06d}", "resourceCount": i % 40}
        for i in range(agent_stacks)
    ]
    own = [
        {"project": f"svc-{i % projects:02d}", "stack": f"prod-{i:06d}", "resourceCount": 10}
        for i in range(destination_stacks - collisions)
    ]
    return {
        # The claim still starts and is followed, but its stacks move by the next call: the
        # figures measure the toolkit, not a pace the emulator plays.
        "service": {"claimSecondsPerStack": 0},
        "users": [
            {"login": "alice", "token": ADMIN_TOKEN, "orgs": {DESTINATION: "admin", AGENT: "admin"}}
        ],
        "agents": [
            {
                "login": AGENT,
                "token": AGENT_TOKEN,
                "claimToken": CLAIM_TOKEN,
                # Within the service's windows: an hour old, claimable for 30 days.
                "createdAt": (now - timedelta(hours=1)).isoformat(),
                "claimExpiresAt": (now + timedelta(days=30)).isoformat(),
            }
        ],
        "orgs": {
            AGENT: {
                "stacks": agent,
                "environments": [
                    {"project": f"app-{i % projects:02d}", "name": f"config-{i:06d}"}
                    for i in range(environments)
                ],
            },
            DESTINATION: {"stacks": agent[:collisions] + own},
        },
    }


def admin_credentials(service: Emulator) -> Credentials:
    """alice's, on `service`: she previews and commits; the agent's token reads the source."""
    return Credentials(api_url=service.url, destination_token=ADMIN_TOKEN, source_token=AGENT_TOKEN)


# --- What the emulator served, and the floors it sets ------------------------------------------


@dataclass(frozen=True)
class PageChain:
    """Pages that must follow each other: one listing's, each sent with the continuation token
    of the page before it."""

    listing: str
    pages: int
    served_seconds: float
    """How long the emulator took to answer the chain's pages, one read of it: the added
    latency and its own handling (the toolkit cannot read the chain faster)."""


def longest_page_chain(requests: Sequence[ServedRequest]) -> PageChain:
    """The longest chain among the listings served.

    Different listings (each org's, each list within an org) need not wait for each other, so
    their chains run side by side and the longest one is the floor. A listing read more than
    once over the same data sends the same tokens again, so its chain is its first page and
    one page per distinct token.
    """
    first_pages: Counter[str] = Counter()
    tokens: defaultdict[str, set[str]] = defaultdict(set)
    seconds: defaultdict[str, float] = defaultdict(float)
    for request in requests:
        token = request.continuation_token
        if token is None:
            first_pages[request.listing] += 1
        else:
            tokens[request.listing].add(token)
        seconds[request.listing] += request.seconds
    orphans = set(tokens) - set(first_pages)
    check(not orphans, f"later pages served without a first page: {sorted(orphans)}")
    chains = [
        PageChain(listing, 1 + len(tokens[listing]), seconds[listing] / reads)
        for listing, reads in first_pages.items()
    ]
    check(bool(chains), "the emulator served no requests")
    return max(chains, key=lambda chain: chain.pages)


@dataclass(frozen=True)
class CallFloors:
    """The two floors of a commit that made `calls` calls, each waiting `latency_ms`."""

    calls: int
    concurrency: int
    latency_ms: float

    @property
    def one_at_a_time(self) -> float:
        """Seconds with every call awaited before the next: calls x latency."""
        return self.calls * self.latency_ms / 1000

    @property
    def in_flight(self) -> float:
        """Seconds with `concurrency` calls always in flight: calls / concurrency x latency."""
        return self.calls / self.concurrency * self.latency_ms / 1000

    def one_at_a_time_sum(self) -> str:
        return f"{self.calls} x {self.latency_ms:g} ms = {self.one_at_a_time:.3f} s"

    def in_flight_sum(self) -> str:
        return (
            f"{self.calls} / {self.concurrency} x {self.latency_ms:g} ms = {self.in_flight:.3f} s"
        )


def write_world(folder: Path, name: str, world: dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(world), encoding="utf-8")
    return path


# --- Preview ------------------------------------------------------------------------------------


def time_previews(service: Emulator, scale: Scale, *, latency_ms: float) -> list[Figure]:
    """Time `plan_claim` with a map resolving every collision, and without one (blocked)."""
    credentials = admin_credentials(service)
    resolution_map, conflicts = asyncio.run(
        suggest_resolutions(Sides.of(TARGET, credentials), suffix=RENAME_SUFFIX)
    )
    check(conflicts == scale.collisions, f"{conflicts} conflicts, not {scale.collisions}")
    figures: list[Figure] = []
    for label, chosen_map in (("map", resolution_map), ("no map", ResolutionMap.empty())):
        seconds: list[float] = []
        for _ in range(scale.repeats):
            service.clear_requests()
            started = time.perf_counter()
            plan = asyncio.run(plan_claim(Sides.of(TARGET, credentials), chosen_map, "transfer"))
            seconds.append(time.perf_counter() - started)
            served = service.served()
        check(len(plan.moves) == scale.agent_stacks, f"plan has {len(plan.moves)} moves")
        expected_conflicts = 0 if chosen_map.renames else scale.collisions
        check(len(plan.conflicts) == expected_conflicts, f"{len(plan.conflicts)} conflicts")
        median = statistics.median(seconds)
        pages = len(served.requests)
        chain = longest_page_chain(served.requests)
        name = f"preview {latency_ms:g} ms, {label}"
        measured = f"{name}: {median:.2f} s, {pages} pages, longest chain {chain.pages} pages"
        if latency_ms:
            floor = chain.pages * latency_ms / 1000
            ratio = median / floor
            handling = chain.served_seconds - floor
            print(
                f"{measured} ({chain.listing}) x {latency_ms:g} ms = {floor:.3f} s: "
                f"{ratio:.2f}x the chain, target <= {PREVIEW_CHAIN_TARGET:g}x "
                f"(every page one after another: {pages * latency_ms / 1000:.2f} s)\n"
                f"  the chain as the emulator answered it: {chain.served_seconds:.3f} s, "
                f"{handling:.3f} s of it its own handling beyond the latency; "
                f"{median / chain.served_seconds:.2f}x that"
            )
            figures.append(
                Figure(
                    f"{name} vs longest chain",
                    f"{ratio:.2f}x",
                    f"<= {PREVIEW_CHAIN_TARGET:g}x",
                    ratio <= PREVIEW_CHAIN_TARGET,
                )
            )
        else:
            print(f"{measured} ({chain.listing})")
            figures.append(Figure(name, f"{median:.2f} s", "< 3 s", median < 3))
    return figures


def time_preview_far_away(service: Emulator, scale: Scale) -> list[Figure]:
    """`plan_claim` as `pulumi-claim preview` runs it (strategy auto, no map) at
    REAL_LATENCY_MS, and the whole `pulumi-claim preview` process (its start-up and its report
    too), each against a plain walk of its longest chain: the same pages asked one after
    another by a client that does nothing else. Each call made before the first page, or
    after the last, is a gap between the two; also counted: the calls answered before the
    first stack page was asked, and the CPU time of the process (which other work on the
    machine moves much less than its wall time)."""
    credentials = admin_credentials(service)
    previews: list[float] = []
    walks: list[float] = []
    processes: list[ProcessTime] = []
    for _ in range(scale.repeats):
        service.clear_requests()
        started = time.perf_counter()
        plan = asyncio.run(plan_claim(Sides.of(TARGET, credentials), ResolutionMap.empty()))
        previews.append(time.perf_counter() - started)
        served = service.served()
        chain = longest_page_chain(served.requests)
        walks.append(plain_walk(service, chain))
        processes.append(preview_process(service))
    check(len(plan.moves) == scale.far_agent_stacks, f"plan has {len(plan.moves)} moves")
    preview, walk = statistics.median(previews), statistics.median(walks)
    ratio = preview / walk
    process = statistics.median(p.seconds for p in processes)
    process_ratio = process / walk
    process_cpu = statistics.median(p.cpu_seconds for p in processes)
    stack_pages = [r.started for r in served.requests if r.path == "/api/user/stacks"]
    before = sum(r.finished <= min(stack_pages) for r in served.requests)
    name = (
        f"preview {REAL_LATENCY_MS:g} ms ({scale.far_agent_stacks:,} vs "
        f"{scale.far_destination_stacks:,} stacks)"
    )
    print(
        f"{name}: plan_claim {preview:.2f} s, {len(served.requests)} calls, longest chain "
        f"{chain.pages} pages ({chain.listing}); a plain walk of that chain {walk:.3f} s: "
        f"{ratio:.2f}x the walk, target <= {PREVIEW_WALK_TARGET:g}x\n"
        f"  calls answered before the first stack page was asked: {before}; the whole "
        f"`pulumi-claim preview` process (start-up, rendering): {process:.2f} s = "
        f"{process_ratio:.2f}x the walk, target <= {PREVIEW_WALK_TARGET:g}x; its CPU "
        f"{process_cpu:.2f} s"
    )
    return [
        Figure(
            f"{name} vs plain walk of the chain",
            f"{ratio:.2f}x",
            f"<= {PREVIEW_WALK_TARGET:g}x",
            ratio <= PREVIEW_WALK_TARGET,
        ),
        Figure(
            f"the whole `pulumi-claim preview` process at {REAL_LATENCY_MS:g} ms vs that walk",
            f"{process_ratio:.2f}x",
            f"<= {PREVIEW_WALK_TARGET:g}x",
            process_ratio <= PREVIEW_WALK_TARGET,
        ),
    ]


def plain_walk(service: Emulator, chain: PageChain) -> float:
    """Seconds to read `chain`'s pages one after another with a bare HTTP client: the floor
    of any preview that must read them."""
    method, _, address = chain.listing.partition(" ")
    path, _, query = address.partition("?")
    check(path == "/api/user/stacks", f"the longest chain is {chain.listing}")
    headers = {"Authorization": f"token {ADMIN_TOKEN}", "Accept": "application/vnd.pulumi+8"}
    with httpx.Client(base_url=service.url, headers=headers) as client:
        started = time.perf_counter()
        pages, token = 0, None
        while pages == 0 or token:
            params = dict(parse_qsl(query)) | ({"continuationToken": token} if token else {})
            answer = client.request(method, path, params=params).raise_for_status()
            token = answer.json().get("continuationToken")
            pages += 1
        seconds = time.perf_counter() - started
    check(pages == chain.pages, f"the plain walk read {pages} pages, not {chain.pages}")
    return seconds


@dataclass(frozen=True)
class ProcessTime:
    """A process's wall time and the CPU time it used (user and system)."""

    seconds: float
    cpu_seconds: float


def preview_process(service: Emulator) -> ProcessTime:
    """A `pulumi-claim preview --format json` process, start-up included: its credentials set
    here alone (no landing, so no pulumi CLI runs)."""
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-home-") as home:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PULUMI_")}
        env |= {
            "HOME": home,
            "PULUMI_ACCESS_TOKEN": ADMIN_TOKEN,
            "PULUMI_CLAIM_SOURCE_TOKEN": AGENT_TOKEN,
        }
        command = [str(CONSOLE_SCRIPT), "--api-url", service.url, "preview"]
        command += ["--from", AGENT, "--to", DESTINATION, "--format", "json"]
        cpu_before = children_cpu_seconds()
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        seconds = time.perf_counter() - started
        return ProcessTime(seconds, children_cpu_seconds() - cpu_before)


# --- Commit -------------------------------------------------------------------------------------


def measure_commit(
    fresh: list[Emulator], twin: Emulator, scale: Scale
) -> tuple[list[Figure], float]:
    """`commit_claim`, once on each `fresh` emulator (the median counts), against the same calls
    made one after another on `twin` and against the floors those calls set; every emulator
    serves the same world. Also returns the median commit's seconds."""
    resolution_map, _ = asyncio.run(
        suggest_resolutions(Sides.of(TARGET, admin_credentials(fresh[0])), suffix=RENAME_SUFFIX)
    )
    plan = asyncio.run(
        plan_claim(Sides.of(TARGET, admin_credentials(fresh[0])), resolution_map, "transfer")
    )
    renamed = sum(move.renamed for move in plan.moves)
    check(renamed == scale.commit_collisions, f"{renamed} renames planned")
    seconds: list[float] = []
    cpu_a_call: list[CpuACall] = []
    cycles: list[SlotCycle] = []
    for service in fresh:
        service.clear_requests()
        emulator_cpu = service.cpu_seconds()
        cpu = time.process_time()
        started = time.perf_counter()
        result = asyncio.run(commit_claim(Sides.of(TARGET, admin_credentials(service)), plan))
        seconds.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu
        served = service.served()
        emulator_used = service.cpu_seconds_since(emulator_cpu)
        cpu_a_call.append(CpuACall.of(len(served.requests), cpu, emulator_used))
        cycles.append(served.slot_cycle(DEFAULT_MAX_CONCURRENCY))
        check(not result.failed_moves, f"commit failed moves: {result.failed_moves}")
        asyncio.run(check_landed_once(admin_credentials(service), plan))
    concurrent = statistics.median(seconds)
    # The runs are an odd number: the median is one of them.
    median_run = sorted(range(len(seconds)), key=seconds.__getitem__)[len(seconds) // 2]

    twin.clear_requests()
    started = time.perf_counter()
    asyncio.run(commit_one_call_at_a_time(admin_credentials(twin), plan))
    one_by_one = time.perf_counter() - started
    one_by_one_calls = len(twin.served().requests)
    asyncio.run(check_landed_once(admin_credentials(twin), plan))

    calls = len(served.requests)
    check(calls == one_by_one_calls, "both commits must make the same calls")
    floors = CallFloors(calls, DEFAULT_MAX_CONCURRENCY, LATENCY_MS)
    speedup = one_by_one / concurrent
    ratio = concurrent / floors.in_flight
    print(
        f"commit {len(plan.moves)} stacks ({renamed} renamed), {LATENCY_MS:g} ms, "
        f"{calls} calls, at most {served.peak_in_flight} in flight: commit_claim "
        f"{concurrent:.2f} s (median of {', '.join(f'{run:.2f}' for run in seconds)})\n"
        f"  one call at a time: measured {one_by_one:.2f} s ({speedup:.1f}x the commit's time), "
        f"floor {floors.one_at_a_time_sum()} ({floors.one_at_a_time / concurrent:.1f}x)\n"
        f"  in flight at {floors.concurrency}: floor {floors.in_flight_sum()}, "
        f"{ratio:.2f}x the floor, target <= {COMMIT_FLOOR_TARGET:g}x\n"
        f"  {cpu_a_call[median_run].describe()} (the median commit)\n"
        f"  {cycles[median_run].describe(LATENCY_MS)} (the median commit)"
    )
    name = f"commit {len(plan.moves)} stacks"
    figures = [
        Figure(f"{name} speed-up", f"{speedup:.1f}x", ">= 10x", speedup >= 10),
        Figure(
            f"{name} vs in-flight floor",
            f"{ratio:.2f}x",
            f"<= {COMMIT_FLOOR_TARGET:g}x",
            ratio <= COMMIT_FLOOR_TARGET,
        ),
    ]
    return figures, concurrent


@dataclass(frozen=True)
class CpuACall:
    """The CPU a run spent a call served, on each side: what makes a run at many calls in
    flight slower than its floor, on a machine whose cores both sides share."""

    toolkit_ms: float
    emulator_ms: float | None
    """None where /proc does not tell the emulator process's CPU."""

    @classmethod
    def of(cls, calls: int, cpu_seconds: float, emulator_cpu_seconds: float | None) -> CpuACall:
        return cls(
            toolkit_ms=cpu_seconds * 1000 / calls,
            emulator_ms=(
                None if emulator_cpu_seconds is None else emulator_cpu_seconds * 1000 / calls
            ),
        )

    def describe(self) -> str:
        emulator = "?" if self.emulator_ms is None else f"{self.emulator_ms:.2f} ms"
        return f"CPU a call: this process {self.toolkit_ms:.2f} ms, the emulator {emulator}"


def measure_claim(service: Emulator, transfer_seconds: float) -> Figure:
    """The same world's agent account claimed through the service's claim API (one call, then
    the claim's status and the verifying listings), beside the transfer of `measure_commit`."""
    credentials = replace(admin_credentials(service), claim_token=CLAIM_TOKEN)
    resolution_map, _ = asyncio.run(
        suggest_resolutions(Sides.of(TARGET, credentials), suffix=RENAME_SUFFIX)
    )
    plan = asyncio.run(plan_claim(Sides.of(TARGET, credentials), resolution_map, "claim-api"))
    service.clear_requests()
    started = time.perf_counter()
    result = asyncio.run(commit_claim(Sides.of(TARGET, credentials), plan))
    seconds = time.perf_counter() - started
    calls = len(service.served().requests)
    check(not result.failed_moves, f"claim failed moves: {result.failed_moves}")
    check(not result.document.failures, f"claim failures: {result.document.failures}")
    asyncio.run(check_landed_once(admin_credentials(service), plan))
    floors = CallFloors(calls, DEFAULT_MAX_CONCURRENCY, LATENCY_MS)
    print(
        f"claim {len(plan.moves)} stacks through the claim API, {LATENCY_MS:g} ms, {calls} calls: "
        f"{seconds:.2f} s (floors: one call at a time {floors.one_at_a_time_sum()}, in flight "
        f"{floors.in_flight_sum()}); the same moves by transfer: {transfer_seconds:.2f} s"
    )
    return Figure(
        f"claim {len(plan.moves)} stacks, claim API vs transfer",
        f"{seconds:.2f} s vs {transfer_seconds:.2f} s",
        "reported",
        True,
    )


async def commit_one_call_at_a_time(credentials: Credentials, plan: ClaimPlan) -> None:
    """The baseline: the listings that locate the stacks (each project the moves start or land
    in, in both orgs), each move's rename (if any) then its transfer, then the listings that
    verify them (each project the moves land in, in both orgs), every call awaited before the next.

    Renaming straight to the final name is safe here because suggested names are free in both
    orgs (the plan has no chains or swaps to order).
    """
    async with CloudClient(credentials.api_url, credentials.destination_token) as client:
        landing = sorted({move.target.project_name for move in plan.moves})
        leaving = sorted({move.source.project_name for move in plan.moves} | set(landing))
        for project in leaving:
            await client.list_stacks(plan.source_org, project)
        for project in landing:
            await client.list_stacks(plan.destination_org, project)
        for move in plan.moves:
            source, target = move.source, move.target
            if move.renamed:
                await client.rename_stack(
                    plan.source_org,
                    source.project_name,
                    source.stack_name,
                    new_project=target.project_name,
                    new_name=target.stack_name,
                )
            await client.transfer_stack(
                plan.source_org, target.project_name, target.stack_name, to_org=plan.destination_org
            )
        for project in sorted({move.target.project_name for move in plan.moves}):
            await client.list_stacks(plan.source_org, project)
            await client.list_stacks(plan.destination_org, project)


async def check_landed_once(credentials: Credentials, plan: ClaimPlan) -> None:
    """Every planned stack is listed in the destination exactly once, and none is left behind
    (a claimed agent org is gone altogether)."""
    async with CloudClient(credentials.api_url, credentials.destination_token) as client:
        destination = await client.list_stacks(plan.destination_org)
        try:
            source = await client.list_stacks(plan.source_org)
        except NotFoundError:
            check(plan.strategy == "claim-api", f"{plan.source_org} is gone")
            source = []
    check(not source, f"{len(source)} stack(s) still in {plan.source_org}")
    listed = Counter((stack.project_name, stack.stack_name) for stack in destination)
    for move in plan.moves:
        name = stack_name(move.target)
        check(listed[name] == 1, f"{'/'.join(name)} is listed {listed[name]} time(s)")


# --- Memory -------------------------------------------------------------------------------------


def measure_memory(service: Emulator, entities: int) -> Figure:
    """Peak RSS of a process that only plans (suggest a map, then plan with it) at 0 ms."""
    probe = subprocess.run(
        [sys.executable, __file__, "--plan-in-this-process", service.url],
        check=True,
        capture_output=True,
        text=True,
    )
    emulator_mb = service.peak_rss_mb()
    measured = json.loads(probe.stdout)
    toolkit_mb: float = measured["peakRssMb"]
    emulator_note = f"; the emulator process peaked at {emulator_mb:.0f} MB" if emulator_mb else ""
    print(
        f"memory at {entities:,} entities: planning process peak RSS {toolkit_mb:.0f} MB "
        f"(suggested a map and planned in {measured['seconds']:.1f} s){emulator_note}"
    )
    return Figure(
        f"memory at {entities:,} entities",
        f"{toolkit_mb:.0f} MB",
        "< 300 MB",
        toolkit_mb < 300,
    )


def plan_in_this_process(api_url: str) -> None:
    """The memory probe's own work: plan the claim, then print its peak RSS as JSON."""
    credentials = Credentials(
        api_url=api_url, destination_token=ADMIN_TOKEN, source_token=AGENT_TOKEN
    )
    started = time.perf_counter()
    resolution_map, _ = asyncio.run(
        suggest_resolutions(Sides.of(TARGET, credentials), suffix=RENAME_SUFFIX)
    )
    plan = asyncio.run(plan_claim(Sides.of(TARGET, credentials), resolution_map, "transfer"))
    seconds = time.perf_counter() - started
    check(not plan.blocked, "the memory plan is blocked")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"peakRssMb": peak_kb / 1024, "seconds": seconds}))


# --- Start-up -----------------------------------------------------------------------------------


def measure_help() -> Figure:
    """Wall time of `pulumi-claim --help` in a new process, best of 5."""
    times: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([str(CONSOLE_SCRIPT), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    best = min(times)
    print(f"pulumi-claim --help: best {best:.3f} s of {', '.join(f'{t:.3f}' for t in times)}")
    return Figure("pulumi-claim --help", f"{best:.2f} s", "< 0.3 s", best < 0.3)


# --- The run ------------------------------------------------------------------------------------


def write_worlds(folder: Path, scale: Scale) -> tuple[Path, Path, Path, Path]:
    """The world files of the preview, the commit, the memory and the far-away preview
    measurements."""
    preview_world = write_world(
        folder,
        "preview",
        claim_world(
            agent_stacks=scale.agent_stacks,
            projects=scale.projects,
            environments=scale.environments,
            destination_stacks=scale.destination_stacks,
            collisions=scale.collisions,
        ),
    )
    commit_world = write_world(
        folder,
        "commit",
        claim_world(
            agent_stacks=scale.commit_stacks,
            projects=scale.projects,
            environments=0,
            destination_stacks=scale.commit_stacks,
            collisions=scale.commit_collisions,
        ),
    )
    memory_world = write_world(
        folder,
        "memory",
        claim_world(
            agent_stacks=scale.memory_stacks,
            projects=scale.projects,
            environments=scale.memory_environments,
            destination_stacks=scale.memory_destination_stacks,
            collisions=scale.memory_destination_stacks // 10,
        ),
    )
    far_world = write_world(
        folder,
        "far",
        claim_world(
            agent_stacks=scale.far_agent_stacks,
            projects=scale.projects,
            environments=0,
            destination_stacks=scale.far_destination_stacks,
            collisions=0,
        ),
    )
    return preview_world, commit_world, memory_world, far_world


def run(scale: Scale, *, quick: bool) -> None:
    kind = "quick" if quick else "full"
    announce(f"pulumi-claim benchmark ({kind})")
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-") as name:
        preview_world, commit_world, memory_world, far_world = write_worlds(Path(name), scale)
        print(
            f"preview world: {scale.agent_stacks:,} agent stacks in {scale.projects} projects, "
            f"{scale.environments:,} environments; {scale.destination_stacks:,} destination "
            f"stacks, {scale.collisions:,} colliding; median of {scale.repeats}"
        )
        figures: list[Figure] = []
        commit_worlds = [(commit_world, LATENCY_MS)] * (scale.repeats + 2)
        with emulators(
            (preview_world, 0.0),
            (preview_world, LATENCY_MS),
            (far_world, REAL_LATENCY_MS),
            (memory_world, 0.0),
            *commit_worlds,
        ) as (instant, delayed, far, memory_service, *commit_services):
            figures += time_previews(instant, scale, latency_ms=0.0)
            figures += time_previews(delayed, scale, latency_ms=LATENCY_MS)
            figures += time_preview_far_away(far, scale)
            twin, claimed, *fresh = commit_services
            commit_figures, transfer_seconds = measure_commit(fresh, twin, scale)
            figures += commit_figures
            figures.append(measure_claim(claimed, transfer_seconds))
            entities = scale.memory_stacks + scale.memory_environments
            figures.append(measure_memory(memory_service, entities))
    figures.append(measure_help())
    print_table(figures, quick=quick)
    sign_off()


def print_table(figures: list[Figure], *, quick: bool) -> None:
    width = max(len(figure.name) for figure in figures)
    print()
    print(f"{'figure':<{width}}  {'measured':>9}  {'target':>8}  met")
    for figure in figures:
        met = "n/a" if quick else ("yes" if figure.met else "NO")
        print(f"{figure.name:<{width}}  {figure.shown:>9}  {figure.target:>8}  {met}")
    if quick:
        print("(quick run: small worlds, so the targets do not apply)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark pulumi-claim against its targets.")
    parser.add_argument("--quick", action="store_true", help="small worlds: a smoke run")
    parser.add_argument("--plan-in-this-process", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan_in_this_process:
        plan_in_this_process(args.plan_in_this_process)
    else:
        run(QUICK if args.quick else FULL, quick=args.quick)


if __name__ == "__main__":
    main()
