"""The report as Markdown (GFM): every text plain, escaped so that it starts no markup, no HTML
and no table cell or list of its own."""

from __future__ import annotations

import re

from toolkit.report.references import REFERENCES_TITLE
from toolkit.report.view import InventoryRow, ReportView

_MARKDOWN_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": " ", "\n": " "}
_MARKDOWN_PUNCTUATION = frozenset("\\`*_[]|~#$")
_BLOCK_START = re.compile(r"^(\d+)([.)])|^([-+=])")


def _markdown_text(text: str) -> str:
    """Plain text that stays plain inside a GFM table cell: no markup, no HTML, no cell break."""
    return "".join(
        _MARKDOWN_ENTITIES.get(char) or (f"\\{char}" if char in _MARKDOWN_PUNCTUATION else char)
        for char in text
    )


def markdown_list_item(text: str) -> str:
    """A bullet holding `text` as plain text; a leading "1." or "-" would start a nested list."""
    escaped = _markdown_text(text)
    return "- " + _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", escaped)


def markdown_table(headings: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_markdown_text(cell) for cell in row) + " |" for row in rows]
    return lines


MARKDOWN_LIMIT = 60_000
"""Characters a Markdown report stays under: GitHub's comments hold 65,536, and a bot may add
a line of its own."""

FULL_REPORT = "the full report: `--format html` (one page) or `--format json`"


def render_markdown(view: ReportView, *, limit: int = MARKDOWN_LIMIT) -> str:
    """Every entity in a table; past `limit` characters, a summary (`_summary`)."""
    full = _full_report(view)
    return full if len(full) < limit else _summary(view, limit)


def _head(view: ReportView) -> list[str]:
    lines = [f"# {_markdown_text(view.title)}", ""]
    lines += [f"- **{label}:** {_markdown_text(value)}" for label, value in view.header]
    lines += ["", f"**Outcome:** {_markdown_text(view.outcome)}", ""]
    lines += markdown_table(
        [count.label for count in view.counts],
        ["---:"] * len(view.counts),
        [[str(count.value) for count in view.counts]],
    )
    return lines


def _full_report(view: ReportView) -> str:
    lines = _head(view)
    lines += ["", "## Inventory", ""]
    if view.inventory:
        lines += markdown_table(
            _INVENTORY_HEADINGS,
            _INVENTORY_ALIGN,
            [_inventory_cells(row) for row in view.inventory],
        )
    else:
        lines.append("No entities.")

    lines += ["", "## Conflicts", ""]
    if view.conflicts:
        lines += markdown_table(
            ["Kind", "Name", "Name taken in destination"],
            ["---", "---", "---"],
            [[c.kind, c.name, c.taken_name] for c in view.conflicts],
        )
        lines += ["", f"> {view.conflict_hint}"]
    else:
        lines.append("None.")

    lines += ["", "## Failures", ""]
    if view.failures:
        lines += markdown_table(
            ["Kind", "Name", "Failure", "Reason"],
            ["---", "---", "---", "---"],
            [[f.kind, f.name, f.failure, f.reason] for f in view.failures],
        )
    else:
        lines.append("None.")

    if view.next_steps:
        lines += ["", "## What to do", ""]
        lines += [markdown_list_item(step) for step in view.next_steps]

    if view.references:
        lines += ["", f"## {REFERENCES_TITLE}", ""]
        lines += [markdown_list_item(line) for line in view.references]

    if view.notices:
        lines += ["", "## Notices", ""]
        lines += [markdown_list_item(notice) for notice in view.notices]
    return "\n".join(lines) + "\n"


_INVENTORY_HEADINGS = ["Kind", "Name", "Resources", "Last update", "Action"]
_INVENTORY_ALIGN = ["---", "---", "---:", "---", "---"]


def _inventory_cells(row: InventoryRow) -> list[str]:
    return [row.kind, row.name, row.resources, row.last_update, row.action]


def _summary(view: ReportView, limit: int) -> str:
    """A report for a pull request or a chat: the counts per project, every entity that needs
    a decision (conflicts, failures, renames), the advice given once per group and the
    references that break; the plain moves collapsed in `<details>`, as many as fit. Whatever
    does not fit under `limit` is counted and the full report named."""
    # What is kept whatever the size, then the decisions, then the plain moves: each part gets
    # what the parts before it left.
    advice = ["", "## What to do", ""] if view.advice else []
    advice += [markdown_list_item(piece.advice) for piece in view.advice]
    projects = ["", "## Moves per project", ""]
    projects += markdown_table(
        ["Project", "Kind", "Entities", "Resources"],
        ["---", "---", "---:", "---:"],
        [[p.project, p.kind, str(len(p.rows)), str(p.resources)] for p in view.projects],
    )
    budget = _Budget(limit - len("\n".join([*_head(view), *advice, *projects])) - 1_000)

    decisions = ["", "## Needs a decision"]
    if view.conflicts:
        decisions += ["", f"### Conflicts ({len(view.conflicts)})", ""]
        decisions += budget.table(
            ["Kind", "Name", "Blocked because"],
            [[c.kind, c.name, c.reason] for c in view.conflicts],
            "conflict(s)",
        )
        decisions += ["", f"> {view.conflict_hint}"]
    for group in view.failure_groups:
        decisions += ["", f"### Failures: {_markdown_text(group.title)} ({len(group.rows)})", ""]
        decisions += budget.table(
            ["Kind", "Name", "Reason"],
            [[f.kind, f.name, f.reason] for f in group.rows],
            "failure(s)",
        )
    if view.renames:
        decisions += ["", f"### Renames ({len(view.renames)})", ""]
        decisions += budget.table(
            ["Kind", "Name", "Action"],
            [[r.kind, r.name, r.action] for r in view.renames],
            "rename(s)",
        )
    if not (view.conflicts or view.failure_groups or view.renames):
        decisions += ["", "Nothing."]

    # The references are the user's to act on: listed before the plain moves take the rest.
    references = ["", f"## {REFERENCES_TITLE}", ""] if view.references else []
    references += budget.items(list(view.references), "reference(s)")

    moves = [row for project in view.projects for row in project.rows]
    collapsed = ["", "<details>", f"<summary>{len(moves)} plain move(s)</summary>", ""]
    collapsed += budget.table(_INVENTORY_HEADINGS, [_inventory_cells(r) for r in moves], "move(s)")
    collapsed += ["", "</details>"]

    notices = ["", "## Notices", ""] if view.notices else []
    notices += budget.items(list(view.notices), "notice(s)")
    lines = [*_head(view), *decisions, *advice, *references, *projects, *collapsed, *notices]
    return "\n".join(lines) + "\n"


class _Budget:
    """The characters left for the rows of a summary; what does not fit is counted."""

    def __init__(self, characters: int) -> None:
        self.left = characters

    def table(self, headings: list[str], rows: list[list[str]], what: str) -> list[str]:
        lines = markdown_table(headings, ["---"] * len(headings), [])
        kept = self._take(markdown_table(headings, ["---"] * len(headings), rows)[2:])
        lines += kept
        return lines + self._left_out(len(rows) - len(kept), what)

    def items(self, texts: list[str], what: str) -> list[str]:
        kept = self._take([markdown_list_item(text) for text in texts])
        return kept + self._left_out(len(texts) - len(kept), what)

    def _take(self, lines: list[str]) -> list[str]:
        kept: list[str] = []
        for line in lines:
            if len(line) + 1 > self.left:
                break
            self.left -= len(line) + 1
            kept.append(line)
        return kept

    @staticmethod
    def _left_out(count: int, what: str) -> list[str]:
        if not count:
            return []
        return ["", f"*{count} more {what} not listed here; {FULL_REPORT}.*"]
