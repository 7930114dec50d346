"""How `job run` (and `commit --log-format json`) tell what they do, for people or for machines.

`JsonLog` writes one JSON object per line, for log collectors: a `claim-started`, a
`run-started`, every progress event (`toolkit.progress.to_json`), a `claim-finished` per claim,
and at the end of a job one `summary`. `TextLog` writes what `commit` writes for people, the
progress on one console and the job's summary table on another. Both mask the tokens they are
given, and any access token, in everything they write; neither writes a control character
(`TextLog` makes its text printable, `json.dumps` writes ASCII only).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from toolkit.display import printable
from toolkit.progress import ProgressEvent, log_time, to_json
from toolkit.progress_display import ProgressDisplay
from toolkit.redaction import redact

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.jobs import JobResult
    from toolkit.outcomes import ClaimSummary
    from toolkit.plan import ClaimTarget


class JsonLog:
    """One JSON object per line, handed to `write` (a line without its newline)."""

    def __init__(self, write: Callable[[str], None], secrets: Iterable[str] = ()) -> None:
        self._write = write
        self._secrets = list(secrets)

    def claim_started(self, name: str | None, target: ClaimTarget, strategy: str) -> None:
        self._emit(
            "claim-started",
            claim=name,
            **{
                "from": target.source_org,
                "to": target.destination_org,
                "sourceBackend": target.source_backend,
                "destinationBackend": target.destination_backend,
                "strategy": strategy,
            },
        )

    def run_started(self, name: str | None, run_id: str, resumed: bool) -> None:
        self._emit("run-started", claim=name, runId=run_id, resumed=resumed)

    def progress(self, name: str | None, event: ProgressEvent) -> None:
        self._line(to_json(event, claim=name))

    def claim_finished(self, summary: ClaimSummary) -> None:
        self._emit("claim-finished", **summary.to_json())

    def job_finished(self, result: JobResult) -> None:
        self._emit(
            "summary",
            exitCode=result.exit_code,
            claims=[claim.to_json() for claim in result.claims],
        )

    def _emit(self, event: str, **fields: object) -> None:
        self._line({"event": event, "time": log_time(), **fields})

    def _line(self, record: dict[str, object]) -> None:
        self._write(redact(json.dumps(record), self._secrets))


class TextLog:
    """Plain text: each claim's progress on `progress` as `commit` shows it (a bar on a
    terminal, a line per event elsewhere, nothing when quiet), then the job's summary table on
    `out`."""

    def __init__(self, progress: Console, out: Console, secrets: Iterable[str] = ()) -> None:
        self._progress = progress
        self._out = out
        self._secrets = list(secrets)
        self._claim = ExitStack()
        self._display: ProgressDisplay | None = None

    def claim_started(self, name: str | None, target: ClaimTarget, strategy: str) -> None:
        self._say(
            f"claim {name}: {target.source_org} -> {target.destination_org}, strategy {strategy}"
        )
        self._display = self._claim.enter_context(ProgressDisplay(self._progress))

    def run_started(self, name: str | None, run_id: str, resumed: bool) -> None:
        self._say(f"{'continuing' if resumed else 'run'} {run_id}")

    def progress(self, name: str | None, event: ProgressEvent) -> None:
        if self._display is not None:
            self._display(event)

    def claim_finished(self, summary: ClaimSummary) -> None:
        self._claim.close()
        self._display = None
        if summary.already_finished:
            self._say(f"nothing to do: run {summary.run_id} finished this claim already")
        self._say(f"claim {outcome_line(summary)}")

    def job_finished(self, result: JobResult) -> None:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        for column in ("claim", "result", "exit", "moved", "failed", "blocked", "run"):
            table.add_column(column, justify="right" if column in _COUNTS else "left")
        for claim in result.claims:
            table.add_row(
                Text(self._shown(claim.name or "")),
                claim.outcome,
                str(claim.exit_code),
                str(claim.moved),
                str(claim.failed),
                str(claim.blocked),
                Text(claim.run_id or "-"),
            )
        self._out.print(table)
        for claim in result.claims:
            if claim.outcome != "done":
                details = outcome_line(claim)
                if claim.conflicts:
                    details += f"\n  conflicts: {', '.join(claim.conflicts)}"
                self._out.print(self._shown(details), markup=False, highlight=False)
        self._out.print(f"exit code {result.exit_code}", markup=False, highlight=False)

    def _say(self, text: str) -> None:
        self._progress.print(self._shown(text), markup=False, highlight=False, soft_wrap=True)

    def _shown(self, text: str) -> str:
        """`text` masked, then printable: names and messages in it come from outside."""
        return printable(redact(text, self._secrets), keep_newlines=True)


_COUNTS = ("exit", "moved", "failed", "blocked")


def outcome_line(summary: ClaimSummary) -> str:
    """`name: moved 2 of 2 stack(s)`, `name: error: ...`: the message, and the outcome where
    the message does not say it."""
    said = f"{summary.outcome}: " if summary.outcome in ("error", "interrupted") else ""
    return f"{summary.name}: {said}{summary.message}"
