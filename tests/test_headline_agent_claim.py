"""The headline job, end to end, with nothing emulated but the service.

An AI agent runs the unmodified pulumi CLI with no credentials: the CLI signs up an agent
account by itself, writes its claim file and deploys a program into the agent's org. A person of
the company then claims that account into the company's org with `pulumi-claim`, reading the
claim token from that file, and the CLI, logged in as that person, sees the stacks with their
outputs and secrets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from click.testing import CliRunner, Result
from pulumi.automation import ConfigValue, LocalWorkspace, ProjectSettings, Stack

from tests.workload.workload import pulumi_program
from toolkit.cli import cli
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse
from toolkit.workspaces import isolated_workspace, pulumi_command

if TYPE_CHECKING:
    from conftest import EmulatorFactory

API_KEY = "sk-agent-7"

WORLD: dict[str, Any] = {
    "users": [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "member"}}],
    "orgs": {"acme": {"stacks": [{"project": "web", "stack": "dev", "resourceCount": 4}]}},
}


def agent_environment(server: EmulatorServer, agent_dir: Path) -> dict[str, str]:
    """What the agent's shell holds: an agent detected, no token, the service to use.

    The claim URL is built from the console's domain, which for the emulator is itself; the
    agent's files go to `agent_dir` instead of `/tmp/.pulumi` (the CLI's own test hook), and
    with a `PULUMI_HOME` of its own the CLI still uses the agent's credentials.
    """
    return {
        "CLAUDECODE": "1",
        "PULUMI_ENABLE_AUTOMATIC_AGENT_SIGNUP": "true",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CONSOLE_DOMAIN": server.url.split("://", 1)[1],
        "PULUMI_TEST_AGENT_PULUMI_DIR": str(agent_dir),
        "PULUMI_TEST_ALLOW_AGENT_FALLBACK": "true",
        "PULUMI_CREDENTIAL_HELPER": "none",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


def agent_deploys(server: EmulatorServer, tmp_path: Path, project: str, stack: str) -> Any:
    """`pulumi up` of the workload program, as the agent's shell runs it; returns its outputs."""
    work_dir = tmp_path / f"agent-{project}"
    work_dir.mkdir()
    workspace = LocalWorkspace(
        work_dir=str(work_dir),
        pulumi_home=str(tmp_path / "agent-home"),
        program=pulumi_program,
        env_vars=agent_environment(server, tmp_path / "agent-pulumi"),
        project_settings=ProjectSettings(name=project, runtime="python"),
        pulumi_command=pulumi_command(),
    )
    deployed = Stack.create(stack, workspace)
    deployed.set_config("apiKey", ConfigValue(API_KEY, secret=True))
    result = deployed.up()
    assert result.summary.result == "succeeded"
    return {key: output.value for key, output in result.outputs.items()}


def outputs_as(server: EmulatorServer, token: str, name: str) -> dict[str, Any]:
    """`pulumi stack output --show-secrets` as the identity holding `token`."""
    identity = BackendIdentity(server.url, token)
    with isolated_workspace(identity, project="web", program=pulumi_program) as workspace:
        return {key: value.value for key, value in workspace.stack_outputs(name).items()}


def pulumi_claim(server: EmulatorServer, tmp_path: Path, *args: str) -> Result:
    """`pulumi-claim ARGS` as carol, a member of acme, who holds only the claim link."""
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-carol",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_headline_an_agent_signs_up_deploys_and_a_person_claims_its_account(
    pulumi_cli: Path, make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    (tmp_path / "agent-home").mkdir()

    # The agent: no credentials, so the CLI signs up an account of its own, then deploys.
    web = agent_deploys(server, tmp_path, "web", "dev")
    api = agent_deploys(server, tmp_path, "api", "dev")
    agent_dir = tmp_path / "agent-pulumi"
    claim_file = agent_dir / "agent-claim.json"
    claim = json.loads(claim_file.read_text(encoding="utf-8"))
    assert claim["claimUrl"].endswith(f"/claim/{claim['claimToken']}")
    accounts = json.loads((agent_dir / "credentials.json").read_text(encoding="utf-8"))
    account = accounts["accounts"][server.url]
    agent_org, agent_token = account["username"], account["accessToken"]
    assert agent_org.startswith("agent-")
    assert server.state.stack_names(agent_org) == {("web", "dev"), ("api", "dev")}

    # The person: a preview shows the collision with acme's web/dev; a map resolves it.
    orgs = ("--from", agent_org, "--to", "acme", "--claim-file", str(claim_file))
    preview = pulumi_claim(server, tmp_path, "preview", *orgs, "--format", "json")
    assert preview.exit_code == 3, preview.stdout + preview.stderr
    blocked = AgentClaimResponse.model_validate(json.loads(preview.stdout))
    assert [(c.kind, c.project_name, c.stack_name) for c in blocked.conflicts] == [  # type: ignore[union-attr]
        ("TransferEntityStack", "web", "dev")
    ]
    resolutions = tmp_path / "resolutions.yaml"
    resolved = pulumi_claim(server, tmp_path, "resolve", *orgs, "--output", str(resolutions))
    assert resolved.exit_code == 0, resolved.stdout + resolved.stderr

    commit = pulumi_claim(
        server, tmp_path, "commit", *orgs, "-r", str(resolutions), "--yes", "--format", "json"
    )
    assert commit.exit_code == 0, commit.stdout + commit.stderr
    document = AgentClaimResponse.model_validate(json.loads(commit.stdout))
    assert document.failures == []
    assert document.transfer_token

    # Everything the agent made is in acme, with its outputs and secrets, as carol sees it.
    assert server.state.stack_names("acme") == {
        ("web", "dev"),
        ("web", "dev-agent"),
        ("api", "dev"),
    }
    assert outputs_as(server, "tok-carol", "acme/web/dev-agent") == web
    assert outputs_as(server, "tok-carol", "acme/api/dev") == api
    assert web["apiKey"] == API_KEY
    # The agent's account is gone: its token is refused, its claim link used up.
    headers = {"Authorization": f"token {agent_token}", "Accept": "application/vnd.pulumi+8"}
    assert httpx.get(f"{server.url}/api/user", headers=headers).status_code == 401
    again = pulumi_claim(server, tmp_path, "preview", *orgs, "--format", "json")
    assert again.exit_code == 1
