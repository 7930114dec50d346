"""What is expensive to build and then only read (a deployed file:// backend, a written page),
built once for the whole test run rather than once a worker: pytest-xdist runs each worker in a
process of its own, where a session or module fixture runs again. The first worker that needs
it builds it under a lock; every other worker waits for that lock and reads the same folder."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

BUILT = ".built"
"""Written last into a folder whose build ended: a build that failed half-way is made again."""


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `name`, filled by `build(folder)` once in this test run, whichever worker
    asks first. Its contents are to be read or copied, never changed."""
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the run's folder, which holds every worker's own
    folder = root / f"built-{name}"
    with (root / f"built-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / BUILT).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / BUILT).touch()
    return folder
