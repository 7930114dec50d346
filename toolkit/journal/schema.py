"""Where runs live and what a journal file holds: its name, its tables, their version.

Versions only add tables, so a journal of an earlier version is read as it is and brought up
to date when a run is written to again.
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

SCHEMA_VERSION = 4
"""2: the run, its attempts, events, stack ids and steps; 3: its landings; 4: revisions."""
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
CREATE TABLE IF NOT EXISTS attempt (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stack_id (
    move TEXT PRIMARY KEY,
    id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS step (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    move TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    outcome TEXT,
    message TEXT,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS revision (
    move TEXT NOT NULL,
    side TEXT NOT NULL,
    revision TEXT NOT NULL,
    PRIMARY KEY (move, side)
);
CREATE TABLE IF NOT EXISTS landing (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    stack TEXT NOT NULL,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


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
