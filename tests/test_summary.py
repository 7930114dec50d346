"""The summary on stderr, whatever the output: the warnings and notices, the outcome, what the
exit code means and where the report went; stdout keeps exactly the report (or nothing, with
-o). A table on a terminal shows the outcome itself: stderr then adds only the exit line."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_times import agent_entry

from toolkit.emulator.server import EmulatorServer
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
CLOSING = re.compile(
    r"warning: the claim window closes in 5 h \d+ min \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\); after "
    r"that the claim token expires and the agent's account can no longer be claimed: commit "
    r"before then"
)
"""The claim-window warning of `world()`'s agent (its minutes depend on when the test runs)."""
SEARCHED = [
    f"stack references in {AGENT}: found by the service's search",
    "stack references in acme: found by the service's search",
]
"""The notices saying how each org's StackReferences were found."""
BLOCKED = [
    "strategy claim-api: a claim token is at hand (PULUMI_CLAIM_TOKEN)",
    *SEARCHED,
    "outcome: blocked: 2 unresolved conflict(s); nothing was changed. Rename them in a "
    "resolution map (pulumi-claim resolve writes one).",
    "exit 3: blocked; nothing was changed",
]


def world(claim_window: timedelta = timedelta(hours=5, minutes=30)) -> dict[str, Any]:
    """acme holds web/dev and api/prod; so does the agent's org, with web/qa: two conflicts.
    The agent's claim window closes after `claim_window`."""
    agent = agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")
    agent["claimExpiresAt"] = (datetime.now(UTC) + claim_window).isoformat()
    stacks = [{"project": "web", "stack": "dev"}, {"project": "api", "stack": "prod"}]
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}
        ],
        "agents": [agent],
        "orgs": {
            "acme": {"stacks": stacks},
            AGENT: {"stacks": [*stacks, {"project": "web", "stack": "qa"}]},
        },
    }


def test_a_blocked_preview_written_to_a_file_says_why_it_exits_3_and_where_the_report_is(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(world())
    report = tmp_path / "review.html"

    result = run_cli(server, "preview", *ORGS, "-o", str(report), claim_token="claim-abc123")

    assert result.exit_code == 3
    assert result.stdout == ""
    warning, *lines = result.stderr.splitlines()
    assert CLOSING.fullmatch(warning), warning
    assert lines == [*BLOCKED, f"report written to {report}"]
    assert "blocked: 2 unresolved conflict(s)" in report.read_text(encoding="utf-8")


def test_json_on_stdout_stays_the_document_and_the_summary_goes_to_stderr(
    make_emulator: EmulatorFactory, run_cli: RunCli
) -> None:
    server = make_emulator(world())

    result = run_cli(server, "preview", *ORGS, "--format", "json", claim_token="claim-abc123")

    assert result.exit_code == 3
    document = AgentClaimResponse.model_validate(json.loads(result.stdout))
    assert result.stdout == json.dumps(document.to_wire(), indent=2) + "\n"
    warning, *lines = result.stderr.splitlines()
    assert CLOSING.fullmatch(warning), warning
    assert lines == BLOCKED


def test_quiet_prints_no_summary(make_emulator: EmulatorFactory, run_cli: RunCli) -> None:
    server = make_emulator(world())

    result = run_cli(server, "-q", "preview", *ORGS, claim_token="claim-abc123")

    assert result.exit_code == 3
    assert result.stderr == ""
    assert json.loads(result.stdout)["conflicts"]


def test_a_partial_commit_ends_on_its_outcome_and_status_says_it_again(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    """A transfer (no claim token) of web/qa that the service refuses: exit 4, said last."""
    server = make_emulator(world())
    server.faults.fail(409, method="POST", path=f"/api/stacks/{AGENT}/web/qa/transfer")
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks: {web/dev: web/dev-agent, api/prod: api/prod-agent}\n")
    report = tmp_path / "commit.md"

    result = run_cli(server, "commit", *ORGS, "-r", str(resolutions), "--yes", "-o", str(report))

    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[-6:] == [
        "strategy transfer: alice administers both agent-abc123 and acme",
        *SEARCHED,
        "outcome: moved 2 of 3 stack(s); 1 failed (run the same command again)",
        "exit 4: partial: not everything moved, or the landing failed",
        f"report written to {report}",
    ]

    status = run_cli(server, "status", "--format", "json")

    assert status.exit_code == 4
    assert json.loads(status.stdout)["failures"]
    run_id = result.stderr.splitlines()[0].removeprefix("run ")
    run_line, exit_line = status.stderr.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"
    assert re.fullmatch(f"outcome: run {run_id}, started {stamp}, finished {stamp}", run_line)
    assert exit_line == "exit 4: partial: not everything moved, or the landing failed"


def test_a_table_on_a_terminal_shows_the_outcome_so_stderr_adds_only_the_exit_line(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world(claim_window=timedelta(days=20)))
    stdout, stderr = _run_on_a_terminal(server, tmp_path, "preview", *ORGS)

    assert "Outcome: blocked: 2 unresolved conflict(s); nothing was changed." in stdout
    assert stderr == "exit 3: blocked; nothing was changed\n"


def _run_on_a_terminal(server: EmulatorServer, tmp_path: Path, *args: str) -> tuple[str, str]:
    """`pulumi-claim ARGS` in a process whose stdout is a terminal (a pseudo-terminal, read
    to its end), stderr a pipe: what each showed."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
        "PULUMI_CLAIM_TOKEN": "claim-abc123",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        "COLUMNS": "120",
        "TERM": "dumb",
    }
    terminal, child_end = pty.openpty()
    shown: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # the child closed its end: EIO on Linux
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    with subprocess.Popen(
        [sys.executable, "-m", "toolkit", *args],
        stdout=child_end,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    ) as process:
        os.close(child_end)
        _, stderr = process.communicate()
    reader.join()
    os.close(terminal)
    return b"".join(shown).decode().replace("\r\n", "\n"), stderr.decode()


def test_a_commit_logging_json_lines_keeps_stdout_to_them_and_ends_stderr_on_its_summary(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path
) -> None:
    server = make_emulator(world())
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks: {web/dev: web/dev-agent, api/prod: api/prod-agent}\n")

    result = run_cli(
        server, "commit", *ORGS, "-r", str(resolutions), "--yes", "--log-format", "json"
    )

    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["event"] == "claim-finished"
    assert result.stderr.splitlines() == [
        f"run {records[-1]['runId']}",
        "strategy transfer: alice administers both agent-abc123 and acme",
        *SEARCHED,
        "outcome: moved 3 of 3 stack(s)",
        "exit 0: done",
    ]
