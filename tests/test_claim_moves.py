"""What a claim moves, as the service says it: on today's service (the emulator's default) ESC
environments and registry packages move with the claim and collide as stacks do; at the claim
API's launch (`service.claimMoves: launch`) they were failures. The toolkit plans from the
service's answer, so the same commands do the right thing on both."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import agent_entry
from click.testing import CliRunner, Result

from toolkit.cli import cli

if TYPE_CHECKING:
    from conftest import EmulatorFactory

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
CLAIM_TOKEN = "claim-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
PACKAGE = {"source": "private", "publisher": AGENT, "name": "vpc"}


def world(*, acme: dict[str, Any] | None = None, **service: str) -> dict[str, Any]:
    """alice is a member of acme; the agent has a stack, an environment and a package."""
    return {
        **({"service": service} if service else {}),
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "member"}}],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token=CLAIM_TOKEN)],
        "orgs": {
            AGENT: {
                "stacks": [{"project": "web", "stack": "dev", "resourceCount": 3}],
                "environments": [
                    {"project": "default", "name": "secrets", "definition": "values: {x: 1}\n"}
                ],
                "registryPackages": [PACKAGE],
            },
            "acme": acme or {},
        },
    }


def run(server: EmulatorServer, *args: str, runs: Path) -> Result:
    """`pulumi-claim` as alice with the agent's claim token, and no agent access token."""
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": None,
        "PULUMI_CLAIM_TOKEN": CLAIM_TOKEN,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(runs),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def destination(server: EmulatorServer) -> dict[str, list[str]]:
    """What acme lists, as alice sees it through the service."""
    headers = {"Authorization": "token tok-alice"}
    with httpx.Client(base_url=server.url, headers=headers) as alice:
        stacks = alice.get("/api/user/stacks", params={"organization": "acme"}).json()
        environments = alice.get("/api/esc/environments/acme").json()
        packages = alice.get("/api/preview/registry/packages").json()
    return {
        "stacks": sorted(f"{s['projectName']}/{s['stackName']}" for s in stacks["stacks"]),
        "environments": sorted(f"{e['project']}/{e['name']}" for e in environments["environments"]),
        "packages": sorted(
            f"{p['source']}/{p['publisher']}/{p['name']}" for p in packages["packages"]
        ),
    }


def test_today_a_claim_moves_environments_and_packages_without_the_agents_token_or_a_copy(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())

    result = run(
        server,
        "commit",
        *ORGS,
        "--environments",
        "copy",
        "--yes",
        "--format",
        "table",
        runs=tmp_path,
    )

    assert result.exit_code == 0, result.stdout + result.stderr
    shown = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "Entities 3 Moved 3 Renamed 0 Conflicts 0 Failures 0" in shown
    assert "ESC environment default/secrets — — move" in shown
    assert f"registry package private/{AGENT}/vpc — — move" in shown
    assert result.stderr.splitlines()[-4:] == [
        "strategy claim-api: a claim token is at hand (PULUMI_CLAIM_TOKEN)",
        "--environments copy leaves the ESC environments to the service: its claim moves them",
        "outcome: moved 1 of 1 stack(s)",
        "exit 0: done",
    ]
    assert destination(server) == {
        "stacks": ["web/dev"],
        "environments": ["default/secrets"],
        "packages": [f"private/{AGENT}/vpc"],
    }
    assert server.requests.count(method="GET", path="/api/esc/environments/.*/decrypt") == 0
    assert server.requests.count(method="POST", path="/api/esc/environments/.*") == 0


def test_at_launch_the_same_command_copies_and_needs_the_agents_token(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world(claimMoves="launch"))
    listed = destination(server)

    result = run(server, "preview", *ORGS, "--environments", "copy", runs=tmp_path)

    assert result.exit_code == 1
    assert "reading agent-abc123/default/secrets failed (no PULUMI_CLAIM_SOURCE_TOKEN is set" in (
        " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr
    assert destination(server) == listed


@pytest.mark.parametrize("map_form", ["friendly", "resolve"])
def test_a_colliding_environment_and_package_are_renamed_by_the_map(
    make_emulator: EmulatorFactory, tmp_path: Path, map_form: str
) -> None:
    taken = {
        "environments": [{"project": "default", "name": "secrets"}],
        "registryPackages": [PACKAGE],
    }
    server = make_emulator(world(acme=taken))
    resolutions = tmp_path / "map.yaml"
    if map_form == "friendly":
        resolutions.write_text(
            "environments:\n  default/secrets: default/secrets-agent\n"
            f"registryPackages:\n  private/{AGENT}/vpc: private/{AGENT}/vpc-agent\n",
            encoding="utf-8",
        )
    else:
        written = run(server, "resolve", *ORGS, "-o", str(resolutions), runs=tmp_path)
        assert written.exit_code == 0, written.stderr

    blocked = run(server, "preview", *ORGS, runs=tmp_path)
    committed = run(server, "commit", *ORGS, "-r", str(resolutions), "--yes", runs=tmp_path)

    assert blocked.exit_code == 3, blocked.stdout + blocked.stderr
    assert committed.exit_code == 0, committed.stdout + committed.stderr
    assert destination(server) == {
        "stacks": ["web/dev"],
        "environments": ["default/secrets", "default/secrets-agent"],
        "packages": [f"private/{AGENT}/vpc", f"private/{AGENT}/vpc-agent"],
    }
