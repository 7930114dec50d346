"""Strategies: each executes the stack moves of a `ClaimPlan` its own way.

A strategy returns the moves that did not land (source stack key -> why); everything else in
the plan is expected to have landed, which it verifies against the service. It reports its
progress as events (`toolkit.progress`), and records every state-changing call in the run's
journal before making it and its outcome after it, so that a later run can continue from any
point (`toolkit.runs`). It starts no new call once the run's `StopSignal` is set.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from toolkit.entities import EntityKey
from toolkit.journal import Journal, StepOutcome
from toolkit.progress import MoveFailure, ProgressCallback, Step, no_progress

__all__ = [
    "CallOutcome",
    "FailedMoves",
    "ProgressCallback",
    "RecordedCalls",
    "Revision",
    "StepHistory",
    "StopSignal",
    "no_progress",
]

FailedMoves = dict[EntityKey, MoveFailure]


class StopSignal:
    """Set when the run is asked to stop (Ctrl-C, SIGTERM): no new call starts, calls in
    flight finish and are recorded. Thread-safe, since migrate's workers read it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class CallOutcome:
    """What became of one state-changing call, as the journal records it."""

    outcome: StepOutcome
    message: str = ""

    @property
    def done(self) -> bool:
        return self.outcome == "done"


class RecordedCalls:
    """The way every state-changing call of a strategy is made: at most `limit` at once, none
    once the run is stopping, each written to the journal before it starts and after it ends."""

    def __init__(self, journal: Journal, stop: StopSignal, limit: int) -> None:
        self.journal = journal
        self.stop = stop
        self._slots = asyncio.Semaphore(limit)

    async def make(
        self,
        move: str,
        action: Step,
        detail: str,
        call: Callable[[], Awaitable[CallOutcome]],
        *,
        started: Callable[[], None] = lambda: None,
        settled: Callable[[CallOutcome | None], None] = lambda _: None,
    ) -> CallOutcome | None:
        """`call`'s outcome, or None when the run stopped before it could start. `started`
        reports the call as it begins and `settled` its outcome, each in one journal
        transaction with the record it reports (`Journal.together`). A call the run stopped
        before is still reported, as started and then settled with None, with no record."""
        async with self._slots:
            if self.stop.requested:
                started()
                settled(None)
                return None
            with self.journal.together():
                started()
                row = self.journal.begin(move, action, detail)
            outcome = await call()
            with self.journal.together():
                self.journal.end(row, outcome.outcome, outcome.message)
                settled(outcome)
            return outcome


@dataclass(frozen=True)
class Revision:
    """Which entity, at which point of its history: what a run checks it is still looking at
    before it removes or overwrites anything it read or wrote earlier."""

    version: str
    """A stack's update version (or a digest of its checkpoint where the backend numbers
    none), an environment's ETag: it changes with every change of the content."""
    identity: str | None = None
    """The service's id of the stack, where it has one: it stays through renames."""

    def __str__(self) -> str:
        return f"{self.identity or ''}@{self.version}"

    @classmethod
    def parse(cls, text: str | None) -> Revision | None:
        """The revision `str` wrote; None for None (nothing recorded)."""
        if text is None:
            return None
        identity, _, version = text.partition("@")
        return cls(version, identity or None)


class StepHistory:
    """What earlier attempts of a run did: which steps of which move (by its journal name)
    began, and which of them are recorded done."""

    def __init__(self, journal: Journal) -> None:
        self._began: set[tuple[str, str]] = set()
        self._done: set[tuple[str, str]] = set()
        for step in journal.steps():
            self._began.add((step.move, step.action))
            if step.outcome == "done":
                self._done.add((step.move, step.action))

    def began(self, move: str, action: Step) -> bool:
        return (move, action) in self._began

    def done(self, move: str, action: Step) -> bool:
        return (move, action) in self._done
