"""References that break, pure: what names a moved stack or environment by its old name, and
what it must name instead.

A claim changes every moved stack's fully qualified name, and every renamed environment's. A
name written elsewhere resolves against the place of what holds it: a StackReference `name`
in a stack's program (`org/project/stack`, `org/stack` in the holder's project, or `stack` in
the holder's org and project), a stack read of an ESC environment (`project/stack`, always of
the environment's own org), an environment's import (`project/env`, or `env` in `default`).
A reference breaks when, once everything has moved, its name as written no longer resolves to
what it resolved to before. The environments the toolkit copies it rewrites itself
(`toolkit.strategies.environment_copy`); everything else is the user's to edit: program code is
never edited, and neither is a stack's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from pydantic.alias_generators import to_camel

from toolkit.esc_definitions import (
    DEFAULT_PROJECT,
    DefinitionError,
    EnvironmentName,
    ImportRef,
    imports_of,
    stack_reads_of,
)
from toolkit.stack_references import StackReferenceFound

if TYPE_CHECKING:
    from toolkit.name_changes import NameChanges

FullName = tuple[str, str, str]
"""(org, project, stack or environment)."""

ReferenceKind = Literal["stack reference", "stack outputs read", "environment import"]
Fixer = Literal["toolkit", "user"]
HolderKind = Literal["stack", "environment"]


@dataclass(frozen=True)
class BrokenReference:
    """One name, written in a stack's program or an environment's definition, that stops
    naming what it named once the plan has run."""

    holder_kind: HolderKind
    holder: str
    """What holds it, fully qualified where it is now: `org/project/stack`, `org/project/env`."""
    kind: ReferenceKind
    written: str
    """The name as written, e.g. `agent-abc/web/dev` or `web/dev`."""
    old: str
    """What it names now, fully qualified."""
    new: str
    """What that becomes, fully qualified."""
    rewrite: str | None
    """The name to write instead, from the holder's place once moved; None when none can
    name it from there (ESC reads stacks and imports environments of its own org only)."""
    fixer: Fixer
    """Who fixes it: the toolkit in the copy it makes, or the user."""
    edit: str
    """The exact edit, e.g. `StackReference name: "agent-abc/web/dev" → "acme/web/dev-agent"`."""

    def to_record(self) -> dict[str, Any]:
        """As the JSON report and the run's record hold it (camelCase keys)."""
        return {to_camel(key): value for key, value in asdict(self).items()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> BrokenReference:
        return cls(**{field.name: record[to_camel(field.name)] for field in fields(cls)})


@dataclass(frozen=True)
class MovedNames:
    """Where each moved stack and environment goes (old fully qualified name -> new), and
    which environments the toolkit copies (by their old name): those it rewrites."""

    stacks: Mapping[FullName, FullName]
    environments: Mapping[FullName, FullName]
    copied: frozenset[FullName] = frozenset()

    def environment_place(self, name: FullName) -> FullName:
        return self.environments.get(name, name)

    def stack_place(self, name: FullName) -> FullName:
        return self.stacks.get(name, name)


def moved_names(changes: NameChanges, copied: Iterable[EnvironmentName]) -> MovedNames:
    """The names a claim changes (`toolkit.name_changes`) fully qualified, with the source's
    environments the toolkit copies (`copied`)."""
    source, destination = changes.source_org, changes.destination_org
    return MovedNames(
        stacks={(source, *old): (destination, *new) for old, new in changes.stacks.items()},
        environments={
            (source, *old): (destination, *new) for old, new in changes.environments.items()
        },
        copied=frozenset((source, *name) for name in copied),
    )


def stack_read_renames(changes: NameChanges) -> dict[str, str]:
    """For an environment copied out of the source org: each `project/stack` it may read of a
    stack that moves under another `project/stack` -> the name its copy reads instead."""
    return {"/".join(old): "/".join(new) for old, new in changes.stacks.items() if old != new}


# --- Stack references in programs ----------------------------------------------------------


def resolve_stack_reference(written: str, org: str, project: str) -> FullName | None:
    """The stack `written` names from a stack of `org` and `project`, as the pulumi CLI's
    cloud backend reads it; None if it is no stack name."""
    parts = written.split("/")
    if not all(parts):
        return None
    match parts:
        case [stack]:
            return (org, project, stack)
        case [owner, stack]:
            return (owner, project, stack)
        case [owner, stack_project, stack]:
            return (owner, stack_project, stack)
        case _:
            return None


def stack_reference_name(target: FullName, org: str, project: str, written: str) -> str:
    """How a stack of `org` and `project` names `target`, in the form of `written` where
    that form can name it, fully qualified otherwise."""
    parts = len(written.split("/"))
    if parts == 1 and target[:2] == (org, project):
        return target[2]
    if parts == 2 and target[1] == project:
        return f"{target[0]}/{target[2]}"
    return "/".join(target)


def stack_reference_breaks(
    found: Iterable[StackReferenceFound], names: MovedNames
) -> list[BrokenReference]:
    """The StackReferences (`found` in stacks' latest states) that break: the program names
    the old name, so the user edits it (even when the holder itself moves)."""
    broken = []
    for reference in found:
        holder: FullName = (reference.org, reference.project, reference.stack)
        before = resolve_stack_reference(reference.name, reference.org, reference.project)
        if before is None:
            continue
        target = names.stack_place(before)
        org, project, _ = names.stack_place(holder)
        if resolve_stack_reference(reference.name, org, project) == target:
            continue
        rewrite = stack_reference_name(target, org, project, reference.name)
        broken.append(
            BrokenReference(
                holder_kind="stack",
                holder="/".join(holder),
                kind="stack reference",
                written=reference.name,
                old="/".join(before),
                new="/".join(target),
                rewrite=rewrite,
                fixer="user",
                edit=f'StackReference name: "{reference.name}" → "{rewrite}"',
            )
        )
    return broken


# --- Environments' stack reads and imports --------------------------------------------------


def environment_breaks(
    org: str,
    environment: EnvironmentName,
    definition: Mapping[str, Any],
    names: MovedNames,
) -> list[BrokenReference]:
    """The stack reads and imports of `org`'s `environment` (its `definition`) that break.

    ESC resolves both within the environment's own org: once the environment is where the
    plan puts it, `project/stack` and `project/env` name what is there. A copy the toolkit
    makes, it rewrites; one that cannot name its target from its new org (a stack left in
    another org), or an environment the toolkit does not write, the user edits.
    Raises `DefinitionError` for imports ESC cannot read.
    """
    holder: FullName = (org, *environment)
    place = names.environment_place(holder)
    fixer: Fixer = "toolkit" if holder in names.copied else "user"
    broken = []
    for written in stack_reads_of(definition):
        project, slash, stack = written.partition("/")
        if not (slash and project and stack) or "/" in stack:
            continue
        before = (org, project, stack)
        target = names.stack_place(before)
        if (place[0], project, stack) == target:
            continue
        rewrite = f"{target[1]}/{target[2]}" if target[0] == place[0] else None
        broken.append(
            _environment_break(
                holder, "stack outputs read", written, before, target, rewrite, fixer, "stack"
            )
        )
    for reference in imports_of(definition):
        before = (org, *reference.environment)
        target = names.environment_place(before)
        if (place[0], *reference.environment) == target:
            continue
        rewrite = None
        if target[0] == place[0]:
            bare = reference.bare and target[1] == DEFAULT_PROJECT
            rewrite = ImportRef(target[1], target[2], None, bare=bare).text()
        broken.append(
            _environment_break(
                holder,
                "environment import",
                reference.text(),
                before,
                target,
                rewrite,
                fixer,
                "imports",
            )
        )
    return broken


def environments_breaks(
    org: str,
    definitions: Mapping[EnvironmentName, Mapping[str, Any]],
    names: MovedNames,
) -> tuple[list[BrokenReference], list[str]]:
    """`environment_breaks` of each of `org`'s `definitions`, and a notice for each whose
    imports cannot be read (its references are not checked)."""
    broken: list[BrokenReference] = []
    notices: list[str] = []
    for environment, definition in sorted(definitions.items()):
        try:
            broken += environment_breaks(org, environment, definition, names)
        except DefinitionError as error:
            notices.append(
                f"environment {org}/{'/'.join(environment)}: its references to moved stacks "
                f"and environments are not checked: {error.message}"
            )
    return broken, notices


def _environment_break(
    holder: FullName,
    kind: ReferenceKind,
    written: str,
    before: FullName,
    target: FullName,
    rewrite: str | None,
    fixer: Fixer,
    key: str,
) -> BrokenReference:
    if rewrite is not None:
        edit = f"{key}: {written} → {key}: {rewrite}"
    else:
        what = "stacks" if kind == "stack outputs read" else "environments"
        edit = (
            f"{key}: {written} cannot name {'/'.join(target)}: ESC reads {what} of the "
            f"environment's own org only, so move the environment to {target[0]} or drop it"
        )
    return BrokenReference(
        holder_kind="environment",
        holder="/".join(holder),
        kind=kind,
        written=written,
        old="/".join(before),
        new="/".join(target),
        rewrite=rewrite,
        fixer=fixer if rewrite is not None else "user",
        edit=edit,
    )


def sorted_references(references: Iterable[BrokenReference]) -> list[BrokenReference]:
    """In the order the reports list them: by holder, then what is written."""
    return sorted(references, key=lambda r: (r.holder_kind, r.holder, r.kind, r.written))


def references_from_records(records: Sequence[Mapping[str, Any]]) -> list[BrokenReference]:
    return [BrokenReference.from_record(record) for record in records]
