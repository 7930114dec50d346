"""The source org's lock as the user meets it: a run that changed nothing leaves no lock
behind, one org is one lock whatever the spelling of its service's URL, and with a runs
database (PostgreSQL) one lock whichever machine runs the commit.

Each commit runs in its own process against the emulator, as a user or a scheduler runs it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
import pytest
from agent_times import agent_entry
from commit_process import (
    Finished,
    is_state_changing,
    run_toolkit,
    settle,
    toolkit_command,
    toolkit_env,
)
from conftest import STORAGES
from waiting import wait_until

from toolkit.credentials import load_credentials
from toolkit.database_locks import DatabaseOrgLock
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import InvalidInputError, RunLockedError
from toolkit.journal import read_run
from toolkit.locks import LockHolder, OrgLock, take_org_lock
from toolkit.models import AgentClaimResponse
from toolkit.plan import ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.runs import ClaimRequest, run_key
from toolkit.service_urls import canonical_url
from toolkit.sides import Sides

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
GOOD_MAP = "stacks:\n  web/dev: web/dev-agent\n"
BAD_MAP = "stacks:\n  web/dev: web/dev-agent\n  web/nope: web/nope-agent\n"
"""Renames a stack the agent's org does not hold: refused before anything moves."""


def world() -> dict[str, Any]:
    """alice administers acme (which holds web/dev) and the agent's org (web/dev, web/prod);
    bob belongs to acme only."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}},
            {"login": "bob", "token": "tok-bob", "orgs": {"acme": "admin"}},
        ],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
        "orgs": {
            "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
            AGENT: {
                "stacks": [
                    {"project": "web", "stack": "dev"},
                    {"project": "web", "stack": "prod"},
                ]
            },
        },
    }


def commit(
    server: EmulatorServer,
    runs_dir: Path,
    map_file: Path,
    *,
    token: str = "tok-alice",
    strategy: str = "transfer",
) -> Finished:
    env = toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN=token)
    args = ("commit", *ORGS, "--strategy", strategy, "-r", str(map_file), "--yes")
    return run_toolkit(server, env, *args, "--format", "json")


def assert_moved(server: EmulatorServer, finished: Finished) -> None:
    assert finished.returncode == 0, finished.stderr
    assert AgentClaimResponse.model_validate(json.loads(finished.stdout)).failures == []
    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == {
        ("web", "dev"),
        ("web", "dev-agent"),
        ("web", "prod"),
    }


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_a_commit_refused_for_its_map_leaves_no_lock_and_the_fixed_map_commits(
    make_emulator: EmulatorFactory, tmp_path: Path, database_url: str | None
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(BAD_MAP, encoding="utf-8")

    refused = commit(server, runs_dir, map_file)

    assert refused.returncode == 1
    assert "the resolution map was refused" in refused.stderr
    assert "Traceback" not in refused.stderr
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    fixed = commit(server, runs_dir, map_file)
    assert "unfinished run" not in fixed.stderr
    assert_moved(server, fixed)
    assert read_run(runs_dir, database=database_url).finished


def test_a_commit_refused_for_its_token_leaves_no_lock_and_another_token_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")

    refused = commit(server, runs_dir, map_file, token="tok-bob", strategy="auto")

    assert refused.returncode == 1
    assert f"error: --from {AGENT}: bob has no role in {AGENT}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}
    other = commit(server, runs_dir, map_file)
    assert "unfinished run" not in other.stderr
    assert_moved(server, other)


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_a_commit_stopped_before_its_first_call_leaves_no_lock_and_another_commits(
    make_emulator: EmulatorFactory, tmp_path: Path, database_url: str | None
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    env = toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN="tok-alice")
    server.faults.hold(method="GET", path="/api/user/stacks")
    said = tmp_path / "stderr.txt"
    with said.open("w", encoding="utf-8") as stderr:
        stopped = subprocess.Popen(
            toolkit_command(server, "commit", *ORGS, "-r", str(map_file), "--yes"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    wait_until(lambda: server.faults.holding == 1, "the run's first listing arrived")
    stopped.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping:" in said.read_text(encoding="utf-8"), "the run is stopping")
    server.faults.release()
    assert stopped.wait(timeout=300) == 130, said.read_text(encoding="utf-8")
    assert read_run(runs_dir, database=database_url).steps == []
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}

    other = commit(server, runs_dir, map_file, strategy="transfer")

    assert "unfinished run" not in other.stderr
    assert_moved(server, other)


SPELLINGS = [
    "http://localhost:{port}/",
    "HTTP://LocalHost:{port}",
    "http://127.0.0.1:{port}/api",
    "http://[0:0:0:0:0:0:0:1]:{port}//",
    "http://[::1]:{port}/api/",
    "http://[::ffff:127.0.0.1]:{port}",
]
"""Six spellings of the emulator's `http://127.0.0.1:{port}`."""
API_URL_SPELLINGS = [
    *(spelling for spelling in SPELLINGS if not spelling.rstrip("/").endswith("/api")),
    "http://127.0.0.1:{port}//",
    "http://[::1]:{port}",
]
"""Six spellings of it that `--api-url` takes: one ending in `/api` is refused as no API URL
(the API's paths are added to it), though it names the same service."""


@pytest.mark.parametrize("spelling", API_URL_SPELLINGS)
def test_every_spelling_of_a_service_url_is_one_service_and_one_run(spelling: str) -> None:
    url, other = "http://127.0.0.1:8080", spelling.format(port=8080)
    request = ClaimRequest(
        target=ClaimTarget(AGENT, "acme"), resolution_map=ResolutionMap.empty(), map_identity="none"
    )

    def key(api_url: str) -> str:
        credentials = load_credentials(api_url, {"PULUMI_ACCESS_TOKEN": "tok"})
        return run_key(Sides.of(request.target, credentials), request)

    assert canonical_url(other) == url
    assert key(other) == key(url)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("http://127.0.0.1:8080", "https://127.0.0.1:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.2:8080"),
        ("https://api.pulumi.com", "https://api.pulumi.example"),
        ("https://pulumi.example/one", "https://pulumi.example/two"),
    ],
)
def test_different_services_stay_different(one: str, other: str) -> None:
    assert canonical_url(one) != canonical_url(other)


def test_default_ports_and_case_do_not_make_another_service() -> None:
    assert canonical_url("HTTPS://API.Pulumi.com:443/api/") == "https://api.pulumi.com"
    assert canonical_url("http://pulumi.example:80/") == "http://pulumi.example"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_spelling_names_the_service_whatever_its_form(spelling: str) -> None:
    assert canonical_url(spelling.format(port=8080)) == "http://127.0.0.1:8080"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_login_stored_under_any_spelling_is_found(spelling: str, tmp_path: Path) -> None:
    stored = {"accessTokens": {spelling.format(port=8080): "tok-stored"}}
    (tmp_path / "credentials.json").write_text(json.dumps(stored), encoding="utf-8")

    found = load_credentials("http://127.0.0.1:8080", {"PULUMI_HOME": str(tmp_path)})

    assert found.destination_token == "tok-stored"
    assert found.api_url == "http://127.0.0.1:8080", "the URL as given is the one connected to"


@pytest.mark.parametrize("spelling", API_URL_SPELLINGS)
def test_one_run_per_org_whatever_the_spelling_of_its_url(
    make_emulator: EmulatorFactory, tmp_path: Path, spelling: str
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    env = toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN="tok-alice")
    args = ["commit", *ORGS, "--strategy", "transfer", "-r", str(map_file), "--yes"]
    server.faults.hold(method="POST", path=f"/api/stacks/{AGENT}/.*")
    first = subprocess.Popen(
        toolkit_command(server, *args, "--format", "json"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: server.faults.holding == 1, "the first run's first call arrived")
        changes_before = [e for e in server.requests.entries() if is_state_changing(e)]

        elsewhere = spelling.format(port=urlsplit(server.url).port)
        second = subprocess.run(
            [sys.executable, "-m", "toolkit", "--api-url", elsewhere, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

        assert second.returncode == 1, second.stderr
        assert f"org {AGENT} is locked by run " in second.stderr
        assert [e for e in server.requests.entries() if is_state_changing(e)] == changes_before
    finally:
        server.faults.release()
        stdout, stderr = first.communicate(timeout=300)
    settle(server)
    assert_moved(server, Finished(first.returncode, stdout, stderr))


def test_one_org_named_twice_under_two_spellings_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="--from and --to are both 'acme'"):
        ClaimTarget("acme", "acme", "http://localhost:8080/", "http://127.0.0.1:8080")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_machines_sharing_a_runs_database_never_run_one_org_at_once(
    make_emulator: EmulatorFactory, tmp_path: Path, database_url: str
) -> None:
    """Each commit has a runs folder of its own, as on two machines: the lock is the
    database's. The holder's name is cleared once its run finished."""
    server = make_emulator(world())
    map_file = tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    args = ["commit", *ORGS, "--strategy", "transfer", "-r", str(map_file), "--yes"]
    server.faults.hold(method="POST", path=f"/api/stacks/{AGENT}/.*", times=None)
    first = subprocess.Popen(
        toolkit_command(server, *args, "--format", "json"),
        env=toolkit_env(tmp_path / "one" / "runs", PULUMI_ACCESS_TOKEN="tok-alice"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: server.faults.holding >= 1, "the first run's first call arrived")
        changes_before = [e for e in server.requests.entries() if is_state_changing(e)]
        second = subprocess.run(
            toolkit_command(server, *args),
            env=toolkit_env(tmp_path / "two" / "runs", PULUMI_ACCESS_TOKEN="tok-alice"),
            capture_output=True,
            text=True,
            timeout=300,
        )

        assert second.returncode == 1, second.stderr
        assert f"org {AGENT} is locked by run " in second.stderr
        assert "Wait for that run to finish" in second.stderr
        assert [e for e in server.requests.entries() if is_state_changing(e)] == changes_before
    finally:
        server.faults.clear()
        stdout, stderr = first.communicate(timeout=300)
    assert_moved(server, Finished(first.returncode, stdout, stderr))
    assert not (tmp_path / "one" / "runs" / "locks").exists(), "no lock in the runs folder"
    with psycopg.connect(database_url) as connection:
        holders = connection.execute("SELECT holder FROM pulumi_claim.org_lock").fetchall()
    assert holders == [("",)], "a finished run leaves its lock free"


def lock_holder(run_key: str, *, ago: timedelta = timedelta()) -> LockHolder:
    started = (datetime.now(UTC) - ago).isoformat(timespec="seconds")
    return replace(LockHolder.this_process(f"run-{run_key}", run_key, "cmd"), started_at=started)


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_a_dead_holders_lock_goes_to_its_own_command_and_a_stale_one_only_with_break_lock(
    tmp_path: Path, database_url: str | None
) -> None:
    """The lock's rules, the same in the runs folder (flock) and in a runs database (session
    advisory lock): a holder's end lets go of the lock but not of its name."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir(mode=0o700)
    source = f"http://127.0.0.1:1 org {AGENT}"

    def take(run_key: str, *, break_lock: bool = False) -> OrgLock | DatabaseOrgLock:
        return take_org_lock(
            runs_dir,
            source,
            lock_holder(run_key),
            unfinished=lambda previous: True,
            break_lock=break_lock,
            database=database_url,
        )

    first = take("key-1")
    with pytest.raises(RunLockedError, match=f"{source} is locked by run run-key-1 by "):
        take("key-1")
    first.__exit__(None, None, None)  # its process died: the lock is free, its name stays
    with pytest.raises(RunLockedError, match=f"{source} has an unfinished run: run run-key-1"):
        take("key-2")
    same = take("key-1")
    assert same.taken_over is not None and same.taken_over.run_id == "run-key-1"

    same.name_run(lock_holder("key-1", ago=timedelta(days=2)))  # hung for two days
    with pytest.raises(RunLockedError, match="and looks stale; nothing was changed"):
        take("key-3")
    broken = take("key-3", break_lock=True)
    assert broken.taken_over is None
    with pytest.raises(RunLockedError, match=f"{source} is locked by run run-key-3 by "):
        take("key-1")
    broken.release(finished=True)
    same.__exit__(None, None, None)
    take("key-4").release(finished=True)
