"""Writing one run's journal: the plan as made, every state-changing call before it is made and
its outcome after it, the landings, the final document.

Rows are committed one by one in write-ahead-log mode without a flush to disk per row: a killed
process loses nothing (the operating system has the data), at a cost of microseconds per row.
Rows that describe one moment (a call's record and the progress event that reports it) are
committed together (`Journal.together`): one commit, not one each, and never one without the
other.

A write that fails (the disk is full, an I/O error) stops the run at that point, as Ctrl-C
does: no call begins after it, since none could be recorded first, and the calls under way
finish and have their outcomes written if the disk lets them. `Journal.writing` then raises one
`RunsFolderError` that says what is recorded and what is not; the same command continues the
run once there is room again.

In PostgreSQL (`database`), a run is its rows in the tables every run shares
(`toolkit.journal.database`), each naming the run; a journal numbers its own rows (attempts,
steps, events, landings) from 1, as in a file of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import ClaimError, RunsFolderError
from toolkit.journal.database import (
    Database,
    DatabaseFailure,
    connect_postgres,
    database_unwritable,
    describe,
)
from toolkit.journal.records import StepRecord, read_steps
from toolkit.journal.schema import (
    JOURNAL_FILE,
    KEYS_DIR,
    SCHEMA_VERSION,
    LandingOutcome,
    RevisionSide,
    RunState,
    StepOutcome,
    connect,
    upgrade_journal_file,
)
from toolkit.models import AgentClaimResponse
from toolkit.private_files import (
    RUNS_DIR_FULL_HINT,
    make_private_dir,
    make_private_file,
    runs_dir_unwritable,
    write_failure,
    write_private_text,
)
from toolkit.redaction import redact

if TYPE_CHECKING:
    from toolkit.choices import Strategy
    from toolkit.progress import Step


@dataclass
class _Group:
    """The calls whose records a `Journal.together` holds until its commit."""

    begun: list[int] = field(default_factory=list)
    """Rows of calls begun: not to be made if the commit fails."""
    ended: list[str] = field(default_factory=list)
    """Calls given their outcome: unrecorded if the commit fails."""
    failed: bool = False
    """A write inside failed: none of them is committed."""


class _GroupFailed(Exception):
    """Rolls a `Journal.together` back after one of its writes failed."""


class Journal:
    """Writer of one run's journal; every write is committed at once, so a kill loses nothing.

    Safe to use from worker threads (migrate records from them). Every text is redacted before
    it is written. After a write failed, `begin` refuses every new call (`RunsFolderError`),
    and the other writes are still tried, each one's failure kept for `writing` to report.
    """

    def __init__(
        self, db: Database, run_id: str, path: Path | None, database: str | None = None
    ) -> None:
        self.path = path
        """The journal's file (None: in memory, or in `database`)."""
        self.database = database
        self.run_id = run_id
        self._db = db
        self._lock = threading.RLock()
        self._attempt = 0
        self._failure: str | None = None
        """Why the first write that failed did (None: none failed)."""
        self._under_way: dict[int, str] = {}
        """Row -> the call (`action move`) begun and not yet given its outcome."""
        self._unrecorded: list[str] = []
        """Calls made whose outcome could not be written."""
        self._on_failure: Callable[[], None] = lambda: None
        self._group: _Group | None = None
        """The writes `together` holds in its transaction (None: each write commits)."""

    @classmethod
    def start(
        cls,
        runs_dir: Path,
        *,
        run_key: str,
        request: Mapping[str, Any],
        source_org: str,
        destination_org: str,
        strategy: Strategy,
        has_claim: bool,
        plan: AgentClaimResponse,
        notices: list[str],
        database: str | None = None,
    ) -> Journal:
        """A new run in `runs_dir` (or `database`), indexed under `run_key`."""
        started = _now()
        run_id = f"{started.replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"
        row = (
            run_id,
            run_key,
            json.dumps(dict(request), sort_keys=True),
            source_org,
            destination_org,
            strategy,
            int(has_claim),
            started,
            _dump(plan),
            json.dumps([redact(notice) for notice in notices]),
        )
        if database is not None:
            return cls._start_in_database(database, row)
        run_dir = runs_dir / run_id
        db: Database | None = None
        try:
            make_private_dir(run_dir)
            path = make_private_file(run_dir / JOURNAL_FILE)
            db = Database(connect(path))
            with db.transaction():
                db.create_tables()
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute(
                    "INSERT INTO run (id, run_key, request, source_org, destination_org,"
                    " strategy, has_claim, started_at, state, plan, notices)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                    row,
                )
            journal = cls(db, run_id, path)
            journal._new_attempt()
            make_private_dir(runs_dir / KEYS_DIR)
            write_private_text(runs_dir / KEYS_DIR / run_key, run_id)
        except (sqlite3.Error, OSError) as error:
            # Nothing is kept of a run that never began: `status` shows the run before it.
            if db is not None:
                db.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            raise runs_dir_unwritable(runs_dir, error) from None
        return journal

    @classmethod
    def _start_in_database(cls, database: str, row: tuple[Any, ...]) -> Journal:
        """A new run in `database`: its row in the shared tables."""
        db = connect_postgres(database)
        try:
            with db.transaction():
                db.execute(
                    "INSERT INTO run (id, run_key, request, source_org, destination_org,"
                    " strategy, has_claim, started_at, state, plan, notices)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                    row,
                )
            journal = cls(db, row[0], None, database)
            journal._new_attempt()
        except DatabaseFailure as error:
            db.close()
            raise database_unwritable(database, error) from None
        return journal

    @classmethod
    def reopen(cls, runs_dir: Path, run_id: str, *, database: str | None = None) -> Journal:
        """The journal of run `run_id`, to continue it: a new attempt, state running again."""
        try:
            journal = cls.attach(runs_dir, run_id, database=database)
        except (sqlite3.Error, OSError, DatabaseFailure) as error:
            raise _unwritable(runs_dir, database, error) from None
        try:
            with journal._db.transaction():
                journal._db.execute(
                    "UPDATE run SET state = 'running', finished_at = NULL, result = NULL"
                    " WHERE id = ?",
                    (run_id,),
                )
            journal._new_attempt()
        except (sqlite3.Error, OSError, DatabaseFailure) as error:
            journal.close()
            raise _unwritable(runs_dir, database, error) from None
        return journal

    @classmethod
    def attach(cls, runs_dir: Path, run_id: str, *, database: str | None = None) -> Journal:
        """The journal of run `run_id`, to add to its record (a landing) without continuing
        the run; a journal of an earlier schema is brought up to date. Raises the
        `sqlite3.Error`, `OSError` or `DatabaseFailure` of a journal that cannot be written."""
        if database is not None:
            return cls(connect_postgres(database), run_id, None, database)
        path = runs_dir / run_id / JOURNAL_FILE
        connection = connect(path)
        try:
            with connection:
                (version,) = connection.execute("PRAGMA user_version").fetchone()
                if version < SCHEMA_VERSION:
                    upgrade_journal_file(connection)
        except BaseException:
            connection.close()
            raise
        return cls(Database(connection), run_id, path)

    @classmethod
    def in_memory(cls) -> Journal:
        """A journal kept in memory only, for a commit made without a runs directory."""
        db = Database(sqlite3.connect(":memory:", check_same_thread=False))
        db.create_tables()
        journal = cls(db, "in-memory", None)
        journal._new_attempt()
        return journal

    def record(self, message: str) -> None:
        """One line of what happened (a progress event's text)."""
        self._insert("event", ("at", "message"), (_now(), redact(message)))

    def begin(self, move: str, action: Step, detail: str) -> int:
        """Record a call about to be made for `move`; returns its row for `end`.

        Raises `RunsFolderError` when the journal cannot be written (now or before): the call
        must not be made, since nothing would say it was.
        """
        row = self._insert(
            "step",
            ("attempt", "at", "move", "action", "detail"),
            (self._attempt, _now(), move, action, redact(detail)),
            call=True,
        )
        if row is None:
            raise self._cannot_write()
        with self._lock:
            self._under_way[row] = f"{action} {move}"
            if self._group is not None:
                self._group.begun.append(row)
        return row

    def end(self, row: int, outcome: StepOutcome, message: str = "") -> None:
        """Record what became of the call of `row`."""
        with self._lock:
            call = self._under_way.pop(row, None) or f"call {row}"
            if self._group is not None:
                self._group.ended.append(call)
        if not self._write(
            "UPDATE step SET outcome = ?, message = ?, finished_at = ?"
            " WHERE run_id = ? AND seq = ?",
            (outcome, redact(message), _now(), self.run_id, row),
        ):
            with self._lock:
                self._unrecorded.append(call)

    @contextmanager
    def together(self) -> Iterator[None]:
        """The writes inside committed in one transaction at its end: a call's record and the
        events that report it cost one commit, and stand or fall together. Nothing may be
        awaited inside (the call itself is made after it). Raises `RunsFolderError`, as `begin`
        does, when the commit fails and a call was begun inside: it must not be made."""
        with self._lock:
            group = self._group = _Group()
            try:
                with self._db.transaction():
                    yield
                    if group.failed:
                        raise _GroupFailed
            except (_GroupFailed, sqlite3.Error, OSError, DatabaseFailure) as error:
                if not isinstance(error, _GroupFailed):
                    self._failed(error)
                self._rolled_back(group)
                if group.begun:
                    raise self._cannot_write() from None
            except BaseException:
                self._rolled_back(group)
                raise
            finally:
                self._group = None

    def _rolled_back(self, group: _Group) -> None:
        """The calls of a `together` whose rows are gone: those ended are unrecorded, those
        begun are not under way (they are not made). Called with `_lock` held."""
        self._unrecorded.extend(call for call in group.ended if call not in self._unrecorded)
        for row in group.begun:
            self._under_way.pop(row, None)

    def on_failure(self, stop: Callable[[], None]) -> None:
        """Call `stop` when a write fails, so that the run stops there (no call can begin)."""
        self._on_failure = stop

    @contextmanager
    def writing(self) -> Iterator[Journal]:
        """The journal while a run writes it, closed after. If a write failed, the run stopped
        at that point: its `RunsFolderError` is raised, in place of any error it caused."""
        try:
            yield self
        except ClaimError:
            if self._failure is None:
                raise
        finally:
            self.close()
        if self._failure is not None:
            raise self._unwritten()

    def steps(self) -> list[StepRecord]:
        with self._lock:
            return read_steps(self._db, self.run_id)

    def stack_ids(self) -> dict[str, str]:
        """Move (the source stack's `project/stack` as planned) -> the service's stack id."""
        with self._lock:
            found = self._db.execute(
                "SELECT move, id FROM stack_id WHERE run_id = ?", (self.run_id,)
            )
            return dict(found.fetchall())

    def record_stack_ids(self, ids: Mapping[str, str]) -> None:
        self._write(
            "INSERT INTO stack_id (run_id, move, id) VALUES (?, ?, ?)"
            " ON CONFLICT (run_id, move) DO UPDATE SET id = excluded.id",
            *((self.run_id, move, id_) for move, id_ in ids.items()),
        )

    def revision(self, move: str, side: RevisionSide) -> str | None:
        """The revision of `move`'s `side` this run recorded last (None: none recorded)."""
        with self._lock:
            row = self._db.execute(
                "SELECT revision FROM revision WHERE run_id = ? AND move = ? AND side = ?",
                (self.run_id, move, side),
            ).fetchone()
        return None if row is None else str(row[0])

    def record_revision(self, move: str, side: RevisionSide, revision: str) -> None:
        """Remember the revision of `move`'s `side`: what a later removal or overwrite checks
        it is still looking at."""
        self._write(
            "INSERT INTO revision (run_id, move, side, revision) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (run_id, move, side) DO UPDATE SET revision = excluded.revision",
            (self.run_id, move, side, revision),
        )

    def record_landing(
        self, *, stack: str, outcome: LandingOutcome, summary: str = "", message: str = ""
    ) -> None:
        """Record one landing of the run's moves: what it changed, or why it failed."""
        self._insert(
            "landing",
            ("at", "stack", "outcome", "summary", "message"),
            (_now(), redact(stack), outcome, redact(summary), redact(message)),
        )

    def finish(self, result: AgentClaimResponse, *, state: RunState = "finished") -> None:
        """Record the run's document; `interrupted` when it stopped before the end."""
        self._write(
            "UPDATE run SET state = ?, finished_at = ?, result = ? WHERE id = ?",
            (state, _now(), _dump(result), self.run_id),
        )

    def close(self) -> None:
        self._db.close()

    def _new_attempt(self) -> None:
        with self._lock, self._db.transaction():
            (self._attempt,) = self._db.execute(
                "INSERT INTO attempt (run_id, n, at, pid, host)"
                " SELECT ?, coalesce(max(n), 0) + 1, ?, ?, ? FROM attempt WHERE run_id = ?"
                " RETURNING n",
                (self.run_id, _now(), os.getpid(), socket.gethostname(), self.run_id),
            ).fetchone()

    def _transaction(self) -> AbstractContextManager[None]:
        """A write's own transaction, or, inside `together`, the one it holds."""
        return nullcontext() if self._group is not None else self._db.transaction()

    def _cannot_write(self) -> RunsFolderError:
        return RunsFolderError(f"the journal of run {self.run_id} cannot be written.")

    def _write(self, sql: str, *rows: tuple[Any, ...]) -> bool:
        """Whether the rows were written (all or none); a failure is kept for `writing`, and
        stops the run."""
        with self._lock:
            try:
                with self._transaction():
                    self._db.executemany(sql, rows)
            except (sqlite3.Error, OSError, DatabaseFailure) as error:
                self._failed(error)
                return False
        return True

    def _insert(
        self, table: str, columns: tuple[str, ...], values: tuple[Any, ...], *, call: bool = False
    ) -> int | None:
        """Add a row of the run to `table`, numbered after its last one: its `seq`, or None
        when it failed, or, for a `call`, once any write has failed."""
        sql = (
            f"INSERT INTO {table} (run_id, seq, {', '.join(columns)})"
            f" SELECT ?, coalesce(max(seq), 0) + 1, {', '.join('?' for _ in columns)}"
            f" FROM {table} WHERE run_id = ? RETURNING seq"
        )
        with self._lock:
            if call and self._failure is not None:
                return None
            try:
                with self._transaction():
                    (row,) = self._db.execute(sql, (self.run_id, *values, self.run_id)).fetchone()
            except (sqlite3.Error, OSError, DatabaseFailure) as error:
                self._failed(error)
                return None
        return int(row)

    def _failed(self, error: BaseException) -> None:
        """Keep the first failure; ask the run to stop. Called with `_lock` held."""
        if self._group is not None:
            self._group.failed = True
        if self._failure is None:
            self._failure = write_failure(error)
            self._on_failure()

    def _unwritten(self) -> RunsFolderError:
        """What the run recorded and what it could not, after a write failed."""
        unrecorded = (
            f", apart from what became of {len(self._unrecorded)} call(s) made just then "
            f"({', '.join(self._unrecorded)}): the same command looks each one up on the "
            "service before it goes on"
            if self._unrecorded
            else ""
        )
        continues = f"it continues run {self.run_id} from its journal and finishes the job."
        if self.database is not None:
            where = f"the runs database {describe(self.database)}"
            hint = f"Check the server, then run the same command again: {continues}"
        else:
            assert self.path is not None  # a journal in memory never fails to write
            where = str(self.path)
            hint = RUNS_DIR_FULL_HINT.format(folder=self.path.parent.parent) + f": {continues}"
        return RunsFolderError(
            f"the journal of run {self.run_id} could not be written ({self._failure}), so the "
            "run stopped there: no call began after it. Nothing was lost: every call the run "
            f"made is recorded in {where}{unrecorded}.",
            hint=hint,
        )


def _unwritable(runs_dir: Path, database: str | None, error: BaseException) -> ClaimError:
    if database is not None:
        return database_unwritable(database, error)
    return runs_dir_unwritable(runs_dir, error)


def _dump(document: AgentClaimResponse) -> str:
    return redact(json.dumps(document.to_wire(), sort_keys=True))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
