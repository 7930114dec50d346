"""The journal and the runs directory: private files, readable errors, and what status says."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import STORAGES
from journal_v4 import sqlite_file_to_4
from test_cli import ORGS, RESOLVES_BOTH, claim_world, snapshot, write_map

from toolkit.errors import RunsFolderError
from toolkit.journal import JOURNAL_FILE, Journal, LandingOutcome, read_run
from toolkit.journal.database import Database, connect_postgres
from toolkit.journal.schema import SCHEMA_VERSION
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

    from toolkit.emulator.server import EmulatorServer


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would let everyone read new files, to show the journal does not care."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_runs_directory_and_journal_are_readable_by_their_owner_only(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    open_umask: None,
) -> None:
    server = make_emulator(claim_world())
    result = run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")
    # Every stack moves; the agent's environment and Insights account are reported (exit 4).
    assert result.exit_code == 4, result.stderr

    (run_dir,) = [p for p in runs_dir.iterdir() if (p / JOURNAL_FILE).exists()]
    folders = [runs_dir, run_dir, runs_dir / "keys", runs_dir / "locks"]
    assert [oct(mode(folder)) for folder in folders] == [oct(0o700)] * len(folders)
    files = [p for p in runs_dir.rglob("*") if p.is_file()]
    assert files and {oct(mode(p)) for p in files} == {oct(0o600)}, files


def test_a_damaged_journal_is_a_clear_error(
    make_emulator: EmulatorFactory, run_cli: RunCli, runs_dir: Path, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")
    (journal,) = runs_dir.glob(f"*/{JOURNAL_FILE}")
    journal.write_bytes(b"\x00not a database\xff" * 64)

    result = run_cli(server, "status")

    assert result.exit_code == 1
    assert f"the journal {journal} cannot be read" in result.stderr
    assert f"Move {journal.parent} out of the runs directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_runs_directory_that_is_a_file_is_refused_before_anything_changes(
    make_emulator: EmulatorFactory, run_cli: RunCli, runs_dir: Path, tmp_path: Path
) -> None:
    server = make_emulator(claim_world())
    before = snapshot(server)
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    runs_dir.write_text("not a folder", encoding="utf-8")

    for command in (
        ["commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes"],
        ["status"],
    ):
        result = run_cli(server, *command)
        assert result.exit_code == 1, command
        assert f"the runs folder {runs_dir} is a file, not a folder" in result.stderr
        assert "Traceback" not in result.stderr
    assert snapshot(server) == before


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_status_of_a_finished_run_counts_its_calls(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    database_url: str | None,
) -> None:
    server = make_emulator(claim_world())
    run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")

    result = run_cli(server, "status", "--format", "markdown")

    assert result.exit_code == 4, "as the run: its environment and Insights account stayed"
    assert (runs_dir / "keys").exists() == (database_url is None), "the runs are in one place"
    record = read_run(runs_dir, database=database_url)
    assert [step.action for step in record.steps].count("transfer") == 4
    assert "calls: 6 done" in result.stdout


# --- Landings ----------------------------------------------------------------------------

TOKEN = "pul-" + "0123456789abcdef" * 2 + "01234567"
LANDING_STACK = "acme/pulumi-claim-landing/agent-abc123"


def started_run(runs_dir: Path, database_url: str | None = None) -> str:
    """A run as a commit starts it, closed again as a commit leaves it before landing."""
    journal = Journal.start(
        runs_dir,
        run_key="key-1",
        request={},
        source_org="agent-abc123",
        destination_org="acme",
        strategy="transfer",
        has_claim=False,
        plan=AgentClaimResponse.model_validate(
            {
                "agent": {"login": "a", "orgName": "a", "createdAt": "2026-11-01T09:00:00Z"},
                "entities": [],
                "conflicts": [],
                "failures": [],
                "claimExpiresAt": "2026-12-01T09:00:00Z",
            }
        ),
        notices=[],
        database=database_url,
    )
    journal.close()
    return journal.run_id


def journal_db(runs_dir: Path, database_url: str | None, run_id: str) -> Database:
    """The journal of run `run_id`, opened as the toolkit opens it, for a test to look in."""
    if database_url is not None:
        return connect_postgres(database_url)
    return Database(sqlite3.connect(runs_dir / run_id / JOURNAL_FILE))


def everything_written(runs_dir: Path, database_url: str | None, run_id: str) -> str:
    """Every row of the journal of `run_id`, as text."""
    db = journal_db(runs_dir, database_url, run_id)
    tables = ("run", "attempt", "event", "stack_id", "step", "revision", "landing")
    try:
        return repr([db.execute(f"SELECT * FROM {table}").fetchall() for table in tables])
    finally:
        db.close()


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_landings_are_recorded_in_order_and_redacted(
    runs_dir: Path, database_url: str | None
) -> None:
    run_id = started_run(runs_dir, database_url)
    landings: list[tuple[LandingOutcome, str, str]] = [
        ("failed", "", f"landing failed: token {TOKEN} refused"),
        ("landed", "3 created", ""),
    ]
    for outcome, summary, message in landings:
        journal = Journal.attach(runs_dir, run_id, database=database_url)
        journal.record_landing(
            stack=LANDING_STACK, outcome=outcome, summary=summary, message=message
        )
        journal.close()

    record = read_run(runs_dir, run_id, database=database_url)

    assert [landing.outcome for landing in record.landings] == ["failed", "landed"]
    assert record.landing == record.landings[-1]
    assert record.landings[0].message == "landing failed: token *** refused"
    assert record.landing.describe() == f"landed in {LANDING_STACK}: 3 created"
    written = everything_written(runs_dir, database_url, run_id)
    assert "landing failed: token *** refused" in written
    assert TOKEN not in written
    if database_url is None:
        files = b"".join(p.read_bytes() for p in (runs_dir / run_id).iterdir())
        assert TOKEN.encode() not in files
    assert record.attempts == 1, "recording a landing does not continue the run"


def test_a_journal_from_before_landings_reads_and_takes_one(runs_dir: Path) -> None:
    run_id = started_run(runs_dir)
    path = runs_dir / run_id / JOURNAL_FILE
    sqlite_file_to_4(path, without=("landing", "revision"))

    assert read_run(runs_dir, run_id).landings == []

    journal = Journal.attach(runs_dir, run_id)
    journal.record_landing(stack="acme/p/s", outcome="landed", summary="no changes")
    journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()
    assert [landing.summary for landing in read_run(runs_dir, run_id).landings] == ["no changes"]


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_revisions_are_kept_per_move_and_side_the_latest_winning_across_attempts(
    runs_dir: Path, database_url: str | None
) -> None:
    run_id = started_run(runs_dir, database_url)
    journal = Journal.reopen(runs_dir, run_id, database=database_url)
    journal.record_revision("web/dev", "source", "id-1@3")
    journal.record_revision("web/dev", "copy", "id-2@1")
    journal.record_revision("web/dev", "source", "id-1@4")
    journal.close()

    again = Journal.reopen(runs_dir, run_id, database=database_url)

    assert again.revision("web/dev", "source") == "id-1@4"
    assert again.revision("web/dev", "copy") == "id-2@1"
    assert again.revision("web/qa", "source") is None
    again.close()
    assert read_run(runs_dir, run_id, database=database_url).attempts == 3


def test_a_journal_from_before_revisions_continues_with_none_recorded(runs_dir: Path) -> None:
    run_id = started_run(runs_dir)
    sqlite_file_to_4(runs_dir / run_id / JOURNAL_FILE, without=("revision",))

    journal = Journal.reopen(runs_dir, run_id)

    assert journal.revision("web/dev", "copy") is None
    journal.record_revision("web/dev", "copy", "id-2@1")
    assert journal.revision("web/dev", "copy") == "id-2@1"
    journal.close()


def test_a_journal_of_version_4_is_read_as_it_is_and_upgraded_once_written_to(
    runs_dir: Path,
) -> None:
    """A journal file a release before version 5 wrote (its rows do not name their run): read
    through an upgraded copy, the file left as it is; continued, the file itself is upgraded
    and every row it held is kept, numbered as it was."""
    run_id = started_run(runs_dir)
    journal = Journal.reopen(runs_dir, run_id)
    row = journal.begin("web/dev", "transfer", "acme/web/dev")
    journal.end(row, "done")
    journal.record_stack_ids({"web/dev": "id-1"})
    journal.record_revision("web/dev", "source", "id-1@3")
    journal.record("moved web/dev")
    journal.record_landing(stack=LANDING_STACK, outcome="landed", summary="1 created")
    journal.close()
    path = runs_dir / run_id / JOURNAL_FILE
    before = read_run(runs_dir, run_id)
    sqlite_file_to_4(path)
    old_bytes = path.read_bytes()

    assert read_run(runs_dir, run_id) == before
    assert path.read_bytes() == old_bytes, "reading leaves the file as it is"

    again = Journal.reopen(runs_dir, run_id)
    again.record_stack_ids({"web/dev": "id-2"})
    again.record_revision("web/dev", "source", "id-1@4")
    second = again.begin("web/qa", "transfer", "acme/web/qa")
    again.end(second, "failed", "refused")
    assert again.stack_ids() == {"web/dev": "id-2"}
    assert again.revision("web/dev", "source") == "id-1@4"
    again.close()

    after = read_run(runs_dir, run_id)
    assert after.attempts == 3
    assert [(s.seq, s.attempt, s.move, s.outcome) for s in after.steps] == [
        (1, 2, "web/dev", "done"),
        (2, 3, "web/qa", "failed"),
    ]
    assert after.landings == before.landings and after.events == before.events
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()


# --- status --list -------------------------------------------------------------------------


def started_ago(runs_dir: Path, database_url: str | None, run_id: str, ago: timedelta) -> None:
    """Record run `run_id` as started `ago` before now (a journal records when it starts)."""
    started = (datetime.now(UTC) - ago).isoformat().replace("+00:00", "Z")
    db = journal_db(runs_dir, database_url, run_id)
    with db.transaction():
        db.execute("UPDATE run SET started_at = ? WHERE id = ?", (started, run_id))
    db.close()


@pytest.mark.parametrize("database_url", STORAGES, indirect=True)
def test_status_list_shows_every_run_newest_first(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    runs_dir: Path,
    tmp_path: Path,
    database_url: str | None,
) -> None:
    server = make_emulator(claim_world())
    run_cli(server, "commit", *ORGS, "-r", write_map(tmp_path, RESOLVES_BOTH), "--yes")
    finished = read_run(runs_dir, database=database_url).run_id
    running = started_run(runs_dir, database_url)
    started_ago(runs_dir, database_url, finished, timedelta(days=2, hours=1))
    started_ago(runs_dir, database_url, running, timedelta(hours=3, minutes=10))

    table = run_cli(server, "status", "--list", "--format", "table")

    assert table.exit_code == 0, table.stderr
    width = len(finished)
    assert table.stdout.splitlines() == [
        f"{'RUN':<{width}}  FROM          TO    STRATEGY  STATE     EXIT  AGE",
        f"{running}  agent-abc123  acme  transfer  running   1     3h ago",
        f"{finished}  agent-abc123  acme  transfer  finished  4     2d ago",
    ]

    listed = run_cli(server, "status", "--list", "--format", "json")

    assert listed.exit_code == 0, listed.stderr
    assert [
        (run["runId"], run["state"], run["exitCode"], run["finishedAt"] is None)
        for run in json.loads(listed.stdout)
    ] == [(running, "running", 1, True), (finished, "finished", 4, False)]


def test_status_list_refuses_a_run_or_a_report_format(
    run_cli: RunCli, demo_emulator: EmulatorServer
) -> None:
    for args in (["20261207T000000Z-abc"], ["--format", "html"]):
        result = run_cli(demo_emulator, "status", "--list", *args)
        assert result.exit_code == 2, args
        assert (
            "--list lists every run as a table or JSON: name no RUN, and use --format table|json."
            in " ".join(result.stderr.split())
        )


@pytest.mark.parametrize("refused", ["INSERT", "UPDATE"])
def test_a_call_and_the_event_that_reports_it_stand_or_fall_together(
    tmp_path: Path, refused: str
) -> None:
    """Written in one transaction (`Journal.together`), the event and the call's record are
    both kept or neither is: when the call's start cannot be written, its "moving" event is
    gone too and the call is not made; when its end cannot, the event of its outcome is gone
    too, and the call is named as unrecorded."""
    run_id = started_run(tmp_path)
    journal = Journal.reopen(tmp_path, run_id)
    row = journal.begin("web/dev", "transfer", "transfer web/dev to acme")
    refuse = sqlite3.connect(tmp_path / run_id / JOURNAL_FILE)
    with refuse:
        refuse.execute(
            f"CREATE TRIGGER refuse BEFORE {refused} ON step"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    refuse.close()

    if refused == "INSERT":
        with pytest.raises(RunsFolderError), journal.together():
            journal.record("moving agent/web/qa -> acme/web/qa")
            journal.begin("web/qa", "transfer", "transfer web/qa to acme")
    else:
        with journal.together():
            journal.end(row, "done")
            journal.record("transferred web/dev to acme")
    with pytest.raises(RunsFolderError) as stopped, journal.writing():
        pass

    record = read_run(tmp_path, run_id)
    assert record.events == []
    assert [(step.move, step.outcome) for step in record.steps] == [("web/dev", None)]
    unrecorded = "apart from what became of 1 call(s) made just then (transfer web/dev)"
    assert (unrecorded in stopped.value.message) == (refused == "UPDATE")
