"""The commands of sweeps, one plain function each (`toolkit.commands` says how commands are
made, and offers these with the others): claim every agent account of a folder, queue those
claims for workers, work the queue, upgrade the runs database they share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.credentials import Credentials
    from toolkit.strategies import StopSignal
    from toolkit.sweep import SweepRequest
    from toolkit.sweep_result import SweepResult, SweepRow

__all__ = ["enqueue_sweep", "sweep", "sweep_request", "upgrade_database", "work"]


def sweep_request(
    claims_dir: Path,
    destination_org: str,
    policy: Path | None = None,
    *,
    warn_within: timedelta | None = None,
    claim_wait: float | None = None,
) -> SweepRequest:
    """A sweep of the claim files of `claims_dir` into `destination_org`, renaming by the
    naming policy in `policy` (None: `NamingPolicy.default`)."""
    from toolkit.naming_policy import NamingPolicy, read_naming_policy
    from toolkit.sweep import DEFAULT_WARN_WITHIN, SweepRequest

    return SweepRequest(
        claims_dir=claims_dir,
        destination_org=destination_org,
        policy=NamingPolicy.default() if policy is None else read_naming_policy(policy),
        warn_within=DEFAULT_WARN_WITHIN if warn_within is None else warn_within,
        claim_wait=claim_wait,
    )


def sweep(
    credentials: Credentials,
    request: SweepRequest,
    *,
    runs_dir: Path | None = None,
    database: str | None = None,
    stop: StopSignal | None = None,
    on_row: Callable[[SweepRow], None] = lambda row: None,
) -> SweepResult:
    """Claim every agent account of the request's folder (`toolkit.sweep.run_sweep`), each as
    its own run in the runs folder (or `runs_dir`), or in `database` when given."""
    from toolkit.commands import runs_folder
    from toolkit.sweep import run_sweep

    runs_dir = runs_folder(writable=True) if runs_dir is None else runs_dir
    return asyncio.run(
        run_sweep(
            credentials, request, runs_dir=runs_dir, database=database, stop=stop, on_row=on_row
        )
    )


def enqueue_sweep(
    credentials: Credentials,
    request: SweepRequest,
    *,
    database: str | None,
    runs_dir: Path | None = None,
    on_row: Callable[[SweepRow], None] = lambda row: None,
) -> SweepResult:
    """Check and plan the sweep, then queue its claims for workers in `database`
    (`toolkit.sweep_queue`); refused without a database."""
    from toolkit.commands import runs_folder
    from toolkit.sweep_queue import enqueue_sweep as enqueue
    from toolkit.sweep_queue import require_database

    url = require_database(database, "sweep --enqueue")
    runs_dir = runs_folder(writable=True) if runs_dir is None else runs_dir
    return asyncio.run(
        enqueue(credentials, request, runs_dir=runs_dir, database=url, on_row=on_row)
    )


def work(
    credentials: Credentials,
    *,
    database: str | None,
    until_empty: bool,
    lease: float,
    runs_dir: Path | None = None,
    on_row: Callable[[SweepRow], None] = lambda row: None,
) -> int:
    """Take queued sweep claims from `database` (`toolkit.sweep_queue.run_worker`); the
    worst exit code of the claims made."""
    from toolkit.commands import runs_folder
    from toolkit.sweep_queue import WorkerState, require_database, run_worker

    url = require_database(database, "worker")
    runs_dir = runs_folder(writable=True) if runs_dir is None else runs_dir
    state = WorkerState(credentials, runs_dir, url, on_row)
    return asyncio.run(run_worker(state, until_empty=until_empty, lease=lease))


def upgrade_database(database: str | None) -> str:
    """Bring the runs `database` to this schema version (`toolkit.journal.database`); what
    was done, in a sentence."""
    from toolkit.journal.database import describe, upgrade_database
    from toolkit.journal.schema import SCHEMA_VERSION
    from toolkit.sweep_queue import require_database

    url = require_database(database, "upgrade-database")
    done = upgrade_database(url)
    where = f"the runs database {describe(url)}"
    if done.found is None:
        return f"{where} had no tables: set up at schema version {SCHEMA_VERSION}"
    if done.found == SCHEMA_VERSION:
        return f"{where} is at schema version {SCHEMA_VERSION} already: nothing to do"
    left = (
        f"; left in place, since they hold more than a run's tables: {', '.join(done.schemas_left)}"
        if done.schemas_left
        else ""
    )
    return (
        f"{where} upgraded from schema version {done.found} to {SCHEMA_VERSION}: "
        f"{done.runs} run(s) moved into the shared tables{left}"
    )
