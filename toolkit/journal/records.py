"""A run as its journal recorded it: what `status` shows, and what a re-run continues from.
Journals are opened read-only here; `toolkit.journal.writer` writes them. With `database`,
runs are read from that PostgreSQL database, by the same queries."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import InvalidInputError
from toolkit.journal.database import (
    SHARED_SCHEMA,
    Database,
    DatabaseFailure,
    connect_postgres,
    describe,
)
from toolkit.journal.schema import (
    JOURNAL_FILE,
    KEYS_DIR,
    SCHEMA_VERSION,
    LandingOutcome,
    RunState,
    StepOutcome,
    upgrade_journal_file,
)
from toolkit.models import AgentClaimResponse
from toolkit.private_files import check_runs_dir

if TYPE_CHECKING:
    from toolkit.choices import Strategy


@dataclass(frozen=True)
class StepRecord:
    """One state-changing call of a run; `outcome` None: made, but no outcome was recorded."""

    seq: int
    attempt: int
    at: str
    move: str
    action: str
    detail: str
    outcome: StepOutcome | None
    message: str | None


@dataclass(frozen=True)
class LandingRecord:
    """One landing of a run's moves: the stack it ran as (`org/project/stack`), and what it
    changed (`summary`, e.g. "3 created") or why it failed (`message`, with its hint)."""

    at: str
    stack: str
    outcome: LandingOutcome
    summary: str
    message: str

    def describe(self) -> str:
        """One line: "landed in org/project/stack: 3 created", or the failure."""
        if self.outcome == "landed":
            return f"landed in {self.stack}: {self.summary}"
        return f"failed in {self.stack}: " + " ".join(self.message.split())


@dataclass(frozen=True)
class RunRecord:
    """What `status` shows of one run, and what a re-run continues from."""

    run_id: str
    run_key: str
    request: dict[str, Any]
    source_org: str
    destination_org: str
    strategy: Strategy
    has_claim: bool
    """Whether a claim token stood behind the run (see `ClaimPlan.has_claim`)."""
    started_at: str
    state: RunState
    finished_at: str | None
    plan: AgentClaimResponse
    notices: list[str]
    result: AgentClaimResponse | None
    events: list[tuple[str, str]]
    steps: list[StepRecord]
    attempts: int
    landings: list[LandingRecord]
    """Every landing of the run's moves, oldest first; the last one is what stands."""

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    @property
    def landing(self) -> LandingRecord | None:
        """The run's latest landing, if it was landed at all."""
        return self.landings[-1] if self.landings else None


def read_run(
    runs_dir: Path, run_id: str | None = None, *, database: str | None = None
) -> RunRecord:
    """The run named `run_id`, or the newest one in `runs_dir` (or `database`)."""
    if database is not None:
        return _read_in_database(database, run_id)
    check_runs_dir(runs_dir, writable=False)
    run_dir = runs_dir / run_id if run_id else _newest(runs_dir)
    path = run_dir / JOURNAL_FILE
    if not path.is_file():
        raise InvalidInputError(
            f"no run {run_id!r} in {runs_dir}.",
            hint="Run `pulumi-claim status` without an argument to see the newest run.",
        )
    return _read(path)


def list_runs(runs_dir: Path, *, database: str | None = None) -> list[RunRecord]:
    """Every run recorded in `runs_dir` (or `database`), the latest started first."""
    if database is not None:
        db = connect_postgres(database)
        try:
            runs = [_read_indexed(db, database, run_id) for run_id in _indexed(db)]
        finally:
            db.close()
    else:
        check_runs_dir(runs_dir, writable=False)
        runs = [_read(path) for path in _journals(runs_dir)]
    return sorted(runs, key=lambda run: run.started_at, reverse=True)


def find_run(runs_dir: Path, run_key: str, *, database: str | None = None) -> RunRecord | None:
    """The newest run of `run_key`, if any was recorded in `runs_dir` (or `database`)."""
    if database is not None:
        db = connect_postgres(database)
        try:
            newest = _indexed(db, run_key)
            return _read_indexed(db, database, newest[-1]) if newest else None
        finally:
            db.close()
    key_file = runs_dir / KEYS_DIR / run_key
    if not key_file.is_file():
        return None
    path = runs_dir / key_file.read_text(encoding="utf-8").strip() / JOURNAL_FILE
    return _read(path) if path.is_file() else None


def made_calls(runs_dir: Path, run_id: str, *, database: str | None = None) -> bool:
    """Whether run `run_id` recorded any state-changing call: not when it has no journal (it
    stopped while it was still planning); when its journal cannot be read, it may have."""
    if database is not None:
        db = connect_postgres(database)
        try:
            found = db.execute("SELECT 1 FROM step WHERE run_id = ? LIMIT 1", (run_id,))
            return found.fetchone() is not None
        except DatabaseFailure:
            return True
        finally:
            db.close()
    path = runs_dir / run_id / JOURNAL_FILE
    if not path.is_file():
        return False
    try:
        journal = _open_file(path)
        try:
            found = journal.execute("SELECT 1 FROM step WHERE run_id = ? LIMIT 1", (run_id,))
            return found.fetchone() is not None
        finally:
            journal.close()
    except sqlite3.DatabaseError:
        return True


def _read_in_database(database: str, run_id: str | None) -> RunRecord:
    """Run `run_id` (or the newest) of the PostgreSQL `database`."""
    db = connect_postgres(database)
    try:
        if run_id is None:
            indexed = _indexed(db)
            if not indexed:
                raise InvalidInputError(
                    f"no commit has been recorded in the runs database {describe(database)}.",
                    hint="Runs are recorded by `pulumi-claim commit`; unset "
                    "PULUMI_CLAIM_DATABASE_URL to look in the runs folder.",
                )
            run_id = indexed[-1]
        elif not _is_indexed(db, run_id):
            raise InvalidInputError(
                f"no run {run_id!r} in the runs database {describe(database)}.",
                hint="Run `pulumi-claim status` without an argument to see the newest run.",
            )
        return _read_indexed(db, database, run_id)
    finally:
        db.close()


def _read_indexed(db: Database, database: str, run_id: str) -> RunRecord:
    """Run `run_id`, listed in the index of `db` (the runs database at `database`)."""
    try:
        return _read_from(db, run_id)
    except (sqlite3.DatabaseError, DatabaseFailure, ValueError) as error:
        raise InvalidInputError(
            f"the journal of run {run_id} in the runs database {describe(database)} cannot be "
            f"read ({error}): it is damaged or not a pulumi-claim journal.",
            hint=f"Delete the run's rows from the tables of the schema {SHARED_SCHEMA} (its "
            "`run` row, and the rows that name it in `run_id`); the service itself still "
            "shows where every stack is (`pulumi-claim preview`).",
        ) from None


def _indexed(db: Database, run_key: str | None = None) -> list[str]:
    """The runs of the runs database `db` (of `run_key` only, when given), oldest first."""
    if run_key is None:
        found = db.execute("SELECT id FROM run ORDER BY started_at, id")
    else:
        found = db.execute(
            "SELECT id FROM run WHERE run_key = ? ORDER BY started_at, id", (run_key,)
        )
    rows = found.fetchall()
    return [run_id for (run_id,) in rows]


def _is_indexed(db: Database, run_id: str) -> bool:
    return db.execute("SELECT 1 FROM run WHERE id = ?", (run_id,)).fetchone() is not None


def _read(path: Path) -> RunRecord:
    try:
        db = _open_file(path)
        try:
            return _read_from(db, path.parent.name)
        finally:
            db.close()
    except (sqlite3.DatabaseError, ValueError) as error:
        raise InvalidInputError(
            f"the journal {path} cannot be read ({error}): it is damaged or not a "
            "pulumi-claim journal.",
            hint=f"Move {path.parent} out of the runs directory; the service itself still "
            "shows where every stack is (`pulumi-claim preview`).",
        ) from None


def _open_file(path: Path) -> Database:
    """The journal file at `path`, read-only; one of an earlier version as an upgraded copy
    in memory (`upgrade_journal_file`), the file itself left as it is."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version >= SCHEMA_VERSION:
        return Database(db)
    copy = sqlite3.connect(":memory:")
    try:
        db.backup(copy)
        with copy:
            upgrade_journal_file(copy)
    except BaseException:
        copy.close()
        raise
    finally:
        db.close()
    return Database(copy)


def _read_from(db: Database, run_id: str) -> RunRecord:
    """Run `run_id` of the journal `db`. Raises `sqlite3.DatabaseError` or `DatabaseFailure`
    when it holds none, and `ValueError` when its documents do not read."""
    row = db.execute(
        "SELECT id, run_key, request, source_org, destination_org, strategy, has_claim,"
        " started_at, state, finished_at, plan, notices, result FROM run WHERE id = ?",
        (run_id,),
    ).fetchone()
    events = db.execute(
        "SELECT at, message FROM event WHERE run_id = ? ORDER BY seq", (run_id,)
    ).fetchall()
    steps = read_steps(db, run_id)
    (attempts,) = db.execute("SELECT count(*) FROM attempt WHERE run_id = ?", (run_id,)).fetchone()
    landings = _landings(db, run_id)
    if row is None:
        raise sqlite3.DatabaseError("no run recorded")
    return RunRecord(
        run_id=row[0],
        run_key=row[1],
        request=json.loads(row[2]),
        source_org=row[3],
        destination_org=row[4],
        strategy=row[5],
        has_claim=bool(row[6]),
        started_at=row[7],
        state=row[8],
        finished_at=row[9],
        plan=AgentClaimResponse.model_validate_json(row[10]),
        notices=json.loads(row[11]),
        result=AgentClaimResponse.model_validate_json(row[12]) if row[12] else None,
        events=[(at, message) for at, message in events],
        steps=steps,
        attempts=attempts,
        landings=landings,
    )


def read_steps(db: Database, run_id: str) -> list[StepRecord]:
    return [
        StepRecord(*row)
        for row in db.execute(
            "SELECT seq, attempt, at, move, action, detail, outcome, message FROM step"
            " WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
    ]


def _landings(db: Database, run_id: str) -> list[LandingRecord]:
    return [
        LandingRecord(*row)
        for row in db.execute(
            "SELECT at, stack, outcome, summary, message FROM landing WHERE run_id = ?"
            " ORDER BY seq",
            (run_id,),
        ).fetchall()
    ]


def _journals(runs_dir: Path) -> list[Path]:
    """The journals of `runs_dir`, oldest first: a run's id starts with when it started."""
    return sorted(runs_dir.glob(f"*/{JOURNAL_FILE}")) if runs_dir.is_dir() else []


def _newest(runs_dir: Path) -> Path:
    runs = _journals(runs_dir)
    if not runs:
        raise InvalidInputError(
            f"no commit has been recorded in {runs_dir}.",
            hint="Runs are recorded by `pulumi-claim commit`; set PULUMI_CLAIM_RUNS_DIR to look "
            "elsewhere.",
        )
    return runs[-1].parent
