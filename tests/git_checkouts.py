"""Checkouts of a user's code as the repository patch tests make them: files committed in a new
git repository, and a copy with a patch applied by git; git runs with no user's configuration."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path


def git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """git in `folder`, with no user's configuration."""
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args],
        cwd=folder,
        env={"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )


def write_files(folder: Path, files: Mapping[str, str]) -> None:
    """Each of `files` (path under `folder`: text) written, its folders made."""
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")


def commit_all(folder: Path) -> Path:
    """`folder` made a git repository with everything in it committed."""
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "programs")
    return folder


def applied(repo: Path, patch: str, tmp_path: Path) -> Path:
    """A copy of `repo` with `patch` applied by git, which checks it first."""
    copy = tmp_path / "applied"
    shutil.copytree(repo, copy, symlinks=True)
    patch_file = tmp_path / "references.patch"
    patch_file.write_text(patch, encoding="utf-8")
    git(copy, "apply", "--check", str(patch_file))
    git(copy, "apply", str(patch_file))
    return copy
