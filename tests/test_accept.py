"""A resolution map's `accept:` section: known failures reported as accepted, and a run whose
only failures are accepted exits 0, so that a scheduled job can go green."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from test_cli import AGENT, ORGS, RESOLVES_BOTH, as_document, claim_world, write_map

from toolkit.cli import cli
from toolkit.emulator.world import load_world
from toolkit.errors import InvalidInputError

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

ACCEPTS_BOTH = "accept:\n  insightsAccounts: [aws-sandbox]\n  environments: [default/secrets]\n"
"""The two failures of `claim_world`'s transfer: its ESC environment and its Insights account."""

ACCEPTED_ROWS = (
    "| ESC environment | default/secrets | — | — | cannot move (accepted) |",
    "| Insights account | aws-sandbox | — | — | cannot move (accepted) |",
)


def test_a_preview_whose_only_failures_are_accepted_exits_0_and_says_accepted(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = write_map(tmp_path, RESOLVES_BOTH + ACCEPTS_BOTH)

    result = run_cli(server, "preview", *ORGS, "-r", resolutions, "--format", "markdown")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "**Outcome:** would move 4 of 4 stack(s); 2 cannot move, 2 of them accepted" in lines
    for row in ACCEPTED_ROWS:
        assert row in lines
    assert any(
        line.startswith(
            "| Insights account | aws-sandbox | cannot move | accepted: Insights accounts cannot"
        )
        for line in lines
    )


def test_a_failure_not_accepted_still_fails_the_run(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    accepts_one = "accept:\n  insightsAccounts: [aws-sandbox]\n"
    resolutions = write_map(tmp_path, RESOLVES_BOTH + accepts_one)

    result = run_cli(server, "preview", *ORGS, "-r", resolutions, "--format", "markdown")

    assert result.exit_code == 4
    lines = result.stdout.splitlines()
    assert "**Outcome:** would move 4 of 4 stack(s); 2 cannot move, 1 of them accepted" in lines
    assert "| ESC environment | default/secrets | — | — | cannot move |" in lines
    assert ACCEPTED_ROWS[1] in lines


def test_a_commit_whose_only_failures_are_accepted_exits_0_every_run_and_json_keeps_them(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    resolutions = write_map(tmp_path, RESOLVES_BOTH + ACCEPTS_BOTH)

    result = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "json")

    assert result.exit_code == 0, result.stderr
    document = as_document(result.stdout)
    assert {f.entity.kind for f in document.failures} == {
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    }
    assert server.state.stack_names(AGENT) == set()

    again = run_cli(server, "commit", *ORGS, "-r", resolutions, "--yes", "--format", "markdown")
    assert again.exit_code == 0, again.stderr
    assert ACCEPTED_ROWS[1] in again.stdout.splitlines()

    status = run_cli(server, "status", "--format", "markdown")
    assert status.exit_code == 0, status.stderr
    for row in ACCEPTED_ROWS:
        assert row in status.stdout.splitlines()


def test_an_accept_entry_that_names_no_failure_is_a_warning(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    stale = ACCEPTS_BOTH.replace("[aws-sandbox]", "[aws-sandbox, gcp-sandbox]")
    resolutions = write_map(tmp_path, RESOLVES_BOTH + stale)

    result = run_cli(server, "preview", *ORGS, "-r", resolutions, "--format", "markdown")

    assert result.exit_code == 0, result.stderr
    assert (
        "- warning: accept: Insights account gcp-sandbox is not a failure of this claim; "
        "remove it from the resolution map's accept: section"
    ) in result.stdout.splitlines()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "acept:\n  insightsAccounts: [aws-sandbox]\n",
            'unknown section "acept" (did you mean accept?); expected stacks, environments, '
            "insightsAccounts, registryPackages, landing, accept",
        ),
        (
            "enviroments:\n  default/secrets: default/secrets-2\n",
            'unknown section "enviroments" (did you mean environments?); expected stacks, '
            "environments, insightsAccounts, registryPackages, landing, accept",
        ),
        (
            "accept:\n  insightAccounts: [aws-sandbox]\n",
            'accept: unknown section "insightAccounts" (did you mean insightsAccounts?); '
            "expected stacks, environments, insightsAccounts, registryPackages",
        ),
        (
            "accept:\n  stacks: [web]\n",
            'accept: stacks: "web" is not of the form project/stack',
        ),
        ("accept: [aws-sandbox]\n", "accept must map sections"),
    ],
)
def test_a_malformed_map_names_the_file_and_the_section_meant(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, text: str, problem: str
) -> None:
    server = make_emulator(claim_world())
    resolutions = write_map(tmp_path, text)

    result = run_cli(server, "preview", *ORGS, "-r", resolutions)

    assert result.exit_code == 1
    assert f"  - {resolutions}: {problem}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_misspelled_world_key_names_the_file_and_the_key_meant(tmp_path: Path) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(
        "users: []\norgs:\n  acme:\n    stakcs: [{project: web, stack: dev}]\nservce: {}\n",
        encoding="utf-8",
    )

    with pytest.raises(InvalidInputError) as raised:
        load_world(path)

    assert str(raised.value).splitlines()[:3] == [
        f"world file {path} is invalid (2 problem(s)):",
        "  - orgs.acme.stakcs: unknown key (did you mean stacks?)",
        "  - servce: unknown key (did you mean service?)",
    ]


JOB = """\
apiUrl: {url}
claims:
  - name: sandbox
    from: {agent}
    to: acme
    resolutions: map.yaml
    strategy: transfer
    accept:
      insightsAccounts: [aws-sandbox]
      environments: [default/secrets]
"""


def test_a_scheduled_job_whose_only_failures_are_accepted_goes_green(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    (tmp_path / "map.yaml").write_text(RESOLVES_BOTH, encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(url=server.url, agent=AGENT), encoding="utf-8")
    env = {"PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"), "PULUMI_ACCESS_TOKEN": "tok-alice"}

    for _ in range(2):  # the first run moves the stacks; the second finds nothing to do
        result = CliRunner().invoke(
            cli, ["job", "run", str(job), "--log-format", "json"], env=env, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.splitlines()[-1])["claims"][0]
        assert (summary["outcome"], summary["failed"]) == ("done", 2)


def test_a_job_claim_and_its_map_cannot_both_accept(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    (tmp_path / "map.yaml").write_text(RESOLVES_BOTH + ACCEPTS_BOTH, encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(url=server.url, agent=AGENT), encoding="utf-8")
    env = {"PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"), "PULUMI_ACCESS_TOKEN": "tok-alice"}

    result = CliRunner().invoke(cli, ["job", "check", str(job)], env=env, catch_exceptions=False)

    assert result.exit_code == 1
    assert "give an accept: section in the claim or in its resolution map, not both" in (
        result.stderr
    )
