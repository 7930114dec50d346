"""How the command line shows results: the report (to stdout or a file), and lines on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.choices import SUFFIX_FORMATS, Format
from toolkit.display import printable

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.cli.settings import Settings
    from toolkit.commands import ClaimPlan
    from toolkit.errors import ClaimError
    from toolkit.journal import RunRecord
    from toolkit.landing import LandingResult
    from toolkit.models import AgentClaimResponse
    from toolkit.report import Mode, ReportContext


def report(
    settings: Settings,
    document: AgentClaimResponse,
    plan: ClaimPlan,
    mode: Mode,
    fmt: Format | None,
    output: Path | None,
    *,
    run_id: str | None = None,
    landing: LandingResult | None = None,
    landing_error: ClaimError | None = None,
) -> ReportContext:
    """The report of `plan`'s `document` (`emit`); its context, for the summary after it."""
    context = run_context(
        plan, mode, document, run_id=run_id, landing=landing, landing_error=landing_error
    )
    emit(settings, document, context, fmt, output)
    return context


def run_context(
    plan: ClaimPlan,
    mode: Mode,
    document: AgentClaimResponse,
    *,
    run_id: str | None = None,
    landing: LandingResult | None = None,
    landing_error: ClaimError | None = None,
) -> ReportContext:
    """What a report says around `document`: with the run it belongs to and its landing when
    known."""
    from toolkit.report import report_context

    return replace(
        report_context(plan, mode, document),
        run_id=run_id,
        landing=landing_header(landing, landing_error),
        landing_changes=tuple(
            f"{step.op} {step.type} {step.name}" for step in (landing.steps if landing else [])
        ),
    )


def landing_header(landing: LandingResult | None, error: ClaimError | None) -> str | None:
    """The report's line on the landing: what it changes in which stack, or why it failed."""
    from toolkit.commands import landing_failure

    if error is not None:
        return landing_failure(error)
    if landing is None:
        return None
    where = " (a new stack, previewed locally)" if landing.local_preview else ""
    return f"{landing.stack}{where}: {landing.summary()}"


def emit(
    settings: Settings,
    document: AgentClaimResponse,
    context: ReportContext,
    fmt: Format | None,
    output: Path | None,
) -> None:
    """The report, its tokens masked, to `output` (readable by the user only) or stdout."""
    from toolkit.report import print_report, render

    chosen = report_format(fmt, output)
    secrets = settings.secrets
    if output:
        write_file(output, render(document, chosen, context, secrets=secrets))
    elif chosen == "table":
        print_report(document, chosen, context, stdout_console(settings), secrets=secrets)
    else:
        click.echo(render(document, chosen, context, secrets=secrets), nl=False)


def say_summary(
    settings: Settings,
    document: AgentClaimResponse,
    context: ReportContext,
    code: int,
    output: Path | None,
    *,
    on_terminal: bool,
    warnings_only: bool = False,
) -> None:
    """The end of a report on stderr, whatever the output: its warnings and notices, the
    outcome, what the exit code means and where the report was written. When the report is a
    table on a terminal (`on_terminal`), it shows the outcome and notices itself: only the exit
    line is added. `warnings_only` keeps the notices that are warnings (status: the others
    are the run's recorded events, in the report). Nothing with -q."""
    if settings.quiet:
        return
    for line in summary_lines(
        document,
        context,
        code,
        output,
        on_terminal=on_terminal,
        warnings_only=warnings_only,
        secrets=settings.secrets,
    ):
        say(line)


def summary_lines(
    document: AgentClaimResponse,
    context: ReportContext,
    code: int,
    output: Path | None,
    *,
    on_terminal: bool,
    warnings_only: bool,
    secrets: set[str],
) -> list[str]:
    """The lines of `say_summary`, masked and printable (`build_summary`)."""
    from toolkit.outcomes import exit_meaning
    from toolkit.report.view import build_summary

    exit_line = exit_meaning(code, preview=context.mode == "preview")
    if on_terminal:
        return [exit_line]
    summary = build_summary(document, context, secrets)
    notices = [n for n in summary.notices if n.startswith("warning:") or not warnings_only]
    written = [f"report written to {output}"] if output else []
    return [*notices, f"outcome: {summary.outcome}", exit_line, *written]


def table_on_terminal(fmt: Format | None, output: Path | None) -> bool:
    """Whether the report goes to stdout as a table on a terminal."""
    return output is None and report_format(fmt, output) == "table" and sys.stdout.isatty()


def write_file(path: Path, text: str) -> None:
    """`text` into `path`, 0600 (`write_private_text`); a failure is an error, not a traceback."""
    from toolkit.errors import InvalidInputError
    from toolkit.private_files import write_private_text

    try:
        write_private_text(path, text)
    except OSError as error:
        raise InvalidInputError(
            f"cannot write {path}: {error.strerror or error}",
            hint="Name a file in an existing folder you can write to.",
        ) from None


def report_format(fmt: Format | None, output: Path | None) -> Format:
    if fmt:
        return fmt
    if output:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "table")
    return "table" if sys.stdout.isatty() else "json"


def say(line: str) -> None:
    """`line` on stderr, printable (`toolkit.display`): it holds names or messages from the
    service, a map or the pulumi CLI."""
    click.echo(printable(line, keep_newlines=True), err=True)


def stdout_console(settings: Settings) -> Console:
    """A terminal's own width, or `COLUMNS` when set (rich reads it); 100 columns when the
    output goes to a pipe or a file. Coloured as --color and NO_COLOR say
    (`Settings.console_colors`)."""
    from rich.console import Console

    colors = settings.console_colors(sys.stdout)
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return Console(**colors)
    return Console(width=100, **colors)


RUNS_COLUMNS = ("RUN", "FROM", "TO", "STRATEGY", "STATE", "EXIT", "AGE")
"""The columns of `status --list` as a table."""


def runs_listing(runs: Sequence[RunRecord], fmt: Format, now: datetime) -> str:
    """`status --list`: one run a row, as given (newest first); as JSON, a list of objects
    with the start and end times instead of the age."""
    from toolkit.commands import recorded_exit_code

    if fmt == "json":
        rows = [
            {
                "runId": run.run_id,
                "sourceOrg": run.source_org,
                "destinationOrg": run.destination_org,
                "strategy": run.strategy,
                "state": run.state,
                "exitCode": recorded_exit_code(run),
                "startedAt": run.started_at,
                "finishedAt": run.finished_at,
            }
            for run in runs
        ]
        return json.dumps(rows, indent=2) + "\n"
    cells = [
        RUNS_COLUMNS,
        *(
            tuple(
                printable(cell)
                for cell in (
                    run.run_id,
                    run.source_org,
                    run.destination_org,
                    run.strategy,
                    run.state,
                    str(recorded_exit_code(run)),
                    age(run.started_at, now),
                )
            )
            for run in runs
        ),
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(RUNS_COLUMNS))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in cells
    )


def age(started_at: str, now: datetime) -> str:
    """How long ago `started_at` (ISO 8601) was, in its largest whole unit: "3h ago"."""
    seconds = max(0, int((now - datetime.fromisoformat(started_at)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
