"""The per-org lock in a runs database (PostgreSQL), for runs on several machines.

The same rules as the runs folder's lock (`toolkit.locks`), in the same way:

- `flock` on the org's file -> a session advisory lock (`pg_try_advisory_lock`) held on a
  connection of its own for as long as the commit runs. The server lets go of it when that
  session ends, however it ends: the process exits or is killed (its socket closes), or its
  machine vanishes (once the server's TCP keepalive gives up on the connection);
- the file's content -> the org's row of `pulumi_claim.org_lock`, naming the run that took
  it. The name stays until that run finishes, so a run that died is continued by the same
  command (the same run key) on any machine, and every other run is refused;
- `--break-lock` over a stale holder that still holds the lock -> the row's `generation` moves
  on, and the lock taken is that of the new generation (as the folder's lock unlinks the file
  and locks a new one); the old holder keeps a lock nobody asks for any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import TracebackType
from typing import Self

from toolkit.journal.database import (
    SHARED_SCHEMA,
    Database,
    DatabaseFailure,
    connect_postgres,
    database_unwritable,
)
from toolkit.locks import STALE_AFTER, LockHolder, continued_run, held, read_holder_text

_TABLE = f"{SHARED_SCHEMA}.org_lock"
_ATTEMPTS = 3
"""Takes of the lock when another process moves its generation on meanwhile."""


class DatabaseOrgLock:
    """The lock of one source org in a runs database, held from `acquire` to `release`."""

    def __init__(
        self, db: Database, database: str, source: str, taken_over: LockHolder | None
    ) -> None:
        self._db: Database | None = db
        self._database = database
        self._source = source
        self.taken_over = taken_over
        """The unfinished run whose lock this one continues (same run key), if any."""

    @classmethod
    def acquire(
        cls,
        database: str,
        source: str,
        holder: LockHolder,
        *,
        unfinished: Callable[[LockHolder], bool],
        break_lock: bool = False,
    ) -> DatabaseOrgLock:
        """Take the lock of `source` for `holder`, as `OrgLock.acquire` does."""
        db = connect_postgres(database, own_session=True)
        try:
            taken_over = _take(db, source, holder, unfinished, break_lock=break_lock)
        except DatabaseFailure as error:
            db.close()
            raise database_unwritable(database, error) from None
        except BaseException:
            db.close()
            raise
        return cls(db, database, source, taken_over)

    def name_run(self, holder: LockHolder) -> None:
        """Write the holder again, now that its run has an id."""
        self._write(holder.to_text())

    def release(self, *, finished: bool) -> None:
        """Let go; a run that did not finish leaves its name for the command that continues it."""
        if finished:
            self._write("")
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """On an error the run's name stays (it is unfinished if it made calls)."""
        self._close()

    def _write(self, holder: str) -> None:
        assert self._db is not None
        try:
            self._db.execute(
                f"UPDATE {_TABLE} SET holder = ? WHERE source = ?", (holder, self._source)
            )
        except DatabaseFailure as error:
            raise database_unwritable(self._database, error) from None

    def _close(self) -> None:
        """Closing the session lets go of its advisory lock."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _take(
    db: Database,
    source: str,
    holder: LockHolder,
    unfinished: Callable[[LockHolder], bool],
    *,
    break_lock: bool,
) -> LockHolder | None:
    db.execute(f"INSERT INTO {_TABLE} (source) VALUES (?) ON CONFLICT DO NOTHING", (source,))
    for _ in range(_ATTEMPTS):
        generation, text = db.execute(
            f"SELECT generation, holder FROM {_TABLE} WHERE source = ?", (source,)
        ).fetchone()
        previous = read_holder_text(text)
        key = _lock_key(source, generation)
        (locked,) = db.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()
        if not locked:
            if previous is None or previous.age() < STALE_AFTER or not break_lock:
                raise held(source, previous)
            # A stale holder keeps its lock of the old generation; this run takes the next,
            # which names nobody yet (as a new lock file does).
            db.execute(
                f"UPDATE {_TABLE} SET generation = ?, holder = ''"
                " WHERE source = ? AND generation = ?",
                (generation + 1, source, generation),
            )
            break_lock = False
            continue
        (now,) = db.execute(
            f"SELECT generation FROM {_TABLE} WHERE source = ?", (source,)
        ).fetchone()
        if now != generation:  # broken meanwhile by another process: take the new one
            db.execute("SELECT pg_advisory_unlock(?)", (key,))
            continue
        taken_over = continued_run(source, previous, holder, unfinished, break_lock=break_lock)
        db.execute(f"UPDATE {_TABLE} SET holder = ? WHERE source = ?", (holder.to_text(), source))
        return taken_over
    raise held(source, None)


def _lock_key(source: str, generation: int) -> int:
    """The advisory lock's 64-bit key of `source`'s lock in `generation`."""
    digest = hashlib.sha256(f"{source}\n{generation}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
