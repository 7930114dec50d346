"""A durable record of each commit: the plan, every step as it happens, and the final document.

One SQLite file per run directory (`<runs>/<run-id>/journal.sqlite`), written as the commit goes,
so `pulumi-claim status` can say what a run did, or what it was doing when it stopped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import InvalidInputError
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from toolkit.plan import Strategy

JOURNAL_FILE = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id TEXT PRIMARY KEY,
    source_org TEXT NOT NULL,
    destination_org TEXT NOT NULL,
    strategy TEXT NOT NULL,
    has_claim INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    plan TEXT NOT NULL,
    result TEXT
);
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


def default_runs_dir(env: dict[str, str] | None = None) -> Path:
    """`$PULUMI_CLAIM_RUNS_DIR`, else the user's state directory."""
    environ = os.environ if env is None else env
    if explicit := environ.get("PULUMI_CLAIM_RUNS_DIR"):
        return Path(explicit)
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "pulumi-claim" / "runs"


@dataclass(frozen=True)
class RunRecord:
    """What `status` shows of one run."""

    run_id: str
    source_org: str
    destination_org: str
    strategy: Strategy
    has_claim: bool
    """Whether a claim token stood behind the run (see `ClaimPlan.has_claim`)."""
    started_at: str
    finished_at: str | None
    plan: AgentClaimResponse
    result: AgentClaimResponse | None
    events: list[tuple[str, str]]

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class Journal:
    """Writer of one run's journal; every write is committed at once, so a kill loses nothing."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id
        self._db = sqlite3.connect(path, check_same_thread=False)

    @classmethod
    def start(
        cls,
        runs_dir: Path,
        *,
        source_org: str,
        destination_org: str,
        strategy: Strategy,
        has_claim: bool,
        plan: AgentClaimResponse,
    ) -> Journal:
        started = _now()
        run_id = f"{started.replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"
        run_dir = runs_dir / run_id
        run_dir.mkdir(parents=True)
        journal = cls(run_dir / JOURNAL_FILE, run_id)
        with journal._db:
            journal._db.executescript(_SCHEMA)
            journal._db.execute(
                "INSERT INTO run (id, source_org, destination_org, strategy, has_claim,"
                " started_at, plan) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, source_org, destination_org, strategy, has_claim, started, _dump(plan)),
            )
        return journal

    def record(self, message: str) -> None:
        with self._db:
            self._db.execute("INSERT INTO event (at, message) VALUES (?, ?)", (_now(), message))

    def finish(self, result: AgentClaimResponse) -> None:
        with self._db:
            self._db.execute(
                "UPDATE run SET finished_at = ?, result = ? WHERE id = ?",
                (_now(), _dump(result), self.run_id),
            )

    def close(self) -> None:
        self._db.close()


def read_run(runs_dir: Path, run_id: str | None = None) -> RunRecord:
    """The run named `run_id`, or the newest one in `runs_dir`."""
    run_dir = runs_dir / run_id if run_id else _newest(runs_dir)
    path = run_dir / JOURNAL_FILE
    if not path.is_file():
        raise InvalidInputError(
            f"no run {run_id!r} in {runs_dir}.",
            hint="Run `pulumi-claim status` without an argument to see the newest run.",
        )
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT id, source_org, destination_org, strategy, has_claim, started_at,"
            " finished_at, plan, result FROM run"
        ).fetchone()
        events = db.execute("SELECT at, message FROM event ORDER BY seq").fetchall()
    finally:
        db.close()
    return RunRecord(
        run_id=row[0],
        source_org=row[1],
        destination_org=row[2],
        strategy=row[3],
        has_claim=bool(row[4]),
        started_at=row[5],
        finished_at=row[6],
        plan=AgentClaimResponse.model_validate_json(row[7]),
        result=AgentClaimResponse.model_validate_json(row[8]) if row[8] else None,
        events=[(at, message) for at, message in events],
    )


def _newest(runs_dir: Path) -> Path:
    runs = sorted(p for p in runs_dir.glob(f"*/{JOURNAL_FILE}")) if runs_dir.is_dir() else []
    if not runs:
        raise InvalidInputError(
            f"no commit has been recorded in {runs_dir}.",
            hint="Runs are recorded by `pulumi-claim commit`; set PULUMI_CLAIM_RUNS_DIR to look "
            "elsewhere.",
        )
    return runs[-1].parent


def _dump(document: AgentClaimResponse) -> str:
    return json.dumps(document.to_wire(), sort_keys=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
