"""Names and messages from the service, a map file or a job file reach no one's terminal with
their control characters: every output format shows them escaped, JSON stays JSON with the
names intact, and a name that breaks the naming rule comes with a warning."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from rich.console import Console
from terminals import run_on_terminal

from toolkit.cli import cli
from toolkit.display import printable
from toolkit.emulator.faults import FaultRule
from toolkit.emulator.server import EmulatorServer
from toolkit.progress import MoveFailure, MoveTally
from toolkit.progress_display import ProgressDisplay

if TYPE_CHECKING:
    from conftest import EmulatorFactory

CLEAR_SCREEN = "\x1b[2J"
WINDOW_TITLE = "\x1b]0;pwned\x07"
C1_COLOUR = "\x9b31m"
"""A C1 control sequence introducer: some terminals take it as ESC [."""
REORDER = "\u202e"
"""A right-to-left override: what follows it is shown backwards."""

QA = ("web", f"qa{CLEAR_SCREEN}")
UI = ("web", "ui[bold]")
"""rich markup in a name: text to show, never a style."""
PROD = (f"api{WINDOW_TITLE}", f"prod{C1_COLOUR}")
SECRETS = ("default", f"secrets{REORDER}{CLEAR_SCREEN}")
HOSTILE_MESSAGE = f"refused {CLEAR_SCREEN}{WINDOW_TITLE}{C1_COLOUR}{REORDER}by policy"

_RAW_CONTROL = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
"""What no output may hold, but for the line break."""


def world() -> dict[str, Any]:
    """alice administers both orgs; src's stacks and environment are named with control
    characters, as a service holding legacy names (or a hostile one) lists them."""
    return {
        "service": {"legacyNames": True},
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "src": "admin"}}
        ],
        "orgs": {
            "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
            "src": {
                "stacks": [
                    {"project": QA[0], "stack": QA[1]},
                    {"project": PROD[0], "stack": PROD[1]},
                    {"project": UI[0], "stack": UI[1]},
                ],
                "environments": [{"project": SECRETS[0], "name": SECRETS[1]}],
            },
        },
    }


def raw_controls(text: str) -> list[str]:
    return _RAW_CONTROL.findall(text)


def assert_shown_escaped(text: str) -> None:
    """No raw control character in `text`, and the hostile names are there, escaped."""
    assert raw_controls(text) == [], text
    assert printable(f"{QA[0]}/{QA[1]}") in text.replace("\\\\", "\\").replace("\\[", "[")


def invoke(server: EmulatorServer, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


ORGS = ("--from", "src", "--to", "acme")


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_every_human_report_format_shows_foreign_names_escaped_with_a_warning(
    make_emulator: EmulatorFactory, tmp_path: Path, fmt: str
) -> None:
    server = make_emulator(world())

    code, stdout, stderr = invoke(server, tmp_path, "preview", *ORGS, "--format", fmt)

    assert code == 4, stderr  # the environment cannot move with transfer
    assert_shown_escaped(stdout + stderr)
    assert stdout.count("breaks the naming rule") == 4


def test_the_json_report_stays_json_with_the_names_intact_and_no_raw_control_character(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())

    code, stdout, _ = invoke(server, tmp_path, "preview", *ORGS, "--format", "json")

    assert code == 4
    assert raw_controls(stdout) == []
    document = json.loads(stdout)
    names = {
        (e["projectName"], e.get("stackName") or e["environmentName"]) for e in document["entities"]
    }
    assert names == {QA, PROD, UI, SECRETS}


def test_a_commit_shows_its_progress_lines_and_json_log_lines_without_control_characters(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """The plain progress lines (not a terminal), then, on a second world, the JSON lines."""
    plain = make_emulator(world())
    code, stdout, stderr = invoke(
        plain, tmp_path / "plain", "commit", *ORGS, "--yes", "--format", "markdown"
    )
    assert code == 4, stderr  # the environment cannot move with transfer
    assert "[3/3] transferred" in stderr
    assert_shown_escaped(stdout + stderr)
    assert plain.state.stack_names("acme") >= {QA, PROD, UI}

    logged = make_emulator(world())
    code, stdout, stderr = invoke(
        logged, tmp_path / "json", "commit", *ORGS, "--yes", "--log-format", "json"
    )
    assert code == 4, stderr
    assert raw_controls(stdout + stderr) == []
    records = [json.loads(line) for line in stdout.splitlines()]
    moved = {record["source"] for record in records if record["event"] == "move-finished"}
    assert moved == {f"src/{name[0]}/{name[1]}" for name in (QA, PROD, UI)}

    code, stdout, stderr = invoke(logged, tmp_path / "json", "status", "--format", "markdown")
    assert_shown_escaped(stdout + stderr)


def test_the_service_s_error_message_is_shown_escaped_in_the_error_line_and_the_log_lines(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """A real process with -vv: the toolkit's log records, httpx's, and the error line."""
    server = make_emulator(world())
    server.faults.arm(
        FaultRule(status=400, method="GET", path="/api/user", message=HOSTILE_MESSAGE)
    )
    env = {
        **os.environ,
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }

    ran = subprocess.run(
        [sys.executable, "-m", "toolkit", "-vv", "preview", *ORGS],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert ran.returncode == 1
    assert raw_controls(ran.stdout + ran.stderr) == []
    assert f"error: GET /api/user failed with 400: {printable(HOSTILE_MESSAGE)}" in ran.stderr


def test_a_map_file_s_names_are_shown_escaped_in_the_refusal(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    resolutions = tmp_path / "map.json"
    resolutions.write_text(
        json.dumps({"stacks": {f"{QA[0]}/{QA[1]}": f"web/qa{WINDOW_TITLE}", "web/x": "web/y"}}),
        encoding="utf-8",
    )

    code, stdout, stderr = invoke(server, tmp_path, "preview", *ORGS, "-r", str(resolutions))

    assert code == 1
    assert "the resolution map was refused (2 problem(s))" in stderr
    assert_shown_escaped(stdout + stderr)


def test_a_job_s_text_log_and_json_log_show_foreign_names_escaped(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    job = tmp_path / "job.json"
    claim = {"name": f"nightly{CLEAR_SCREEN}", "from": "src", "to": "acme", "strategy": "transfer"}
    job.write_text(json.dumps({"apiUrl": server.url, "claims": [claim]}), encoding="utf-8")

    code, stdout, stderr = invoke(server, tmp_path, "job", "check", str(job))
    assert code == 0, stderr
    assert raw_controls(stdout + stderr) == []
    assert printable(claim["name"]) in stdout

    code, stdout, stderr = invoke(server, tmp_path, "job", "run", str(job))
    assert code == 4, stderr
    assert_shown_escaped(stdout + stderr)
    assert printable(claim["name"]) in stdout


def test_a_terminal_gets_the_table_and_the_progress_bar_without_foreign_control_sequences(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """`commit` on a real pseudo-terminal: the progress bar and the coloured table by rich.
    Only rich's own sequences (colours, line erase, cursor up and visibility) may remain."""
    server = make_emulator(world())
    env = {
        **os.environ,
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        "TERM": "xterm-256color",
        "COLUMNS": "160",
    }

    code, shown = run_on_terminal([sys.executable, "-m", "toolkit", "commit", *ORGS, "--yes"], env)

    assert code == 4, shown
    assert "Inventory" in shown and "breaks the naming rule" in shown
    assert "Traceback" not in shown and "ui[bold]" in shown
    for sequence in (CLEAR_SCREEN, "\x1b]", "\x07", "\x9b", REORDER):
        assert sequence not in shown
    rich_own = re.sub(r"\x1b\[[0-9;?]*[ABCDGKhlm]|\r", "", shown)
    assert raw_controls(rich_own) == []
    assert printable(QA[1]) in rich_own


def test_the_progress_bar_shows_a_stack_s_name_as_text_never_as_markup_or_control() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system="truecolor")
    target = f"acme/{UI[0]}/{UI[1]}{CLEAR_SCREEN}"

    with ProgressDisplay(console) as show:
        tally = MoveTally(1, show)
        tally.started(f"src/{UI[0]}/{UI[1]}", target)
        tally.failed(f"src/{UI[0]}/{UI[1]}", target, MoveFailure("transfer", HOSTILE_MESSAGE))

    final = screen.getvalue().rsplit("\r", 1)[-1]
    assert f"{printable(target)}" in re.sub(r"\x1b\[[0-9;?]*[ABCDGKhlm]", "", final)
    assert CLEAR_SCREEN not in screen.getvalue() and "\x9b" not in screen.getvalue()


def test_printable_escapes_c0_c1_and_reordering_characters_and_keeps_the_rest() -> None:
    assert printable(HOSTILE_MESSAGE) == (
        "refused \\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202eby policy"
    )
    assert printable("a\tb\r\nc") == "a\\tb\\r\\nc"
    assert printable("error: x\r\nhint", keep_newlines=True) == "error: x\\r\nhint"
    assert printable("plain → text, naïve") == "plain → text, naïve"
