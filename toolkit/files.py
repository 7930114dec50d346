"""Files and folders only their owner can read, whatever the umask: the journal, run folders,
reports and maps may name stacks and orgs a user would not show to others."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` and any parents it needs, each created 0700; an existing one is left as it is."""
    missing = [parent for parent in [path, *path.parents] if not parent.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        os.chmod(folder, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` created empty (or kept) with mode 0600, ready to be written."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(descriptor)
    os.chmod(path, PRIVATE_FILE_MODE)
    return path


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only."""
    private_file(path)
    path.write_text(text, encoding="utf-8")
