"""The command line end to end: real emulator over HTTP, commands run as a user would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from agent_times import CLAIM_EXPIRES, SIGNED_UP, agent_entry
from click.testing import CliRunner
from pulumi_cloud_sdk._support import default_encoder

import toolkit
from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
RESOLVES_BOTH = "stacks:\n  web/dev: web/dev-2\n  api/prod: api/prod-2\n"
"""A resolution map that renames both stacks colliding with acme."""


def claim_world(**agent_org: Any) -> dict[str, Any]:
    """alice administers acme and (having accepted the claim) the agent's org."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}},
            {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member", AGENT: "admin"}},
        ],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
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
                    {"project": "api", "stack": "dev", "resourceCount": 7},
                    {"project": "api", "stack": "prod", "resourceCount": 21},
                ],
                "environments": [{"project": "default", "name": "secrets"}],
                "insightsAccounts": [{"name": "aws-sandbox"}],
            },
        },
    }


def snapshot(server: EmulatorServer) -> dict[str, set[tuple[str, str]]]:
    return {org: server.state.stack_names(org) for org in ("acme", AGENT)}


def as_document(stdout: str) -> AgentClaimResponse:
    """Parse stdout as exactly one claim document, checked by the official SDK too."""
    wire = json.loads(stdout)
    default_encoder.deserialize(wire, "AgentClaimResponse")
    return AgentClaimResponse.model_validate(wire)


def write_map(tmp_path: Path, text: str) -> str:
    path = tmp_path / "map.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- help and usage ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[], ["preview"], ["commit"], ["resolve"], ["status"], ["references"], ["emulator"], ["demo"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.stdout


def test_missing_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["preview", "--from", AGENT])
    assert result.exit_code == 2
    assert "--to" in result.stderr


def test_version_without_a_pulumi_cli_says_it_was_not_found(tmp_path: Path) -> None:
    """No pulumi on PATH nor in the cache: the toolkit's version, then "not found", exit 0."""
    env = {"PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "toolkit", "--version"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"pulumi-claim, version {toolkit.__version__}",
        "pulumi CLI: not found",
    ]
    assert result.stderr == ""


def test_version_names_the_pulumi_cli_it_would_drive(pulumi_cli: Path) -> None:
    cli_version = subprocess.run(
        [pulumi_cli / "pulumi", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()

    result = CliRunner().invoke(cli, ["--version"])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"pulumi-claim, version {toolkit.__version__}",
        f"pulumi CLI, version {cli_version.removeprefix('v')} ({pulumi_cli / 'pulumi'})",
    ]


# --- preview -------------------------------------------------------------------------------


def test_preview_blocked_by_conflicts_exits_3_with_sdk_valid_json(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "preview", *ORGS, "--format", "json")
    assert result.exit_code == 3, result.stderr
    document = as_document(result.stdout)
    assert sorted((c.project_name, c.stack_name) for c in document.conflicts) == [  # type: ignore[union-attr]
        ("api", "prod"),
        ("web", "dev"),
    ]
    assert {f.entity.kind for f in document.failures} == {
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    }
    assert len(document.entities) == 6


def test_preview_with_claim_token_reports_the_agent(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(
        server,
        "preview",
        *ORGS,
        "--format",
        "json",
        claim_token="claim-abc123",
    )
    document = as_document(result.stdout)
    assert document.agent.login == AGENT
    assert document.agent.created_at == SIGNED_UP
    assert document.claim_expires_at == CLAIM_EXPIRES


def test_claim_token_for_another_org_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    world = claim_world()
    world["users"][0]["orgs"]["other"] = "admin"
    world["orgs"]["other"] = {"stacks": [{"project": "x", "stack": "y"}]}
    server = make_emulator(world)
    result = run_cli(
        server, "preview", "--from", "other", "--to", "acme", claim_token="claim-abc123"
    )
    assert result.exit_code == 1
    assert "claims org 'agent-abc123'" in result.stderr


def test_preview_resolved_exits_4_for_failures_and_0_when_clean(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = write_map(tmp_path, "stacks:\n  web/dev: web/dev-agent\n  api/prod: api/prod-2\n")
    result = run_cli(server, "preview", *ORGS, "-r", resolutions, "--format", "json")
    assert result.exit_code == 4
    document = as_document(result.stdout)
    assert not document.conflicts
    renamed = {
        e.stack_name: e.rename_as.stack_name
        for e in document.entities  # type: ignore[union-attr]
        if e.kind == "TransferEntityStackRename"
    }
    assert renamed == {"dev": "dev-agent", "prod": "prod-2"}

    clean = make_emulator(claim_world(stacks=[{"project": "svc", "stack": "dev"}]))
    assert run_cli(clean, "preview", *ORGS).exit_code == 0
    assert snapshot(server)[AGENT] == {
        ("web", "dev"),
        ("web", "qa"),
        ("api", "dev"),
        ("api", "prod"),
    }


@pytest.mark.parametrize("fmt", ["markdown", "html", "table"])
def test_human_formats_name_every_stack(
    make_emulator: EmulatorFactory, run_cli: RunCli, fmt: str
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "preview", *ORGS, "--format", fmt)
    assert result.exit_code == 3
    for name in ("web/dev", "web/qa", "api/dev", "api/prod", "aws-sandbox"):
        assert name in result.stdout


def test_html_report_is_one_self_contained_file(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    """Hostile names cannot come from the service (it validates names); test_report covers them."""
    server = make_emulator(claim_world())
    report = tmp_path / "review.html"
    result = run_cli(server, "preview", *ORGS, "--output", str(report))
    assert result.exit_code == 3
    assert result.stdout == ""
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    # Its one script is the page's own filter, inline, which its policy names by hash.
    assert html.lower().count("<script") == 1
    assert "<script>// The review page's filter" in html
    assert " src=" not in html.lower()
    assert "web/qa" in html and "aws-sandbox" in html


def test_output_format_follows_the_file_suffix(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    for suffix in (".json", ".md"):
        out = tmp_path / f"report{suffix}"
        run_cli(server, "preview", *ORGS, "-o", str(out))
        text = out.read_text(encoding="utf-8")
        if suffix == ".json":
            as_document(text)
        else:
            assert text.lstrip().startswith("#")


# --- resolution map errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("map_text", "named"),
    [
        ("stacks:\n  web/nope: web/nope-2\n", "web/nope"),
        ("stacks:\n  web/dev: web/bad name\n", "web/bad name"),
        ("stacks:\n  web/dev: api/prod\n  api/prod: api/prod-2\n", "api/prod"),
        ("stacks:\n  web/dev: web/x\n  api/prod: web/x\n", "web/x"),
        ("stacks:\n  web/dev: web/qa\n  api/prod: api/prod-2\n", "web/qa"),
        ("stacks: [not, a, mapping]\n", "stacks"),
        ("{{{ not yaml", "resolution map"),
    ],
    ids=[
        "unknown",
        "invalid-name",
        "collides-destination",
        "two-to-one",
        "collides-source",
        "malformed",
        "syntax",
    ],
)
def test_bad_resolution_map_exits_1_naming_the_problem_and_changes_nothing(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, map_text: str, named: str
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    resolutions = write_map(tmp_path, map_text)
    for command in (["preview"], ["commit", "--yes"]):
        result = run_cli(server, *command, *ORGS, "-r", resolutions)
        assert result.exit_code == 1, (command, result.stdout, result.stderr)
        assert named in result.stderr
        assert "Traceback" not in result.stderr
    assert snapshot(server) == before


def test_every_problem_of_a_map_is_listed_at_once(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = write_map(
        tmp_path, "stacks:\n  web/nope: web/n2\n  web/dev: web/bad name\n  api/prod: web/dev\n"
    )
    result = run_cli(server, "preview", *ORGS, "-r", resolutions)
    assert result.exit_code == 1
    for named in ("web/nope", "web/bad name", "web/dev"):
        assert named in result.stderr


def test_missing_map_file_is_an_input_error(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "preview", *ORGS, "-r", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 1
    assert "absent.yaml" in result.stderr


# --- resolve and commit --------------------------------------------------------------------


def test_resolve_keeps_an_existing_map_unless_forced(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = tmp_path / "resolutions.yaml"
    edited = "stacks:\n  web/dev: web/dev-edited\n"
    resolutions.write_text(edited, encoding="utf-8")

    result = run_cli(server, "resolve", *ORGS, "-o", str(resolutions))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {resolutions} exists already; resolve does not overwrite a resolution map.",
        "Pass --force to overwrite it, or name another file with --output.",
    ]
    assert resolutions.read_text(encoding="utf-8") == edited

    result = run_cli(server, "resolve", *ORGS, "-o", str(resolutions), "--force")

    assert result.exit_code == 0, result.stderr
    assert "web/dev: web/dev-agent" in resolutions.read_text(encoding="utf-8")


def test_resolve_writes_a_map_that_commit_accepts(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, runs_dir: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = tmp_path / "resolutions.yaml"
    result = run_cli(server, "resolve", *ORGS, "-o", str(resolutions))
    assert result.exit_code == 0, result.stderr
    assert "web/dev: web/dev-agent" in resolutions.read_text(encoding="utf-8")

    result = run_cli(
        server,
        "commit",
        *ORGS,
        "-r",
        str(resolutions),
        "--yes",
        "--format",
        "json",
    )
    assert result.exit_code == 4, result.stderr
    document = as_document(result.stdout)
    assert {f.entity.kind for f in document.failures} == {
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    }
    assert snapshot(server) == {
        "acme": {
            ("web", "dev"),
            ("api", "prod"),
            ("web", "dev-agent"),
            ("web", "qa"),
            ("api", "dev"),
            ("api", "prod-agent"),
        },
        AGENT: set(),
    }
    assert document.transfer_token is not None

    status = run_cli(server, "status", "--format", "json")
    assert status.exit_code == 4
    assert as_document(status.stdout) == document
    status_table = run_cli(server, "status", document.transfer_token, "--format", "table")
    assert "transferred web/dev-agent to acme" in status_table.stdout


def test_blocked_commit_changes_nothing(make_emulator: EmulatorFactory, run_cli: RunCli) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    result = run_cli(server, "commit", *ORGS, "--yes", "--format", "json")
    assert result.exit_code == 3
    assert len(as_document(result.stdout).conflicts) == 2
    assert snapshot(server) == before
    assert server.requests.count(method="POST") == 0


def test_commit_without_yes_off_a_terminal_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    resolutions = write_map(tmp_path, RESOLVES_BOTH)
    result = run_cli(server, "commit", *ORGS, "-r", resolutions)
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert snapshot(server) == before


def test_chain_and_swap_renames_land_under_their_planned_names(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    world = claim_world(
        stacks=[
            {"project": "web", "stack": "dev"},
            {"project": "web", "stack": "dev2"},
            {"project": "app", "stack": "a"},
            {"project": "app", "stack": "b"},
        ]
    )
    server = make_emulator(world)
    resolutions = write_map(
        tmp_path,
        "stacks:\n  web/dev: web/dev2\n  web/dev2: web/dev3\n  app/a: app/b\n  app/b: app/a\n",
    )
    result = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert snapshot(server)[AGENT] == set()
    assert {("web", "dev2"), ("web", "dev3"), ("app", "a"), ("app", "b")} <= snapshot(server)[
        "acme"
    ]
    assert server.state.find_stack("acme", "web", "dev3") is not None


def test_transfer_refused_for_lack_of_admin_is_reported_per_stack_and_undone(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    resolutions = write_map(tmp_path, RESOLVES_BOTH)
    result = run_cli(
        server,
        "commit",
        *ORGS,
        "-r",
        resolutions,
        "--yes",
        "--strategy",
        "transfer",
        "--format",
        "json",
        token="tok-bob",
    )
    assert result.exit_code == 4
    failed = {
        (f.entity.project_name, f.entity.stack_name): f.failure_details  # type: ignore[union-attr]
        for f in as_document(result.stdout).failures
        if f.entity.kind.startswith("TransferEntityStack")
    }
    assert set(failed) == {("web", "dev"), ("web", "qa"), ("api", "dev"), ("api", "prod")}
    assert all("403" in reason for reason in failed.values())
    assert snapshot(server) == before


def test_transfer_between_backends_is_refused(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(
        server,
        "preview",
        "--from",
        "organization",
        "--to",
        "acme",
        "--strategy",
        "transfer",
        "--source-backend",
        (tmp_path / "state").as_uri(),
    )
    assert result.exit_code == 1
    assert "--strategy migrate" in result.stderr


def test_delete_source_is_refused_with_transfer(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    resolutions = write_map(tmp_path, RESOLVES_BOTH)
    result = run_cli(
        server,
        "commit",
        *ORGS,
        "-r",
        resolutions,
        "--yes",
        "--strategy",
        "transfer",
        "--delete-source",
    )
    assert result.exit_code == 1
    assert "--delete-source applies to --strategy migrate" in result.stderr
    assert snapshot(server) == before


def test_lost_answers_are_reconciled_with_the_service(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    """A rename and a transfer that were applied but answered 500 still count as done."""
    server = make_emulator(claim_world())
    server.faults.fail_after(500, method="POST", path=r".*/web/dev/rename$")
    server.faults.fail_after(500, method="POST", path=r".*/api/dev/transfer$")
    resolutions = write_map(tmp_path, RESOLVES_BOTH)
    result = run_cli(
        server,
        "commit",
        *ORGS,
        "-r",
        resolutions,
        "--yes",
        "--format",
        "json",
    )
    assert result.exit_code == 4, result.stderr
    stack_failures = [
        f
        for f in as_document(result.stdout).failures
        if f.entity.kind.startswith("TransferEntityStack")
    ]
    assert stack_failures == []
    assert snapshot(server)[AGENT] == set()
    assert server.requests.count(method="POST", path=r".*/web/dev/rename$") == 1


def test_failed_transfer_puts_the_renamed_stack_back(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    server.faults.fail(503, method="POST", path=r".*/web/dev-2/transfer$", times=None)
    resolutions = write_map(tmp_path, RESOLVES_BOTH)
    result = run_cli(
        server,
        "commit",
        *ORGS,
        "-r",
        resolutions,
        "--yes",
        "--format",
        "json",
    )
    assert result.exit_code == 4
    reasons = [
        f.failure_details
        for f in as_document(result.stdout).failures
        if f.entity.kind == "TransferEntityStackRename" and f.entity.stack_name == "dev"
    ]  # type: ignore[union-attr]
    assert len(reasons) == 1 and "503" in reasons[0]
    assert snapshot(server)[AGENT] == {("web", "dev")}
    assert ("api", "prod-2") in snapshot(server)["acme"]


def test_missing_token_says_which_variable_to_set(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    env = {
        "PULUMI_ACCESS_TOKEN": None,
        "PULUMI_BACKEND_URL": server.url,
        "HOME": str(tmp_path),
        "PULUMI_HOME": None,
    }
    result = CliRunner().invoke(cli, ["preview", *ORGS], env=env)
    assert result.exit_code == 1
    assert "PULUMI_ACCESS_TOKEN" in result.stderr


def test_bad_token_is_an_error_without_the_token(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "preview", *ORGS, token="tok-wrong-secret")
    assert result.exit_code == 1
    assert "401" in result.stderr
    assert "tok-wrong-secret" not in result.stderr + result.stdout


def test_status_without_runs_is_an_error(run_cli: RunCli, demo_emulator: EmulatorServer) -> None:
    result = run_cli(demo_emulator, "status")
    assert result.exit_code == 1
    assert "no commit has been recorded" in result.stderr


def test_demo_tells_the_claim_of_an_agent_account(
    pulumi_cli: Path, pulumiservice_plugin: Path, tmp_path: Path
) -> None:
    page = tmp_path / "review.html"
    result = CliRunner().invoke(cli, ["demo", "--review-page", str(page)], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"the review page of this preview: {page}" in result.stdout
    # The first preview's review page: what needs a decision first, the two conflicts in it.
    html = page.read_text(encoding="utf-8")
    decisions = html.index('id="decisions"')
    assert decisions < html.index('id="advice"') < html.index('id="moves"')
    assert html.index("api/prod", decisions) < html.index('id="advice"')
    assert html.index("web/dev", decisions) < html.index('id="advice"')
    assert oct(page.stat().st_mode & 0o777) == "0o600"
    assert "agent account agent-" in result.stdout
    assert "Strategy      claim-api" in result.stdout
    assert "exit code would be 3" in result.stdout
    assert "commit --strategy claim-api --environments copy" in result.stdout
    assert (
        "4 of 4 stacks landed in acme through the claim; 1 ESC environment(s) copied first"
        in " ".join(result.stdout.split())
    )
    assert "web/dev-agent" in result.stdout
    assert "5. the ESC environments of acme now" in result.stdout
    assert "secrets-agent" in result.stdout
    assert "landing acme/pulumi-claim-landing/agent-" in result.stdout
    assert "6 created" in result.stdout  # the stack, the provider, 4 StackTags
    assert "claimed-by=bob" in result.stdout


def test_demo_refuses_a_review_page_it_cannot_write(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "review.html"
    result = CliRunner().invoke(cli, ["demo", "--review-page", str(missing)])
    assert result.exit_code == 1
    assert f"cannot write {missing}: the folder {missing.parent} does not exist." in result.stderr
    assert "pulumi-claim demo" not in result.stdout


def test_demo_of_the_org_to_org_transfer(pulumi_cli: Path, pulumiservice_plugin: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--transfer"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "7 of 7 stacks landed in acme; 1 ESC environment(s) copied" in result.stdout
    assert "5. the ESC environments of acme now" in result.stdout
    assert "web/dev-agent" in result.stdout
    # the stack, the provider, 7 StackTags, 7 TeamStackPermissions and the copied
    # environment's TeamEnvironmentPermission
    assert "landing acme/pulumi-claim-landing/agent-7f3k2q: 17 created" in result.stdout
