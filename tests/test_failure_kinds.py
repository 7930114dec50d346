"""Failures by kind: a move that failed (the same command runs it again) apart from an entity
that cannot move, in every human format, the JSON log lines and `status`; and "What to do"
advice that fits the strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from test_cli import ORGS, RESOLVES_BOTH, as_document, claim_world, write_map

from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from click.testing import Result
    from conftest import EmulatorFactory, RunCli

RETRY = "failed \N{EM DASH} run the same command again"
FAILED_STACK = "web/dev \N{RIGHTWARDS ARROW} web/dev-2"
OUTCOME = "moved 3 of 4 stack(s); 1 failed (run the same command again); 2 cannot move"
RERUN_STEP = (
    "- 1 move(s) failed: re-run the same command: it looks where each stack is now and "
    "finishes the move; what cannot move stays (the Failures table says what to do about each)"
)


def _flaky_world(make_emulator: EmulatorFactory) -> EmulatorServer:
    """The claim world whose transfer of web/dev (renamed web/dev-2) always answers 503; its
    environment and Insights account cannot move with the transfer strategy."""
    server = make_emulator(claim_world())
    server.faults.fail(503, method="POST", path=r".*/web/dev-2/transfer$", times=None)
    return server


def _commit(server: EmulatorServer, run_cli: RunCli, tmp_path: Path, *args: str) -> Result:
    result = run_cli(
        server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes", *args
    )
    assert result.exit_code == 4, result.stderr
    return result


def _markdown_failure_rows(report: str) -> list[str]:
    lines = report.splitlines()
    start = lines.index("## Failures")
    return [line for line in lines[start + 4 :] if line.startswith("|")]


def _markdown_failures(report: str) -> list[tuple[str, str, str]]:
    """The Failures table's (kind, name, failure) cells; the reasons are the service's."""
    rows = [line.strip("|").split(" | ") for line in _markdown_failure_rows(report)]
    return [(kind.strip(), name, failure) for kind, name, failure, _reason in rows]


EXPECTED_FAILURES = [
    ("stack", FAILED_STACK, RETRY),
    ("ESC environment", "default/secrets", "cannot move"),
    ("Insights account", "aws-sandbox", "cannot move"),
]


def test_markdown_report_tells_a_failed_move_from_what_cannot_move(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = _flaky_world(make_emulator)
    report = _commit(server, run_cli, tmp_path, "--format", "markdown").stdout
    lines = report.splitlines()
    assert f"**Outcome:** {OUTCOME}" in lines
    assert f"| stack | web/dev | 12 | \N{EM DASH} | {RETRY} |" in lines
    assert (
        "| ESC environment | default/secrets | \N{EM DASH} | \N{EM DASH} | cannot move |" in lines
    )
    assert "| Kind | Name | Failure | Reason |" in lines
    assert _markdown_failures(report) == EXPECTED_FAILURES
    what_to_do = lines.index("## What to do")
    assert lines[what_to_do + 2 : what_to_do + 4] == [RERUN_STEP, ""]


def test_table_and_html_reports_tell_the_kinds_apart(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = _flaky_world(make_emulator)
    table = _commit(server, run_cli, tmp_path, "--format", "table").stdout
    rows = [" ".join(line.split()) for line in table.splitlines()]
    assert f"stack web/dev 12 \N{EM DASH} {RETRY}" in rows
    assert "ESC environment default/secrets \N{EM DASH} \N{EM DASH} cannot move" in rows
    assert f"Outcome: {OUTCOME}" in rows

    html = _commit(server, run_cli, tmp_path, "--format", "html").stdout
    assert f'<span class="action action-retry">{RETRY}</span>' in html
    assert (
        f'<td class="name">{FAILED_STACK}</td>'
        f'<td class="nowrap"><span class="action action-retry">{RETRY}</span></td>'
    ) in html
    assert (
        '<td class="name">aws-sandbox</td>'
        '<td class="nowrap"><span class="action action-failed">cannot move</span></td>'
    ) in html
    assert "<th>Failure</th>" in html


def test_json_log_counts_the_kinds_and_the_document_stays_the_services(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = _flaky_world(make_emulator)
    report = tmp_path / "claim.json"
    log = _commit(
        server, run_cli, tmp_path, "--log-format", "json", "--format", "json", "-o", str(report)
    ).stdout
    events = [json.loads(line) for line in log.splitlines()]
    [failed] = [event for event in events if event["event"] == "move-failed"]
    assert failed["message"].endswith("injected fault")
    [finished] = [event for event in events if event["event"] == "claim-finished"]
    assert (finished["failed"], finished["failedRunAgain"], finished["cannotMove"]) == (3, 1, 2)
    assert finished["message"] == OUTCOME

    document = as_document(report.read_text(encoding="utf-8"))
    wire = json.loads(report.read_text(encoding="utf-8"))
    assert {key for failure in wire["failures"] for key in failure} == {"entity", "failureDetails"}
    assert len(document.failures) == 3


def test_status_tells_the_kinds_apart(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = _flaky_world(make_emulator)
    _commit(server, run_cli, tmp_path, "--format", "json")
    status = run_cli(server, "status", "--format", "markdown")
    assert status.exit_code == 4, status.stderr
    assert _markdown_failures(status.stdout) == EXPECTED_FAILURES
    assert RERUN_STEP in status.stdout.splitlines()


def test_transfer_preview_gives_no_claim_api_advice(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    """Blocked by conflicts, a transfer preview says to rename them; what cannot move is the
    Failures table's, not advice for the service's claim."""
    server = make_emulator(claim_world())
    preview = run_cli(server, "preview", *ORGS, "--format", "markdown")
    assert preview.exit_code == 3, preview.stderr
    lines = preview.stdout.splitlines()
    steps = lines[lines.index("## What to do") + 2 : lines.index("## Notices") - 1]
    assert steps == [
        f"- stack {name}: the name is taken in acme; rename it in the resolution map "
        "(pulumi-claim resolve writes one) and pass the map with --resolutions"
        for name in ("api/prod", "web/dev")
    ]
