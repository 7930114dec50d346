"""Files and folders the toolkit writes for its user alone, and the checks made before a run.

Reports, resolution maps and the journal name orgs and stacks, and say what failed and why:
nothing another account on the machine should read. Files are made 0600 and folders 0700
whatever the umask. A path the toolkit will write at the end of a run is checked before the run
starts, so that a commit never does its work and then fails to say what it did.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from toolkit.errors import InvalidInputError, RunsFolderError

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "RUNS_DIR_FULL_HINT",
    "check_output_path",
    "check_runs_dir",
    "make_private_dir",
    "make_private_file",
    "runs_dir_unwritable",
    "write_failure",
    "write_private_text",
]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

RUNS_DIR_HINT = (
    "Set PULUMI_CLAIM_RUNS_DIR to a folder (it is made if missing), or unset it for the default."
)

RUNS_DIR_FULL_HINT = (
    "Free space in {folder} (it is full, or its disk failed: `df {folder}`) and run the same "
    "command again"
)


def runs_dir_unwritable(runs_dir: Path, cause: BaseException) -> RunsFolderError:
    """The error of a run that could not write its runs folder before its first call."""
    return RunsFolderError(
        f"the runs folder {runs_dir} could not be written ({write_failure(cause)}). Nothing was "
        "lost: the run stopped before its first call, and nothing was changed.",
        hint=RUNS_DIR_FULL_HINT.format(folder=runs_dir) + ".",
    )


def write_failure(cause: BaseException) -> str:
    """What went wrong, without the file name an `OSError` repeats."""
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__


def write_private_text(path: Path, text: str) -> None:
    """Write `text` as UTF-8 to `path`, readable and writable by the user only.

    A new file is created 0600; an existing regular file is narrowed to 0600 before anything
    is written into it. A device or pipe (`/dev/stdout`) is written as it is.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with open(descriptor, "w", encoding="utf-8") as file:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.fchmod(descriptor, PRIVATE_FILE_MODE)
        file.write(text)


def make_private_file(path: Path) -> Path:
    """`path` created empty 0600 (an existing one kept, narrowed to 0600), to be written by
    something that opens it itself (SQLite)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    return path


def make_private_dir(path: Path) -> None:
    """Make the folder `path` and each missing parent, every one it makes 0700 whatever the
    umask; folders that exist already are left as they are.

    Raises `NotADirectoryError` when `path` or a parent of it is a file.
    """
    missing: list[Path] = []
    existing = path
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made meanwhile by someone else: theirs, left as it is
        os.chmod(folder, PRIVATE_DIR_MODE)


def check_output_path(path: Path) -> None:
    """Refuse a file that could not be written: `path` is a folder, or its folder is missing
    or not writable, or it exists and is not writable."""
    hint = "Name a file in an existing folder you can write to."
    if path.is_dir():
        raise InvalidInputError(f"cannot write {path}: it is a folder.", hint=hint)
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(
            f"cannot write {path}: the folder {folder} does not exist.", hint=hint
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"cannot write {path}: the folder {folder} is not writable.", hint=hint
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidInputError(f"cannot write {path}: the file is not writable.", hint=hint)


def check_runs_dir(path: Path, *, writable: bool) -> None:
    """Refuse a runs folder that cannot be one: `path`, or the nearest part of it that exists,
    is not a folder; or, `writable` (a commit records a run there), cannot be written."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = (
            "is a file, not a folder"
            if existing == path
            else f"cannot be made: {existing} is a file"
        )
        raise InvalidInputError(f"the runs folder {path} {problem}.", hint=RUNS_DIR_HINT)
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"the runs folder {path} cannot be written ({existing} is not writable).",
            hint=RUNS_DIR_HINT,
        )
