"""The report as Markdown (GFM): every text plain, escaped so that it starts no markup, no HTML
and no table cell or list of its own."""

from __future__ import annotations

import re

from toolkit.report.view import ReportView

_MARKDOWN_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": " ", "\n": " "}
_MARKDOWN_PUNCTUATION = frozenset("\\`*_[]|~#$")
_BLOCK_START = re.compile(r"^(\d+)([.)])|^([-+=])")


def _markdown_text(text: str) -> str:
    """Plain text that stays plain inside a GFM table cell: no markup, no HTML, no cell break."""
    return "".join(
        _MARKDOWN_ENTITIES.get(char) or (f"\\{char}" if char in _MARKDOWN_PUNCTUATION else char)
        for char in text
    )


def _markdown_list_item(text: str) -> str:
    """A bullet holding `text` as plain text; a leading "1." or "-" would start a nested list."""
    escaped = _markdown_text(text)
    return "- " + _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", escaped)


def _markdown_table(headings: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_markdown_text(cell) for cell in row) + " |" for row in rows]
    return lines


def render_markdown(view: ReportView) -> str:
    lines = [f"# {_markdown_text(view.title)}", ""]
    lines += [f"- **{label}:** {_markdown_text(value)}" for label, value in view.header]
    lines += ["", f"**Outcome:** {_markdown_text(view.outcome)}", ""]
    lines += _markdown_table(
        [count.label for count in view.counts],
        ["---:"] * len(view.counts),
        [[str(count.value) for count in view.counts]],
    )

    lines += ["", "## Inventory", ""]
    if view.inventory:
        lines += _markdown_table(
            ["Kind", "Name", "Resources", "Last update", "Action"],
            ["---", "---", "---:", "---", "---"],
            [[r.kind, r.name, r.resources, r.last_update, r.action] for r in view.inventory],
        )
    else:
        lines.append("No entities.")

    lines += ["", "## Conflicts", ""]
    if view.conflicts:
        lines += _markdown_table(
            ["Kind", "Name", "Name taken in destination"],
            ["---", "---", "---"],
            [[c.kind, c.name, c.taken_name] for c in view.conflicts],
        )
        lines += ["", f"> {view.conflict_hint}"]
    else:
        lines.append("None.")

    lines += ["", "## Failures", ""]
    if view.failures:
        lines += _markdown_table(
            ["Kind", "Name", "Failure", "Reason"],
            ["---", "---", "---", "---"],
            [[f.kind, f.name, f.failure, f.reason] for f in view.failures],
        )
    else:
        lines.append("None.")

    if view.next_steps:
        lines += ["", "## What to do", ""]
        lines += [_markdown_list_item(step) for step in view.next_steps]

    if view.notices:
        lines += ["", "## Notices", ""]
        lines += [_markdown_list_item(notice) for notice in view.notices]
    return "\n".join(lines) + "\n"
