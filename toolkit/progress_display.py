"""A commit's progress for people: a progress bar on a terminal, plain lines anywhere else.

rich is imported only once a commit starts, so `pulumi-claim --help` stays fast.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from toolkit.display import printable
from toolkit.progress import MoveFailed, ProgressEvent

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class ProgressDisplay:
    """Shows progress events on `console`: use it as a context manager around the commit and
    pass it as the commit's progress callback.

    On a terminal, a bar of the moves settled of all planned, failures so far and time
    elapsed, with each failure printed above it; otherwise one line per event, counts first,
    for logs. The bar starts with the first event (a question asked before it stays readable).
    A quiet console shows nothing.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: tuple[Progress, TaskID] | None = None

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None

    def __call__(self, event: ProgressEvent) -> None:
        if self._bar is None and self._console.is_terminal and not self._console.quiet:
            self._bar = _start_bar(self._console, event.total)
        if self._bar is None:
            self._console.print(plain_line(event), markup=False, highlight=False, soft_wrap=True)
            return
        bar, task = self._bar
        if isinstance(event, MoveFailed):
            bar.console.print(
                printable(event.describe()), markup=False, highlight=False, style="red"
            )
        bar.update(
            task,
            completed=event.settled,
            total=event.total,
            failed=event.failed,
            description=printable(event.target),
        )


def plain_line(event: ProgressEvent) -> str:
    """The event as a log line: `[settled/total] text`, with the failures so far when any;
    printable (`toolkit.display`), for the names and messages in it come from the service."""
    failures = f", {event.failed} failed" if event.failed else ""
    return f"[{event.settled}/{event.total}{failures}] {printable(event.describe())}"


def _start_bar(console: Console, total: int) -> tuple[Progress, TaskID]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("moves"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),  # a stack's name, not markup
        console=console,
    )
    task = bar.add_task("", total=total, failed=0)
    bar.start()
    return bar, task
