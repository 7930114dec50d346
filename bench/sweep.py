"""Benchmark: a sweep of many agent accounts queued in PostgreSQL and claimed by 1, 2 and 4
worker processes.

500 agent accounts (3 stacks each; a third of them hold `web/dev`, a name acme has taken, so
the naming policy renames it to `web/dev-<agent>`) are swept into `acme` at 20 ms added per
request. For each number of workers, on a fresh emulator and a fresh database: the sweep is
queued (`pulumi-claim sweep --enqueue`, untimed), then that many `pulumi-claim worker
--until-empty` processes are started together and timed until the last one exits. After each
run every account must be claimed exactly once (one applied claim per account in the
emulator's request log) and every stack be in acme once, at its planned name, with no agent
org left holding one.

The agents are seeded in the world file with their tokens and claim tokens, as the service
would have signed them up; the world's `service.claimSecondsPerStack` is 0, so a claim's
stacks move by the next call and the figures measure the toolkit, not a pace the emulator
plays. The PostgreSQL server is the one given by --database-url (a database is created in it
per run), else one started from the system's packages, as the tests start it.

    uv run python bench/sweep.py            # 500 accounts: several minutes on 2 cores
    uv run python bench/sweep.py --quick    # 12 accounts: a smoke run; targets n/a
    uv run python bench/sweep.py --accounts 120

It is a benchmark, not a test: it asserts only that every run claimed every account once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _emulator import CONSOLE_SCRIPT, Emulator, announce, check, children_cpu_seconds, sign_off
from preview_commit import Figure, print_table, write_world

from toolkit.cloud import CloudClient
from toolkit.errors import NotFoundError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import postgres_server

LATENCY_MS = 20.0
DESTINATION = "acme"
ADMIN_TOKEN = "tok-bench-alice"
WORKERS = (1, 2, 4)
SPEEDUP_TARGET = 3.0
CLAIM_PATH = f"/api/agents/{DESTINATION}/claim"
LEASE_SECONDS = "30"


@dataclass(frozen=True)
class Run:
    workers: int
    seconds: float
    claims: int
    calls: int
    """Requests the emulator served while the workers ran."""
    workers_cpu: float
    """CPU seconds the worker processes used, together."""
    emulator_cpu: float | None

    @property
    def rate(self) -> float:
        return self.claims / self.seconds


def agent_login(i: int) -> str:
    return f"agent-{i:04d}"


def agent_stacks(i: int) -> list[tuple[str, str]]:
    """Every third agent holds web/dev, which acme has taken; each has two stacks of its own."""
    own = [(f"app-{i:04d}", "dev"), (f"app-{i:04d}", "prod")]
    return [*own, ("web", "dev") if i % 3 == 0 else (f"app-{i:04d}", "test")]


def planned_stacks(accounts: int) -> Counter[str]:
    """acme's stacks once every account is claimed by the default policy (`{stack}-{agent}`)."""
    planned = Counter({"web/dev": 1})
    for i in range(accounts):
        for project, stack in agent_stacks(i):
            renamed = f"{stack}-{agent_login(i)}" if (project, stack) == ("web", "dev") else stack
            planned[f"{project}/{renamed}"] += 1
    return planned


def sweep_world(accounts: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "service": {"claimSecondsPerStack": 0},
        "users": [{"login": "alice", "token": ADMIN_TOKEN, "orgs": {DESTINATION: "admin"}}],
        "agents": [
            {
                "login": agent_login(i),
                "token": f"tok-{agent_login(i)}",
                "claimToken": f"claim-{agent_login(i)}",
                "createdAt": (now - timedelta(hours=1)).isoformat(),
                "claimExpiresAt": (now + timedelta(days=30)).isoformat(),
            }
            for i in range(accounts)
        ],
        "orgs": {
            DESTINATION: {"stacks": [{"project": "web", "stack": "dev"}]},
            **{
                agent_login(i): {"stacks": [{"project": p, "stack": s} for p, s in agent_stacks(i)]}
                for i in range(accounts)
            },
        },
    }


def write_claim_files(folder: Path, url: str, accounts: int) -> Path:
    """One claim file per agent, as the pulumi CLI writes them."""
    folder.mkdir()
    valid_until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    for i in range(accounts):
        token = f"claim-{agent_login(i)}"
        document = {"claimToken": token, "cloudUrl": url, "validUntil": valid_until}
        (folder / f"{agent_login(i)}.json").write_text(json.dumps(document), encoding="utf-8")
    return folder


@contextmanager
def postgres(database_url: str | None) -> Iterator[str]:
    """A maintenance URL of a PostgreSQL server: the given one, else one started here."""
    if database_url is not None:
        yield database_url
        return
    binaries = postgres_server.server_binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    server = postgres_server.start(binaries)
    try:
        yield server.url("postgres")
    finally:
        postgres_server.stop(binaries, server)


def create_database(maintenance_url: str, name: str) -> str:
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return maintenance_url.rsplit("/", 1)[0] + f"/{name}"


def toolkit_env(runs_dir: Path, database_url: str) -> dict[str, str]:
    env = {**os.environ, "PULUMI_ACCESS_TOKEN": ADMIN_TOKEN}
    env.update(PULUMI_CLAIM_RUNS_DIR=str(runs_dir), PULUMI_CLAIM_DATABASE_URL=database_url)
    for variable in ("PULUMI_CLAIM_TOKEN", "PULUMI_CLAIM_SOURCE_TOKEN", "PULUMI_BACKEND_URL"):
        env.pop(variable, None)
    return env


def measure(
    world_file: Path, folder: Path, maintenance_url: str, accounts: int, workers: int
) -> Run:
    service = Emulator(world_file, latency_ms=LATENCY_MS)
    try:
        service.wait_until_listening()
        claims = write_claim_files(folder / f"claims-{workers}", service.url, accounts)
        database = create_database(maintenance_url, f"bench_sweep_{workers}")
        command = [str(CONSOLE_SCRIPT), "--api-url", service.url, "-q"]
        queued = subprocess.run(
            [*command, "sweep", "--claims", str(claims), "--to", DESTINATION, "--enqueue"],
            env=toolkit_env(folder / f"runs-{workers}-enqueue", database),
            capture_output=True,
            text=True,
            check=False,
        )
        check(queued.returncode == 0, f"the sweep was not queued: {queued.stderr}")
        service.clear_requests()
        cpu_before = service.cpu_seconds()
        children_before = children_cpu_seconds()
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [*command, "worker", "--until-empty", "--lease", LEASE_SECONDS],
                env=toolkit_env(folder / f"runs-{workers}-{n}", database),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(workers)
        ]
        for process in processes:
            _, stderr = process.communicate()
            check(process.returncode == 0, f"a worker exited {process.returncode}: {stderr}")
        seconds = time.perf_counter() - started
        workers_cpu = children_cpu_seconds() - children_before
        cpu = service.cpu_seconds_since(cpu_before)
        calls = len(service.served().requests)
        applied = claims_applied(service.url)
        check(applied == accounts, f"{applied} claims applied for {accounts} accounts")
        asyncio.run(check_claimed_once(service.url, accounts))
        return Run(workers, seconds, applied, calls, workers_cpu, cpu)
    finally:
        service.stop()


def claims_applied(url: str) -> int:
    """The claims (not dry runs) the emulator applied, from its request log."""
    log = httpx.get(f"{url}/_emulator/requests").raise_for_status().json()
    return sum(
        1
        for entry in log["requests"]
        if entry["method"] == "POST"
        and entry["path"] == CLAIM_PATH
        and "dryRun=false" in entry["query"]
        and entry["status"] is not None
        and entry["status"] < 400
    )


async def check_claimed_once(url: str, accounts: int) -> None:
    """Every stack is in acme once, at its planned name; no agent org holds one."""
    async with CloudClient(url, ADMIN_TOKEN) as client:
        listed = await client.list_stacks(DESTINATION)
        found = Counter(f"{stack.project_name}/{stack.stack_name}" for stack in listed)
        check(found == planned_stacks(accounts), "acme's stacks are not the planned ones")
        for i in (0, accounts // 2, accounts - 1):
            try:
                left = await client.list_stacks(agent_login(i))
            except NotFoundError:
                continue
            check(not left, f"{agent_login(i)} still holds stacks")


def run(accounts: int, maintenance_url: str, *, quick: bool) -> None:
    kind = "quick" if quick else "full"
    announce(f"pulumi-claim sweep benchmark ({kind})")
    colliding = len(range(0, accounts, 3))
    print(
        f"world: {accounts} agent accounts of 3 stacks each ({colliding} holding web/dev, "
        f"taken in {DESTINATION}), {LATENCY_MS:g} ms added per request, claims move at once; "
        "queued by sweep --enqueue (untimed), claimed by worker processes on PostgreSQL"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-sweep-") as name:
        folder = Path(name)
        world_file = write_world(folder, "sweep", sweep_world(accounts))
        for workers in WORKERS:
            measured = measure(world_file, folder, maintenance_url, accounts, workers)
            runs.append(measured)
            emulator = (
                ""
                if measured.emulator_cpu is None
                else f", the emulator {measured.emulator_cpu:.1f} s"
            )
            per_claim = measured.calls / accounts
            print(
                f"sweep {accounts} accounts, {workers} worker(s), {LATENCY_MS:g} ms: "
                f"{measured.seconds:.2f} s, {measured.rate:.1f} claims/s; every account claimed "
                "once, every stack once at its planned name\n"
                f"  {measured.calls} calls ({per_claim:.1f} per claim: at most "
                f"{per_claim * LATENCY_MS / 1000:.2f} s of added latency per claim); CPU: the "
                f"workers {measured.workers_cpu:.1f} s "
                f"({measured.workers_cpu / measured.seconds:.1f} cores busy){emulator}"
            )
    speedup = runs[0].seconds / runs[-1].seconds
    print_table(
        [
            *(
                Figure(
                    f"sweep {accounts} accounts, {run.workers} worker(s)",
                    f"{run.rate:.1f}/s",
                    "reported",
                    True,
                )
                for run in runs
            ),
            Figure(
                f"sweep {accounts} accounts, speed-up 1 -> {runs[-1].workers} workers",
                f"{speedup:.1f}x",
                f">= {SPEEDUP_TARGET:g}x",
                speedup >= SPEEDUP_TARGET,
            ),
        ],
        quick=quick,
    )
    sign_off()


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark sweeps claimed by worker processes.")
    parser.add_argument("--quick", action="store_true", help="12 accounts: a smoke run")
    parser.add_argument("--accounts", type=int, help="accounts to sweep (default 500)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server's URL to create the runs' databases in (default: start one)",
    )
    args = parser.parse_args()
    accounts = args.accounts or (12 if args.quick else 500)
    with postgres(args.database_url) as maintenance_url:
        run(accounts, maintenance_url, quick=args.quick)


if __name__ == "__main__":
    main()
