"""The database a journal lives in: its own SQLite file (the default), or its own schema in a
shared PostgreSQL database (`PULUMI_CLAIM_DATABASE_URL`, `--database-url`).

Both hold the same tables and columns (`schema.SCHEMA`), written by the same SQL: the journal
writes SQLite's spelling (`?` parameters, `AUTOINCREMENT`) and this module alone turns it into
PostgreSQL's. In PostgreSQL each run is a schema of its own (`run_<id>`), as in SQLite each run
is a file of its own; the schema `pulumi_claim` holds what the runs folder holds beside them:
the version of the layout, the index of runs by their key, and the per-org locks.

psycopg is imported only when a database URL is given, so that the default costs nothing.

A process keeps the PostgreSQL connections it closed and hands them out again
(`connect_postgres`): a new one costs the server a process of its own and an authentication,
and a claim made four of them, which on a small server was most of a claim's time. A
connection that holds a session lock (the org's lock, the queue's schema lock) is one of its
own and is closed for real: closing it is what lets go of the lock.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import SplitResult, parse_qsl, urlsplit

from toolkit.errors import ClaimError, InvalidInputError
from toolkit.journal.schema import SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

DATABASE_URL_VARIABLE = "PULUMI_CLAIM_DATABASE_URL"
SCHEMES = ("postgresql", "postgres")

SHARED_SCHEMA = "pulumi_claim"
SHARED_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SHARED_SCHEMA};
CREATE TABLE IF NOT EXISTS {SHARED_SCHEMA}.layout (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {SHARED_SCHEMA}.run_index (
    run_id TEXT PRIMARY KEY,
    run_key TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {SHARED_SCHEMA}.org_lock (
    source TEXT PRIMARY KEY,
    generation INTEGER NOT NULL DEFAULT 0,
    holder TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS {SHARED_SCHEMA}.claimed (
    digest TEXT PRIMARY KEY,
    account TEXT NOT NULL
);
"""
"""`layout`: the schema version every run schema has; `run_index`: run key -> runs, the newest
one continued (the runs folder's `keys/`); `org_lock`: who holds each source org (the runs
folder's `locks/`), and the generation of its advisory lock, which `--break-lock` moves on;
`claimed`: the accounts a sweep claims, by their claim token's digest (the runs folder's
`claims/`)."""

_SETUP_LOCK = 0x70756C756D69
"""The transaction lock that makes two processes setting up one database take turns."""

_KEPT = 4
"""Closed connections a process keeps for its next `connect_postgres` (the oldest one closed
for a newer): what a worker uses at once, not one per database it ever spoke to."""
_kept: list[tuple[str, psycopg.Connection[Any]]] = []
_kept_lock = threading.Lock()


class DatabaseFailure(Exception):
    """A PostgreSQL call that failed, in the driver's words (the URL's password is never in
    them: it is masked before this is made)."""


class RunsDatabaseError(ClaimError):
    """The runs database cannot be used: unreachable, refused, or of another layout."""


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database:
    """One connection, SQLite or PostgreSQL, spoken to in SQLite's SQL."""

    def __init__(
        self,
        connection: sqlite3.Connection | psycopg.Connection[Any],
        *,
        kept_for: str | None = None,
    ) -> None:
        """`kept_for`: the URL under which `close` keeps the connection for the next
        `connect_postgres` (None: close closes it)."""
        self._connection = connection
        self._kept_for = kept_for
        self._closed = False

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        if isinstance(self._connection, sqlite3.Connection):
            return self._connection.execute(sql, parameters)
        with _failures():
            return self._connection.execute(_postgres(sql), parameters)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if isinstance(self._connection, sqlite3.Connection):
            self._connection.executemany(sql, rows)
            return
        with _failures():
            self._connection.cursor().executemany(_postgres(sql), list(rows))

    def create_tables(self) -> None:
        """The journal's tables (`schema.SCHEMA`), where they are missing."""
        if isinstance(self._connection, sqlite3.Connection):
            self._connection.executescript(SCHEMA)
            return
        with _failures():
            self._connection.execute(_postgres_ddl(SCHEMA))

    def has_table(self, name: str) -> bool:
        if isinstance(self._connection, sqlite3.Connection):
            found = self.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,))
        else:
            found = self.execute(
                "SELECT 1 FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = ?",
                (name,),
            )
        return found.fetchone() is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All the writes inside, or none of them."""
        if isinstance(self._connection, sqlite3.Connection):
            with self._connection:
                yield
            return
        with _failures(), self._connection.transaction():
            yield

    def use_run(self, run_id: str) -> None:
        """Read and write the tables of run `run_id` from now on (PostgreSQL only: a SQLite
        journal is one run's)."""
        self.execute(f"SET search_path TO {run_schema(run_id)}")

    def close(self) -> None:
        """Close the connection, or keep it for the next `connect_postgres` (`kept_for`)."""
        if self._closed:
            return
        self._closed = True
        if self._kept_for is None or not _keep(self._kept_for, self._connection):
            self._connection.close()


def check_database_url(url: str) -> None:
    """Refuse a URL that is not PostgreSQL's, before anything is done."""
    if urlsplit(url).scheme not in SCHEMES:
        raise InvalidInputError(
            f"the database URL {describe(url)} is not a PostgreSQL one.",
            hint=f"Give a URL of the form postgresql://USER@HOST:PORT/DATABASE (the password "
            f"as USER:PASSWORD) in {DATABASE_URL_VARIABLE} or --database-url, or neither, to "
            "keep the runs in the runs folder (SQLite).",
        )


def describe(url: str) -> str:
    """`url` without its password (in its user part, or a `password=` parameter, as libpq
    takes it): what errors and logs may show."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = f"{parts.username}:***@" if parts.username else ":***@"
        netloc = user + netloc.rpartition("@")[2]
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    return SplitResult(parts.scheme, netloc, parts.path, query, "").geturl()


def password(url: str) -> str | None:
    """The URL's password, a secret to mask wherever text leaves the process."""
    parts = urlsplit(url)
    return parts.password or dict(parse_qsl(parts.query)).get("password")


def connect_postgres(url: str, *, run_id: str | None = None, own_session: bool = False) -> Database:
    """A connection to the runs database at `url`, set up and checked: its layout created
    when missing, refused when of another version. With `run_id`, its tables are that run's.
    One this process closed is handed out again, unless `own_session` is asked: a caller that
    takes a session lock needs a connection that closing really closes."""
    check_database_url(url)
    import psycopg

    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    connection = None if own_session else _take_kept(url)
    if connection is None:
        try:
            connection = psycopg.connect(
                url, autocommit=True, connect_timeout=10, application_name="pulumi-claim"
            )
        except psycopg.Error as error:
            raise RunsDatabaseError(
                f"the runs database at {where} cannot be reached ({_words(error, url)}); "
                "nothing was changed.",
                hint=f"Check the host, port, user and password of {describe(url)}, and that "
                "the server runs and accepts this machine.",
            ) from None
    database = Database(connection, kept_for=None if own_session else url)
    try:
        _set_up(connection, url)
        if run_id is not None:
            database.use_run(run_id)
    except (psycopg.Error, DatabaseFailure) as error:
        connection.close()
        raise RunsDatabaseError(
            f"the runs database at {where} cannot be used ({_words(error, url)}); "
            "nothing was changed.",
            hint="The user needs the right to create schemas and tables in that database.",
        ) from None
    except BaseException:
        connection.close()
        raise
    return database


def _keep(url: str, connection: sqlite3.Connection | psycopg.Connection[Any]) -> bool:
    """Keep a closed connection for `url`'s next `connect_postgres`, if it is fit for one:
    open and outside any transaction."""
    import psycopg

    if not isinstance(connection, psycopg.Connection) or connection.closed:
        return False
    if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    with _kept_lock:
        _kept.append((url, connection))
        evicted = _kept.pop(0)[1] if len(_kept) > _KEPT else None
    if evicted is not None:
        evicted.close()
    return True


def _take_kept(url: str) -> psycopg.Connection[Any] | None:
    """A kept connection to `url`, back at the shared tables; None when none is left that
    still answers (the server may have ended it meanwhile)."""
    import psycopg

    while True:
        with _kept_lock:
            found = [index for index, (kept_url, _) in enumerate(_kept) if kept_url == url]
            if not found:
                return None
            connection = _kept.pop(found[-1])[1]
        try:
            connection.execute("RESET search_path")
        except psycopg.Error:
            connection.close()
            continue
        return connection


def run_schema(run_id: str) -> str:
    """The PostgreSQL schema of run `run_id` (an id is a timestamp and hex digits)."""
    return "run_" + re.sub(r"[^0-9a-z]", "_", run_id.lower())


def _set_up(connection: psycopg.Connection[Any], url: str) -> None:
    """Create the shared tables when missing; refuse a layout of another version. A database
    set up already at this version costs two queries, and takes no lock."""
    layout = connection.execute(f"SELECT to_regclass('{SHARED_SCHEMA}.layout')").fetchone()
    if layout is not None and layout[0] is not None:
        versions = connection.execute(f"SELECT version FROM {SHARED_SCHEMA}.layout").fetchall()
        if versions == [(SCHEMA_VERSION,)]:
            return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        connection.execute(SHARED_TABLES)
        row = connection.execute(f"SELECT version FROM {SHARED_SCHEMA}.layout").fetchone()
        if row is None:
            connection.execute(
                f"INSERT INTO {SHARED_SCHEMA}.layout (version) VALUES (%s)", (SCHEMA_VERSION,)
            )
        elif row[0] < SCHEMA_VERSION:
            # Versions only add tables: each run's schema gets the ones it lacks.
            for (run_id,) in connection.execute(
                f"SELECT run_id FROM {SHARED_SCHEMA}.run_index"
            ).fetchall():
                connection.execute(f"SET LOCAL search_path TO {run_schema(run_id)}")
                connection.execute(_postgres_ddl(SCHEMA))
            connection.execute(f"UPDATE {SHARED_SCHEMA}.layout SET version = %s", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise RunsDatabaseError(
                f"the runs database {describe(url)} holds journal schema version {row[0]}, "
                f"and this pulumi-claim knows versions up to {SCHEMA_VERSION}; nothing was "
                "changed.",
                hint=f"Use the pulumi-claim release that wrote schema version {row[0]}, or a "
                "newer one, with this database (a newer release reads it as it is); or give "
                "this one a database of its own.",
            )


def database_unwritable(url: str, error: BaseException) -> RunsDatabaseError:
    """A write to the runs database that failed, before anything was changed."""
    return RunsDatabaseError(
        f"the runs database {describe(url)} could not be written ({_words(error, url)}). "
        "Nothing was changed.",
        hint="Check the server and the user's rights there, then run the same command again.",
    )


@contextmanager
def _failures() -> Iterator[None]:
    """The driver's errors as `DatabaseFailure`."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raise DatabaseFailure(str(error).strip() or type(error).__name__) from None


def _words(error: BaseException, url: str) -> str:
    """The driver's message on one line, without the URL's password."""
    from toolkit.redaction import redact

    secret = password(url)
    text = " ".join(str(error).split()) or type(error).__name__
    return redact(text, [secret] if secret else [])


def _postgres(sql: str) -> str:
    return sql.replace("?", "%s")


def _postgres_ddl(ddl: str) -> str:
    return ddl.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
