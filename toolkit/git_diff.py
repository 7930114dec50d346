"""A unified diff in git's format (`diff --git a/... b/...`), renames included, that `git apply`
accepts; pure."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

NO_NEWLINE = "\\ No newline at end of file\n"


@dataclass(frozen=True)
class FileChange:
    """One text file of a repository as it is (`path`, `text`) and as it should be."""

    path: str
    text: str
    new_path: str
    new_text: str


def git_diff(changes: list[FileChange]) -> str:
    """The patch making every change, one file after another in the order given."""
    return "".join(_file_diff(change) for change in changes)


def _file_diff(change: FileChange) -> str:
    old, new = _quoted(f"a/{change.path}"), _quoted(f"b/{change.new_path}")
    header = [f"diff --git {old} {new}\n"]
    if change.new_path != change.path:
        header += [
            f"similarity index {_similarity(change.text, change.new_text)}%\n",
            f"rename from {_quoted(change.path)}\n",
            f"rename to {_quoted(change.new_path)}\n",
        ]
    if change.text == change.new_text:
        return "".join(header)
    lines = difflib.unified_diff(
        change.text.splitlines(keepends=True),
        change.new_text.splitlines(keepends=True),
        fromfile=old,
        tofile=new,
        n=3,
    )
    body = [line if line.endswith("\n") else line + "\n" + NO_NEWLINE for line in lines]
    # difflib ends its own header lines with "\n" already; the first two are `---` and `+++`.
    return "".join(header + body)


def _similarity(text: str, new_text: str) -> int:
    """git's similarity index of a rename, as a whole percentage of unchanged lines."""
    matcher = difflib.SequenceMatcher(
        None, text.splitlines(keepends=True), new_text.splitlines(keepends=True), autojunk=False
    )
    return int(matcher.ratio() * 100)


_C_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def _quoted(path: str) -> str:
    """`path` as git writes it in a patch: in double quotes, C-style escaped, when it holds a
    quote, a backslash or a control character; as it is otherwise."""
    if not any(char in _C_ESCAPES or ord(char) < 0x20 for char in path):
        return path
    escaped = "".join(
        _C_ESCAPES.get(char, f"\\{ord(char):03o}" if ord(char) < 0x20 else char) for char in path
    )
    return f'"{escaped}"'
