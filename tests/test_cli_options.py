"""Options where people type them: global options after the command as well as before it, and
the habits of other tools (`--dry-run`, `-o json`, `--json`, an API URL ending in `/api`) met
with what this command line says instead. Real emulator over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

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


def test_commit_dry_run_says_to_use_preview_and_changes_nothing(
    server: EmulatorServer, run_cli: RunCli
) -> None:
    before = stacks(server)

    result = run_cli(server, "commit", *ORGS, "--yes", "--dry-run", source_token=None)

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: there is no --dry-run: `pulumi-claim preview` with the same options shows what "
        "commit would do, changing nothing."
    )
    assert stacks(server) == before


def test_output_named_as_a_format_says_to_use_format(
    server: EmulatorServer,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)

    refused = run_cli(server, "preview", *ORGS, "-o", "json", source_token=None)

    assert refused.exit_code == 2
    assert refused.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--output' / '-o': 'json' is a report format, not a file: "
        "use --format json to print the report as json, or --output ./json for a file of that "
        "name."
    )
    assert list(tmp_path.iterdir()) == []

    written = run_cli(
        server, "preview", *ORGS, "-o", "./json", "--format", "json", source_token=None
    )

    assert written.exit_code == 0, written.stderr
    assert claimed_org((tmp_path / "json").read_text(encoding="utf-8")) == AGENT


def test_json_is_short_for_format_json(server: EmulatorServer, run_cli: RunCli) -> None:
    short = run_cli(server, "preview", *ORGS, "--json", source_token=None)
    long = run_cli(server, "preview", *ORGS, "--format", "json", source_token=None)

    assert short.exit_code == long.exit_code == 0, short.stderr
    assert json.loads(short.stdout)["entities"] == json.loads(long.stdout)["entities"]


def test_json_is_taken_by_status_too(server: EmulatorServer, run_cli: RunCli) -> None:
    committed = run_cli(server, "commit", *ORGS, "--yes", "--format", "json", source_token=None)
    assert committed.exit_code == 0, committed.stderr

    result = run_cli(server, "status", "--json", source_token=None)

    assert result.exit_code == 0, result.stderr
    assert claimed_org(result.stdout) == AGENT


@pytest.mark.parametrize(
    ("given", "lines"),
    [
        (
            "{url}/api",
            [
                "error: --api-url '{url}/api' ends in /api; give the service's URL without it: "
                "{url}.",
                "The API's paths (/api/...) are added to the URL given.",
            ],
        ),
        (
            "{url}/api/",
            [
                "error: --api-url '{url}/api/' ends in /api; give the service's URL without it: "
                "{url}.",
                "The API's paths (/api/...) are added to the URL given.",
            ],
        ),
        (
            "{host}",
            [
                "error: --api-url '{host}' has no scheme; a Pulumi Cloud API URL starts with "
                "https://.",
                "Give the service's URL with its scheme, such as https://{host}.",
            ],
        ),
        (
            "ftp://{host}",
            [
                "error: --api-url 'ftp://{host}' is not a Pulumi Cloud API URL (http:// or "
                "https://); a self-managed backend goes in --source-backend or "
                "--destination-backend.",
                "Give the service's URL, such as https://api.pulumi.com.",
            ],
        ),
        (
            "https://",
            [
                "error: --api-url 'https://' names no host.",
                "Give the service's URL, such as https://api.pulumi.com.",
            ],
        ),
    ],
)
def test_an_api_url_that_names_no_api_is_an_error_about_the_url(
    given: str, lines: list[str], server: EmulatorServer, runs_dir: Path
) -> None:
    host = server.url.removeprefix("http://")
    url = given.format(url=server.url, host=host)

    result = run("preview", *ORGS, "--api-url", url, runs_dir=runs_dir)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [line.format(url=server.url, host=host) for line in lines]
    assert result.stdout == ""


def test_the_same_rule_holds_for_pulumi_backend_url(server: EmulatorServer, runs_dir: Path) -> None:
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": f"{server.url}/api",
        "PULUMI_CLAIM_RUNS_DIR": str(runs_dir),
    }

    result = CliRunner().invoke(cli, ["preview", *ORGS], env=env, catch_exceptions=False)

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: PULUMI_BACKEND_URL '{server.url}/api' ends in /api; give the service's "
        f"URL without it: {server.url}."
    )
