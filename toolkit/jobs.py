"""Running a job file's claims, one after another, for schedulers.

`run_job` commits the claims of a checked job (`toolkit.job_file.load_job`) in file order
through `toolkit.runs.commit_request`, as `commit` does, so a job run again continues what an
earlier run left unfinished and skips what it finished; a claim's error does not stop the
others. Then it runs the job's sweeps (`toolkit.sweep`), each account a claim of its own.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolkit.claim import suggest_resolutions
from toolkit.errors import ClaimError
from toolkit.job_file import Job, JobClaim, in_job_words
from toolkit.job_sweeps import JobSweep
from toolkit.outcomes import ClaimSummary, not_run, summarize_error, summarize_run, worst_exit_code
from toolkit.plan import ClaimTarget
from toolkit.progress import ProgressEvent
from toolkit.resolution_map import ResolutionMap
from toolkit.runs import ClaimRequest, commit_request, map_identity
from toolkit.sides import Sides
from toolkit.strategies import StopSignal
from toolkit.sweep import run_sweep
from toolkit.sweep_result import SweepRow, row_summary


class RunLog(Protocol):
    """Where a commit tells what it does: `toolkit.run_log` writes it as text or JSON lines.
    `name` is the claim's name in its job file; None for `commit`."""

    def claim_started(self, name: str | None, target: ClaimTarget, strategy: str) -> None: ...

    def run_started(self, name: str | None, run_id: str, resumed: bool) -> None: ...

    def progress(self, name: str | None, event: ProgressEvent) -> None: ...

    def claim_finished(self, summary: ClaimSummary) -> None: ...

    def job_finished(self, result: JobResult) -> None: ...


@dataclass(frozen=True)
class JobResult:
    """What each claim of a job ended as, in file order."""

    claims: tuple[ClaimSummary, ...]

    @property
    def exit_code(self) -> int:
        """The worst of the claims' (`worst_exit_code`)."""
        return worst_exit_code(claim.exit_code for claim in self.claims)


async def run_job(
    job: Job,
    log: RunLog,
    *,
    runs_dir: Path,
    database: str | None = None,
    stop: StopSignal | None = None,
) -> JobResult:
    """Commit the job's claims one after another, in file order (journals in `database` when
    given, else in `runs_dir`). A claim's `ClaimError` is its
    result and the next claim runs; once `stop` is set, the claims not yet started are not run."""
    stop = stop or StopSignal()
    summaries: list[ClaimSummary] = []
    for claim in job.claims:
        if stop.requested:
            summaries.append(not_run(claim.name))
            continue
        log.claim_started(claim.name, claim.target, claim.strategy or "auto")
        summary = await _run_claim(claim, log, runs_dir, database, stop)
        log.claim_finished(summary)
        summaries.append(summary)
    for job_sweep in job.sweeps:
        if stop.requested:
            summaries.append(not_run(job_sweep.name))
            continue
        summaries += await _run_sweep(job_sweep, log, runs_dir, database, stop)
    result = JobResult(tuple(summaries))
    log.job_finished(result)
    return result


async def _run_claim(
    claim: JobClaim, log: RunLog, runs_dir: Path, database: str | None, stop: StopSignal
) -> ClaimSummary:
    try:
        request = await claim_request(claim)
        outcome = await commit_request(
            claim.credentials,
            request,
            runs_dir=runs_dir,
            database=database,
            on_progress=functools.partial(log.progress, claim.name),
            stop=stop,
            on_run=functools.partial(log.run_started, claim.name),
        )
    except ClaimError as error:
        return summarize_error(claim.name, in_job_words(error))
    return summarize_run(claim.name, outcome)


async def _run_sweep(
    job_sweep: JobSweep, log: RunLog, runs_dir: Path, database: str | None, stop: StopSignal
) -> list[ClaimSummary]:
    """The sweep's accounts, each logged as a claim named `<sweep>: <claim file>` as it is
    decided; a sweep refused whole (`toolkit.sweep`) is one error named after the sweep."""
    said: list[ClaimSummary] = []

    def on_row(row: SweepRow) -> None:
        summary = row_summary(f"{job_sweep.name}: {row.file}", row)
        log.claim_finished(summary)
        said.append(summary)

    try:
        await run_sweep(
            job_sweep.credentials,
            job_sweep.request,
            runs_dir=runs_dir,
            database=database,
            stop=stop,
            on_row=on_row,
        )
    except ClaimError as error:
        summary = summarize_error(job_sweep.name, in_job_words(error))
        log.claim_finished(summary)
        return [*said, summary]
    return said


async def claim_request(claim: JobClaim) -> ClaimRequest:
    """`claim` as `commit_request` takes it. With a rename suffix, the map is the one
    `suggest_resolutions` writes for today's conflicts; the suffix identifies it, so a
    second run of the job is the same run."""
    if claim.suffix is not None:
        resolution_map, _ = await suggest_resolutions(
            Sides.of(claim.target, claim.credentials), suffix=claim.suffix
        )
        identity = f"suffix:{claim.suffix}"
    elif claim.map_file is not None:
        resolution_map, identity = (
            claim.map_file.resolution_map,
            map_identity(claim.map_file.text),
        )
    else:
        resolution_map, identity = ResolutionMap.empty(), map_identity(None)
    return ClaimRequest(
        target=claim.target,
        resolution_map=dataclasses.replace(resolution_map, accepted=claim.accepted),
        map_identity=identity,
        strategy=claim.strategy,
        delete_source=claim.delete_source,
        concurrency=claim.concurrency,
        landing=claim.landing,
        environments=claim.environments,
        migrate_via=claim.migrate_via,
        reference_orgs=claim.reference_orgs,
    )
