"""claim-api with `--environments copy` against the emulator: the ESC environments the service
cannot claim are copied into the destination, removed from the agent's org, then the claim.

The agent's org holds two stacks and a chain of two environments (default/app imports
default/base, which holds a secret and a tag); acme has a default/base of its own, so the map
renames the copy. Everything is read back over plain REST.
"""

from __future__ import annotations

import json
import signal
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from agent_times import CLAIM_EXPIRES, SIGNED_UP, agent_entry
from commit_process import Finished, StopAt, run_toolkit, toolkit_env
from esc_reads import decrypted, esc

from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-abc123"
CLAIM_TOKEN = "claim-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
COPY = ("--strategy", "claim-api", "--environments", "copy")
SECRET = "s3cr3t-7c1d"
BASE = f"values:\n  region: eu-west-1\n  password:\n    fn::secret: {SECRET}\n"
APP = "imports:\n  - base\nvalues:\n  name: app\n"
MAP = "environments:\n  default/base: default/base-agent\n"
STACKS = {("web", "dev"), ("api", "prod")}
CLAIM_PATH = "/api/agents/acme/claim"


def world() -> dict[str, Any]:
    """alice is a member of acme only; the agent signed up an hour ago. The service fails the
    environments of a claim, as at the claim API's launch."""
    return {
        "service": {"claimMoves": "launch"},
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "member"}}],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token=CLAIM_TOKEN)],
        "orgs": {
            "acme": {
                "environments": [
                    {"project": "default", "name": "base", "definition": "values: {x: 1}\n"}
                ]
            },
            AGENT: {
                "stacks": [{"project": p, "stack": s} for p, s in sorted(STACKS)],
                "environments": [
                    {
                        "project": "default",
                        "name": "base",
                        "definition": BASE,
                        "tags": {"team": "infra"},
                    },
                    {"project": "default", "name": "app", "definition": APP},
                ],
            },
        },
    }


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(world())


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAP, encoding="utf-8")
    return path


def assert_copied(server: EmulatorServer) -> None:
    """Both copies are in acme, decrypting to the source's definitions (imports renamed)."""
    assert decrypted(server, "acme", ("default", "base-agent")) == yaml.safe_load(BASE)
    assert decrypted(server, "acme", ("default", "app")) == {
        "imports": ["base-agent"],
        "values": {"name": "app"},
    }
    stored = esc(server, "acme", ("default", "base-agent"))
    assert stored.status_code == 200 and SECRET not in stored.text
    tags = esc(server, "acme", ("default", "base-agent"), "/tags").json()["tags"]
    assert {tag["name"]: tag["value"] for tag in tags.values()} == {"team": "infra"}
    acmes_own = decrypted(server, "acme", ("default", "base"))
    assert acmes_own == {"values": {"x": 1}}, "acme's own stays"


def assert_claimed(server: EmulatorServer) -> None:
    assert server.state.stack_names("acme") == STACKS
    assert server.state.stack_names(AGENT) == set()
    assert server.state.environment_names(AGENT) == set()
    assert_copied(server)


def claims_made(server: EmulatorServer) -> int:
    return sum(
        1 for e in server.requests.entries() if e.path == CLAIM_PATH and "dryRun=false" in e.query
    )


def esc_changes(server: EmulatorServer) -> list[str]:
    return [
        f"{e.method} {e.path}"
        for e in server.requests.entries()
        if e.method != "GET" and e.path.startswith("/api/esc/")
    ]


def test_the_claim_copies_the_environments_removes_them_then_claims(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    preview = run_cli(
        server,
        *("preview", *ORGS, *COPY, "-r", str(map_file), "--format", "markdown"),
        claim_token=CLAIM_TOKEN,
    )
    assert preview.exit_code == 0, preview.output
    notice = " ".join(preview.stdout.split())
    assert "removed from the agent's org agent-abc123 before the claim" in notice
    assert "would copy 2 of 2 environment(s)" in notice
    assert esc_changes(server) == []

    result = run_cli(
        server,
        *("commit", *ORGS, *COPY, "-r", str(map_file), "--yes", "--format", "json"),
        claim_token=CLAIM_TOKEN,
    )

    assert result.exit_code == 0, result.output
    document = AgentClaimResponse.model_validate(json.loads(result.stdout))
    assert document.failures == [] and document.transfer_token
    copies = [e for e in document.entities if e.kind.startswith("TransferEntityEnvironment")]
    assert len(copies) == 2, "the copies are listed, though the claim no longer saw them"
    assert_claimed(server)
    deletes = [c for c in esc_changes(server) if c.startswith("DELETE")]
    assert deletes == [
        f"DELETE /api/esc/environments/{AGENT}/default/app",
        f"DELETE /api/esc/environments/{AGENT}/default/base",
    ], "dependents first"
    assert SECRET not in result.output


@pytest.mark.parametrize("command", [["preview"], ["commit", "--yes"]], ids=["preview", "commit"])
def test_without_the_agents_token_planning_fails_and_says_where_it_is(
    server: EmulatorServer, run_cli: RunCli, map_file: Path, command: list[str]
) -> None:
    result = run_cli(
        server,
        *command,
        *ORGS,
        *COPY,
        "-r",
        str(map_file),
        source_token=None,
        claim_token=CLAIM_TOKEN,
    )

    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "no PULUMI_CLAIM_SOURCE_TOKEN is set, so the claimer's token was used" in message
    assert "Set PULUMI_CLAIM_SOURCE_TOKEN to the agent's own access token" in message
    assert "/tmp/.pulumi/credentials.json" in message
    assert "Traceback" not in result.output
    assert esc_changes(server) == [] and claims_made(server) == 0
    assert server.state.stack_names(AGENT) == STACKS


def test_an_expired_agent_token_is_said_before_anything_moves(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    httpx.post(
        f"{server.url}/_emulator/clock", json={"advanceSeconds": 72 * 3600}
    ).raise_for_status()
    token_valid_until = (SIGNED_UP + timedelta(hours=72)).strftime("%Y-%m-%d %H:%M UTC")
    claim_valid_until = CLAIM_EXPIRES.strftime("%Y-%m-%d %H:%M UTC")

    for command in ("preview", "commit"):
        extra = ("--yes",) if command == "commit" else ()
        result = run_cli(
            server, command, *ORGS, *COPY, "-r", str(map_file), *extra, claim_token=CLAIM_TOKEN
        )

        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "error: the agent's access token has expired: the service answers 401 to "
            "PULUMI_CLAIM_SOURCE_TOKEN (an agent's token is valid for 72 hours after its "
            f"sign-up, until {token_valid_until}), so the ESC environments of {AGENT} that "
            "the service cannot claim can no longer be read to copy them; nothing was changed",
            f"The claim token still works until {claim_valid_until} (the claim window), "
            "without the agent's token: run without --environments copy to preview the claim "
            "itself. If PULUMI_CLAIM_SOURCE_TOKEN is not the agent's token, set it to the "
            "accessToken the agent's pulumi CLI keeps in /tmp/.pulumi/credentials.json.",
        ]
        assert "tok-agent" not in result.output and CLAIM_TOKEN not in result.output
    assert esc_changes(server) == [] and claims_made(server) == 0
    assert server.state.stack_names(AGENT) == STACKS
    assert server.state.environment_names(AGENT) == {("default", "base"), ("default", "app")}
    assert server.state.environment_names("acme") == {("default", "base")}


def test_the_claim_token_still_claims_once_the_agent_token_has_expired(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    """Without copies, the claim needs no agent token: the service's preview answers."""
    httpx.post(
        f"{server.url}/_emulator/clock", json={"advanceSeconds": 72 * 3600}
    ).raise_for_status()

    result = run_cli(
        server,
        *("preview", *ORGS, "--strategy", "claim-api", "--format", "json"),
        claim_token=CLAIM_TOKEN,
    )

    assert result.exit_code in (0, 3), result.output
    document = AgentClaimResponse.model_validate(json.loads(result.stdout))
    assert {f.entity.kind for f in document.failures} == {"TransferEntityEnvironment"}
    assert claims_made(server) == 0


# --- killed on the way, finished by the same command -----------------------------------------


def commit(
    server: EmulatorServer, tmp_path: Path, map_file: Path, stop: StopAt | None = None
) -> Finished:
    env = toolkit_env(
        tmp_path / "runs",
        PULUMI_ACCESS_TOKEN="tok-alice",
        PULUMI_CLAIM_SOURCE_TOKEN="tok-agent",
        PULUMI_CLAIM_TOKEN=CLAIM_TOKEN,
    )
    return run_toolkit(
        server,
        env,
        *("commit", *ORGS, *COPY, "-r", str(map_file), "--yes", "--format", "json"),
        stop=stop,
    )


# The run's state-changing calls: the dry run of the claim; for default/base create, write
# and one tag; for default/app create and write; the two removals; the claim. Killed right
# after its definition was written, the copy of default/app is half-made as the journal has it
# (not verified): it is removed and made again.
@pytest.mark.parametrize(
    ("calls", "last", "remade"),
    [
        (6, "PATCH /api/esc/environments/acme/default/app", 1),
        (7, f"DELETE /api/esc/environments/{AGENT}/default/app", 0),
        (8, f"DELETE /api/esc/environments/{AGENT}/default/base", 0),
    ],
    ids=["after-the-copies", "between-the-removals", "before-the-claim"],
)
def test_a_run_killed_on_the_way_is_finished_by_the_same_command(
    server: EmulatorServer, tmp_path: Path, map_file: Path, calls: int, last: str, remade: int
) -> None:
    stop = StopAt(calls)
    killed = commit(server, tmp_path, map_file, stop)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert stop.changes[-1] == last
    assert claims_made(server) == 0

    again = commit(server, tmp_path, map_file)

    assert again.returncode == 0, again.stderr
    document = AgentClaimResponse.model_validate(json.loads(again.stdout))
    assert document.failures == [] and document.transfer_token
    assert claims_made(server) == 1
    assert_claimed(server)
    creates = [c for c in esc_changes(server) if c.startswith("POST /api/esc/environments/acme")]
    assert len(creates) == 3 + remade, "two environments and one tag, made once"
    undone = [
        c for c in esc_changes(server) if c == "DELETE /api/esc/environments/acme/default/app"
    ]
    assert len(undone) == remade


def test_a_copy_failing_half_way_removes_itself_and_nothing_is_claimed(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    server.faults.fail(400, method="PATCH", path="/api/esc/environments/acme/default/app")
    args = ("commit", *ORGS, *COPY, "-r", str(map_file), "--yes", "--format", "json")

    failed = run_cli(server, *args, claim_token=CLAIM_TOKEN)

    assert failed.exit_code == 4, failed.output
    document = AgentClaimResponse.model_validate(json.loads(failed.stdout))
    stacks = [f for f in document.failures if f.entity.kind == "TransferEntityStack"]
    assert stacks and all("copying the agent's environments" in f.failure_details for f in stacks)
    assert claims_made(server) == 0
    half_made = esc(server, "acme", ("default", "app"))
    assert half_made.status_code == 404, "the half-made copy is removed"
    assert server.state.environment_names(AGENT) == {("default", "base"), ("default", "app")}
    assert server.state.stack_names(AGENT) == STACKS

    server.faults.clear()
    again = run_cli(server, *args, claim_token=CLAIM_TOKEN)

    assert again.exit_code == 0, again.output
    assert claims_made(server) == 1
    assert_claimed(server)


def test_status_of_the_claim_says_the_environments_were_copied(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    """`status` rebuilds the plan the run recorded, as a continued run does: the environments
    copied before the claim are copies there too, not moves."""
    committed = run_cli(
        server,
        *("commit", *ORGS, *COPY, "-r", str(map_file), "--yes", "--format", "markdown"),
        claim_token=CLAIM_TOKEN,
    )
    assert committed.exit_code == 0, committed.output
    status = run_cli(server, "status", "--format", "markdown")

    assert status.exit_code == 0, status.output
    for report in (committed.stdout, status.stdout):
        rows = [line for line in report.splitlines() if "default/" in line and "|" in line]
        assert len(rows) == 2, report
        assert all("| copy" in row and "move" not in row for row in rows), rows
