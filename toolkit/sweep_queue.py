"""A sweep's claims spread across workers, by procrastinate's PostgreSQL task queue.

`enqueue_sweep` checks and plans a sweep as `toolkit.sweep` does, then queues one job per
account in the runs database (procrastinate's tables beside the journals), and returns. Any
number of workers (`run_worker`, on any machine) take the jobs, each claim as its own run
through `commit_request`, under its org's lock in the same database.

- A job holds no secret: the path of the account's claim file (on storage every worker
  reads), the org, the renames and the landing. The worker reads the token from the file.
- A job's `queueing_lock` is a digest of its token: an account queued and not yet taken is
  not queued twice. Its `lock` is the account's org: one job per org runs at a time.
- A worker sends a heartbeat every third of its lease. A job whose worker has sent none for
  a whole lease (the worker died, or its machine) is queued again, and the worker that takes
  it continues the dead one's run (same run key: `toolkit.runs`), so nothing is claimed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.credentials import Credentials, read_claim_file
from toolkit.errors import ClaimError, InvalidInputError
from toolkit.journal.claims import token_digest
from toolkit.journal.database import (
    DATABASE_URL_VARIABLE,
    DatabaseFailure,
    connect_postgres,
    database_unwritable,
)
from toolkit.landing_spec import LandingSpec
from toolkit.outcomes import worst_exit_code
from toolkit.resolution_map import ResolutionMap, format_resolution_map, parse_resolution_map
from toolkit.runs import run_done
from toolkit.strategies import StopSignal
from toolkit.sweep import (
    ClaimFileToken,
    SweepRequest,
    account_claim_request,
    claim_planned,
    prepare_sweep,
)
from toolkit.sweep_result import SweepResult, SweepRow

if TYPE_CHECKING:
    import procrastinate

TASK = "pulumi_claim.claim_account"
DEFAULT_LEASE = 30.0
"""Seconds without a heartbeat after which a worker's job is taken over."""

EMPTY_CHECK_SECONDS = 1.0
"""How often a worker with `until_empty` looks whether anything is left (at most)."""

_SCHEMA_LOCK = 0x70756C756D6A
"""The session lock that makes two processes applying the queue's schema take turns."""


@dataclass
class WorkerState:
    """What a worker's jobs need, and the rows they produced."""

    credentials: Credentials
    runs_dir: Path
    database: str
    on_row: Callable[[SweepRow], None]
    stop: StopSignal = field(default_factory=StopSignal)
    rows: list[SweepRow] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return worst_exit_code(row.exit_code for row in self.rows)


def require_database(database: str | None, what: str) -> str:
    """The runs database `what` needs; refused without one."""
    if database is None:
        raise InvalidInputError(
            f"{what} needs a runs database in PostgreSQL, where the queue lives.",
            hint=f"Set {DATABASE_URL_VARIABLE} or pass --database-url, the same on every "
            "machine: postgresql://USER@HOST:PORT/DATABASE (the password as USER:PASSWORD).",
        )
    return database


def queue_app(database: str) -> procrastinate.App:
    """The procrastinate app of the queue in `database`, its one task registered."""
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=database, kwargs={"application_name": "pulumi-claim"}
        )
    )
    app.task(name=TASK, pass_context=True)(_claim_queued)
    return app


@contextlib.asynccontextmanager
async def open_queue(database: str) -> AsyncIterator[procrastinate.App]:
    """The queue in `database`, open: the database checked first (one clear error when it
    cannot be used, `connect_postgres`), then procrastinate's schema applied with its own
    schema manager, once: a database that has it already is left as it is."""
    db = connect_postgres(database, own_session=True)
    try:
        app = queue_app(database)
        async with app.open_async():
            try:
                db.execute("SELECT pg_advisory_lock(?)", (_SCHEMA_LOCK,))
                (present,) = db.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
                if present is None:
                    await app.schema_manager.apply_schema_async()
            except DatabaseFailure as error:
                raise database_unwritable(database, error) from None
            db.close()  # lets go of the lock
            yield app
    finally:
        db.close()


async def enqueue_sweep(
    credentials: Credentials,
    request: SweepRequest,
    *,
    runs_dir: Path,
    database: str,
    on_row: Callable[[SweepRow], None] = lambda row: None,
) -> SweepResult:
    """Check and plan the sweep (`toolkit.sweep.prepare_sweep`), then queue each account's
    claim; its row says `queued`."""
    import procrastinate

    async with open_queue(database) as app:
        prepared = await prepare_sweep(credentials, request, runs_dir=runs_dir, database=database)
        rows = {row.file: row for row in prepared.skipped}
        for row in prepared.skipped:
            on_row(row)
        jobs = []
        for claim, agent, asked, run in prepared.recorded:
            if run_done(run):
                rows[claim.name] = SweepRow(
                    claim.name, agent, "already claimed", f"claimed by run {run.run_id}: not queued"
                )
                on_row(rows[claim.name])
            else:
                jobs.append((claim, agent, asked, ResolutionMap.empty()))
        jobs += [
            (claim, plan.account.agent, asked, plan.resolution_map)
            for claim, plan, asked in prepared.planned
        ]
        for claim, agent, asked, renames in jobs:
            deferrer = app.configure_task(
                TASK,
                lock=_org_lock(asked.target.source_org),
                queueing_lock=token_digest(claim.token),
            )
            try:
                await deferrer.defer_async(
                    claim_file=str(claim.file.path.resolve()),
                    agent=agent,
                    source_org=asked.target.source_org,
                    destination_org=asked.target.destination_org,
                    map_identity=asked.map_identity,
                    renames=format_resolution_map(renames.renames) if renames.renames else "",
                    landing=_landing_json(asked.landing),
                    claim_wait=asked.claim_wait,
                )
                message = "queued: a worker claims it"
            except procrastinate.exceptions.AlreadyEnqueued:
                message = "queued already, not taken by a worker yet: not queued again"
            rows[claim.name] = SweepRow(claim.name, agent, "queued", message)
            on_row(rows[claim.name])
    ordered = tuple(rows[claim.name] for claim in prepared.tokens)
    return SweepResult(request.destination_org, ordered, prepared.warnings)


async def run_worker(
    state: WorkerState, *, until_empty: bool = False, lease: float = DEFAULT_LEASE
) -> int:
    """Take the queue's jobs until stopped (SIGTERM, SIGINT), or with `until_empty` until no
    job is queued or running anywhere; the worst exit code of the claims it made."""
    async with open_queue(state.database) as app:
        worker = asyncio.create_task(
            app.run_worker_async(
                additional_context={"pulumi_claim": state},
                update_heartbeat_interval=lease / 3,
                stalled_worker_timeout=lease,
                install_signal_handlers=True,
            )
        )
        watch = asyncio.create_task(_watch(app, lease=lease, until_empty=until_empty))
        done, _ = await asyncio.wait({worker, watch}, return_when=asyncio.FIRST_COMPLETED)
        if watch in done:
            worker.cancel()
        else:
            watch.cancel()
        for task in (worker, watch):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return state.exit_code


async def _watch(app: procrastinate.App, *, lease: float, until_empty: bool) -> None:
    """Every third of a lease (every second with `until_empty`): queue again the jobs of
    workers whose lease ended; with `until_empty`, return once no job is queued or running."""
    pause = min(lease / 3, EMPTY_CHECK_SECONDS) if until_empty else lease / 3
    while True:
        for job in await app.job_manager.get_stalled_jobs(
            task_name=TASK, seconds_since_heartbeat=lease
        ):
            await app.job_manager.retry_job(job)
        if until_empty and await _jobs_left(app) == 0:
            return
        await asyncio.sleep(pause)


async def _jobs_left(app: procrastinate.App) -> int:
    row = await app.connector.execute_query_one_async(
        "SELECT count(*) AS left FROM procrastinate_jobs"
        " WHERE task_name = %(task)s AND status IN ('todo', 'doing')",
        task=TASK,
    )
    return int(row["left"])


def _landing_json(landing: LandingSpec | None) -> dict[str, Any] | None:
    """The landing as a job carries it (`LandingSpec(**it)` again in the worker)."""
    return None if landing is None else dict(landing.identity())


def _org_lock(org: str) -> str:
    """procrastinate's lock key of `org`'s claims."""
    return "pulumi-claim-org:" + hashlib.sha256(org.encode("utf-8")).hexdigest()[:32]


async def _claim_queued(
    context: Any,
    *,
    claim_file: str,
    agent: str,
    source_org: str,
    destination_org: str,
    map_identity: str,
    renames: str,
    landing: dict[str, Any] | None,
    claim_wait: float | None,
) -> None:
    """One queued claim: the token read from its file, the claim made as the sweep would."""
    state: WorkerState = context.additional_context["pulumi_claim"]
    path = Path(claim_file)
    try:
        token, file = read_claim_file(path, state.credentials.api_url)
    except ClaimError as error:
        row = SweepRow(path.name, agent, "error", str(error), exit_code=1)
    else:
        asked = account_claim_request(
            source_org,
            destination_org,
            parse_resolution_map(renames) if renames else ResolutionMap.empty(),
            map_identity,
            None if landing is None else LandingSpec(**landing),
            claim_wait=claim_wait,
        )
        row = await claim_planned(
            state.credentials,
            ClaimFileToken(token, file),
            agent,
            asked,
            runs_dir=state.runs_dir,
            database=state.database,
            stop=state.stop,
        )
    state.rows.append(row)
    state.on_row(row)
