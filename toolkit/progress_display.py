"""A commit's progress for people: a progress bar on a terminal, plain lines anywhere else.

rich is imported only once a commit starts, so `pulumi-claim --help` stays fast.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from toolkit.display import printable
from toolkit.progress import MoveFailed, Phase, ProgressEvent

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.status import Status


class Planning:
    """ "planning…" with a spinner on `console` while the inventory is read and the claim
    planned: only on a terminal and when not quiet (a log gets no line for it); no console,
    no spinner. `done()` ends it early, before a question or the progress bar."""

    def __init__(self, console: Console | None) -> None:
        self._status: Status | None = None
        if console is not None and console.is_terminal and not console.quiet:
            self._status = console.status("planning… (reading the inventory)")

    def __enter__(self) -> Planning:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.done()

    def done(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class ProgressDisplay:
    """Shows progress events on `console`: use it as a context manager around the commit and
    pass it as the commit's progress callback.

    On a terminal, one bar per phase (environments, stacks, landing), named, each of its moves
    settled of its own total, its failures so far and time elapsed, with each failure printed
    above them; otherwise one line per event, the phase and counts first, for logs. A bar
    starts with its phase's first event (a question asked before it stays readable). A quiet
    console shows nothing.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bars: Progress | None = None
        self._tasks: dict[Phase, TaskID] = {}

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def __call__(self, event: ProgressEvent) -> None:
        if self._bars is None and self._console.is_terminal and not self._console.quiet:
            self._bars = _start_bars(self._console)
        if self._bars is None:
            if not self._console.quiet:
                # The line as it is, written straight: rich's rendering would cost ~50 us a
                # line, twice a moved stack, and turn `:name:` in a message into an emoji.
                self._console.file.write(plain_line(event) + "\n")
                self._console.file.flush()
            return
        if event.phase not in self._tasks:
            self._tasks[event.phase] = self._bars.add_task(
                "", total=event.total, failed=0, phase=event.phase
            )
        if isinstance(event, MoveFailed):
            self._bars.console.print(
                printable(event.describe()), markup=False, highlight=False, style="red"
            )
        self._bars.update(
            self._tasks[event.phase],
            completed=event.settled,
            total=event.total,
            failed=event.failed,
            description=printable(event.target),
        )


def plain_line(event: ProgressEvent) -> str:
    """The event as a log line: `stacks [settled/total] text`, with the failures so far when
    any; printable (`toolkit.display`), for the names and messages in it come from the
    service."""
    failures = f", {event.failed} failed" if event.failed else ""
    return f"{event.phase} [{event.settled}/{event.total}{failures}] {printable(event.describe())}"


def _start_bars(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bars = Progress(
        TextColumn("{task.fields[phase]:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),  # a stack's name, not markup
        console=console,
    )
    bars.start()
    return bars
