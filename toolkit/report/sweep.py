"""A sweep's report: one row per claim file, as a table, JSON lines, Markdown or HTML.

Every format says the same columns: agent, file, outcome, stacks moved, renames, failures,
and what happened in words; the warnings about the accounts' windows come first.
"""

from __future__ import annotations

import json
from collections import Counter

from rich.table import Table
from rich.text import Text

from toolkit.choices import Format
from toolkit.redaction import redact, redact_strings
from toolkit.report.markdown import markdown_list_item, markdown_table
from toolkit.report.templates import html_template, plain_text
from toolkit.sweep_result import SweepResult, SweepRow

HEADINGS = ["agent", "file", "outcome", "moved", "renames", "failures", "details"]


def render_sweep(result: SweepResult, fmt: Format, *, width: int = 120) -> str:
    """The sweep's report in `fmt` (json: JSON lines, one per row then a summary line)."""
    if fmt == "json":
        return _json_lines(result)
    if fmt == "markdown":
        return _markdown(result)
    if fmt == "html":
        return html_template("sweep.html.j2").render(
            result=result, headings=HEADINGS, summary=summary(result)
        )
    return _table(result, width)


def summary(result: SweepResult) -> str:
    """How many accounts ended how: `3 claimed, 1 skipped (4 claim files)`."""
    counts = Counter(row.outcome for row in result.rows)
    said = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    return f"{said} ({len(result.rows)} claim file(s))"


def _cells(row: SweepRow, separator: str) -> list[str]:
    return [
        row.agent or "",
        row.file,
        row.outcome,
        str(row.moved),
        separator.join(row.renames),
        separator.join(row.failures),
        redact(row.message),
    ]


def _table(result: SweepResult, width: int) -> str:
    table = Table(*HEADINGS, title=f"Sweep into {result.destination_org}", caption=summary(result))
    for row in result.rows:
        table.add_row(*_cells(row, "\n"))
    warnings = [Text(f"warning: {warning}") for warning in result.warnings]
    return plain_text(*warnings, table, width=width)


def _json_lines(result: SweepResult) -> str:
    lines: list[dict[str, object]] = [
        {
            "event": "account",
            "agent": row.agent,
            "file": row.file,
            "outcome": row.outcome,
            "moved": row.moved,
            "renames": list(row.renames),
            "failures": list(row.failures),
            "message": row.message,
            "runId": row.run_id,
            "exitCode": row.exit_code,
        }
        for row in result.rows
    ]
    lines.append(
        {
            "event": "sweep-finished",
            "destinationOrg": result.destination_org,
            "outcomes": dict(Counter(row.outcome for row in result.rows)),
            "warnings": list(result.warnings),
            "exitCode": result.exit_code,
        }
    )
    return "".join(json.dumps(redact_strings(line), sort_keys=True) + "\n" for line in lines)


def _markdown(result: SweepResult) -> str:
    lines = [f"# Sweep into {result.destination_org}", "", summary(result), ""]
    if result.warnings:
        lines += ["## Warnings", "", *map(markdown_list_item, result.warnings), ""]
    align = [":---", ":---", ":---", "---:", ":---", ":---", ":---"]
    lines += markdown_table(HEADINGS, align, [_cells(row, "; ") for row in result.rows])
    return "\n".join(lines) + "\n"
