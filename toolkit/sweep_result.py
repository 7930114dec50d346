"""What a sweep did: one row per claim file, and the warnings about the accounts' windows.

Pure data, for the reports (`toolkit.report.sweep`) and for callers of `toolkit.sweep`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from toolkit.outcomes import EXIT_OK, ClaimSummary, Outcome, worst_exit_code

SweepOutcome = Literal[
    "claimed",
    "already claimed",
    "queued",
    "skipped",
    "blocked",
    "partial",
    "error",
    "interrupted",
    "not run",
]


@dataclass(frozen=True)
class SweepRow:
    """What became of one claim file."""

    file: str
    agent: str | None
    outcome: SweepOutcome
    message: str
    moved: int = 0
    """Stacks moved by this sweep's claim (or by the run it found done)."""
    renames: tuple[str, ...] = ()
    """`project/name -> project/new-name`, each entity renamed."""
    failures: tuple[str, ...] = ()
    """What the claim could not move, with the service's words."""
    run_id: str | None = None
    exit_code: int = EXIT_OK


@dataclass(frozen=True)
class SweepResult:
    """Every claim file's row, in file order, and the warnings about the accounts' windows."""

    destination_org: str
    rows: tuple[SweepRow, ...]
    warnings: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """The worst of the claims' (skipped and already claimed accounts count as done)."""
        return worst_exit_code(row.exit_code for row in self.rows)


def row_summary(name: str, row: SweepRow) -> ClaimSummary:
    """`row` as a job's claim summary (`toolkit.jobs`): a skipped or already claimed account
    is done; its message says which."""
    outcome: Outcome
    if row.outcome in ("claimed", "already claimed", "queued", "skipped"):
        outcome = "done"
    elif row.outcome in ("blocked", "partial", "error", "interrupted", "not run"):
        outcome = row.outcome
    message = row.message if row.outcome != "already claimed" else f"already claimed: {row.message}"
    return ClaimSummary(
        name=name,
        exit_code=row.exit_code,
        outcome=outcome,
        message=message,
        moved=row.moved,
        failed=len(row.failures),
        strategy="claim-api",
        run_id=row.run_id,
        already_finished=row.outcome == "already claimed",
    )
