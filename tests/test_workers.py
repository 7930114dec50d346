"""`sweep --enqueue` and `pulumi-claim worker`: a sweep's claims queued in PostgreSQL and made
by worker processes, one of them SIGKILLed in the middle of a claim; against the emulator over
HTTP and a real PostgreSQL server."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from commit_process import settle, toolkit_command, toolkit_env
from conftest import STORAGES
from test_runs_database import tables
from test_sweep import AGENTS, CLAIM_PATH, claim_files, stacks, sweep_world
from waiting import wait_until

from toolkit.emulator.faults import RecordedRequest
from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

ALL_AGENTS = (*AGENTS, "agent-ddd444")
LEASE = "2"
"""Seconds a silent worker keeps its claim: short, so that the test's takeover comes soon."""

pytestmark = pytest.mark.parametrize("database_url", [STORAGES[1]], indirect=True)


def world() -> dict[str, object]:
    """`sweep_world` with a fourth agent: each holds web/dev (taken in acme) and one of its own."""
    base = sweep_world()
    template = base["agents"][0]  # type: ignore[index]
    fourth = "agent-ddd444"
    base["agents"].append(  # type: ignore[attr-defined]
        {**template, "login": fourth, "token": f"tok-{fourth}", "claimToken": f"claim-{fourth}"}
    )
    base["orgs"][fourth] = {  # type: ignore[index]
        "stacks": [{"project": "web", "stack": "dev"}, {"project": "app", "stack": fourth}]
    }
    return base


def planned_stacks() -> set[str]:
    """acme's stacks once every account is claimed by the default policy."""
    return {
        "web/dev",
        "api/prod",
        *(f"web/dev-{login}" for login in ALL_AGENTS),
        *(f"app/{login}" for login in ALL_AGENTS),
    }


def start_worker(
    server: EmulatorServer, runs_dir: Path, database_url: str, *args: str
) -> subprocess.Popen[str]:
    env = toolkit_env(
        runs_dir, PULUMI_ACCESS_TOKEN="tok-alice", PULUMI_CLAIM_DATABASE_URL=database_url
    )
    return subprocess.Popen(
        toolkit_command(server, "worker", "--lease", LEASE, *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def hold_the_claim_after_its_dry_run(server: EmulatorServer) -> None:
    """Hold the first claim that is made (not dry-run): its worker is then mid-claim, its run
    journaled as under way."""
    armed = threading.Event()

    def arm(entry: RecordedRequest) -> None:
        if not armed.is_set() and entry.path == CLAIM_PATH and entry.query == "dryRun=true":
            armed.set()
            server.faults.hold(method="POST", path=CLAIM_PATH)

    server.requests.watch(arm)


def job_statuses(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT status FROM procrastinate_jobs ORDER BY id").fetchall()
    return [str(status) for (status,) in rows]


def test_enqueue_queues_every_claim_and_claims_nothing(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, database_url: str
) -> None:
    server = make_emulator(world())
    folder = claim_files(tmp_path / "claims", server, ALL_AGENTS)

    queued = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--enqueue")
    again = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--enqueue")

    assert queued.exit_code == 0, queued.stderr
    assert queued.stderr.splitlines() == [
        *(f"{login}.json: {login}: queued" for login in ALL_AGENTS),
        "sweep into acme: 4 queued (4 claim file(s))",
    ]
    assert again.exit_code == 0, again.stderr
    assert "queued already, not taken by a worker yet: not queued again" in again.stdout
    assert job_statuses(database_url) == ["todo"] * 4
    assert server.requests.count(method="POST", path=CLAIM_PATH) == 0
    with psycopg.connect(database_url) as connection:
        jobs = connection.execute("SELECT args::text FROM procrastinate_jobs").fetchall()
    assert all("/claims/agent-" in args for (args,) in jobs)
    assert not any("claim-agent" in args for (args,) in jobs), "a claim token is in the queue"
    assert stacks(server, "acme") == {"web/dev", "api/prod"}


def test_a_worker_killed_mid_claim_is_taken_over_and_nothing_is_claimed_twice(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, database_url: str
) -> None:
    server = make_emulator(world())
    folder = claim_files(tmp_path / "claims", server, ALL_AGENTS)
    queued = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--enqueue")
    assert queued.exit_code == 0, queued.stderr
    hold_the_claim_after_its_dry_run(server)

    first = start_worker(server, tmp_path / "runs-a", database_url)
    wait_until(lambda: server.faults.holding == 1, "the first worker's claim to be held")
    second = start_worker(server, tmp_path / "runs-b", database_url, "--until-empty")
    first.send_signal(signal.SIGKILL)
    first.wait()
    server.faults.release()  # the killed worker's claim goes on, as a service carries it out
    _, stderr = second.communicate(timeout=600)
    settle(server)

    assert second.returncode == 0, stderr
    made = [line for line in stderr.splitlines() if line.startswith("agent-")]
    assert sorted(made) == [f"{login}.json: {login}: claimed" for login in ALL_AGENTS]
    assert job_statuses(database_url) == ["succeeded"] * 4
    assert stacks(server, "acme") == planned_stacks()
    for login in ALL_AGENTS:
        assert stacks(server, login) == set()
    applied = [
        entry
        for entry in server.requests.entries()
        if entry.method == "POST"
        and entry.path == CLAIM_PATH
        and entry.query == "dryRun=false"
        and entry.status is not None
        and entry.status < 400
    ]
    assert len(applied) == len(ALL_AGENTS), [entry.status for entry in applied]

    validations = server.requests.count(path="/api/agents/signup/validate/.*")
    again = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--enqueue")

    assert again.exit_code == 0, again.stderr
    assert again.stderr.splitlines()[-1] == "sweep into acme: 4 already claimed (4 claim file(s))"
    assert job_statuses(database_url) == ["succeeded"] * 4
    assert server.requests.count(path="/api/agents/signup/validate/.*") == validations


def test_enqueue_and_worker_without_a_runs_database_are_refused(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    monkeypatch.delenv("PULUMI_CLAIM_DATABASE_URL")
    server = make_emulator(world())
    folder = claim_files(tmp_path / "claims", server, ALL_AGENTS)

    enqueue = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--enqueue")
    worker = run_cli(server, "worker", "--until-empty")

    for result, what in ((enqueue, "sweep --enqueue"), (worker, "worker")):
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"error: {what} needs a runs database in PostgreSQL, where the queue lives.",
            "Set PULUMI_CLAIM_DATABASE_URL or pass --database-url, the same on every machine: "
            "postgresql://USER@HOST:PORT/DATABASE (the password as USER:PASSWORD).",
        ]
    assert len(server.requests.entries()) == 0


def run_keys(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        (count,) = connection.execute("SELECT count(*) FROM pulumi_claim.run").fetchone()
    return int(count)


def test_a_sweep_and_a_job_files_sweep_keep_their_runs_in_the_runs_database(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    server = make_emulator(world())
    claim_files(tmp_path / "claims", server, ALL_AGENTS[:2])
    claim_files(tmp_path / "later", server, ALL_AGENTS[2:])
    job = tmp_path / "job.yaml"
    job.write_text(
        "sweeps:\n  - {name: later, claims: later, to: acme, tokens: {destination: ACME_TOKEN}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ACME_TOKEN", "tok-alice")

    swept = run_cli(server, "sweep", "--claims", str(tmp_path / "claims"), "--to", "acme")
    assert swept.exit_code == 0, swept.stderr
    assert run_keys(database_url) == 2
    before = tables(database_url)
    ran = run_cli(server, "job", "run", str(job))
    assert ran.exit_code == 0, ran.stderr
    assert run_keys(database_url) == 4
    assert tables(database_url) == before and len(before) == 10, "runs add rows, not tables"

    assert stacks(server, "acme") == planned_stacks()


def test_enqueue_and_worker_with_a_database_that_cannot_be_reached_are_one_clear_error(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "PULUMI_CLAIM_DATABASE_URL", f"postgresql://claim:no-such-pass@127.0.0.1:{port}/claims"
    )
    server = make_emulator(world())
    folder = claim_files(tmp_path / "claims", server, ALL_AGENTS)

    enqueue = run_cli(server, "sweep", "--claims", str(folder), "--to", "acme", "--enqueue")
    worker = run_cli(server, "worker", "--until-empty")

    for result in (enqueue, worker):
        assert result.exit_code == 1
        lines = result.stderr.splitlines()
        assert len(lines) == 2, result.stderr
        assert lines[0].startswith(
            f"error: the runs database at 127.0.0.1:{port} cannot be reached"
        )
        assert lines[0].endswith("; nothing was changed.")
        assert lines[1] == (
            f"Check the host, port, user and password of postgresql://claim:***@127.0.0.1:{port}"
            "/claims, and that the server runs and accepts this machine."
        )
        assert "no-such-pass" not in result.stdout + result.stderr
    assert len(server.requests.entries()) == 0
