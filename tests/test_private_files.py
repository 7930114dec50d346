"""Files 0600 and folders 0700 whatever the umask, and the checks made before a run."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.errors import InvalidInputError
from toolkit.private_files import (
    check_output_path,
    check_runs_dir,
    make_private_dir,
    write_private_text,
)


@pytest.fixture(autouse=True)
def common_umask() -> Iterator[None]:
    """The usual umask, under which a plain `open` makes files readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_0600_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_private_text(path, "{}\n")
    assert mode(path) == 0o600
    assert path.read_text(encoding="utf-8") == "{}\n"


def test_an_existing_wider_file_is_narrowed_and_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("an old, longer report\n", encoding="utf-8")
    path.chmod(0o644)
    write_private_text(path, "né\n")
    assert mode(path) == 0o600
    assert path.read_bytes() == "né\n".encode()


def test_a_new_folder_and_its_new_parents_are_0700(tmp_path: Path) -> None:
    existing = tmp_path / "state"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    folder = existing / "pulumi-claim" / "runs"
    make_private_dir(folder)
    assert mode(folder) == 0o700
    assert mode(folder.parent) == 0o700
    assert mode(existing) == 0o755
    make_private_dir(folder)  # already there: fine
    assert mode(folder) == 0o700


def test_a_folder_where_a_file_is_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    with pytest.raises(NotADirectoryError):
        make_private_dir(tmp_path / "file")
    with pytest.raises(NotADirectoryError):
        make_private_dir(tmp_path / "file" / "runs")


def test_an_output_file_in_an_existing_folder_passes(tmp_path: Path) -> None:
    check_output_path(tmp_path / "new.json")
    (tmp_path / "old.json").write_text("", encoding="utf-8")
    check_output_path(tmp_path / "old.json")


@pytest.mark.parametrize(
    ("name", "words"),
    [("missing/report.json", "does not exist"), (".", "it is a folder")],
)
def test_an_output_file_that_cannot_be_written_is_refused(
    tmp_path: Path, name: str, words: str
) -> None:
    with pytest.raises(InvalidInputError, match=words):
        check_output_path(tmp_path / name)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_output_file_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InvalidInputError, match="not writable"):
            check_output_path(folder / "report.json")
    finally:
        folder.chmod(0o700)


def test_a_runs_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "runs"
    file.write_text("", encoding="utf-8")
    for writable in (True, False):
        with pytest.raises(InvalidInputError, match="is a file, not a folder"):
            check_runs_dir(file, writable=writable)
    with pytest.raises(InvalidInputError, match="cannot be made"):
        check_runs_dir(file / "deeper", writable=True)


def test_a_runs_folder_that_does_not_exist_yet_passes(tmp_path: Path) -> None:
    check_runs_dir(tmp_path / "state" / "runs", writable=True)
    assert not (tmp_path / "state").exists()
