"""A durable record of each commit: the plan, every call as it happens, and the final document.

One SQLite file per run directory (`<runs>/<run-id>/journal.sqlite`), written as the commit
goes: a state-changing call gets its row before it is made and its outcome after it, so after a
crash at any point the journal tells which calls were done, which failed, and which were under
way. `pulumi-claim status` reads it; a re-run of the same commit (`toolkit.runs`) finds its run
by the run's key and continues it. After the moves, each landing of them (`toolkit.landing`)
is recorded in the run's journal too: the stack it ran as, and what it changed or why it failed.

A journal carries its schema's version (`PRAGMA user_version`). Versions only add tables, so a
journal of an earlier version is brought up to date when a run is written to again, and is
read as it is meanwhile (what it has no table for, it has no rows of).

With a runs database (`PULUMI_CLAIM_DATABASE_URL`, `--database-url`), each run is a schema of
that PostgreSQL database with the same tables, and runs on several machines share the record
(`database`).

Its parts: `schema` (where runs live, the file's tables), `database` (the connection to a
journal, SQLite or PostgreSQL, and the only home of their differences), `writer` (`Journal`),
`records` (a run as recorded, read back).
"""

from __future__ import annotations

from toolkit.journal.records import (
    LandingRecord,
    RunRecord,
    StepRecord,
    find_run,
    list_runs,
    made_calls,
    read_run,
)
from toolkit.journal.schema import (
    JOURNAL_FILE,
    LandingOutcome,
    RevisionSide,
    RunState,
    StepOutcome,
    default_runs_dir,
)
from toolkit.journal.writer import Journal

__all__ = [
    "JOURNAL_FILE",
    "Journal",
    "LandingOutcome",
    "LandingRecord",
    "RevisionSide",
    "RunRecord",
    "RunState",
    "StepOutcome",
    "StepRecord",
    "default_runs_dir",
    "find_run",
    "list_runs",
    "made_calls",
    "read_run",
]
