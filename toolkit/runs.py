"""Commits that can be run again: the same claim asked twice is one run, continued.

A `ClaimRequest` is what a user asks (orgs, backends, map, strategy); its run key is a digest
of it. Committing a request:

1. takes the source org's lock (`toolkit.locks`): one run per source org at a time;
2. looks for the newest run of the same key in the runs directory:
   - none, or one that made no state-changing call (it was blocked, refused, or stopped
     before its first call: it changed nothing): plans afresh and starts a new run;
   - one that finished with every planned move landed: does nothing, and says so;
   - one that stopped, was killed, or finished with moves not landed: continues it from its
     recorded plan (the names as they were planned, not as the source shows them now); the
     strategy finds each stack by its id and does only what is left;
3. commits, recording every call in the run's journal, and lets go of the lock (a run that did
   not finish leaves its name on it, so only its own command can continue it; but only a run
   that made a state-changing call is unfinished: `_unfinished`);
4. with a `landing:` section, lands what moved (`toolkit.landing`): after every commit that
   was not interrupted or blocked, a finished one included, since landing again changes
   nothing and so finishes a landing that failed before. A landing failure is reported in the
   outcome; no move is undone. Each landing, what it changed or why it failed, is recorded in
   the run's journal, where `pulumi-claim status` shows it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from toolkit.choices import EnvironmentChoice, MigrateVia, Strategy
from toolkit.claim import CommitResult, commit_claim, plan_claim
from toolkit.credentials import Credentials
from toolkit.errors import ClaimError, RunsFolderError
from toolkit.journal import Journal, LandingOutcome, RunRecord, find_run, made_calls
from toolkit.journal.database import DatabaseFailure, database_unwritable
from toolkit.landing import LandingResult
from toolkit.landing_spec import LandingSpec
from toolkit.locks import LockHolder, take_org_lock
from toolkit.models import AgentClaimResponse
from toolkit.plan import ClaimPlan, ClaimTarget, is_blocked
from toolkit.private_files import RUNS_DIR_FULL_HINT, check_runs_dir, write_failure
from toolkit.progress import LandingFinished, LandingStarted, ProgressCallback, no_progress
from toolkit.references import references_from_records
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides
from toolkit.strategies import StopSignal
from toolkit.strategy_choice import check_migrate_via

WORKSPACES_DIR = "workspaces"
"""Under the runs directory: migrate's workspaces while a commit runs (a killed run's are
removed by the next commit)."""


@dataclass(frozen=True)
class ClaimRequest:
    """One claim as a user asks for it; equal requests are the same run."""

    target: ClaimTarget
    resolution_map: ResolutionMap
    map_identity: str
    """What the map was made from: a digest of the map file's text, `suffix:<s>` for a map
    written from a rename suffix, or `none`."""
    strategy: Strategy | None = None
    """None: let `choose_strategy` pick."""
    delete_source: bool = False
    concurrency: int | None = None
    """Calls (or migrate's stacks) at once; None: the strategy's default."""
    claim_wait: float | None = None
    """claim-api: seconds to follow the service's claim; None: `CLAIM_WAIT_SECONDS`. Not part
    of the run key: the same command with another wait follows the same claim."""
    landing: LandingSpec | None = None
    """What to land after the moves; None: no landing (none asked for, or --no-landing)."""
    environments: EnvironmentChoice = "report"
    """Whether the source's ESC environments are copied (`toolkit.strategies.environment_copy`)."""
    migrate_via: MigrateVia | None = None
    """How migrate reaches both sides; None: over REST when both are Pulumi Cloud. Not part
    of the run key: it changes how the moves are made, not which."""
    reference_orgs: tuple[str, ...] = ()
    """Other orgs searched for StackReferences to the moved stacks. Not part of the run key:
    it changes what the plan reports, not what moves."""


@dataclass(frozen=True)
class RunOutcome:
    """What committing a request did."""

    plan: ClaimPlan
    document: AgentClaimResponse
    run_id: str | None
    resumed: bool = False
    """The run continued an earlier, unfinished one."""
    already_finished: bool = False
    """Nothing was done: the same request had finished before (`run_id` is that run)."""
    interrupted: bool = False
    """The run was stopped before the end; running the same request again continues it."""
    landing: LandingResult | None = None
    """What landing changed, when it ran and succeeded."""
    landing_error: ClaimError | None = None
    """Why landing failed (the moves stand); running the same request again retries it."""


def map_identity(text: str | None) -> str:
    """The identity of a resolution map file's text (None: no map)."""
    if text is None:
        return "none"
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_key(sides: Sides, request: ClaimRequest) -> str:
    """The digest that names every run of `request` (whose sides are `sides`): each side by its
    service, however its URL was spelled."""
    asked: dict[str, object] = {
        "source": [sides.source.service, sides.source_org],
        "destination": [sides.destination.service, sides.destination_org],
        "strategy": request.strategy or "auto",
        "map": request.map_identity,
        "deleteSource": request.delete_source,
    }
    if request.landing is not None:
        asked["landing"] = request.landing.identity()
    if request.environments != "report":
        # Only then: the runs of requests made before the choice existed keep their keys.
        asked["environments"] = request.environments
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:40]


def started_run(
    credentials: Credentials,
    request: ClaimRequest,
    runs_dir: Path,
    database: str | None = None,
) -> RunRecord | None:
    """The run of `request` that finished or changed something, if any: committing the
    request again finds that run done, or continues it, rather than planning afresh (a sweep's
    claim whose token the service has used up already)."""
    key = run_key(Sides.of(request.target, credentials), request)
    previous = find_run(runs_dir, key, database=database)
    if previous is None or _blocked(previous):
        return None
    finished_or_begun = run_done(previous) or _unfinished(runs_dir, database, previous.run_id)
    return previous if finished_or_begun else None


async def plan_request(
    sides: Sides, request: ClaimRequest, *, references: bool = True
) -> ClaimPlan:
    """The plan of `request` (`plan_claim` with the request's choices): what preview shows,
    what commit runs; `references` false when only the names it changes are needed."""
    return await plan_claim(
        sides,
        request.resolution_map,
        request.strategy,
        request.environments,
        request.migrate_via,
        request.reference_orgs,
        references=references,
    )


async def commit_request(
    credentials: Credentials,
    request: ClaimRequest,
    *,
    runs_dir: Path,
    database: str | None = None,
    on_progress: ProgressCallback = no_progress,
    break_lock: bool = False,
    new_run: bool = False,
    stop: StopSignal | None = None,
    confirm: Callable[[ClaimPlan, bool], None] | None = None,
    on_run: Callable[[str, bool], None] | None = None,
) -> RunOutcome:
    """Commit `request`, or continue its unfinished run, or say it is done already.

    The runs are recorded in `runs_dir`, or in the PostgreSQL `database` when given (the
    folder then holds only the workspaces). `new_run` plans afresh even when the same request
    ran before. `confirm(plan, resumed)` is
    called before anything changes (it raises to refuse); `on_run(run_id, resumed)` once the
    run has its journal.
    """
    check_runs_dir(runs_dir, writable=True)
    sides = Sides.of(request.target, credentials)
    check_migrate_via(request.strategy, sides.source, sides.destination, request.migrate_via)
    if request.landing is not None:
        from toolkit.landing import check_landing_tools

        check_landing_tools()
    key = run_key(sides, request)
    holder = LockHolder.this_process("starting", key, _command())
    lock = take_org_lock(
        runs_dir,
        f"{sides.source.service} org {sides.source_org}",
        holder,
        unfinished=lambda previous: _unfinished(runs_dir, database, previous.run_id),
        break_lock=break_lock,
        database=database,
    )
    with lock:
        previous = None if new_run else find_run(runs_dir, key, database=database)
        if previous is not None and run_done(previous):
            lock.release(finished=True)
            finished = _finished_before(previous, request)
            return await _land(sides, request, finished, runs_dir, database, on_progress)
        if (
            previous is not None
            and not _blocked(previous)
            and _unfinished(runs_dir, database, previous.run_id)
        ):
            plan = replace(
                recorded_plan(previous, request.target), accepted=request.resolution_map.accepted
            )
            journal = Journal.reopen(runs_dir, previous.run_id, database=database)
            resumed = True
        else:
            plan = await plan_request(sides, request)
            journal = None
            resumed = False
        if confirm is not None and not plan.blocked:
            confirm(plan, resumed)
        if journal is None:
            journal = Journal.start(
                runs_dir,
                run_key=key,
                request=_recorded_request(request, plan),
                source_org=plan.source_org,
                destination_org=plan.destination_org,
                strategy=plan.strategy,
                has_claim=plan.has_claim,
                plan=plan.to_claim_response(),
                notices=plan.notices,
                database=database,
            )
        lock.name_run(LockHolder.this_process(journal.run_id, key, holder.command))
        if on_run is not None:
            on_run(journal.run_id, resumed)
        workspaces = runs_dir / WORKSPACES_DIR
        if plan.strategy == "migrate":
            from toolkit.workspaces import sweep_stale_workspaces

            sweep_stale_workspaces(workspaces)
        with journal.writing():
            result = await commit_claim(
                sides,
                plan,
                delete_source=request.delete_source,
                on_progress=on_progress,
                journal=journal,
                stop=stop,
                concurrency=request.concurrency,
                claim_wait=request.claim_wait,
                workspace_root=workspaces,
                migrate_via=request.migrate_via,
            )
        lock.release(finished=not result.interrupted)
    return await _land(
        sides, request, _outcome(result, journal.run_id, resumed), runs_dir, database, on_progress
    )


async def _land(
    sides: Sides,
    request: ClaimRequest,
    outcome: RunOutcome,
    runs_dir: Path,
    database: str | None,
    on_progress: ProgressCallback,
) -> RunOutcome:
    """`outcome` with the landing of what it moved, when the request asks for one and the run
    neither stopped nor was blocked; a LandingError is kept in it, not raised. The landing is
    recorded in the run's journal either way."""
    from toolkit.landing import apply_landing
    from toolkit.landing_spec import landed_entities, landing_of, landing_stack

    spec = request.landing
    if spec is None or outcome.interrupted or outcome.run_id is None:
        return outcome
    if is_blocked(
        outcome.document, outcome.plan.strategy, outcome.plan.did_not_land(outcome.document)
    ):
        return outcome
    landed = landed_entities(outcome.document)
    if not landed.stacks and not landed.environments:
        return outcome
    target, run_id = request.target, outcome.run_id
    stack = spec.stack_name(target.source_org)
    where = landing_stack(target.destination_org, stack)
    on_progress(LandingStarted(source=target.source_org, target=where))
    try:
        result = await apply_landing(
            sides.destination,
            destination_org=target.destination_org,
            stack=stack,
            build=landing_of(
                spec,
                outcome.document,
                source_org=target.source_org,
                destination_org=target.destination_org,
                run_id=run_id,
            ),
            workspace_root=runs_dir / WORKSPACES_DIR,
        )
    except ClaimError as error:  # LandingError, and the service or the CLI failing
        _record_landing(
            runs_dir, database, run_id, stack=where, outcome="failed", message=str(error)
        )
        failed = f"{where}: {error.message}"
        on_progress(
            LandingFinished(
                source=target.source_org, target=where, summary=failed, done=0, failed=1
            )
        )
        return replace(outcome, landing_error=error)
    _record_landing(
        runs_dir,
        database,
        run_id,
        stack=result.stack,
        outcome="landed",
        summary=result.summary(),
    )
    changed = f"{result.stack}: {result.summary()}"
    on_progress(
        LandingFinished(source=target.source_org, target=where, summary=changed, done=1, failed=0)
    )
    return replace(outcome, landing=result)


def _record_landing(
    runs_dir: Path,
    database: str | None,
    run_id: str,
    *,
    stack: str,
    outcome: LandingOutcome,
    summary: str = "",
    message: str = "",
) -> None:
    """Add a landing to the run's journal (closed by then: the commit is over)."""
    try:
        journal = Journal.attach(runs_dir, run_id, database=database)
    except DatabaseFailure as error:
        assert database is not None
        raise database_unwritable(database, error) from None
    except (sqlite3.Error, OSError) as error:
        raise RunsFolderError(
            f"the landing in {stack} could not be recorded in the journal of run {run_id} "
            f"({write_failure(error)}); what it changed stands.",
            hint=RUNS_DIR_FULL_HINT.format(folder=runs_dir)
            + ": it lands again, which changes nothing, and records it.",
        ) from None
    with journal.writing():
        journal.record_landing(stack=stack, outcome=outcome, summary=summary, message=message)


@contextmanager
def stop_on_signals(
    stop: StopSignal, on_stop: Callable[[], None] = lambda: None
) -> Iterator[StopSignal]:
    """While inside, Ctrl-C (SIGINT) and SIGTERM ask `stop` to stop the run (and call
    `on_stop` the first time) rather than raise KeyboardInterrupt or end the process; the
    handlers are put back on the way out.

    Held around a whole command, from before its run starts to its exit (the report of the
    outcome within `signals_ignored`), so that the run alone decides the outcome
    (`CommitResult.interrupted`, as its journal records it): a signal that comes once the run
    has made its last call changes nothing. `on_stop` runs in
    the signal handler, in the middle of whatever the process was doing: it writes with
    `os.write`, never through Python's buffered streams, which may be halfway through a write.
    """
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}

    def request(number: int, frame: FrameType | None) -> None:
        if not stop.requested:
            stop.request()
            on_stop()

    for number in signals:
        signal.signal(number, request)
    try:
        yield stop
    finally:
        for number in signals:
            signal.signal(number, previous[number])


@contextmanager
def signals_ignored() -> Iterator[None]:
    """While inside, Ctrl-C and SIGTERM are ignored: for reporting an outcome the run has
    decided and recorded, which a signal would contradict, or cut short (a write to a full
    pipe that a handled signal interrupts loses what it had not written)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in signals}
    try:
        yield
    finally:
        for number in signals:
            signal.signal(number, previous[number])


def _unfinished(runs_dir: Path, database: str | None, run_id: str) -> bool:
    """Whether run `run_id`, unless it finished, left work to continue: only once it made a
    state-changing call. A run that made none (refused, blocked, stopped before its first
    call) changed nothing: the next command plans afresh, whatever it asks."""
    return made_calls(runs_dir, run_id, database=database)


def run_done(run: RunRecord) -> bool:
    """Finished, and every planned move landed (failures of the plan itself may remain):
    committing its request again changes nothing."""
    return (
        run.finished
        and run.result is not None
        and not _blocked(run)
        and len(run.result.failures) == len(run.plan.failures)
    )


def _blocked(run: RunRecord) -> bool:
    return is_blocked(run.result or run.plan, run.strategy) and run.finished


def _finished_before(run: RunRecord, request: ClaimRequest) -> RunOutcome:
    """The outcome of `run`, which finished `request` already; the failures the request's map
    accepts now are accepted in it too, so that a scheduled rerun with nothing to do goes green."""
    assert run.result is not None
    plan = replace(recorded_plan(run, request.target), accepted=request.resolution_map.accepted)
    return RunOutcome(plan=plan, document=run.result, run_id=run.run_id, already_finished=True)


def recorded_plan(run: RunRecord, target: ClaimTarget) -> ClaimPlan:
    """The plan `run` recorded, as it was planned: to continue the run, or to show it; with
    the failures its map accepted."""
    plan = ClaimPlan.from_record(
        target=target,
        strategy=run.strategy,
        document=run.plan,
        notices=run.notices,
        has_claim=run.has_claim,
        claim_copies=run.request.get("claimCopies", []),
        broken_references=references_from_records(run.request.get("brokenReferences", [])),
    )
    accepted = frozenset(tuple(key) for key in run.request.get("accepted", []))
    return replace(plan, accepted=accepted)


def _recorded_request(request: ClaimRequest, plan: ClaimPlan) -> dict[str, object]:
    """What the run's record says was asked, with what its recorded plan cannot say itself:
    which environments a claim-api plan copies before the claim, which failures the
    request accepts (for `status`), and the references that break."""
    target = request.target
    copies = plan.claim_copy_names()
    accepted = sorted(list(key) for key in request.resolution_map.accepted)
    references = [reference.to_record() for reference in plan.broken_references]
    return {
        **({"brokenReferences": references} if references else {}),
        **({"claimCopies": copies} if copies else {}),
        **({"accepted": accepted} if accepted else {}),
        "sourceOrg": target.source_org,
        "destinationOrg": target.destination_org,
        "sourceBackend": target.source_backend,
        "destinationBackend": target.destination_backend,
        "strategy": request.strategy,
        "map": request.map_identity,
        "deleteSource": request.delete_source,
        "concurrency": request.concurrency,
        "environments": request.environments,
    }


def _outcome(result: CommitResult, run_id: str, resumed: bool) -> RunOutcome:
    return RunOutcome(
        plan=result.plan,
        document=result.document,
        run_id=run_id,
        resumed=resumed,
        interrupted=result.interrupted,
    )


def _command() -> str:
    return shlex.join(["pulumi-claim", *sys.argv[1:]])
