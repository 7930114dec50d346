"""How the review page and the Markdown summary group a report's rows: failures by what to do
about them, plain moves by project, advice given once for the entities it is for. Pure, like
the view (`toolkit.report.view`) that builds them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from toolkit.entities import KINDS
from toolkit.progress import UNKNOWN_OUTCOME
from toolkit.redaction import CODE_FIELD

if TYPE_CHECKING:
    from toolkit.report.view import FailureRow, InventoryRow

RETRY = "failed \N{EM DASH} run the same command again"
"""What a failure that running the same command again can settle is labelled as."""
CANNOT_MOVE = "cannot move"
ACCEPTED = "accepted"
"""How a report marks a failure the resolution map's `accept:` section acknowledges."""


@dataclass(frozen=True)
class AdviceGroup:
    """One piece of advice and the entities it is for: identical advice is given once."""

    advice: str
    names: tuple[str, ...] = ()
    """The entities it is for, when there are several (one is named in `advice` itself)."""


FailureGroupKind = Literal["retry", "unknown", "cannot-move", "accepted"]


@dataclass(frozen=True)
class FailureGroup:
    """The failures that call for the same response: run again, settle, or nothing to do."""

    kind: FailureGroupKind = field(metadata=CODE_FIELD)
    title: str
    rows: tuple[FailureRow, ...]


@dataclass(frozen=True)
class ProjectGroup:
    """The plain moves of one project (or of one kind without projects), summarised."""

    kind: str
    project: str
    rows: tuple[InventoryRow, ...]
    resources: int


_FAILURE_GROUP_TITLES: dict[FailureGroupKind, str] = {
    "retry": RETRY,
    "unknown": "outcome unknown \N{EM DASH} run the same command again to settle it",
    "cannot-move": CANNOT_MOVE,
    "accepted": f"{CANNOT_MOVE}, {ACCEPTED} in the resolution map",
}


def failure_groups(failures: Iterable[FailureRow]) -> tuple[FailureGroup, ...]:
    """The failures apart by what to do about them, each group in report order."""
    grouped: dict[FailureGroupKind, list[FailureRow]] = {kind: [] for kind in _FAILURE_GROUP_TITLES}
    for row in failures:
        grouped[_failure_group_kind(row)].append(row)
    return tuple(
        FailureGroup(kind, _FAILURE_GROUP_TITLES[kind], tuple(rows))
        for kind, rows in grouped.items()
        if rows
    )


def _failure_group_kind(row: FailureRow) -> FailureGroupKind:
    if row.failure == RETRY:
        return "unknown" if row.reason.startswith(UNKNOWN_OUTCOME) else "retry"
    return "accepted" if row.reason.startswith(f"{ACCEPTED}: ") else "cannot-move"


def project_groups(rows: Iterable[InventoryRow]) -> tuple[ProjectGroup, ...]:
    """Rows (in report order) per kind and project; kinds without projects form one group."""
    grouped: dict[tuple[str, str], list[InventoryRow]] = {}
    for row in rows:
        has_project = row.kind in _KINDS_WITH_PROJECTS
        project = row.name.split("/", 1)[0] if has_project else f"{row.kind}s"
        grouped.setdefault((row.kind, project), []).append(row)
    return tuple(
        ProjectGroup(
            kind,
            project,
            tuple(rows),
            sum(int(row.resources) for row in rows if row.resources.isdigit()),
        )
        for (kind, project), rows in grouped.items()
    )


_KINDS_WITH_PROJECTS = frozenset(
    kind.label for kind in KINDS if "project_name" in kind.identity_fields
)
