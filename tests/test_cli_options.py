"""Options where people type them: global options after the command as well as before it.
Real emulator over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli

if TYPE_CHECKING:
    from conftest import EmulatorFactory

    from toolkit.emulator.server import EmulatorServer


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
WORLD = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}],
    "orgs": {"acme": {}, AGENT: {"stacks": [{"project": "web", "stack": "dev"}]}},
}
"""alice administers both orgs; one stack to move, nothing in its way."""
UNREACHABLE = "https://api.pulumi.invalid"
"""What $PULUMI_BACKEND_URL names where only an --api-url reaches the emulator."""


def run(*args: str, runs_dir: Path) -> Result:
    """`pulumi-claim ARGS` as alice, with $PULUMI_BACKEND_URL naming a host that does not
    resolve: only the --api-url given reaches a service."""
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": None,
        "PULUMI_CLAIM_TOKEN": None,
        "PULUMI_BACKEND_URL": UNREACHABLE,
        "PULUMI_CLAIM_RUNS_DIR": str(runs_dir),
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def claimed_org(report: str) -> str:
    """The org a JSON report claims from."""
    org: str = json.loads(report)["agent"]["orgName"]
    return org


def stacks(server: EmulatorServer) -> dict[str, set[tuple[str, str]]]:
    return {org: server.state.stack_names(org) for org in ("acme", AGENT)}


@pytest.mark.parametrize(
    "where",
    ["before", "after", "split"],
)
def test_global_options_are_taken_before_or_after_the_command(
    where: str, server: EmulatorServer, runs_dir: Path
) -> None:
    preview = ["preview", *ORGS, "--format", "json"]
    given = ["-v", "--api-url", server.url]
    args = {
        "before": [*given, *preview],
        "after": [*preview, *given],
        "split": ["-v", *preview, "--api-url", server.url],
    }[where]

    result = run(*args, runs_dir=runs_dir)

    assert result.exit_code == 0, result.stderr
    assert claimed_org(result.stdout) == AGENT
    assert "INFO toolkit.cloud: GET /api/user -> 200" in result.stderr.splitlines()


def test_quiet_after_the_command_silences_the_progress(
    make_emulator: EmulatorFactory, runs_dir: Path
) -> None:
    def commit(*quiet: str) -> Result:
        url = make_emulator(WORLD).url
        return run(
            "commit",
            *ORGS,
            "--yes",
            "--format",
            "json",
            "--api-url",
            url,
            *quiet,
            runs_dir=runs_dir,
        )

    loud, quiet = commit(), commit("-q")

    assert loud.exit_code == quiet.exit_code == 0, loud.stderr
    assert loud.stderr != ""
    assert quiet.stderr == ""
    assert claimed_org(quiet.stdout) == AGENT
