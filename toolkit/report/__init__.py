"""Renderers for the claim document: a terminal table, JSON, Markdown and one HTML page.

JSON is the wire document, so scripts can parse stdout, with one key of the toolkit's own
when a claim breaks references to what it moves: `brokenReferences`, a list of their records
(`toolkit.references.BrokenReference.to_record`). The three human
formats are built from one `ReportView` (`toolkit.report.view`), so the table
(`toolkit.report.table`), the Markdown (`toolkit.report.markdown`) and the HTML (a template,
`toolkit/templates/report.html.j2`) always say the same thing: who moves where, what each
entity will become, what blocks the claim and why.

Each format's renderer is imported when that format is asked for (the table and plain text on
rich, the HTML page on jinja2): a JSON report, the usual one on a pipe, loads neither.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from toolkit.choices import Format
from toolkit.models import AgentClaimResponse
from toolkit.redaction import redact_strings
from toolkit.references import sorted_references
from toolkit.report.view import (
    Mode,
    ReportContext,
    build_view,
    copied_environments,
    report_context,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Mode",
    "ReportContext",
    "copied_environments",
    "print_report",
    "render",
    "report_context",
]


def render(
    document: AgentClaimResponse,
    fmt: Format,
    context: ReportContext,
    *,
    width: int = 100,
    secrets: Iterable[str] = (),
) -> str:
    """The report as text, every token masked (`toolkit.redaction`, with `secrets` too);
    `width` only shapes the table format."""
    if fmt == "json":
        return json.dumps(redact_strings(_json_report(document, context), secrets), indent=2) + "\n"
    view = build_view(document, context, secrets)
    if fmt == "markdown":
        from toolkit.report.markdown import render_markdown

        return render_markdown(view)
    if fmt == "html":
        from toolkit.report.templates import html_template

        script = _review_script()
        return html_template("report.html.j2").render(
            view=view, script=script, script_hash=_csp_hash(script)
        )
    from toolkit.report.table import table_renderable
    from toolkit.report.templates import plain_text

    return plain_text(table_renderable(view), width=width)


def print_report(
    document: AgentClaimResponse,
    fmt: Format,
    context: ReportContext,
    console: Console,
    *,
    secrets: Iterable[str] = (),
) -> None:
    """Print to `console`: the table with the console's colours, other formats verbatim;
    tokens masked as `render` masks them."""
    if fmt == "table":
        from toolkit.report.table import table_renderable

        console.print(table_renderable(build_view(document, context, secrets)))
    else:
        console.out(render(document, fmt, context, secrets=secrets), end="", highlight=False)


def _json_report(document: AgentClaimResponse, context: ReportContext) -> dict[str, Any]:
    """The wire document, and the references that break when there are any."""
    wire: dict[str, Any] = document.to_wire()
    references = sorted_references(context.broken_references)
    if references:
        wire["brokenReferences"] = [reference.to_record() for reference in references]
    return wire


@cache
def _review_script() -> str:
    """The HTML page's filter (inline: the page is one self-contained file)."""
    return files("toolkit").joinpath("templates", "review.js").read_text(encoding="utf-8")


def _csp_hash(script: str) -> str:
    """The page's Content-Security-Policy source for `script`: it runs, and no other does."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
