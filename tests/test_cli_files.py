"""What the command line writes and reads on disk: checked before a run, private once written."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from agent_times import agent_entry
from click.testing import CliRunner, Result

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
        AGENT: {"stacks": [{"project": "web", "stack": "dev"}, {"project": "api", "stack": "dev"}]},
    },
}
"""A commit of this world moves both agent stacks once web/dev is renamed (`resolve`)."""
AGENT_STACKS = {("web", "dev"), ("api", "dev")}


@pytest.fixture(autouse=True)
def common_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def run(
    server: EmulatorServer, *args: str, runs_dir: Path, env: dict[str, str] | None = None
) -> Result:
    environment = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(runs_dir),
        **(env or {}),
    }
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- Written files are the user's alone ---------------------------------------------------------


def test_the_map_and_the_reports_are_written_0600_under_umask_022(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    runs = tmp_path / "runs"
    resolutions = tmp_path / "map.yaml"
    assert run(server, "resolve", *ORGS, "-o", str(resolutions), runs_dir=runs).exit_code == 0
    assert mode(resolutions) == 0o600
    previewed = tmp_path / "preview.html"
    result = run(
        server, "preview", *ORGS, "-r", str(resolutions), "-o", str(previewed), runs_dir=runs
    )
    assert result.exit_code == 0, result.stderr
    committed = tmp_path / "commit.json"
    result = run(
        server,
        "commit",
        *ORGS,
        "-r",
        str(resolutions),
        "--yes",
        "-o",
        str(committed),
        runs_dir=runs,
    )
    assert result.exit_code == 0, result.stderr
    status = tmp_path / "status.md"
    assert run(server, "status", "-o", str(status), runs_dir=runs).exit_code == 0
    for written in (previewed, committed, status):
        assert mode(written) == 0o600, written
        assert written.read_text(encoding="utf-8")


# --- --output is checked before anything is done ------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["preview"], ["resolve"], ["commit", "--yes"]],
    ids=lambda command: command[0],
)
@pytest.mark.parametrize(
    ("output", "words"),
    [("missing/report.json", "does not exist"), (".", "it is a folder")],
    ids=["missing-folder", "a-folder"],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_request(
    make_emulator: EmulatorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    output: str,
    words: str,
) -> None:
    server = make_emulator(WORLD)
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = [*command, *ORGS, "-o", output]
    if command[0] != "resolve":
        args += ["-r", str(resolutions)]
    result = run(server, *args, runs_dir=tmp_path / "runs")
    if output == ".":
        # click itself refuses an existing folder for a file option, as a usage error.
        assert result.exit_code == 2
        assert "is a directory" in result.stderr
    else:
        assert result.exit_code == 1
        assert f"error: cannot write {output}: the folder missing {words}." in result.stderr
    assert "Traceback" not in result.stderr
    assert server.requests.count() == 0
    assert server.state.stack_names(AGENT) == AGENT_STACKS
    assert not (tmp_path / "runs").exists()


# --- The runs folder ---------------------------------------------------------------------------


def test_a_runs_folder_that_is_a_file_stops_commit_and_status(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    runs = tmp_path / "runs"
    runs.write_text("not a folder\n", encoding="utf-8")
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    for command in (["commit", *ORGS, "-r", str(resolutions), "--yes"], ["status"]):
        result = run(server, *command, runs_dir=runs)
        assert result.exit_code == 1, command
        assert f"error: the runs folder {runs} is a file, not a folder." in result.stderr
        assert "PULUMI_CLAIM_RUNS_DIR" in result.stderr
        assert "Traceback" not in result.stderr
    assert server.requests.count() == 0
    assert server.state.stack_names(AGENT) == AGENT_STACKS
    assert runs.read_text(encoding="utf-8") == "not a folder\n"


# --- A resolution map that is no text ----------------------------------------------------------


def test_a_binary_resolution_map_is_a_clear_error(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    binary = tmp_path / "map.yaml"
    binary.write_bytes(b"stacks:\n  web/dev: \xff\xfe\x00\x01\n")
    result = run(server, "preview", *ORGS, "-r", str(binary), runs_dir=tmp_path / "runs")
    assert result.exit_code == 1
    assert "not UTF-8 text (byte 0xff at offset 19)" in result.stderr
    assert "Traceback" not in result.stderr
