"""The "References that break" section of a report, pure: one line for each name that stops
naming a moved stack or environment (`toolkit.references`), saying what holds it, the old and
the new name, who fixes it and the exact edit."""

from __future__ import annotations

from collections.abc import Iterable

from toolkit.references import BrokenReference, sorted_references

REFERENCES_TITLE = "References that break"

_VERBS = {
    "stack reference": "references stack",
    "stack outputs read": "reads the outputs of stack",
    "environment import": "imports environment",
}
_FIXERS = {"toolkit": "pulumi-claim rewrites its copy", "user": "you edit it"}


def reference_lines(references: Iterable[BrokenReference]) -> tuple[str, ...]:
    """One line a reference, in report order."""
    return tuple(reference_line(reference) for reference in sorted_references(references))


def reference_line(reference: BrokenReference) -> str:
    """e.g. `stack acme/app/prod references stack agent-abc/web/dev → acme/web/dev-agent;
    you edit it: StackReference name: "agent-abc/web/dev" → "acme/web/dev-agent"`."""
    return (
        f"{reference.holder_kind} {reference.holder} {_VERBS[reference.kind]} "
        f"{reference.old} → {reference.new}; {_FIXERS[reference.fixer]}: {reference.edit}"
    )
