"""`pulumi-claim` with the claim-api strategy: the service's own claim, end to end over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import CLAIM_EXPIRES, CLAIM_EXPIRES_AT, CREATED_AT
from click.testing import CliRunner, Result
from pulumi.automation import ConfigValue, Stack
from pulumi_cloud_sdk._support import default_encoder

from tests.workload.workload import pulumi_program
from toolkit.cli import cli
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse
from toolkit.workspaces import isolated_workspace

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
CLAIM_TOKEN = "claim-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
CLAIM_API = ("--strategy", "claim-api")
API_KEY = "sk-agent-42"
RESOLVES_BOTH = "stacks:\n  web/dev: web/dev-agent\n  api/prod: api/prod-agent\n"


def claim_world(
    *,
    claim_moves: str = "launch",
    created: str = CREATED_AT,
    expires: str = CLAIM_EXPIRES_AT,
    **agent_org: Any,
) -> dict[str, Any]:
    """alice administers acme and bob is a member of it, neither with a role in the agent's
    org; dave has no role anywhere."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}},
            {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
            {"login": "dave", "token": "tok-dave"},
        ],
        "agents": [
            {
                "login": AGENT,
                "token": "tok-agent",
                "claimToken": CLAIM_TOKEN,
                "createdAt": created,
                "claimExpiresAt": expires,
            }
        ],
        "service": {"claimMoves": claim_moves},
        "orgs": {
            "acme": {
                "stacks": [
                    {"project": "web", "stack": "dev", "resourceCount": 30},
                    {"project": "api", "stack": "prod", "resourceCount": 50},
                ]
            },
            AGENT: agent_org
            or {
                "stacks": [
                    {"project": "web", "stack": "dev", "resourceCount": 12},
                    {"project": "web", "stack": "qa", "resourceCount": 3},
                    {"project": "api", "stack": "prod", "resourceCount": 21},
                ],
                "environments": [{"project": "default", "name": "secrets"}],
                "insightsAccounts": [{"name": "aws-sandbox"}],
            },
        },
    }


MOVABLE = {
    "stacks": [
        {"project": "web", "stack": "qa", "resourceCount": 3},
        {"project": "api", "stack": "prod", "resourceCount": 21},
    ],
    "environments": [{"project": "default", "name": "secrets"}],
}
"""An agent org that a service moving environments claims whole."""

RunCli = Callable[..., Result]


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run `pulumi-claim` in-process against `server`, with tokens from the environment."""

    def run(
        server: EmulatorServer,
        *args: str,
        token: str = "tok-alice",
        claim_token: str | None = CLAIM_TOKEN,
    ) -> Result:
        env = {
            "PULUMI_ACCESS_TOKEN": token,
            "PULUMI_CLAIM_SOURCE_TOKEN": None,
            "PULUMI_CLAIM_TOKEN": claim_token,
            "PULUMI_BACKEND_URL": server.url,
            "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        }
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert CLAIM_TOKEN not in result.stdout + result.stderr
        return result

    return run


def snapshot(server: EmulatorServer) -> dict[str, set[tuple[str, str]]]:
    return {
        org: server.state.stack_names(org) | server.state.environment_names(org)
        for org in ("acme", AGENT)
    }


def as_document(stdout: str) -> AgentClaimResponse:
    """Parse stdout as exactly one claim document, checked by the official SDK too."""
    wire = json.loads(stdout)
    default_encoder.deserialize(wire, "AgentClaimResponse")
    return AgentClaimResponse.model_validate(wire)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def claim_file(folder: Path, server: EmulatorServer, **fields: Any) -> Path:
    """An agent-claim.json as the pulumi CLI writes it at sign-up."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "claimUrl": f"https://app.example/claim/{CLAIM_TOKEN}",
        "claimToken": CLAIM_TOKEN,
        "validUntil": CLAIM_EXPIRES_AT,
        "cloudUrl": server.url,
        **fields,
    }
    path = folder / "agent-claim.json"
    path.write_text(json.dumps(document, indent=4), encoding="utf-8")
    return path


def advance_clock(server: EmulatorServer, seconds: int) -> None:
    httpx.post(f"{server.url}/_emulator/clock", json={"advanceSeconds": seconds}).raise_for_status()


def agent_token_works(server: EmulatorServer) -> bool:
    answer = httpx.get(f"{server.url}/api/user", headers={"Authorization": "token tok-agent"})
    return answer.status_code == 200


# --- preview -------------------------------------------------------------------------------


def test_preview_reports_the_services_dry_run_as_sdk_valid_json(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = write(tmp_path, "map.yaml", RESOLVES_BOTH)
    result = run_cli(server, "preview", *ORGS, *CLAIM_API, "-r", resolutions, "--format", "json")
    assert result.exit_code == 3, result.stderr
    document = as_document(result.stdout)
    assert document.conflicts == []
    assert {f.entity.kind for f in document.failures} == {
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    }
    assert document.agent.login == AGENT
    assert document.claim_expires_at == CLAIM_EXPIRES
    renamed = {
        e.stack_name: e.rename_as.stack_name
        for e in document.entities
        if e.kind == "TransferEntityStackRename"
    }
    assert renamed == {"dev": "dev-agent", "prod": "prod-agent"}
    assert server.requests.count(method="POST", path="/api/agents/acme/claim") == 1


def test_a_bad_map_is_refused_before_the_service_is_asked(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = write(tmp_path, "map.yaml", "stacks:\n  web/dev: api/prod\n  web/nope: web/x\n")
    result = run_cli(server, "preview", *ORGS, *CLAIM_API, "-r", resolutions)
    assert result.exit_code == 1
    assert "2 problem(s)" in result.stderr
    assert "web/nope" in result.stderr and "api/prod already exists in acme" in result.stderr
    assert server.requests.count(method="POST") == 0


def test_auto_picks_claim_api_when_a_token_is_at_hand_and_says_why(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "preview", *ORGS, "--format", "markdown")
    assert result.exit_code == 3, result.stderr
    assert "- **Strategy:** claim-api" in result.stdout
    assert "strategy claim-api: a claim token is at hand (PULUMI\\_CLAIM\\_TOKEN)" in result.stdout


def test_without_a_claim_the_reports_say_so_and_json_keeps_the_fields(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    world = claim_world()
    world["users"][0]["orgs"][AGENT] = "admin"
    server = make_emulator(world)
    table = run_cli(server, "preview", *ORGS, "--format", "table", claim_token=None)
    assert table.exit_code == 3, table.stderr
    assert "no claim: an org-to-org move" in table.stdout
    assert "Claim window" not in table.stdout
    assert "strategy transfer: alice administers both agent-abc123 and acme" in table.stdout
    document = as_document(run_cli(server, "preview", *ORGS, claim_token=None).stdout)
    assert document.agent.login == "alice"


def test_the_claim_window_warns_when_under_24_hours_are_left(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    closes = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=10, seconds=-30)
    server = make_emulator(claim_world(expires=closes.isoformat()))
    for fmt in ("table", "markdown", "html"):
        result = run_cli(server, "preview", *ORGS, "--format", fmt)
        assert result.exit_code == 3, result.stderr
        report = " ".join(result.stdout.split())
        assert "left: under 24 hours" in report
        assert "warning: the claim window closes in 9 h 5" in report


# --- commit --------------------------------------------------------------------------------


def deploy_as_agent(server: EmulatorServer, name: str) -> None:
    """The agent runs `pulumi up` of the workload program (with a secret) into its own org."""
    agent = BackendIdentity(server.url, "tok-agent")
    with isolated_workspace(agent, project="web", program=pulumi_program) as workspace:
        stack = Stack.create(name, workspace)
        stack.set_config("apiKey", ConfigValue(API_KEY, secret=True))
        assert stack.up().summary.result == "succeeded"


def test_a_claim_lands_every_stack_under_its_resolved_name_with_history_and_secrets(
    pulumi_cli: Path, make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    signed_up = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    world = claim_world(claim_moves="current", created=signed_up.isoformat(), **MOVABLE)
    server = make_emulator(world)
    deploy_as_agent(server, f"{AGENT}/web/dev")
    resolutions = write(tmp_path, "map.yaml", RESOLVES_BOTH)

    result = run_cli(
        server, "commit", *ORGS, *CLAIM_API, "-r", resolutions, "--yes", "--format", "json"
    )

    assert result.exit_code == 0, result.stdout + result.stderr
    document = as_document(result.stdout)
    assert document.failures == [] and document.conflicts == []
    assert document.transfer_token
    assert snapshot(server) == {
        "acme": {
            ("web", "dev"),
            ("api", "prod"),
            ("web", "dev-agent"),
            ("web", "qa"),
            ("api", "prod-agent"),
            ("default", "secrets"),
        },
        AGENT: set(),
    }
    assert "claimed web/dev-agent into acme" in result.stderr
    alice = BackendIdentity(server.url, "tok-alice")
    with isolated_workspace(alice, project="web", program=pulumi_program) as workspace:
        stack = Stack.select("acme/web/dev-agent", workspace)
        assert stack.outputs()["apiKey"].value == API_KEY
        assert [entry.result for entry in stack.history()] == ["succeeded"]
    assert not agent_token_works(server)

    status = run_cli(server, "status", "--format", "json")
    assert status.exit_code == 0
    assert as_document(status.stdout) == document
    journals = list((tmp_path / "runs").glob("*/journal.sqlite"))
    assert journals and all(CLAIM_TOKEN.encode() not in path.read_bytes() for path in journals)

    before = snapshot(server)
    again = run_cli(server, "commit", *ORGS, *CLAIM_API, "-r", resolutions, "--yes")
    assert again.exit_code == 0, again.stderr
    assert "nothing to do: run " in again.stderr
    assert snapshot(server) == before

    afresh = run_cli(server, "commit", *ORGS, *CLAIM_API, "-r", resolutions, "--yes", "--new-run")
    assert afresh.exit_code == 1
    assert "does not accept the claim token (PULUMI_CLAIM_TOKEN)" in afresh.stderr
    assert "used already" in afresh.stderr
    assert "Traceback" not in afresh.stderr
    assert snapshot(server) == before


def test_a_claim_blocked_by_failures_changes_nothing_and_says_what_to_do(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    resolutions = write(tmp_path, "map.yaml", RESOLVES_BOTH)

    result = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "table")

    assert result.exit_code == 3, result.stdout + result.stderr
    report = " ".join(result.stdout.split())
    assert "What to do" in report
    assert "esc env get agent-abc123/default/secrets" in report
    assert "Insights account aws-sandbox: remove it in agent-abc123 before claiming" in report
    assert "blocked: the service cannot claim 2 entit(ies); nothing was changed" in report
    assert snapshot(server) == before
    assert agent_token_works(server)

    as_json = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "json")
    assert as_json.exit_code == 3
    assert as_document(as_json.stdout).transfer_token is None
    assert snapshot(server) == before


def test_a_claim_blocked_by_conflicts_changes_nothing_and_resolve_writes_the_way_out(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world(claim_moves="current", **MOVABLE))
    before = snapshot(server)
    blocked = run_cli(server, "commit", *ORGS, *CLAIM_API, "--yes", "--format", "markdown")
    assert blocked.exit_code == 3, blocked.stderr
    assert "stack api/prod: the name is taken in acme" in blocked.stdout
    assert snapshot(server) == before

    resolutions = tmp_path / "map.yaml"
    written = run_cli(server, "resolve", *ORGS, "-o", str(resolutions))
    assert written.exit_code == 0, written.stderr
    assert "api/prod: api/prod-agent" in resolutions.read_text(encoding="utf-8")
    committed = run_cli(server, "commit", *ORGS, "-r", str(resolutions), "--yes", token="tok-bob")
    assert committed.exit_code == 0, committed.stdout + committed.stderr
    assert ("api", "prod-agent") in server.state.stack_names("acme")


def test_an_expired_claim_token_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world(claim_moves="current", **MOVABLE))
    before = snapshot(server)
    closes = CLAIM_EXPIRES
    advance_clock(server, int((closes - datetime.now(UTC)).total_seconds()) + 60)
    for command in (["preview"], ["commit", "--yes"]):
        result = run_cli(server, *command, *ORGS, *CLAIM_API)
        assert result.exit_code == 1, result.stdout
        assert "has expired" in result.stderr
        assert "fresh claim link" in result.stderr
    with_file = run_cli(
        server,
        "preview",
        *ORGS,
        "--claim-file",
        str(claim_file(tmp_path / "claims", server, validUntil="2026-12-01T09:00:00Z")),
        claim_token=None,
    )
    assert with_file.exit_code == 1
    assert "has expired: it was valid until 2026-12-01 09:00 UTC" in with_file.stderr
    assert snapshot(server) == before


@pytest.mark.parametrize("token", ["tok-dave", "tok-agent"])
def test_a_claimer_without_a_role_in_the_destination_is_told_so(
    make_emulator: EmulatorFactory, run_cli: RunCli, token: str
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    for command in (["preview"], ["commit", "--yes"]):
        result = run_cli(server, *command, *ORGS, *CLAIM_API, token=token)
        assert result.exit_code == 1, result.stdout
        assert "has no role in acme" in result.stderr
        assert "The agent's own token cannot claim" in result.stderr
    assert snapshot(server) == before


# --- where the claim token comes from ------------------------------------------------------


def test_the_claim_file_gives_the_claim_token(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world(claim_moves="current", **MOVABLE))
    path = claim_file(tmp_path / "claims", server)
    result = run_cli(
        server, "preview", *ORGS, "--claim-file", str(path), "--format", "json", claim_token=None
    )
    assert result.exit_code == 3, result.stderr
    assert len(as_document(result.stdout).conflicts) == 1
    assert "using" not in result.stderr


def test_the_claim_file_at_the_default_location_is_used_and_said(
    make_emulator: EmulatorFactory, run_cli: RunCli, agent_pulumi_dir: Path
) -> None:
    server = make_emulator(claim_world(claim_moves="current", **MOVABLE))
    path = claim_file(agent_pulumi_dir, server)
    result = run_cli(server, "preview", *ORGS, "--format", "markdown", claim_token=None)
    assert result.exit_code == 3, result.stderr
    assert f"using the claim token of {path}" in result.stderr
    assert "- **Strategy:** claim-api" in result.stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "cannot read the claim file"),
        ('{"claimUrl": "https://app.example/claim/x"}', "holds no claimToken"),
        (json.dumps({"claimToken": CLAIM_TOKEN, "cloudUrl": "https://api.other"}), "is for"),
    ],
    ids=["not-json", "no-token", "other-service"],
)
def test_an_unusable_claim_file_is_an_error_saying_what_to_fix(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    tmp_path: Path,
    agent_pulumi_dir: Path,
    content: str,
    problem: str,
) -> None:
    server = make_emulator(claim_world())
    named = write(tmp_path, "agent-claim.json", content)
    agent_pulumi_dir.mkdir(parents=True)
    write(agent_pulumi_dir, "agent-claim.json", content)
    for args in (["--claim-file", named], []):
        result = run_cli(server, "preview", *ORGS, *args, claim_token=None)
        assert result.exit_code == 1
        assert problem in result.stderr
        assert "agent-claim.json" in result.stderr
    assert server.requests.count(method="POST") == 0


def test_a_missing_claim_token_for_claim_api_says_where_to_put_one(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "preview", *ORGS, *CLAIM_API, claim_token=None)
    assert result.exit_code == 1
    assert "needs the agent's claim token" in result.stderr
    assert "--claim-file" in result.stderr
