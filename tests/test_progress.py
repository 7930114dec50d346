"""Progress events and their display: the counts every event carries, plain lines when stderr
is not a terminal (and nothing with -q), a progress bar when it is."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_times import agent_entry
from click.testing import CliRunner, Result
from rich.console import Console

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer
from toolkit.progress import (
    LandingFinished,
    LandingStarted,
    MoveFailed,
    MoveFailure,
    MoveTally,
    ProgressEvent,
)
from toolkit.progress_display import Planning, ProgressDisplay

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-abc123"
WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
        AGENT: {"stacks": [{"project": "web", "stack": "dev"}, {"project": "web", "stack": "qa"}]},
    },
}
"""The agent's web/dev collides with acme's (renamed, it moves as web/dev-agent); web/qa does
not."""

TRANSFER_REFUSED = (
    f"transfer to acme failed: POST /api/stacks/{AGENT}/web/qa/transfer failed with 409: "
    "injected fault"
)


def commit(server: EmulatorServer, tmp_path: Path, *options: str) -> Result:
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks: {web/dev: web/dev-agent}\n", encoding="utf-8")
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }
    args = [*options, "commit", "--from", AGENT, "--to", "acme", "-r", str(resolutions), "--yes"]
    return CliRunner().invoke(cli, [*args, "--format", "json"], env=env, catch_exceptions=False)


def test_off_a_terminal_each_event_is_a_plain_line_with_the_counts(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    server.faults.fail(409, method="POST", path=f"/api/stacks/{AGENT}/web/qa/transfer")

    result = commit(server, tmp_path)

    assert result.exit_code == 4, result.stderr
    assert json.loads(result.stdout)["failures"][0]["failureDetails"] == TRANSFER_REFUSED
    # The run's id, the events, then the summary (tests/test_summary.py): the events' lines.
    lines = [line for line in result.stderr.splitlines() if line.startswith("stacks [")]
    assert lines[:3] == [
        f"stacks [0/2] moving {AGENT}/web/dev -> acme/web/dev-agent",
        f"stacks [0/2] renamed web/dev -> web/dev-agent in {AGENT}",
        f"stacks [0/2] moving {AGENT}/web/qa -> acme/web/qa",
    ]
    # The two transfers run at once; each is reported as soon as it is settled.
    failed = f"{AGENT}/web/qa -> acme/web/qa failed (transfer): {TRANSFER_REFUSED}"
    assert lines[3:] in (
        ["stacks [1/2] transferred web/dev-agent to acme", f"stacks [2/2, 1 failed] {failed}"],
        [
            f"stacks [1/2, 1 failed] {failed}",
            "stacks [2/2, 1 failed] transferred web/dev-agent to acme",
        ],
    )


def test_quiet_shows_no_progress(make_emulator: EmulatorFactory, tmp_path: Path) -> None:
    server = make_emulator(WORLD)

    result = commit(server, tmp_path, "-q")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def test_the_counts_follow_moves_that_land_fail_and_fail_again() -> None:
    events: list[ProgressEvent] = []
    tally = MoveTally(3, events.append)
    verify = MoveFailure("verify", "verification: web/a is not in acme", source_untouched=False)

    tally.started("agent/web/a", "acme/web/a")
    tally.finished("agent/web/a", "acme/web/a", "transfer", "transferred web/a to acme")
    tally.finished("agent/web/b", "acme/web/b", "transfer", "transferred web/b to acme")
    tally.failed("agent/web/c", "acme/web/c", MoveFailure("transfer", "refused"))
    tally.failed("agent/web/c", "acme/web/c", MoveFailure("undo", "refused; undo too", False))
    tally.failed("agent/web/a", "acme/web/a", verify)

    counts = [(event.done, event.failed, event.total, event.settled) for event in events]
    assert counts == [
        (0, 0, 3, 0),
        (1, 0, 3, 1),
        (2, 0, 3, 2),
        (2, 1, 3, 3),
        (2, 1, 3, 3),
        (1, 2, 3, 3),
    ]
    assert events[-1] == MoveFailed(
        source="agent/web/a", target="acme/web/a", failure=verify, done=1, failed=2, total=3
    )


def test_on_a_terminal_a_bar_shows_moves_done_and_failures_with_each_failure_above_it() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)

    with ProgressDisplay(console) as show:
        tally = MoveTally(2, show)
        tally.started("agent/web/a", "acme/web/a")
        tally.finished("agent/web/a", "acme/web/a", "transfer", "transferred web/a to acme")
        tally.failed("agent/web/b", "acme/web/b", MoveFailure("transfer", "refused"))

    shown = screen.getvalue()
    assert "agent/web/b -> acme/web/b failed (transfer): refused" in shown
    final = shown.rsplit("\r", 1)[-1]
    assert "stacks" in final
    assert "2/2" in final
    assert "1 failed" in final
    assert "0:00:0" in final
    assert "transferred web/a" not in shown, "steps show in the bar, not as lines"
    assert "[1/2]" not in shown, "no plain lines on a terminal"


def test_on_a_terminal_each_phase_has_its_own_named_bar_and_total() -> None:
    """Environments copied first, then stacks, then the landing: three bars, each counting to
    its own total."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)

    with ProgressDisplay(console) as show:
        environments = MoveTally(1, show, "environments")
        environments.finished("agent/default/env", "acme/default/env", "write", "copied env")
        stacks = MoveTally(3, show)
        stacks.finished("agent/web/a", "acme/web/a", "transfer", "transferred web/a to acme")
        show(LandingStarted(source="agent", target="acme/landing/agent"))

    # The last frame drawn, cursor moves left out.
    final = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", screen.getvalue().rsplit("\r", 1)[-1])
    bars = [line for line in final.splitlines() if "failed" in line]
    assert [line.split()[0] for line in bars] == ["environments", "stacks", "landing"]
    assert "1/1" in bars[0]
    assert "1/3" in bars[1]
    assert "0/1" in bars[2]


def test_off_a_terminal_each_line_names_its_phase() -> None:
    screen = io.StringIO()
    console = Console(file=screen, width=200)

    with ProgressDisplay(console) as show:
        MoveTally(1, show, "environments").finished(
            "agent/default/env", "acme/default/env", "write", "copied default/env to acme"
        )
        MoveTally(2, show).started("agent/web/a", "acme/web/a")
        show(
            LandingFinished(
                source="agent",
                target="acme/l/agent",
                summary="acme/l/agent: 1 created",
                done=1,
                failed=0,
            )
        )

    assert screen.getvalue().splitlines() == [
        "environments [1/1] copied default/env to acme",
        "stacks [0/2] moving agent/web/a -> acme/web/a",
        "landing [1/1] acme/l/agent: 1 created",
    ]


def test_off_a_terminal_a_line_shows_a_message_as_the_service_wrote_it() -> None:
    """`:name:` and `[style]` in a message are text, not an emoji or markup."""
    screen = io.StringIO()
    refused = MoveFailure("transfer", "refused: [b]quota[/b] :rocket: reached")

    with ProgressDisplay(Console(file=screen, width=200)) as show:
        MoveTally(1, show).failed("agent/web/a", "acme/web/a", refused)

    assert screen.getvalue().splitlines() == [
        "stacks [1/1, 1 failed] agent/web/a -> acme/web/a failed (transfer): refused: [b]quota[/b]"
        " :rocket: reached"
    ]


def test_planning_shows_on_a_terminal_only() -> None:
    terminal = io.StringIO()
    with Planning(Console(file=terminal, force_terminal=True, color_system=None)):
        pass
    log = io.StringIO()
    with Planning(Console(file=log)):
        pass
    quiet = io.StringIO()
    with Planning(Console(file=quiet, force_terminal=True, quiet=True)):
        pass

    assert "planning… (reading the inventory)" in terminal.getvalue()
    assert log.getvalue() == quiet.getvalue() == ""
