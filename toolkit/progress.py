"""What a commit reports as it goes: typed progress events, and why a move failed.

Strategies send the events; the CLI draws them as a progress bar or plain lines, the journal
keeps one line of text per event. Each event carries the counts as they stand after it, so a
consumer keeps no state of its own. No heavy imports: the CLI reaches this before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypedDict

Step = Literal[
    "list",
    "login",
    "read",
    "rename",
    "transfer",
    "claim",
    "create",
    "import",
    "write",
    "verify",
    "tags",
    "settings",
    "delete-source",
    "undo",
]
"""A step of a move: REST renames and transfers (`transfer`), the service's claim (`claim-api`),
copies of state (`migrate`; "settings": a stack's deployment settings, webhooks and
schedules), an ESC environment's definition written to its copy ("write"),
and "undo", putting back what a failed move had done."""


Phase = Literal["environments", "stacks", "packages", "landing"]
"""A commit's phases, in order: the ESC environments copied before the stacks (with
`--environments copy`), the stacks, and the landing program run on what moved. With claim-api
on today's service, the environments and registry packages (`packages`) the claim moves with
the stacks are followed beside them. Each phase counts its own moves (the landing: one),
towards its own total."""


Outcome = Literal["failed", "unknown", "interrupted"]
"""Of a move that did not land: it failed; or whether a call of it was applied cannot be
established (its answer was lost, and so was the look at the service that followed); or the
run was stopped before the move's next call."""

UNKNOWN_OUTCOME = "outcome unknown: "
"""How the claim document's failure of a move of unknown outcome begins."""


def unknown_outcomes(failure_details: Iterable[str]) -> int:
    """How many of a claim document's failures are moves of unknown outcome."""
    return sum(details.startswith(UNKNOWN_OUTCOME) for details in failure_details)


RERUN_HINT = "re-run the same command: it looks where each stack is now and finishes the move"


@dataclass(frozen=True)
class MoveFailure:
    """Why one move did not land."""

    step: Step
    """The step that failed; "undo" when undoing an earlier failure failed too."""
    message: str
    """What went wrong and what to do, in the words of the claim document's failure."""
    source_untouched: bool = True
    """Whether the source stack is still as it was, under its own name."""
    outcome: Outcome = "failed"

    @classmethod
    def unknown(cls, step: Step, what: str) -> MoveFailure:
        """A move one of whose calls may or may not have been applied."""
        return cls(step, f"{UNKNOWN_OUTCOME}{what}; {RERUN_HINT}", False, "unknown")

    @classmethod
    def interrupted(cls, step: Step) -> MoveFailure:
        """A move the run stopped before finishing (Ctrl-C, SIGTERM)."""
        return cls(
            step, f"not finished: the run was interrupted; {RERUN_HINT}", False, "interrupted"
        )


@dataclass(frozen=True, kw_only=True)
class _MoveEvent:
    source: str
    """The stack's fully qualified name in the source, `org/project/stack`."""
    target: str
    """Its planned fully qualified name in the destination."""
    done: int
    """Moves landed so far; a landed move that then fails verification counts as failed."""
    failed: int
    total: int
    phase: Phase = "stacks"

    @property
    def settled(self) -> int:
        """Moves no longer under way: landed or failed."""
        return self.done + self.failed


@dataclass(frozen=True, kw_only=True)
class MoveStarted(_MoveEvent):
    """Work on a move began (in transfer: its first rename, or its transfer)."""

    def describe(self) -> str:
        return f"moving {self.source} -> {self.target}"


@dataclass(frozen=True, kw_only=True)
class StepDone(_MoveEvent):
    """A step of a move that is not its last went through (or an undo did)."""

    step: Step
    summary: str

    def describe(self) -> str:
        return self.summary


@dataclass(frozen=True, kw_only=True)
class MoveFinished(_MoveEvent):
    """The move's last step went through: the stack landed."""

    step: Step
    summary: str

    def describe(self) -> str:
        return self.summary


@dataclass(frozen=True, kw_only=True)
class MoveFailed(_MoveEvent):
    """The move failed, or its failure got worse (an undo failed too)."""

    failure: MoveFailure

    def describe(self) -> str:
        failure = self.failure
        said = {"failed": "failed", "unknown": "is of unknown outcome", "interrupted": "stopped"}
        return (
            f"{self.source} -> {self.target} {said[failure.outcome]} ({failure.step}): "
            f"{failure.message}"
        )


@dataclass(frozen=True, kw_only=True)
class LandingStarted(_MoveEvent):
    """The landing program began to run on what moved: `source` is the source org, `target`
    the landing stack."""

    phase: Phase = "landing"
    done: int = 0
    failed: int = 0
    total: int = 1

    def describe(self) -> str:
        return f"{self.target}: running the landing program"


@dataclass(frozen=True, kw_only=True)
class LandingFinished(_MoveEvent):
    """The landing ran (`done` 1) or failed (`failed` 1); `summary` says what it changed, or
    why it failed."""

    phase: Phase = "landing"
    total: int = 1
    summary: str

    def describe(self) -> str:
        return self.summary


ProgressEvent = (
    MoveStarted | StepDone | MoveFinished | MoveFailed | LandingStarted | LandingFinished
)

ProgressCallback = Callable[[ProgressEvent], None]
"""Receives every event of a commit; the CLI shows them, the journal records them."""


def no_progress(_event: ProgressEvent) -> None:
    """The default progress callback: stay silent."""


def to_json(event: ProgressEvent, *, claim: str | None = None) -> dict[str, object]:
    """The event as one JSON log object (`--log-format json`): what happened (`event`), to which
    move of which claim (`claim`: its name in a job file, None for `commit`), the step, the
    counts after it, the journal's line for it (`message`) and the time it was written."""
    match event:
        case MoveStarted():
            name, step = "move-started", None
        case StepDone():
            name, step = "step-done", event.step
        case MoveFinished():
            name, step = "move-finished", event.step
        case MoveFailed():
            name, step = "move-failed", event.failure.step
        case LandingStarted():
            name, step = "landing-started", None
        case LandingFinished():
            name, step = "landing-finished", None
    record: dict[str, object] = {
        "event": name,
        "time": log_time(),
        "claim": claim,
        "phase": event.phase,
        "source": event.source,
        "target": event.target,
        "step": step,
        "done": event.done,
        "failed": event.failed,
        "total": event.total,
        "message": event.describe(),
    }
    if isinstance(event, MoveFailed):
        record["outcome"] = event.failure.outcome
        record["sourceUntouched"] = event.failure.source_untouched
    return record


def log_time() -> str:
    """Now, as the JSON log lines write it: UTC, to the millisecond, `Z` at the end."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Counts(TypedDict):
    done: int
    failed: int
    total: int
    phase: Phase


class MoveTally:
    """Counts a commit's moves as they land and fail, and sends each event with the counts.

    Not thread-safe: call it on the event loop's thread (migrate's workers post to it there).
    """

    def __init__(self, total: int, on_progress: ProgressCallback, phase: Phase = "stacks") -> None:
        self._total = total
        self._phase = phase
        self._on_progress = on_progress
        self._landed: set[str] = set()
        self._failed: set[str] = set()

    def started(self, source: str, target: str) -> None:
        self._on_progress(MoveStarted(source=source, target=target, **self._counts()))

    def step(self, source: str, target: str, step: Step, summary: str) -> None:
        self._on_progress(
            StepDone(source=source, target=target, step=step, summary=summary, **self._counts())
        )

    def finished(self, source: str, target: str, step: Step, summary: str) -> None:
        self._landed.add(source)
        self._on_progress(
            MoveFinished(source=source, target=target, step=step, summary=summary, **self._counts())
        )

    def failed(self, source: str, target: str, failure: MoveFailure) -> None:
        self._landed.discard(source)
        self._failed.add(source)
        self._on_progress(
            MoveFailed(source=source, target=target, failure=failure, **self._counts())
        )

    def _counts(self) -> _Counts:
        return {
            "done": len(self._landed),
            "failed": len(self._failed),
            "total": self._total,
            "phase": self._phase,
        }
