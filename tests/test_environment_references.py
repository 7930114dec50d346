"""References that break, over the emulator: ESC environments of the agent's org reading the
outputs of stacks that move (one renamed by the map) and importing an environment the map
renames. The preview lists each in every format; a commit's copies read and import the new
names (read back from the emulator); `status` shows what the run recorded. With claim-api the
service moves the environments as written, and the user edits them."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from agent_times import agent_entry
from esc_reads import decrypted

from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
TRANSFER = ("--strategy", "transfer")
MAP = """stacks:
  web/dev: web/dev-agent
environments:
  default/base: default/base-agent
"""
APP = """imports:
  - base
values:
  outputs:
    fn::open::pulumi-stacks:
      stacks:
        web: {stack: web/dev}
        prod: {stack: web/prod}
  pulumiConfig:
    region: eu-west-1
"""
BASE = "values:\n  region: eu-west-1\n"

COPIED_LINES = [
    f"environment {AGENT}/default/app imports environment {AGENT}/default/base → "
    "acme/default/base-agent; pulumi-claim rewrites its copy: imports: base → imports: base-agent",
    f"environment {AGENT}/default/app reads the outputs of stack {AGENT}/web/dev → "
    "acme/web/dev-agent; pulumi-claim rewrites its copy: stack: web/dev → stack: web/dev-agent",
]
"""The report's lines with `--environments copy`: the toolkit rewrites its copies."""

LEFT_LINES = [
    f"environment {AGENT}/default/app reads the outputs of stack {AGENT}/web/dev → "
    "acme/web/dev-agent; you edit it: stack: web/dev cannot name acme/web/dev-agent: ESC reads "
    "stacks of the environment's own org only, so move the environment to acme or drop it",
    f"environment {AGENT}/default/app reads the outputs of stack {AGENT}/web/prod → "
    "acme/web/prod; you edit it: stack: web/prod cannot name acme/web/prod: ESC reads "
    "stacks of the environment's own org only, so move the environment to acme or drop it",
]
"""The report's lines when the environments stay in the agent's org."""


def claimed_world() -> dict[str, Any]:
    """The same orgs with the agent's claim token: alice is a member of acme only."""
    spec = world()
    spec["users"] = [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "member"}}]
    spec["agents"] = [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")]
    return spec


def world() -> dict[str, Any]:
    """alice administers both orgs; acme has web/dev and default/base already."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}
        ],
        "orgs": {
            AGENT: {
                "stacks": [{"project": "web", "stack": "dev"}, {"project": "web", "stack": "prod"}],
                "environments": [
                    {"project": "default", "name": "app", "definition": APP},
                    {"project": "default", "name": "base", "definition": BASE},
                ],
            },
            "acme": {
                "stacks": [{"project": "web", "stack": "dev"}],
                "environments": [
                    {"project": "default", "name": "base", "definition": "values: {x: 1}\n"}
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


def section(text: str, title: str, next_title: str) -> str:
    """The text between two headings of a report, its whitespace made single spaces."""
    start = text.index(title) + len(title)
    return " ".join(text[start : text.index(next_title, start)].split())


def preview(
    run_cli: RunCli, server: EmulatorServer, map_file: Path, fmt: str, *extra: str, code: int = 0
) -> str:
    result = run_cli(
        server,
        "preview",
        *ORGS,
        *TRANSFER,
        "-r",
        str(map_file),
        "--format",
        fmt,
        *extra,
        source_token="tok-alice",
    )
    assert result.exit_code == code, result.output
    return result.stdout


def test_the_preview_lists_each_reference_that_breaks_in_every_format(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    copy = ("--environments", "copy")

    markdown = preview(run_cli, server, map_file, "markdown", *copy)
    table = preview(run_cli, server, map_file, "table", *copy)
    page = preview(run_cli, server, map_file, "html", *copy)
    document = json.loads(preview(run_cli, server, map_file, "json", *copy))

    assert section(markdown, "## References that break", "## Notices") == " ".join(
        f"- {line}" for line in COPIED_LINES
    )
    assert section(table, "References that break", "Notices") == " ".join(
        f"• {line}" for line in COPIED_LINES
    )
    listed = section(page, '<section id="references">', "</section>")
    assert html.unescape(listed) == (
        '<h2>References that break</h2> <ul class="notices"> '
        + " ".join(f"<li>{line}</li>" for line in COPIED_LINES)
        + " </ul>"
    )
    assert document["brokenReferences"] == [
        {
            "holderKind": "environment",
            "holder": f"{AGENT}/default/app",
            "kind": "environment import",
            "written": "base",
            "old": f"{AGENT}/default/base",
            "new": "acme/default/base-agent",
            "rewrite": "base-agent",
            "fixer": "toolkit",
            "edit": "imports: base → imports: base-agent",
        },
        {
            "holderKind": "environment",
            "holder": f"{AGENT}/default/app",
            "kind": "stack outputs read",
            "written": "web/dev",
            "old": f"{AGENT}/web/dev",
            "new": "acme/web/dev-agent",
            "rewrite": "web/dev-agent",
            "fixer": "toolkit",
            "edit": "stack: web/dev → stack: web/dev-agent",
        },
    ]


def test_environments_left_in_the_agents_org_are_the_users_to_edit(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    """Without copies the environments stay with the agent, whose org no longer holds the
    stacks they read; ESC cannot read another org's stacks, and the report says so. (The
    environments themselves are failures: exit 4.)"""
    markdown = preview(run_cli, server, map_file, "markdown", code=4)

    assert section(markdown, "## References that break", "## Notices") == " ".join(
        f"- {line}" for line in LEFT_LINES
    )


def test_an_environment_that_cannot_be_read_is_a_notice(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    server.faults.fail(403, method="GET", path=f"/api/esc/environments/{AGENT}/default/app")

    markdown = preview(run_cli, server, map_file, "markdown", code=4)

    assert "## References that break" not in markdown
    assert section(markdown, "## Notices", "\n- ESC environment").startswith(
        f"- strategy transfer: as asked - environment {AGENT}/default/app could not be read ("
    )
    assert "its references to moved stacks and environments are not checked" in markdown


def test_a_commit_rewrites_its_copies_and_its_record_keeps_the_references(
    server: EmulatorServer, run_cli: RunCli, map_file: Path
) -> None:
    result = run_cli(
        server,
        "commit",
        *ORGS,
        *TRANSFER,
        "--environments",
        "copy",
        "-r",
        str(map_file),
        "--yes",
        "--format",
        "json",
        source_token="tok-alice",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["failures"] == []
    copy = decrypted(server, "acme", ("default", "app"))
    assert copy["imports"] == ["base-agent"]
    assert copy["values"]["outputs"]["fn::open::pulumi-stacks"]["stacks"] == {
        "web": {"stack": "web/dev-agent"},
        "prod": {"stack": "web/prod"},
    }
    assert copy["values"]["pulumiConfig"] == {"region": "eu-west-1"}
    assert decrypted(server, AGENT, ("default", "app")) == yaml.safe_load(APP), "source untouched"
    status = run_cli(server, "status", "--format", "markdown")
    assert status.exit_code == 0, status.output
    assert section(status.stdout, "## References that break", "## Notices") == " ".join(
        f"- {line}" for line in COPIED_LINES
    )


def test_environments_the_service_moves_are_the_users_to_edit(
    make_emulator: EmulatorFactory, run_cli: RunCli, map_file: Path
) -> None:
    """claim-api: the service's claim moves the environments as they are written, so in acme
    default/app would read acme's own web/dev and import acme's own default/base; the toolkit
    does not write them, so the user edits both, to names acme can resolve."""
    server = make_emulator(claimed_world())

    result = run_cli(
        server,
        "preview",
        *ORGS,
        "--strategy",
        "claim-api",
        "-r",
        str(map_file),
        "--format",
        "markdown",
        source_token="tok-agent",
        claim_token="claim-abc123",
    )

    assert result.exit_code == 0, result.output
    assert section(result.stdout, "## References that break", "## Notices") == " ".join(
        [
            f"- environment {AGENT}/default/app imports environment {AGENT}/default/base → "
            "acme/default/base-agent; you edit it: imports: base → imports: base-agent",
            f"- environment {AGENT}/default/app reads the outputs of stack {AGENT}/web/dev → "
            "acme/web/dev-agent; you edit it: stack: web/dev → stack: web/dev-agent",
        ]
    )
