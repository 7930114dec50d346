"""The commands of `pulumi-claim`, one plain function each, callable from Python.

As alembic's `command` module: each command takes what the user asked (a `ClaimRequest`, a
run id, a job file) and returns what it found or did. Nothing here parses options, prints or
exits: the command line (`toolkit.cli`) turns its options into a request, calls the command,
renders the result and exits with its code. Each command runs its own event loop: call them
from synchronous code (the library's coroutines, `toolkit.claim` and `toolkit.runs`, serve
asynchronous callers).
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.choices import EnvironmentChoice, MigrateVia, StrategyName, chosen_strategy
from toolkit.errors import ClaimError, InvalidInputError, LandingError
from toolkit.journal import RunRecord, default_runs_dir, list_runs, read_run
from toolkit.landing import LandingResult, preview_landing
from toolkit.landing_spec import landing_of
from toolkit.outcomes import EXIT_BLOCKED, EXIT_PARTIAL, exit_code, worst_exit_code
from toolkit.plan import ClaimPlan, ClaimTarget
from toolkit.private_files import check_runs_dir
from toolkit.progress import ProgressCallback, no_progress, unknown_outcomes
from toolkit.report import ReportContext, copied_environments
from toolkit.resolution_map import ResolutionMap, format_resolution_map, read_resolution_map
from toolkit.runs import (
    ClaimRequest,
    RunOutcome,
    commit_request,
    map_identity,
    plan_request,
    recorded_plan,
    signals_ignored,
    stop_on_signals,
)
from toolkit.sides import Sides
from toolkit.strategies import StopSignal
from toolkit.sweep_commands import enqueue_sweep, sweep, sweep_request, upgrade_database, work

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.credentials import Credentials
    from toolkit.job_file import Job
    from toolkit.jobs import JobResult, RunLog
    from toolkit.models import AgentClaimResponse
    from toolkit.name_changes import NameChanges
    from toolkit.repository_patch import RepositoryPatch

__all__ = [
    "PREVIEW_RUN_ID",
    "ClaimPlan",
    "ClaimRequest",
    "ClaimTarget",
    "Preview",
    "Resolutions",
    "RunOutcome",
    "RunStatus",
    "StopSignal",
    "Versions",
    "check_job",
    "claim_request",
    "commit",
    "confirmation",
    "demo",
    "enqueue_sweep",
    "landing_failure",
    "planned_references",
    "preview",
    "recorded_exit_code",
    "resolve",
    "run_job",
    "run_references",
    "runs_folder",
    "runs_list",
    "signals_ignored",
    "status",
    "stopping",
    "sweep",
    "sweep_request",
    "upgrade_database",
    "versions",
    "work",
]

PREVIEW_RUN_ID = "(the commit's run id)"
"""What a preview shows as the run tag's value, which only the commit knows."""


def runs_folder(*, writable: bool) -> Path:
    """The runs folder (`$PULUMI_CLAIM_RUNS_DIR`, else the user's state directory), refused
    when it cannot be one (`writable`: a commit records its run there)."""
    runs_dir = default_runs_dir()
    check_runs_dir(runs_dir, writable=writable)
    return runs_dir


def claim_request(
    target: ClaimTarget,
    resolutions: Path | None = None,
    *,
    strategy: StrategyName = "auto",
    environments: EnvironmentChoice = "report",
    migrate_via: MigrateVia | None = None,
    landing: bool = True,
    reference_orgs: tuple[str, ...] = (),
    delete_source: bool = False,
    concurrency: int | None = None,
    claim_wait: float | None = None,
) -> ClaimRequest:
    """The claim of `target` as `preview` and `commit` take it: the resolution map read from
    `resolutions` (None: the empty map) and identified by its text; the map's landing unless
    `landing` is false."""
    if resolutions is None:
        resolution_map, text = ResolutionMap.empty(), None
    else:
        resolution_map, text = read_resolution_map(resolutions)
    return ClaimRequest(
        target=target,
        resolution_map=resolution_map,
        map_identity=map_identity(text),
        strategy=chosen_strategy(strategy),
        delete_source=delete_source,
        concurrency=concurrency,
        claim_wait=claim_wait,
        landing=resolution_map.landing if landing else None,
        environments=environments,
        migrate_via=migrate_via,
        reference_orgs=reference_orgs,
    )


# --- preview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What a commit of a request would do; nothing was changed."""

    plan: ClaimPlan
    document: AgentClaimResponse
    landing: LandingResult | None = None
    """What the landing would change, when the request asks for one and it was previewed."""
    landing_error: ClaimError | None = None
    """Why the landing would fail."""

    @property
    def exit_code(self) -> int:
        """0 when a commit would fully succeed, 3 when it would be blocked, 4 when some
        entities would be reported as failures, or the landing would fail."""
        code = exit_code(self.document, self.plan.strategy, self.plan.accepted)
        return worst_exit_code([code, EXIT_PARTIAL]) if self.landing_error else code


def preview(credentials: Credentials, request: ClaimRequest) -> Preview:
    """Plan `request` as `commit` would, and preview its landing unless the plan is blocked;
    changes nothing."""
    sides = Sides.of(request.target, credentials)
    plan = asyncio.run(plan_request(sides, request))
    document = plan.to_claim_response()
    spec = request.landing
    if spec is None or exit_code(document, plan.strategy) == EXIT_BLOCKED:
        return Preview(plan, document)
    target = plan.target
    try:
        landing = asyncio.run(
            preview_landing(
                sides.destination,
                destination_org=target.destination_org,
                stack=spec.stack_name(target.source_org),
                build=landing_of(
                    spec,
                    document,
                    source_org=target.source_org,
                    destination_org=target.destination_org,
                    run_id=PREVIEW_RUN_ID,
                ),
            )
        )
    except ClaimError as error:
        return Preview(plan, document, landing_error=error)
    return Preview(plan, document, landing=landing)


def landing_failure(error: ClaimError) -> str:
    """Why a landing failed, with its hint; a LandingError says it is the landing's already."""
    return str(error) if isinstance(error, LandingError) else f"landing failed: {error}"


# --- commit ---------------------------------------------------------------------------------


def commit(
    credentials: Credentials,
    request: ClaimRequest,
    *,
    runs_dir: Path | None = None,
    database: str | None = None,
    on_progress: ProgressCallback = no_progress,
    break_lock: bool = False,
    new_run: bool = False,
    stop: StopSignal | None = None,
    confirm: Callable[[ClaimPlan, bool], None] | None = None,
    on_run: Callable[[str, bool], None] | None = None,
) -> RunOutcome:
    """Commit `request`, or continue its unfinished run, or find it finished already
    (`toolkit.runs.commit_request`, whose arguments these are); `runs_dir` defaults to the
    runs folder (`runs_folder`)."""
    return asyncio.run(
        commit_request(
            credentials,
            request,
            runs_dir=runs_folder(writable=True) if runs_dir is None else runs_dir,
            database=database,
            on_progress=on_progress,
            break_lock=break_lock,
            new_run=new_run,
            stop=stop,
            confirm=confirm,
            on_run=on_run,
        )
    )


@contextmanager
def stopping(on_stop: Callable[[], None] = lambda: None) -> Iterator[StopSignal]:
    """A stop signal that Ctrl-C and SIGTERM set while inside (`toolkit.runs.stop_on_signals`),
    for `commit` and `run_job`: held up to the exit, so that the run alone decides the
    outcome."""
    with stop_on_signals(StopSignal(), on_stop) as stop:
        yield stop


def confirmation(plan: ClaimPlan, *, delete_source: bool, resumed: bool) -> str:
    """The question to ask before committing `plan` (`resumed`: continuing its run)."""
    if resumed:
        return (
            f"Continue the unfinished run of {plan.source_org} -> {plan.destination_org} "
            f"({len(plan.moves)} stack(s) planned, strategy {plan.strategy})?"
        )
    renamed = sum(1 for move in plan.moves if move.renamed)
    copies = plan.environment_copies
    if plan.strategy == "claim-api":
        first = f", {len(copies)} environment(s) copied and removed from it first" if copies else ""
        return (
            f"Claim {plan.source_org} into {plan.destination_org}: {len(plan.moves)} stack(s) "
            f"({renamed} renamed) move{first}, and the agent's org and token are retired?"
        )
    return (
        f"Move {len(plan.moves)} stack(s) ({renamed} renamed) from {plan.source_org} to "
        f"{plan.destination_org} with strategy {plan.strategy}"
        f"{f', and copy {len(copies)} environment(s)' if copies else ''}"
        f"{', deleting each source once copied' if delete_source else ''}?"
    )


# --- resolve --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolutions:
    """A resolution map renaming today's conflicts."""

    resolution_map: ResolutionMap
    conflicts: int
    """How many conflicts it covers."""

    @property
    def text(self) -> str:
        """The map as a file holds it."""
        return format_resolution_map(self.resolution_map.renames)


def resolve(
    credentials: Credentials, target: ClaimTarget, *, suffix: str = "-agent"
) -> Resolutions:
    """A map renaming each of today's conflicts to its name + `suffix`
    (`toolkit.claim.suggest_resolutions`)."""
    from toolkit.claim import suggest_resolutions

    sides = Sides.of(target, credentials)
    suggestion, conflicts = asyncio.run(suggest_resolutions(sides, suffix=suffix))
    return Resolutions(suggestion, conflicts)


# --- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """What a run did, or was doing when it stopped, as its journal records it."""

    record: RunRecord
    document: AgentClaimResponse
    """Its outcome's claim document, else (it did not finish) its plan's."""
    context: ReportContext

    @property
    def exit_code(self) -> int:
        return recorded_exit_code(self.record)


def recorded_exit_code(record: RunRecord) -> int:
    """1 when the run did not finish; else its outcome's (the failures its map accepts not
    counted), at least 4 when its latest landing failed."""
    if not record.finished:
        return 1
    target = ClaimTarget(source_org=record.source_org, destination_org=record.destination_org)
    plan = recorded_plan(record, target)
    document = record.result or record.plan
    code = exit_code(
        document, record.strategy, plan.accepted, retryable=plan.did_not_land(document)
    )
    landing = record.landing
    failed = landing is not None and landing.outcome == "failed"
    return worst_exit_code([code, EXIT_PARTIAL]) if failed else code


def status(
    run_id: str | None = None, *, runs_dir: Path | None = None, database: str | None = None
) -> RunStatus:
    """The newest run of the runs folder (or `database`), or run `run_id`, for its report."""
    record = _read_run(run_id, runs_dir, database)
    target = ClaimTarget(source_org=record.source_org, destination_org=record.destination_org)
    plan = recorded_plan(record, target)
    document = record.result or record.plan
    context = ReportContext(
        mode="commit",
        source_org=record.source_org,
        destination_org=record.destination_org,
        strategy=record.strategy,
        outcome=f"run {record.run_id}, started {record.started_at}, {_run_state(record)}",
        notices=(*_calls(record), *(f"{at}  {message}" for at, message in record.events)),
        has_claim=record.has_claim,
        landing=_landing_status(record),
        run_id=record.run_id,
        copied=copied_environments(plan),
        retryable=plan.did_not_land(document),
        accepted=plan.accepted,
        broken_references=tuple(plan.broken_references),
    )
    return RunStatus(record, document, context)


def _read_run(run_id: str | None, runs_dir: Path | None, database: str | None) -> RunRecord:
    """The run `run_id` (None: the newest) of `database`, else of `runs_dir` or the runs
    folder."""
    if database is not None:
        return read_run(Path(), run_id, database=database)
    return read_run(runs_folder(writable=False) if runs_dir is None else runs_dir, run_id)


def runs_list(*, runs_dir: Path | None = None, database: str | None = None) -> list[RunRecord]:
    """Every run of the runs folder (or `runs_dir`, or `database`), newest first, for
    `status --list`; each one's exit code is `recorded_exit_code`."""
    if database is not None:
        return list_runs(Path(), database=database)
    return list_runs(runs_folder(writable=False) if runs_dir is None else runs_dir)


def _landing_status(record: RunRecord) -> str | None:
    """The run's latest landing (`at`, then what it did or why it failed), and how many
    landings came before it; None when the run was not landed."""
    latest = record.landing
    if latest is None:
        return None
    earlier = len(record.landings) - 1
    before = f" (after {earlier} earlier landing(s))" if earlier else ""
    return f"{latest.at}  {latest.describe()}{before}"


def _run_state(record: RunRecord) -> str:
    attempts = f" in {record.attempts} attempts" if record.attempts > 1 else ""
    failures = record.result.failures if record.result else []
    if unknown := unknown_outcomes(f.failure_details for f in failures):
        attempts += (
            f"; {unknown} move of unknown outcome"
            if unknown == 1
            else (f"; {unknown} moves of unknown outcome")
        )
    if record.state == "finished":
        return f"finished {record.finished_at}{attempts}"
    if record.state == "interrupted":
        return f"interrupted {record.finished_at}; the same command continues it"
    return "did not finish (stopped or still running); the same command continues it"


def _calls(record: RunRecord) -> list[str]:
    """What the journal says of the run's state-changing calls: counts, then each call whose
    outcome is not recorded (it was under way when the run stopped) or is unknown."""
    outcomes = Counter(step.outcome or "under way" for step in record.steps)
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    open_calls = [
        f"{step.at}  {step.action} {step.move} ({step.detail}): "
        + ("no outcome recorded" if step.outcome is None else f"unknown: {step.message}")
        for step in record.steps
        if step.outcome in (None, "unknown")
    ]
    return [f"calls: {counts or 'none'}", *open_calls]


# --- references -----------------------------------------------------------------------------


def planned_references(
    credentials: Credentials, request: ClaimRequest, repo: Path
) -> RepositoryPatch:
    """The patch renaming, in the checkout at `repo`, the names a commit of `request` would
    change; refused when the plan is blocked or moves nothing."""
    from toolkit.name_changes import planned_changes
    from toolkit.repository_patch import check_checkout, repository_patch

    check_checkout(repo)
    sides = Sides.of(request.target, credentials)
    plan = asyncio.run(plan_request(sides, request, references=False))
    if plan.blocked:
        raise InvalidInputError(
            f"the claim of {plan.source_org} into {plan.destination_org} is blocked: nothing "
            "would move, so no name would change.",
            hint="Run `pulumi-claim preview` with the same options to see why.",
        )
    return repository_patch(repo, _moving(planned_changes(plan), "would move"))


def run_references(
    run_id: str | None, repo: Path, *, runs_dir: Path | None = None, database: str | None = None
) -> RepositoryPatch:
    """The patch renaming, in the checkout at `repo`, the names the finished run `run_id`
    (None: the newest run) changed."""
    from toolkit.name_changes import committed_changes
    from toolkit.repository_patch import check_checkout, repository_patch

    check_checkout(repo)
    record = _read_run(run_id, runs_dir, database)
    if record.result is None:
        raise InvalidInputError(
            f"run {record.run_id} did not finish: which names changed is not known yet.",
            hint="Finish it first: run the same commit again.",
        )
    target = ClaimTarget(source_org=record.source_org, destination_org=record.destination_org)
    changes = committed_changes(recorded_plan(record, target), record.result)
    return repository_patch(repo, _moving(changes, f"run {record.run_id} moved"))


def _moving(changes: NameChanges, what: str) -> NameChanges:
    """`changes`, refused when empty: `what` (moved) nothing, so no name changes."""
    if not changes:
        raise InvalidInputError(
            f"{what} no stack and no environment from {changes.source_org} to "
            f"{changes.destination_org}: no name changes.",
            hint="Name a claim or run that moves something.",
        )
    return changes


# --- job run, job check ---------------------------------------------------------------------


def check_job(job_file: Path, *, api_url: str | None = None) -> Job:
    """The job file checked whole, calling no service (`toolkit.job_file.load_job`); its
    `describe()` says what `run_job` would do."""
    from toolkit.job_file import load_job

    return load_job(job_file, api_url=api_url)


def run_job(
    job: Job,
    log: RunLog,
    *,
    runs_dir: Path | None = None,
    database: str | None = None,
    stop: StopSignal | None = None,
) -> JobResult:
    """Commit the job's claims one after another (`toolkit.jobs.run_job`), in the runs
    folder unless `runs_dir` is given, and their journals in `database` when given."""
    from toolkit.jobs import run_job as run_claims

    runs_dir = default_runs_dir() if runs_dir is None else runs_dir
    return asyncio.run(run_claims(job, log, runs_dir=runs_dir, database=database, stop=stop))


# --- version --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    """The toolkit's version, and that of the pulumi CLI it would drive."""

    toolkit: str
    pulumi_cli: str | None
    """None: no pulumi CLI it can drive was found (`toolkit.workspaces.pulumi_command`)."""
    pulumi_cli_path: str | None


def versions() -> Versions:
    """The versions `--version` shows; a missing pulumi CLI is part of the answer, not an
    error."""
    from importlib.metadata import version

    from toolkit.errors import PulumiCliError
    from toolkit.workspaces import pulumi_command

    toolkit = version("pulumi-claim")
    try:
        cli = pulumi_command()
    except PulumiCliError:
        return Versions(toolkit, None, None)
    return Versions(
        toolkit, str(cli.version or "unknown"), shutil.which(cli.command) or cli.command
    )


# --- demo -----------------------------------------------------------------------------------


def demo(
    out: Console, progress: Console, *, transfer: bool = False, review_page: Path | None = None
) -> int:
    """The whole flow against a built-in world on a local emulator (`toolkit.demo`); its exit
    code. `review_page`: where to write the first preview's HTML review page too."""
    from toolkit.demo import run_demo

    return asyncio.run(run_demo(out, progress, transfer=transfer, review_page=review_page))
