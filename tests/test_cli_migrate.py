"""`pulumi-claim` with the migrate strategy: two identities, the real pulumi CLI, the emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from agent_states import SECRET, landed_secrets, seed_stacks
from agent_times import agent_entry
from click.testing import CliRunner, Result
from pulumi.automation import ConfigValue, Stack

from tests.workload.workload import pulumi_program
from toolkit.cli import cli
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse
from toolkit.workspaces import isolated_workspace

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
API_KEY = "sk-agent-42"

WORLD: dict[str, Any] = {
    "users": [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
    "orgs": {"acme": {"stacks": [{"project": "web", "stack": "dev", "resourceCount": 4}]}},
}


def deploy(server: EmulatorServer, name: str) -> None:
    """The agent runs `pulumi up` of the workload program into its own org."""
    agent = BackendIdentity(server.url, "tok-agent")
    with isolated_workspace(agent, project="web", program=pulumi_program) as workspace:
        stack = Stack.create(name, workspace)
        stack.set_config("apiKey", ConfigValue(API_KEY, secret=True))
        assert stack.up().summary.result == "succeeded"


def outputs(server: EmulatorServer, token: str, name: str) -> dict[str, Any]:
    """`pulumi stack output --show-secrets`, as the identity holding `token` sees it."""
    identity = BackendIdentity(server.url, token)
    with isolated_workspace(identity, project="web", program=pulumi_program) as workspace:
        return {key: value.value for key, value in workspace.stack_outputs(name).items()}


def run(
    server: EmulatorServer,
    runs_dir: Path,
    *args: str,
    claim_token: str | None = "claim-abc123",
    **variables: str,
) -> Result:
    env = {
        **variables,
        "PULUMI_ACCESS_TOKEN": "tok-carol",
        "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
        "PULUMI_CLAIM_TOKEN": claim_token,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(runs_dir),
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_claim_by_migration_with_two_identities(
    pulumi_cli: Path, make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    deploy(server, f"{AGENT}/web/dev")
    deployed = outputs(server, "tok-agent", f"{AGENT}/web/dev")
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")

    preview = run(
        server,
        tmp_path,
        "preview",
        *ORGS,
        "--strategy",
        "migrate",
        "-r",
        str(resolutions),
        "--format",
        "markdown",
    )
    assert preview.exit_code == 0, preview.stdout + preview.stderr
    assert "migrate" in preview.stdout
    assert "update history" in preview.stdout

    commit = run(
        server,
        tmp_path,
        "commit",
        *ORGS,
        "--strategy",
        "migrate",
        "-r",
        str(resolutions),
        "--yes",
        "--delete-source",
        "--format",
        "json",
    )
    assert commit.exit_code == 0, commit.stdout + commit.stderr
    document = AgentClaimResponse.model_validate(json.loads(commit.stdout))
    assert document.failures == []

    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == {("web", "dev"), ("web", "dev-agent")}
    landed = outputs(server, "tok-carol", "acme/web/dev-agent")
    assert landed == deployed
    assert landed["apiKey"] == API_KEY


def test_auto_picks_migrate_when_no_identity_administers_both_orgs(
    pulumi_cli: Path, make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    world = {**WORLD, "orgs": {"acme": {"stacks": []}}}
    server = make_emulator(world)
    deploy(server, f"{AGENT}/web/dev")
    result = run(server, tmp_path, "preview", *ORGS, "--format", "table", claim_token=None)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "migrate" in result.stdout
    assert server.state.stack_names(AGENT) == {("web", "dev")}


def test_migrate_via_rest_with_a_self_managed_side_is_refused_and_nothing_changes(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    state = tmp_path / "state"
    state.mkdir()
    server.requests.clear()

    result = run(
        server,
        tmp_path / "runs",
        "commit",
        *ORGS,
        *("--strategy", "migrate", "--migrate-via", "rest"),
        *("--destination-backend", state.as_uri(), "--yes"),
    )

    assert result.exit_code == 1, result.stdout + result.stderr
    assert "--migrate-via rest needs both sides on Pulumi Cloud" in result.stderr
    assert "--migrate-via cli" in result.stderr
    assert server.requests.count() == 0
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_migrate_via_with_another_strategy_is_refused(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    server.requests.clear()

    result = run(
        server, tmp_path, "commit", *ORGS, "--strategy", "transfer", "--migrate-via", "cli", "--yes"
    )

    assert result.exit_code == 1, result.stdout + result.stderr
    assert "--migrate-via applies to --strategy migrate only" in result.stderr
    assert server.requests.count() == 0


def test_a_claim_by_migration_over_rest_needs_no_pulumi_cli_from_preview_to_commit(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    asyncio.run(seed_stacks(server, AGENT, "tok-agent", {("web", "dev"): {"team": "platform"}}))
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    no_cli = {"PATH": str(tmp_path / "empty"), "XDG_CACHE_HOME": str(tmp_path / "no-cache")}
    args = (*ORGS, "--strategy", "migrate", "-r", str(resolutions))

    preview = run(server, tmp_path / "runs", "preview", *args, "--format", "table", **no_cli)
    commit = run(server, tmp_path / "runs", "commit", *args, "--yes", "--format", "json", **no_cli)

    assert preview.exit_code == 0, preview.stdout + preview.stderr
    assert "migrate over REST" in preview.stdout
    assert commit.exit_code == 0, commit.stdout + commit.stderr
    assert AgentClaimResponse.model_validate(json.loads(commit.stdout)).failures == []
    landed = asyncio.run(landed_secrets(server, "tok-carol", "acme/web/dev-agent"))
    assert landed == [SECRET, SECRET]


def test_the_preview_says_migrate_runs_through_the_cli_when_asked(
    pulumi_cli: Path, make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    asyncio.run(seed_stacks(server, AGENT, "tok-agent", {("api", "prod"): {}}))

    preview = run(
        server,
        tmp_path,
        "preview",
        *ORGS,
        *("--strategy", "migrate", "--migrate-via", "cli", "--format", "table"),
    )

    assert preview.exit_code == 0, preview.stdout + preview.stderr
    assert "migrate through the pulumi CLI" in preview.stdout


def test_a_commit_names_each_setting_a_migrated_stack_could_not_take_along(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    asyncio.run(seed_stacks(server, AGENT, "tok-agent", {("web", "dev"): {}}))
    settings = {"operationContext": {"environmentVariables": {"API_TOKEN": {"secret": "t-1"}}}}
    headers = {"Authorization": "token tok-agent"}
    httpx.put(
        f"{server.url}/api/stacks/{AGENT}/web/dev/deployments/settings",
        json=settings,
        headers=headers,
    ).raise_for_status()
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    args = (*ORGS, "--strategy", "migrate", "-r", str(resolutions), "--delete-source", "--yes")

    commit = run(server, tmp_path / "runs", "commit", *args, "--format", "markdown")

    assert commit.exit_code == 4, commit.stdout + commit.stderr
    said = (
        f"acme/web/dev-agent holds the state of {AGENT}/web/dev but not all it carried: "
        "deployment setting operationContext.environmentVariables.API_TOKEN: a secret value, "
        "which only the source stack can decrypt (set it again in the new stack's deployment "
        f"settings); {AGENT}/web/dev is left as it is. Once set, run the same command again"
    )
    assert (
        f"stacks [1/1, 1 failed] {AGENT}/web/dev -> acme/web/dev-agent failed (settings): {said}"
    ) in commit.stderr.splitlines()
    row = (
        "| stack | web/dev → web/dev-agent | failed — run the same command again | "
        + said.replace("_", "\\_")
        + " |"
    )
    assert row in commit.stdout.splitlines()
    assert "exit 4: partial: not everything moved, or the landing failed" in commit.stderr
    assert server.state.stack_names(AGENT) == {("web", "dev")}, "the source is kept"
