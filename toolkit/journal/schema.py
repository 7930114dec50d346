"""Where runs live and what a journal file holds: its name, its tables, their version.

A journal of an earlier version is brought up to date when a run is written to again
(`upgrade_journal_file`), and read through an upgraded copy in memory until then.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

JOURNAL_FILE = "journal.sqlite"
KEYS_DIR = "keys"
"""`<runs>/keys/<run key>` holds the id of the newest run of that key."""

RunState = Literal["running", "interrupted", "finished"]
RevisionSide = Literal["source", "copy"]
"""Whose revision a journal keeps for a move: the source as this run last read it, or the
copy as this run wrote and verified it."""
StepOutcome = Literal["done", "failed", "unknown"]
LandingOutcome = Literal["landed", "failed"]

SCHEMA_VERSION = 5
"""2: the run, its attempts, events, stack ids and steps; 3: its landings; 4: revisions;
5: every row names its run (`run_id`) and numbers itself within it, so that the runs of a
PostgreSQL database share one set of tables (`toolkit.journal.database`)."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id TEXT PRIMARY KEY,
    run_key TEXT NOT NULL,
    request TEXT NOT NULL,
    source_org TEXT NOT NULL,
    destination_org TEXT NOT NULL,
    strategy TEXT NOT NULL,
    has_claim INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    state TEXT NOT NULL,
    finished_at TEXT,
    plan TEXT NOT NULL,
    notices TEXT NOT NULL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS run_by_key ON run (run_key, started_at);
CREATE TABLE IF NOT EXISTS attempt (
    run_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    at TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (run_id, n)
);
CREATE TABLE IF NOT EXISTS event (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS stack_id (
    run_id TEXT NOT NULL,
    move TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (run_id, move)
);
CREATE TABLE IF NOT EXISTS step (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    move TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    outcome TEXT,
    message TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS revision (
    run_id TEXT NOT NULL,
    move TEXT NOT NULL,
    side TEXT NOT NULL,
    revision TEXT NOT NULL,
    PRIMARY KEY (run_id, move, side)
);
CREATE TABLE IF NOT EXISTS landing (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    stack TEXT NOT NULL,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""
ROW_KEYS = {
    "attempt": ("run_id", "n"),
    "event": ("run_id", "seq"),
    "stack_id": ("run_id", "move"),
    "step": ("run_id", "seq"),
    "revision": ("run_id", "move", "side"),
    "landing": ("run_id", "seq"),
}
"""The tables whose rows belong to a run, and each one's key: what the journal numbers its
rows by, and updates them by (`ON CONFLICT`)."""
RUN_ROWS = tuple(ROW_KEYS)


def upgrade_journal_file(db: sqlite3.Connection) -> None:
    """Bring the journal file `db` (one run's, of version 2 to 4) to this version, inside the
    caller's transaction: the tables it lacks are created, and the rows of those it has are
    given their run's id and this version's keys (as unique indexes). Their own numbering (an
    `AUTOINCREMENT` key) stays as it was; the journal numbers the rows it adds itself."""
    (run_id,) = db.execute("SELECT id FROM run").fetchone()
    for table in RUN_ROWS:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if columns and "run_id" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN run_id TEXT NOT NULL DEFAULT ''")
            db.execute(f"UPDATE {table} SET run_id = ?", (run_id,))
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for table, key in ROW_KEYS.items():
        db.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_of_run ON {table} ({', '.join(key)})"
        )
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def default_runs_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$PULUMI_CLAIM_RUNS_DIR`, else the user's state directory."""
    environ = os.environ if env is None else env
    if explicit := environ.get("PULUMI_CLAIM_RUNS_DIR"):
        return Path(explicit)
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "pulumi-claim" / "runs"


def connect(path: Path) -> sqlite3.Connection:
    """The journal at `path` for writing: write-ahead log, no flush to disk per row."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    return db
