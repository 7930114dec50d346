"""The source org's lock as the user meets it: a run that changed nothing leaves no lock
behind, and one org is one lock whatever the spelling of its service's URL.

Each commit runs in its own process against the emulator, as a user or a scheduler runs it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_times import agent_entry
from commit_process import Finished, run_toolkit, toolkit_command, toolkit_env
from waiting import wait_until

from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse

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


def test_a_commit_refused_for_its_map_leaves_no_lock_and_the_fixed_map_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
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
    assert read_run(runs_dir).finished


def test_a_commit_refused_403_leaves_no_lock_and_another_token_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")

    refused = commit(server, runs_dir, map_file, token="tok-bob", strategy="auto")

    assert refused.returncode == 1
    assert "failed with 403: Forbidden: 'bob' is not a member" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}
    other = commit(server, runs_dir, map_file)
    assert "unfinished run" not in other.stderr
    assert_moved(server, other)


def test_a_commit_stopped_before_its_first_call_leaves_no_lock_and_another_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
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
    assert read_run(runs_dir).steps == []
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}

    other = commit(server, runs_dir, map_file, strategy="transfer")

    assert "unfinished run" not in other.stderr
    assert_moved(server, other)
