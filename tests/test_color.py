"""`--color auto|always|never` and NO_COLOR: `never` (or NO_COLOR set) writes no ANSI code
anywhere, a terminal included (the table, the progress, the errors); `always` colours a pipe
too; `auto` colours a terminal only. On a real pseudo-terminal for the terminal cases, against
the emulator over HTTP."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli

if TYPE_CHECKING:
    from conftest import EmulatorFactory

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
WORLD = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
        AGENT: {"stacks": [{"project": "web", "stack": "dev"}, {"project": "api", "stack": "dev"}]},
    },
}
"""One stack to move and one whose name acme has taken: the table shows green and red."""
PREVIEW = ("preview", "--from", AGENT, "--to", "acme", "--format", "table", "--no-landing")
TITLE = f"pulumi-claim preview: {AGENT} → acme"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


def environment(server: EmulatorServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM")
    }
    return {
        **env,
        "TERM": "xterm-256color",
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        **extra,
    }


def on_terminal(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str]:
    """`pulumi-claim ARGS` with stdin, stdout and stderr on one pseudo-terminal of 120
    columns: its exit code and everything it wrote there (line ends as the terminal's)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program ended and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(), b"".join(chunks).decode()


def on_pipe(args: tuple[str, ...], env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def without_time(text: str) -> list[str]:
    """The lines of `text` but the one saying when the report was made."""
    return [line for line in text.splitlines() if not line.startswith("Generated")]


def test_auto_colours_a_terminal(server: EmulatorServer, tmp_path: Path) -> None:
    code, seen = on_terminal(PREVIEW, environment(server, tmp_path))

    assert code == 3, seen
    # After the planning spinner (stderr is the same terminal), the report's bold title.
    assert "planning… (reading the inventory)" in seen
    assert f"\x1b[1m{TITLE}\x1b[0m" in seen
    assert "\x1b[32mmove" in seen


@pytest.mark.parametrize(
    ("option", "variables"),
    [((), {"NO_COLOR": "1"}), (("--color", "never"), {}), (("--color=never",), {"NO_COLOR": ""})],
)
def test_never_or_no_color_writes_no_ansi_code_on_a_terminal(
    option: tuple[str, ...], variables: dict[str, str], server: EmulatorServer, tmp_path: Path
) -> None:
    code, seen = on_terminal((*PREVIEW, *option), environment(server, tmp_path, **variables))

    assert code == 3, seen
    assert "\x1b" not in seen
    lines = [line.rstrip() for line in seen.splitlines()]
    assert lines[0] == TITLE
    assert "stack   api/dev           0   —             move" in lines
    assert "stack   web/dev           0   —             blocked: name taken in acme" in lines


def test_never_leaves_the_progress_and_the_errors_plain(
    server: EmulatorServer, tmp_path: Path
) -> None:
    """A commit on a terminal: its progress is one line per step (a live bar moves the
    cursor with ANSI codes); an error is its plain lines."""
    env = environment(server, tmp_path, NO_COLOR="1")
    commit = ("commit", "--from", AGENT, "--to", "acme", "--yes", "--no-landing")
    resolutions = ("--resolutions", str(write_map(tmp_path)), "--format", "json")
    code, seen = on_terminal((*commit, *resolutions), env)
    assert code == 0, seen
    assert "\x1b" not in seen
    lines = seen.splitlines()
    assert "stacks [0/2] moving agent-abc123/web/dev -> acme/web/dev-agent" in lines
    assert any(line.endswith("] transferred api/dev to acme") for line in lines)

    code, seen = on_terminal(("preview", "--from", AGENT, "--to", "acmee"), env)
    assert code == 1
    assert seen.splitlines() == [
        "error: --to acmee: alice has no role in acmee (did you mean acme?)",
        f"The orgs alice has a role in: acme, {AGENT}. Name one of them, or use the token of a "
        "member of acmee.",
    ]


def write_map(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    return path


def test_always_colours_a_pipe_with_the_same_words(server: EmulatorServer, tmp_path: Path) -> None:
    env = environment(server, tmp_path)
    coloured = on_pipe((*PREVIEW, "--color", "always"), env)
    plain = on_pipe((*PREVIEW, "--color", "never"), env)

    assert coloured.exit_code == plain.exit_code == 3
    assert coloured.stdout.splitlines()[0] == f"\x1b[1m{TITLE}\x1b[0m"
    assert "\x1b[32mmove" in coloured.stdout
    assert "\x1b" not in plain.stdout
    assert without_time(ANSI.sub("", coloured.stdout)) == without_time(plain.stdout)


def test_auto_leaves_a_pipe_plain_and_always_wins_over_no_color(
    server: EmulatorServer, tmp_path: Path
) -> None:
    auto = on_pipe(PREVIEW, environment(server, tmp_path))
    forced = on_pipe((*PREVIEW, "--color", "always"), environment(server, tmp_path, NO_COLOR="1"))
    after = on_pipe(
        ("--color", "never", *PREVIEW, "--color", "always"), environment(server, tmp_path)
    )

    assert auto.stdout.splitlines()[0] == TITLE
    assert "\x1b" not in auto.stdout + auto.stderr
    assert forced.stdout.splitlines()[0] == f"\x1b[1m{TITLE}\x1b[0m"
    assert after.stdout.splitlines()[0] == f"\x1b[1m{TITLE}\x1b[0m"


def test_an_unknown_color_is_a_usage_error(server: EmulatorServer, tmp_path: Path) -> None:
    result = on_pipe((*PREVIEW, "--color", "sometimes"), environment(server, tmp_path))

    assert result.exit_code == 2
    assert (
        "Error: Invalid value for '--color': 'sometimes' is not one of 'auto', 'always', "
        "'never'." in result.stderr
    )
