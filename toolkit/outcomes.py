"""What a claim ended as: its exit code, a word for it, and its counts.

One home for the exit-code rule, shared by `commit`, `preview`, `status` and `job run`, and for
the summary of one claim that the JSON log lines and a job's summary carry. No heavy imports
(no click either): the command line imports this module before any work.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from toolkit.choices import Strategy
    from toolkit.entities import EntityKey
    from toolkit.errors import ClaimError
    from toolkit.models import AgentClaimResponse, TransferEntityFailure
    from toolkit.runs import RunOutcome

EXIT_OK = 0
EXIT_ERROR = 1
"""An error: authentication, network, invalid input; the message says what to fix."""
EXIT_BLOCKED = 3
EXIT_PARTIAL = 4
EXIT_INTERRUPTED = 130
"""A commit stopped by Ctrl-C or SIGTERM; the same command continues it."""

_SEVERITY = (EXIT_OK, EXIT_BLOCKED, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERRUPTED)
"""Exit codes from best to worst: a job exits with the worst of its claims'."""

Outcome = Literal["done", "blocked", "partial", "error", "interrupted", "not run"]
_OUTCOMES: dict[int, Outcome] = {
    EXIT_OK: "done",
    EXIT_BLOCKED: "blocked",
    EXIT_PARTIAL: "partial",
    EXIT_ERROR: "error",
    EXIT_INTERRUPTED: "interrupted",
}


def exit_code(
    document: AgentClaimResponse,
    strategy: Strategy,
    accepted: Collection[EntityKey] = frozenset(),
    *,
    retryable: Collection[EntityKey] = frozenset(),
) -> int:
    """3 when the claim is blocked (nothing changed: `toolkit.plan.is_blocked`; a commit's own
    moves that did not land, `retryable`, block nothing), 4 when anything is reported as failed
    that the map does not accept (`accepted`), else 0: a scheduled claim whose only failures
    are known ones goes green."""
    from toolkit.plan import is_blocked

    if is_blocked(document, strategy, retryable):
        return EXIT_BLOCKED
    if unaccepted_failures(document.failures, accepted):
        return EXIT_PARTIAL
    return EXIT_OK


def unaccepted_failures(
    failures: Iterable[TransferEntityFailure], accepted: Collection[EntityKey]
) -> list[TransferEntityFailure]:
    """The failures the resolution map's `accept:` section does not acknowledge."""
    from toolkit.entities import entity_key

    return [failure for failure in failures if entity_key(failure.entity) not in accepted]


def run_exit_code(outcome: RunOutcome) -> int:
    """A commit's exit code: 130 when interrupted, else its document's (`exit_code`), made
    at least 4 (partial) by a landing that failed: the moves stand, the record is missing."""
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    code = exit_code(
        outcome.document,
        outcome.plan.strategy,
        outcome.plan.accepted,
        retryable=outcome.plan.did_not_land(outcome.document),
    )
    return worst_exit_code([code, EXIT_PARTIAL]) if outcome.landing_error else code


def exit_meaning(code: int, *, preview: bool) -> str:
    """What exit `code` tells a person or a script, as the last line on stderr says it:
    `exit 3: blocked; nothing was changed`."""
    meanings = {
        EXIT_OK: "a commit would do everything planned" if preview else "done",
        EXIT_BLOCKED: "blocked; nothing was changed",
        EXIT_PARTIAL: "a commit would leave failures, or its landing would fail"
        if preview
        else "partial: not everything moved, or the landing failed",
        EXIT_ERROR: "the run did not finish",
        EXIT_INTERRUPTED: "interrupted; run the same command again to continue",
    }
    return f"exit {code}: {meanings[code]}"


def job_exit_meaning(code: int) -> str:
    """What a job's exit `code` (its claims' worst) means: `exit 4: the worst claim is partial`."""
    return f"exit {code}: the worst claim is {_OUTCOMES[code]}"


def worst_exit_code(codes: Iterable[int]) -> int:
    """The worst of `codes`: 0 < 3 (blocked) < 4 (partial) < 1 (error) < 130 (interrupted);
    0 when there are none."""
    return max(codes, key=_SEVERITY.index, default=EXIT_OK)


@dataclass(frozen=True)
class ClaimSummary:
    """One claim's result as a log line or a job summary says it: no document, just counts."""

    name: str | None
    """The claim's name in its job file; None for `commit`."""
    exit_code: int
    outcome: Outcome
    message: str
    """One line: the report's outcome ("moved 3 of 3 stack(s)"), or the error."""
    planned: int = 0
    """Stacks the plan moves."""
    moved: int = 0
    failed: int = 0
    """Failures the claim document reports (stacks that did not land, entities that cannot
    move); none when blocked."""
    retryable: int = 0
    """Of `failed`, the moves that did not land: the same command runs them again; the rest
    cannot move."""
    blocked: int = 0
    """Entities that block the claim: unresolved conflicts, and with claim-api what the service
    cannot move."""
    conflicts: tuple[str, ...] = ()
    """The unresolved conflicts, named ("stack web/dev"), when blocked."""
    strategy: Strategy | None = None
    run_id: str | None = None
    resumed: bool = False
    already_finished: bool = False
    landing: str | None = None
    """What landing did ("3 created"), or why it failed; None when it did not run."""
    landing_failed: bool = False

    def to_json(self) -> dict[str, object]:
        """The summary as a JSON object (camelCase keys, as the claim document has)."""
        return {
            "claim": self.name,
            "exitCode": self.exit_code,
            "outcome": self.outcome,
            "message": self.message,
            "error": self.message if self.outcome == "error" else None,
            "strategy": self.strategy,
            "runId": self.run_id,
            "resumed": self.resumed,
            "alreadyFinished": self.already_finished,
            "planned": self.planned,
            "moved": self.moved,
            "failed": self.failed,
            "failedRunAgain": self.retryable,
            "cannotMove": self.failed - self.retryable,
            "blocked": self.blocked,
            "conflicts": list(self.conflicts),
            "landing": self.landing,
            "landingFailed": self.landing_failed,
        }


def summarize_run(name: str | None, outcome: RunOutcome) -> ClaimSummary:
    """The summary of a commit that ran (or found itself finished already)."""
    from toolkit.entities import describe
    from toolkit.plan import is_blocked
    from toolkit.report import report_context

    plan, document = outcome.plan, outcome.document
    code = run_exit_code(outcome)
    blocked = is_blocked(document, plan.strategy, plan.did_not_land(document))
    service_refusals = len(document.failures) if plan.strategy == "claim-api" else 0
    failed_moves, _ = plan.not_landed(document)
    return ClaimSummary(
        name=name,
        exit_code=code,
        outcome=_OUTCOMES[code],
        message=report_context(plan, "commit", document).outcome,
        planned=len(plan.moves),
        moved=0 if blocked else len(plan.moves) - failed_moves,
        failed=0 if blocked else len(document.failures),
        retryable=0 if blocked else len(plan.did_not_land(document)),
        blocked=len(document.conflicts) + service_refusals if blocked else 0,
        conflicts=tuple(describe(entity) for entity in document.conflicts) if blocked else (),
        strategy=plan.strategy,
        run_id=outcome.run_id,
        resumed=outcome.resumed,
        already_finished=outcome.already_finished,
        landing=landing_line(outcome),
        landing_failed=outcome.landing_error is not None,
    )


def landing_line(outcome: RunOutcome) -> str | None:
    """One line on the commit's landing: what it changed in which stack, or why it failed."""
    if outcome.landing_error is not None:
        return outcome.landing_error.message
    if outcome.landing is None:
        return None
    return f"landing {outcome.landing.stack}: {outcome.landing.summary()}"


def summarize_error(name: str | None, error: ClaimError) -> ClaimSummary:
    """The summary of a claim that stopped on an error (exit 1); `message` is the error's,
    with its hint."""
    return ClaimSummary(name=name, exit_code=EXIT_ERROR, outcome="error", message=str(error))


def not_run(name: str) -> ClaimSummary:
    """The summary of a job's claim that did not start because the job was stopped first."""
    return ClaimSummary(
        name=name,
        exit_code=EXIT_INTERRUPTED,
        outcome="not run",
        message="not run: the job was interrupted before this claim; run the job again",
    )
