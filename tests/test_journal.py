"""The journal and the runs directory: private files, readable errors, and what status says."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_cli import ORGS, RESOLVES_BOTH, claim_world, snapshot, write_map

from toolkit.journal import JOURNAL_FILE, read_run

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would let everyone read new files, to show the journal does not care."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_runs_directory_and_journal_are_readable_by_their_owner_only(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    open_umask: None,
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")
    # Every stack moves; the agent's environment and Insights account are reported (exit 4).
    assert result.exit_code == 4, result.stderr

    (run_dir,) = [p for p in runs_dir.iterdir() if (p / JOURNAL_FILE).exists()]
    folders = [runs_dir, run_dir, runs_dir / "keys", runs_dir / "locks"]
    assert [oct(mode(folder)) for folder in folders] == [oct(0o700)] * len(folders)
    files = [p for p in runs_dir.rglob("*") if p.is_file()]
    assert files and {oct(mode(p)) for p in files} == {oct(0o600)}, files


def test_a_damaged_journal_is_a_clear_error(
    make_emulator: EmulatorFactory, run_cli: RunCli, runs_dir: Path, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")
    (journal,) = runs_dir.glob(f"*/{JOURNAL_FILE}")
    journal.write_bytes(b"\x00not a database\xff" * 64)

    result = run_cli(server, "status")

    assert result.exit_code == 1
    assert f"the journal {journal} cannot be read" in result.stderr
    assert f"Move {journal.parent} out of the runs directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_runs_directory_that_is_a_file_is_refused_before_anything_changes(
    make_emulator: EmulatorFactory, run_cli: RunCli, runs_dir: Path, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    runs_dir.write_text("not a folder", encoding="utf-8")

    for command in (
        ["commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes"],
        ["status"],
    ):
        result = run_cli(server, *command)
        assert result.exit_code == 1, command
        assert f"the runs folder {runs_dir} is a file, not a folder" in result.stderr
        assert "Traceback" not in result.stderr
    assert snapshot(server) == before


def test_status_of_a_finished_run_counts_its_calls(
    make_emulator: EmulatorFactory, run_cli: RunCli, runs_dir: Path, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")

    result = run_cli(server, "status", "--format", "markdown")

    assert result.exit_code == 4, "as the run: its environment and Insights account stayed"
    record = read_run(runs_dir)
    assert [step.action for step in record.steps].count("transfer") == 4
    assert "calls: 6 done" in result.stdout
