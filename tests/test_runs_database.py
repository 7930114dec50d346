"""A runs database as the user meets it: a URL that cannot be used is one clear error and
nothing is claimed, a database of another schema version is refused with what to do, and the
URL's password never shows, in errors or in the request log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psycopg
import pytest
from journal_v4 import database_to_4
from test_cli import ORGS, RESOLVES_BOTH, claim_world, snapshot, write_map
from waiting import wait_until

from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.journal.database import connect_postgres
from toolkit.journal.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

PASSWORD = "hunter2-not-shown"


def changes(server: EmulatorServer) -> list[str]:
    return [
        f"{entry.method} {entry.path}"
        for entry in server.requests.entries()
        if entry.method not in ("GET", "HEAD")
    ]


def shown(database_url: str) -> str:
    """`database_url` as the toolkit shows it: its password masked."""
    return database_url.replace(f":{urlsplit(database_url).password}@", ":***@")


def tables(database_url: str) -> list[tuple[str, str]]:
    """Every table of the database but the queue's, by schema."""
    with psycopg.connect(database_url) as connection:
        found = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'public')"
            " ORDER BY 1, 2"
        ).fetchall()
    return [(schema, name) for schema, name in found]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            f"postgresql://claim:{PASSWORD}@127.0.0.1:1/runs",
            [
                "error: the runs database at 127.0.0.1:1 cannot be reached (connection failed: "
                'connection to server at "127.0.0.1", port 1 failed: Connection refused Is the '
                "server running on that host and accepting TCP/IP connections?); nothing was "
                "changed.",
                "Check the host, port, user and password of "
                "postgresql://claim:***@127.0.0.1:1/runs, and that the server runs and accepts "
                "this machine.",
            ],
        ),
        (
            f"postgresql://claim:{PASSWORD}@runs.invalid:5432/runs",
            [
                "error: the runs database at runs.invalid:5432 cannot be reached (failed to "
                "resolve host 'runs.invalid': [Errno -2] Name or service not known); nothing "
                "was changed.",
                "Check the host, port, user and password of "
                "postgresql://claim:***@runs.invalid:5432/runs, and that the server runs and "
                "accepts this machine.",
            ],
        ),
        (
            f"mysql://claim:{PASSWORD}@127.0.0.1:3306/runs",
            [
                "error: the database URL mysql://claim:***@127.0.0.1:3306/runs is not a "
                "PostgreSQL one.",
                "Give a URL of the form postgresql://USER@HOST:PORT/DATABASE (the password as "
                "USER:PASSWORD) in PULUMI_CLAIM_DATABASE_URL or --database-url, or neither, to "
                "keep the runs in the runs folder (SQLite).",
            ],
        ),
        (
            f"postgresql://claim@127.0.0.1:1/runs?connect_timeout=5&password={PASSWORD}",
            [
                "error: the runs database at 127.0.0.1:1 cannot be reached (connection failed: "
                'connection to server at "127.0.0.1", port 1 failed: Connection refused Is the '
                "server running on that host and accepting TCP/IP connections?); nothing was "
                "changed.",
                "Check the host, port, user and password of "
                "postgresql://claim@127.0.0.1:1/runs?connect_timeout=5&password=***, and that "
                "the server runs and accepts this machine.",
            ],
        ),
    ],
    ids=["refused", "unknown-host", "not-postgresql", "password-parameter"],
)
def test_a_database_url_that_cannot_be_used_is_one_clear_error_and_nothing_is_claimed(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    url: str,
    said: list[str],
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    map_file = write_map(tmp_path, RESOLVES_BOTH)

    result = run_cli(server, "-vv", "--database-url", url, "commit", *ORGS, "-r", map_file, "--yes")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == said
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(server) == before and changes(server) == []
    assert not runs_dir.exists() or not any(runs_dir.glob("*/journal.sqlite"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_wrong_password_is_refused_without_showing_it(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, database_url: str
) -> None:
    server = make_emulator(claim_world())
    parts = urlsplit(database_url)
    wrong = database_url.replace(f":{parts.password}@", f":{PASSWORD}@")

    result = run_cli(
        server, "--database-url", wrong, "commit", *ORGS, "-r", write_map(tmp_path, ""), "--yes"
    )

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: the runs database at 127.0.0.1:{parts.port} cannot be reached (connection "
        f'failed: connection to server at "127.0.0.1", port {parts.port} failed: FATAL: '
        'password authentication failed for user "claim"); nothing was changed.'
    ), result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert changes(server) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_password_is_in_no_output_no_request_log_and_no_journal(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    server = make_emulator(claim_world())
    password = urlsplit(database_url).password
    assert password

    result = run_cli(
        server, "-vv", "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes"
    )
    status = run_cli(server, "-vv", "status", "--format", "json")

    assert result.exit_code == 4, result.stderr
    assert "INFO toolkit" in result.stderr, "the request log is on"
    assert status.exit_code == 4, status.stderr
    for text in (result.stdout, result.stderr, status.stdout, status.stderr):
        assert password not in text
    written = b"".join(path.read_bytes() for path in runs_dir.rglob("*") if path.is_file())
    assert password.encode() not in written
    run_id = read_run(runs_dir, database=database_url).run_id
    with psycopg.connect(database_url) as connection:
        dumped = repr(
            [
                connection.execute(f"SELECT * FROM pulumi_claim.{table}").fetchall()
                for table in ("run", "event", "step", "attempt")
            ]
        )
    assert password not in dumped and run_id in dumped


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_of_a_newer_schema_version_is_refused_and_nothing_changes(
    make_emulator: EmulatorFactory, run_cli: RunCli, tmp_path: Path, database_url: str
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    assert run_cli(server, "status").exit_code == 1, "no run yet; the database is set up"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE pulumi_claim.layout SET version = 6")

    result = run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")

    masked = shown(database_url)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: the runs database {masked} holds journal schema version 6, and this "
        "pulumi-claim knows versions up to 5; nothing was changed.",
        "Use the pulumi-claim release that wrote schema version 6, or a newer one, with this "
        "database (a newer release reads it as it is); or give this one a database of its own.",
    ]
    assert snapshot(server) == before and changes(server) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_of_an_earlier_schema_version_is_refused_until_upgraded_and_keeps_its_runs(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    """Version 4 kept each run in a schema of its own: a database of it is refused, with the
    command that upgrades it; `upgrade-database` moves each run into the shared tables, after
    which the same commit finds its run finished, and `status` shows it as it was."""
    server = make_emulator(claim_world())
    map_file = write_map(tmp_path, RESOLVES_BOTH)
    assert run_cli(server, "commit", *ORGS, "-r", map_file, "--yes").exit_code == 4
    before = read_run(runs_dir, database=database_url)
    assert database_to_4(database_url) == [before.run_id]
    old_tables = tables(database_url)
    moved = snapshot(server)

    refused = run_cli(server, "commit", *ORGS, "-r", map_file, "--yes")

    masked = shown(database_url)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"error: the runs database {masked} holds journal schema version 4, and this "
        "pulumi-claim uses version 5; nothing was changed.",
        "Bring it up to date once, while no run is under way: `pulumi-claim upgrade-database` "
        "with the same database URL (releases before schema version 5 cannot use it "
        "afterwards).",
    ]
    assert tables(database_url) == old_tables and snapshot(server) == moved

    upgraded = run_cli(server, "upgrade-database")

    assert upgraded.exit_code == 0, upgraded.stderr
    assert upgraded.stderr.splitlines() == [
        f"the runs database {masked} upgraded from schema version 4 to 5: 1 run(s) moved into "
        "the shared tables"
    ]
    assert [schema for schema, _ in tables(database_url)] == ["pulumi_claim"] * 10
    assert read_run(runs_dir, database=database_url) == before
    again = run_cli(server, "commit", *ORGS, "-r", map_file, "--yes")
    assert again.exit_code == 4, again.stderr
    assert f"nothing to do: run {before.run_id} finished this commit already" in again.stderr
    assert snapshot(server) == moved
    twice = run_cli(server, "upgrade-database")
    assert twice.stderr.splitlines() == [
        f"the runs database {masked} is at schema version {SCHEMA_VERSION} already: nothing to do"
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_closed_connection_is_used_again_and_one_of_its_own_session_is_not(
    database_url: str,
) -> None:
    """A worker's claims reuse its connections (a new one is a server process and an
    authentication); a connection that held a session lock is closed for real, so that the
    lock goes with it."""
    first = connect_postgres(database_url)
    (backend,) = first.execute("SELECT pg_backend_pid()").fetchone()
    first.execute("SET search_path TO elsewhere")
    first.close()
    again = connect_postgres(database_url)

    assert again.execute("SELECT pg_backend_pid()").fetchone() == (backend,)
    assert again.execute("SHOW search_path").fetchone() == ("pulumi_claim, public",)
    again.close()

    locker = connect_postgres(database_url, own_session=True)
    (locker_backend,) = locker.execute("SELECT pg_backend_pid()").fetchone()
    assert locker_backend != backend
    assert locker.execute("SELECT pg_try_advisory_lock(7)").fetchone() == (True,)
    locker.close()
    with psycopg.connect(database_url, autocommit=True) as other:
        # The server ends the closed session's process on its own time: the lock goes then.
        wait_until(
            lambda: other.execute("SELECT pg_try_advisory_lock(7)").fetchone() == (True,),
            "the lock of the closed session to be let go",
        )
    held_by_kept = connect_postgres(database_url)
    assert held_by_kept.execute("SELECT pg_backend_pid()").fetchone() == (backend,)
    held_by_kept.close()
