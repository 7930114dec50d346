"""The database a journal lives in: its own SQLite file (the default), or the tables of a
shared PostgreSQL database (`PULUMI_CLAIM_DATABASE_URL`, `--database-url`).

Both hold the same tables and columns (`schema.SCHEMA`), written by the same SQL: the journal
writes SQLite's spelling (`?` parameters) and this module alone turns it into PostgreSQL's.
Every row names its run, so in PostgreSQL the runs of every machine share one set of tables in
the schema `pulumi_claim`, beside what the runs folder holds next to its journals: the version
of the layout, the per-org locks and the accounts a sweep claimed. A run costs the server rows,
not tables of its own.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import SplitResult, parse_qsl, urlsplit

from toolkit.errors import ClaimError, InvalidInputError
from toolkit.journal.schema import RUN_ROWS, SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

DATABASE_URL_VARIABLE = "PULUMI_CLAIM_DATABASE_URL"
SCHEMES = ("postgresql", "postgres")

SHARED_SCHEMA = "pulumi_claim"
SHARED_TABLES = f"""
CREATE TABLE IF NOT EXISTS layout (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS org_lock (
    source TEXT PRIMARY KEY,
    generation INTEGER NOT NULL DEFAULT 0,
    holder TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS claimed (
    digest TEXT PRIMARY KEY,
    account TEXT NOT NULL
);
{SCHEMA}"""
"""In the schema `pulumi_claim`: `layout`, the version of its tables; `org_lock`, who holds
each source org (the runs folder's `locks/`) and the generation of its advisory lock, which
`--break-lock` moves on; `claimed`, the accounts a sweep claims, by their claim token's digest
(the runs folder's `claims/`); and the journal's tables (`schema.SCHEMA`), whose `run` table is
also the index of runs by their key (the runs folder's `keys/`)."""

SEARCH_PATH = f"SET search_path TO {SHARED_SCHEMA}, public"
"""The journal's SQL names its tables alone, as in SQLite; the queue's live in `public`."""

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
        """The journal's tables (`schema.SCHEMA`) in a SQLite journal, where they are missing
        (a PostgreSQL database has them from `connect_postgres` on)."""
        assert isinstance(self._connection, sqlite3.Connection)
        self._connection.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All the writes inside, or none of them."""
        if isinstance(self._connection, sqlite3.Connection):
            with self._connection:
                yield
            return
        with _failures(), self._connection.transaction():
            yield

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


def connect_postgres(url: str, *, own_session: bool = False) -> Database:
    """A connection to the runs database at `url`, its layout checked (one query): created
    when missing, refused when of another version. One this process closed is handed out
    again, unless `own_session` is asked: a caller that takes a session lock needs a
    connection that closing really closes."""
    check_database_url(url)
    import psycopg

    kept = None if own_session else _take_kept(url)
    connection, version = kept if kept is not None else _connect(url)
    try:
        if version != SCHEMA_VERSION:
            _set_up(connection, url)
    except (psycopg.Error, DatabaseFailure) as error:
        connection.close()
        raise RunsDatabaseError(
            f"the runs database at {_where(url)} cannot be used ({_words(error, url)}); "
            "nothing was changed.",
            hint="The user needs the right to create schemas and tables in that database.",
        ) from None
    except BaseException:
        connection.close()
        raise
    return Database(connection, kept_for=None if own_session else url)


def _connect(url: str) -> tuple[psycopg.Connection[Any], int | None]:
    """A new connection to `url`, at the shared tables, and their version."""
    import psycopg

    try:
        connection = psycopg.connect(
            url, autocommit=True, connect_timeout=10, application_name="pulumi-claim"
        )
        connection.execute(SEARCH_PATH)
        return connection, _layout_version(connection)
    except psycopg.Error as error:
        raise RunsDatabaseError(
            f"the runs database at {_where(url)} cannot be reached ({_words(error, url)}); "
            "nothing was changed.",
            hint=f"Check the host, port, user and password of {describe(url)}, and that "
            "the server runs and accepts this machine.",
        ) from None


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


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


def _take_kept(url: str) -> tuple[psycopg.Connection[Any], int | None] | None:
    """A kept connection to `url`, back at the shared tables, and their version, once it
    answered that; None when none is left that still answers (the server may have ended it
    meanwhile, or its tables be gone: a new connection looks again)."""
    import psycopg

    while True:
        with _kept_lock:
            kept = [index for index, (kept_url, _) in enumerate(_kept) if kept_url == url]
            if not kept:
                return None
            connection = _kept.pop(kept[-1])[1]
        try:
            # One round trip: back at the shared tables, and their version.
            answer = connection.execute(
                f"{SEARCH_PATH}; SELECT max(version) FROM {SHARED_SCHEMA}.layout"
            )
            answer.nextset()
            return connection, _value(answer)
        except psycopg.Error:
            connection.close()


def _set_up(connection: psycopg.Connection[Any], url: str) -> None:
    """Create the shared tables when missing; refuse a layout of another version. Two
    processes setting up one database take turns."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        version = _layout_version(connection)
        if version is None:
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SHARED_SCHEMA}")
            connection.execute(SHARED_TABLES)
            connection.execute("INSERT INTO layout (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            raise RunsDatabaseError(
                f"the runs database {describe(url)} holds journal schema version {version}, "
                f"and this pulumi-claim uses version {SCHEMA_VERSION}; nothing was changed.",
                hint="Bring it up to date once, while no run is under way: "
                "`pulumi-claim upgrade-database` with the same database URL (releases "
                f"before schema version {SCHEMA_VERSION} cannot use it afterwards).",
            )
        elif version > SCHEMA_VERSION:
            raise RunsDatabaseError(
                f"the runs database {describe(url)} holds journal schema version {version}, "
                f"and this pulumi-claim knows versions up to {SCHEMA_VERSION}; nothing was "
                "changed.",
                hint=f"Use the pulumi-claim release that wrote schema version {version}, or a "
                "newer one, with this database (a newer release reads it as it is); or give "
                "this one a database of its own.",
            )


def _layout_version(connection: psycopg.Connection[Any]) -> int | None:
    """The version of the shared tables (None: there are none yet), in one query. Inside a
    transaction, a missing table would end it: there, it is looked up first."""
    import psycopg

    if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        found = _value(connection.execute(f"SELECT to_regclass('{SHARED_SCHEMA}.layout')"))
        if found is None:
            return None
    try:
        version = _value(connection.execute(f"SELECT max(version) FROM {SHARED_SCHEMA}.layout"))
    except psycopg.errors.UndefinedTable:
        return None
    return None if version is None else int(version)


@dataclass(frozen=True)
class DatabaseUpgrade:
    """What `upgrade_database` did: the version it found (None: no tables yet), the runs it
    moved into the shared tables, and the schemas it left where they were."""

    found: int | None
    runs: int
    schemas_left: tuple[str, ...]


def upgrade_database(url: str) -> DatabaseUpgrade:
    """Bring the runs database at `url` to this schema version: from versions 2 to 4, where
    each run had a schema of its own (`run_<id>`), every run's rows are copied into the shared
    tables, counted, and its tables dropped (its schema too, once empty), all in one
    transaction. A database at this version is left as it is; one without tables is set up;
    one of a newer version is refused."""
    import psycopg

    connection, version = _connect(url)
    try:
        if version is None or version >= SCHEMA_VERSION:
            connect_postgres(url).close()
            return DatabaseUpgrade(version, 0, ())
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
            version = _layout_version(connection)
            if version is None or version >= SCHEMA_VERSION:
                return DatabaseUpgrade(version, 0, ())
            connection.execute(SCHEMA)
            runs = connection.execute(
                "SELECT run_id FROM run_index ORDER BY started_at, run_id"
            ).fetchall()
            left = tuple(schema for (run_id,) in runs if (schema := _move_run(connection, run_id)))
            connection.execute("DROP TABLE run_index")
            connection.execute("UPDATE layout SET version = %s", (SCHEMA_VERSION,))
        return DatabaseUpgrade(version, len(runs), left)
    except (psycopg.Error, DatabaseFailure) as error:
        raise database_unwritable(url, error) from None
    finally:
        connection.close()


def _move_run(connection: psycopg.Connection[Any], run_id: str) -> str | None:
    """Copy run `run_id` from its schema of versions 2 to 4 into the shared tables, each
    table's rows counted; drop its tables, and its schema once empty. The schema's name when
    something else is left in it."""
    schema = "run_" + re.sub(r"[^0-9a-z]", "_", run_id.lower())
    for table in ("run", *RUN_ROWS):
        found = _value(connection.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)))
        if found is None:
            continue  # a table of a later version than the run's
        columns = [
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            ).fetchall()
        ]
        names = ", ".join(columns)
        into = f"{SHARED_SCHEMA}.{table}"
        if table == "run":
            copied = connection.execute(
                f"INSERT INTO {into} ({names}) SELECT {names} FROM {schema}.{table}"
            )
        else:
            copied = connection.execute(
                f"INSERT INTO {into} (run_id, {names}) SELECT %s, {names} FROM {schema}.{table}",
                (run_id,),
            )
        rows = _value(connection.execute(f"SELECT count(*) FROM {schema}.{table}"))
        if copied.rowcount != rows:
            raise DatabaseFailure(f"{rows} rows in {schema}.{table}, {copied.rowcount} copied")
        connection.execute(f"DROP TABLE {schema}.{table}")
    others = _value(
        connection.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(%s)", (schema,)
        )
    )
    if others:
        return schema
    connection.execute(f"DROP SCHEMA IF EXISTS {schema}")
    return None


def _value(cursor: psycopg.Cursor[Any]) -> Any:
    """The one value a query of one row and column answered."""
    row = cursor.fetchone()
    assert row is not None, "an aggregate or to_regclass answers one row"
    return row[0]


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
