"""A patch for the user's repository after a claim: the old names of moved stacks and
environments, found in a checkout and rewritten to the new ones, as a diff for the user to
review and apply; the checkout itself is only read.

What is rewritten, on name boundaries (a name is made of letters, digits, `_`, `.` and `-`,
its parts joined by `/`; a trailing `.` ends a sentence, not the name):
- a fully qualified old name, `org/project/stack` or `org/project/environment`, in any text
  file: to the new fully qualified name;
- an import of a renamed environment (`project/env`, or a bare `env` of the `default` project)
  in the `environment:` block of a stack's `Pulumi.<stack>.yaml`, outside its `values:`;
- the file `Pulumi.<stack>.yaml` of a stack whose name changes within its project, beside a
  `Pulumi.yaml` naming that project: renamed `Pulumi.<newstack>.yaml`.

A short name (`project/stack`, `org/stack`, a bare `stack`) may name the moved stack or another
one: it is never rewritten, only listed to check by hand when its line also names the stack's
project or says `StackReference`, `stack select` or `--stack`, and does not name the stack in
full already. An `org/stack` of the source org is always listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import InvalidInputError
from toolkit.esc_definitions import DEFAULT_PROJECT
from toolkit.git_diff import FileChange, git_diff
from toolkit.name_changes import NameChanges, ProjectName

MAX_FILE_BYTES = 1024 * 1024
"""Larger files are skipped: generated or data files, not what names a stack."""

NAME = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*")
"""A name and its parts as they stand in text: what a name's boundaries are."""

STACK_CONFIG_FILE = re.compile(r"Pulumi\.(?P<stack>[^/]+)\.(?:yaml|yml)")
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
PROJECT_NAME_LINE = re.compile(r"name:\s*['\"]?(?P<name>[A-Za-z0-9_.\-]+)['\"]?\s*(?:#.*)?")
SHORT_NAME_MARKERS = ("StackReference", "stack select", "--stack")
"""Words on a line that make a short name on it likely a stack's."""


@dataclass(frozen=True)
class CheckByHand:
    """A short name that may name a moved stack, which the patch leaves as it is."""

    path: str
    line: int
    name: str
    """As the line writes it."""
    old: str
    """The fully qualified old name it may stand for."""
    new: str

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.name!r} may name {self.old}, now {self.new}"


@dataclass(frozen=True)
class Skipped:
    """A file the scan did not read, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class RepositoryPatch:
    """What the scan of a checkout found: the diff that renames the old names, the files it
    changes, the short names to check by hand and the files it did not read."""

    diff: str
    changed: list[str]
    check_by_hand: list[CheckByHand]
    skipped: list[Skipped]


def repository_patch(repo: Path, changes: NameChanges) -> RepositoryPatch:
    """Scan the checkout at `repo` (not following symbolic links, skipping `.git`) for the old
    names of `changes`; nothing in it is written."""
    check_checkout(repo)
    files, skipped = _text_files(repo)
    project_dirs = _project_dirs(files)
    file_changes: list[FileChange] = []
    check_by_hand: list[CheckByHand] = []
    for path, text in files.items():
        new_text, to_check = _rewritten(path, text, changes)
        check_by_hand += to_check
        new_path = _renamed_config(path, project_dirs, changes)
        if new_path != path and new_path in files:
            # The new name is taken in the checkout: which file stands is the user's call.
            check_by_hand.append(_config_left(path, project_dirs, changes))
            new_path = path
        if new_text != text or new_path != path:
            file_changes.append(FileChange(path, text, new_path, new_text))
    return RepositoryPatch(
        diff=git_diff(file_changes),
        changed=[change.path for change in file_changes],
        check_by_hand=check_by_hand,
        skipped=skipped,
    )


# --- reading the checkout -------------------------------------------------------------------


def check_checkout(repo: Path) -> None:
    """Refuse a `repo` that is not a folder (a plain folder will do: git is not needed)."""
    if not repo.is_dir():
        problem = "does not exist" if not repo.exists() else "is not a folder"
        raise InvalidInputError(
            f"the repository {repo} {problem}.",
            hint="Pass --repo the folder of a checkout of your code.",
        )


def _text_files(repo: Path) -> tuple[dict[str, str], list[Skipped]]:
    """Every text file under `repo` by its path relative to it (`/`-separated, sorted), and
    the files skipped."""
    files: dict[str, str] = {}
    skipped: list[Skipped] = []
    for path in sorted(_walk(repo)):
        relative = path.relative_to(repo).as_posix()
        if path.is_symlink():
            skipped.append(Skipped(relative, "a symbolic link"))
            continue
        if not path.is_file():
            skipped.append(Skipped(relative, "not a regular file"))
            continue
        try:
            too_large = path.stat().st_size > MAX_FILE_BYTES
            data = b"" if too_large else path.read_bytes()
        except OSError as error:
            skipped.append(Skipped(relative, f"not readable ({error.strerror or error})"))
            continue
        if too_large:
            skipped.append(Skipped(relative, f"over {MAX_FILE_BYTES // 1024 // 1024} MiB"))
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(Skipped(relative, "binary (not UTF-8 text)"))
            continue
        if "\0" in text:
            skipped.append(Skipped(relative, "binary"))
            continue
        files[relative] = text
    return files, skipped


def _walk(repo: Path) -> Iterator[Path]:
    """Every entry under `repo` that is not a folder, `.git` left out; folders that are
    symbolic links are listed, not entered."""
    for folder, subfolders, names in os.walk(repo):
        base = Path(folder)
        for name in subfolders:
            if (base / name).is_symlink():
                yield base / name
        subfolders[:] = [name for name in subfolders if name != ".git"]
        yield from (base / name for name in names if name != ".git")


def _project_dirs(files: dict[str, str]) -> dict[str, str]:
    """Folder (relative, "" for the top) -> the project its `Pulumi.yaml` names."""
    projects: dict[str, str] = {}
    for path, text in files.items():
        folder, _, name = path.rpartition("/")
        if name not in PROJECT_FILES:
            continue
        for line in text.splitlines():
            if found := PROJECT_NAME_LINE.fullmatch(line.rstrip()):
                projects[folder] = found["name"]
                break
    return projects


# --- rewriting a file -----------------------------------------------------------------------


def _rewritten(path: str, text: str, changes: NameChanges) -> tuple[str, list[CheckByHand]]:
    """`text` with its old names rewritten, and the short names left to check by hand."""
    is_stack_config = _stack_config_name(path) is not None
    lines = text.splitlines(keepends=True)
    imports = _import_lines(lines) if is_stack_config else set()
    to_check: list[CheckByHand] = []
    for number, line in enumerate(lines):
        rewritten, left = _rewrite_line(line, changes, environment_imports=number in imports)
        lines[number] = rewritten
        named_in_full = {found.group().rstrip(".") for found in NAME.finditer(rewritten)}
        to_check += (
            CheckByHand(path, number + 1, name, old, new)
            for name, old, new in _short_names(left, changes)
            if new not in named_in_full
        )
    return "".join(lines), to_check


def _rewrite_line(line: str, changes: NameChanges, *, environment_imports: bool) -> tuple[str, str]:
    """`line` with its fully qualified old names (and, `environment_imports`, its imports of
    renamed environments) rewritten; and the line with those names blanked out, for the
    search of short names."""
    pieces: list[str] = []
    blanked: list[str] = []
    end = 0
    for found in NAME.finditer(line):
        name = found.group().rstrip(".")
        new = _full_name(name, changes)
        if new is None and environment_imports:
            new = _renamed_import(name, changes)
        if new is None:
            continue
        start = found.start()
        pieces += [line[end:start], new]
        blanked += [line[end:start], " " * len(name)]
        end = start + len(name)
    pieces.append(line[end:])
    blanked.append(line[end:])
    return "".join(pieces), "".join(blanked)


def _full_name(name: str, changes: NameChanges) -> str | None:
    """The new name of `name` when it is a moved stack's or environment's fully qualified
    old name."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != changes.source_org:
        return None
    old = (parts[1], parts[2])
    if old in changes.stacks:
        return changes.new_stack(old)
    if old in changes.environments:
        return changes.new_environment(old)
    return None


def _renamed_import(name: str, changes: NameChanges) -> str | None:
    """The new import of a renamed environment that `name` imports: `project/env`, or a bare
    `env` of the `default` project (the bare form kept when its new home is `default` too)."""
    project, _, environment = name.rpartition("/")
    old = (project or DEFAULT_PROJECT, environment)
    renamed = changes.renamed_environments
    if old not in renamed:
        return None
    new_project, new_environment = renamed[old]
    if not project and new_project == DEFAULT_PROJECT:
        return new_environment
    return f"{new_project}/{new_environment}"


def _import_lines(lines: list[str]) -> set[int]:
    """The lines of a `Pulumi.<stack>.yaml` that may hold environment imports: its top-level
    `environment:` block (a list of imports, or an environment definition whose `imports:`
    list them), but not the definition's `values:`."""
    found: set[int] = set()
    inside = False
    values_indent: int | None = None
    for number, line in enumerate(lines):
        content = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 0 and content and not content.startswith(("#", "- ")):
            inside = line.startswith("environment:")
            values_indent = None
            if inside:
                found.add(number)
            continue
        if not inside or not content:
            continue
        if values_indent is not None and indent > values_indent:
            continue
        values_indent = indent if content.startswith("values:") else None
        if values_indent is None:
            found.add(number)
    return found


def _short_names(line: str, changes: NameChanges) -> Iterator[tuple[str, str, str]]:
    """Each short name on `line` that may stand for a moved stack (`name`, old, new): an
    `org/stack` of the source org always; a `project/stack` or bare `stack` only when the line
    also names the project or holds a word of `SHORT_NAME_MARKERS`."""
    names = [found.group().rstrip(".") for found in NAME.finditer(line)]
    marked = any(marker in line for marker in SHORT_NAME_MARKERS)
    for name in names:
        of_source_org = "/" in name and name.split("/")[0] == changes.source_org
        for old in _stacks_named(name, changes):
            if of_source_org or marked or old[0] in names:
                yield name, f"{changes.source_org}/{'/'.join(old)}", changes.new_stack(old)


def _stacks_named(name: str, changes: NameChanges) -> list[ProjectName]:
    """The moved stacks a short `name` may stand for."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == changes.source_org:
        return changes.stacks_by_name.get(parts[1], [])
    if len(parts) == 2:
        return [(parts[0], parts[1])] if (parts[0], parts[1]) in changes.stacks else []
    if len(parts) == 1:
        return changes.stacks_by_name.get(name, [])
    return []


# --- renaming stack configuration files -----------------------------------------------------


def _stack_config_name(path: str) -> str | None:
    """The stack a `Pulumi.<stack>.yaml` is the configuration of, else None."""
    found = STACK_CONFIG_FILE.fullmatch(path.rpartition("/")[2])
    return found["stack"] if found else None


def _config_left(path: str, project_dirs: dict[str, str], changes: NameChanges) -> CheckByHand:
    """A `Pulumi.<stack>.yaml` left under its old name, its new name being taken."""
    folder, _, file_name = path.rpartition("/")
    old = (project_dirs[folder], str(_stack_config_name(path)))
    return CheckByHand(
        path, 1, file_name, f"{changes.source_org}/{'/'.join(old)}", changes.new_stack(old)
    )


def _renamed_config(path: str, project_dirs: dict[str, str], changes: NameChanges) -> str:
    """The path of `path` after the claim: a `Pulumi.<stack>.yaml` beside the `Pulumi.yaml` of
    a project whose stack is renamed within it takes the new stack's name."""
    stack = _stack_config_name(path)
    folder, _, file_name = path.rpartition("/")
    project = project_dirs.get(folder)
    if stack is None or project is None or (project, stack) not in changes.stacks:
        return path
    new_project, new_stack = changes.stacks[(project, stack)]
    if new_project != project or new_stack == stack:
        return path
    suffix = file_name.rpartition(".")[2]
    return f"{folder}/Pulumi.{new_stack}.{suffix}" if folder else f"Pulumi.{new_stack}.{suffix}"
