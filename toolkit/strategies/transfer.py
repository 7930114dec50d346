"""The `transfer` strategy: rename in the source org where the plan says so, then REST-transfer.

Needs one identity that is admin of both orgs. Keeps update history, tags and permissions,
because the stack itself moves. Order of work:

1. locate every planned stack by its service id (recorded in the journal before the first
   call, so a stack is found again whatever name an interrupted run left it under): landed in
   the destination already, somewhere on its way in the source, or somewhere the plan does not
   know (someone renamed or moved it meanwhile: the run stops before changing anything);
2. the renames still needed, in waves that never rename onto a name in use, in the source org
   (each wave concurrently);
3. every transfer still needed, concurrently (bounded);
4. for each move that failed after its renames, the renames undone in reverse wave order, so the
   stack is back where this attempt found it;
5. verification against listings of both orgs (of the projects the moves land in), read again a
   few times before giving up: each landed stack at its planned name in the destination and gone
   from the source.

A call whose answer was lost (5xx, dropped connection) may still have been applied, so instead of
retrying it blindly the strategy looks at the service to learn what happened; when that look
fails too, the move's outcome is unknown, and said so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from toolkit.cloud import CloudClient
from toolkit.entities import EntityKey, StackName, entity_key, qualified_name, stack_name
from toolkit.errors import (
    ClaimError,
    PlanMismatchError,
    ServiceError,
    TransportError,
    outcome_unknown,
)
from toolkit.journal import Journal
from toolkit.models import AppStackSummary
from toolkit.moves import TEMPORARY_SUFFIX, RenameStep, StackMove, order_renames
from toolkit.plan import ClaimPlan
from toolkit.progress import MoveFailure, MoveTally, Step
from toolkit.strategies import (
    CallOutcome,
    FailedMoves,
    ProgressCallback,
    RecordedCalls,
    StopSignal,
    no_progress,
)

VERIFY_ATTEMPTS = 4
"""Rounds of verification listings before the landed moves count as of unknown outcome."""

VERIFY_BACKOFF_SECONDS = 0.5
"""Before the second round of verification; doubled before each later one."""


async def execute_transfer(
    plan: ClaimPlan,
    client: CloudClient,
    *,
    journal: Journal | None = None,
    stop: StopSignal | None = None,
    on_progress: ProgressCallback = no_progress,
) -> FailedMoves:
    """Move every stack of `plan` with `client` (admin of both orgs); return the failed moves.

    Raises `PlanMismatchError`, before any change, when a planned stack is not where the plan
    and the journal say it can be.
    """
    journal = journal or Journal.in_memory()
    calls = RecordedCalls(journal, stop or StopSignal(), client.max_concurrency)
    moves = _Moves(plan, on_progress)
    located = await _locate(client, plan, journal)
    for move in located.landed:
        moves.finished(
            move, "transfer", f"{_target(move)} is in {plan.destination_org} (moved earlier)"
        )

    renamed = await _rename_waves(client, calls, plan, located, moves)
    to_transfer = [
        (move, origin) for move, origin in located.remaining if not moves.has_failed(origin)
    ]

    async def transfer(move: StackMove) -> None:
        def report(outcome: CallOutcome | None) -> None:
            if _settled(moves, move, "transfer", outcome, f"transfer to {plan.destination_org}"):
                moves.finished(
                    move, "transfer", f"transferred {_target(move)} to {plan.destination_org}"
                )

        await calls.make(
            move.journal_name,
            "transfer",
            f"transfer {_target(move)} to {plan.destination_org}",
            partial(_transfer, client, plan, move),
            started=partial(moves.start, move),
            settled=report,
        )

    await asyncio.gather(*(transfer(origin) for _, origin in to_transfer))

    await _undo_renames(client, calls, plan, renamed, moves)
    if calls.stop.requested:
        return moves.failed
    for key, problem in (await _verify(client, plan, moves.failed)).items():
        moves.fail(located.by_key[key], problem)
    return moves.failed


# --- Where each planned stack is now ------------------------------------------------------


@dataclass
class _Located:
    """Each move of the plan, as the service shows it now."""

    by_key: dict[EntityKey, StackMove]
    """Source key -> the planned move."""
    landed: list[StackMove] = field(default_factory=list)
    remaining: list[tuple[StackMove, StackMove]] = field(default_factory=list)
    """(the move from where the stack is now, the planned move) for every move not landed."""
    source_names: set[StackName] = field(default_factory=set)
    destination_names: set[StackName] = field(default_factory=set)


async def _locate(client: CloudClient, plan: ClaimPlan, journal: Journal) -> _Located:
    source_projects = {m.source.project_name for m in plan.moves} | _projects(plan.moves)
    in_source, in_destination = await asyncio.gather(
        listed_stacks(client, plan.source_org, sorted(source_projects)),
        listed_stacks(client, plan.destination_org, sorted(_projects(plan.moves))),
    )
    located = _Located(
        by_key={entity_key(move.source): move for move in plan.moves},
        source_names={(s.project_name, s.stack_name) for s in in_source},
        destination_names={(s.project_name, s.stack_name) for s in in_destination},
    )
    ids = journal.stack_ids()
    problems: list[str] = []
    if not ids:
        # Nothing was done yet: every stack is where the plan saw it.
        by_name = {(s.project_name, s.stack_name): s.id for s in in_source}
        for move in plan.moves:
            if (stack_id := by_name.get(stack_name(move.source))) is None:
                problems.append(f"{_source(move)} is no longer in {plan.source_org}")
            else:
                ids[move.journal_name] = stack_id
        if problems:
            raise _mismatch(plan, problems)
        journal.record_stack_ids(ids)
    source_by_id = {s.id: s for s in in_source}
    destination_by_id = {s.id: s for s in in_destination}
    for move in plan.moves:
        stack_id = ids.get(move.journal_name)
        if stack_id in destination_by_id:
            now = destination_by_id[stack_id]
            if (now.project_name, now.stack_name) == stack_name(move.target):
                located.landed.append(move)
            else:
                problems.append(
                    f"{_source(move)} is in {plan.destination_org} as "
                    f"{now.project_name}/{now.stack_name}, not as planned {_target(move)}"
                )
        elif stack_id in source_by_id:
            now = source_by_id[stack_id]
            if _on_its_way(move, (now.project_name, now.stack_name)):
                here = move.source.model_copy(
                    update={"project_name": now.project_name, "stack_name": now.stack_name}
                )
                located.remaining.append((replace(move, source=here), move))
            else:
                problems.append(
                    f"{_source(move)} was renamed to {now.project_name}/{now.stack_name} "
                    f"in {plan.source_org} by someone else"
                )
        else:
            problems.append(
                f"{_source(move)} (to become {_target(move)}) is in neither "
                f"{plan.source_org} nor {plan.destination_org}"
            )
    if problems:
        raise _mismatch(plan, problems)
    return located


def _on_its_way(move: StackMove, name: StackName) -> bool:
    """Whether a stack of `move` may stand at `name` in the source: its own name, its planned
    name, or a temporary name of a swap."""
    project, stack = name
    temporary = re.fullmatch(rf".+{re.escape(TEMPORARY_SUFFIX)}(-\d+)?", stack)
    return name in (stack_name(move.source), stack_name(move.target)) or (
        project == move.source.project_name and temporary is not None
    )


def _mismatch(plan: ClaimPlan, problems: list[str]) -> PlanMismatchError:
    return PlanMismatchError(
        f"the plan no longer matches the service; nothing more was changed: {'; '.join(problems)}",
        hint=f"Put the stack(s) back where the plan has them, or run `pulumi-claim preview` "
        f"for a new plan of {plan.source_org} -> {plan.destination_org} and commit it with "
        "--new-run.",
    )


# --- Renames, transfers and their undoing -------------------------------------------------


async def _rename_waves(
    client: CloudClient,
    calls: RecordedCalls,
    plan: ClaimPlan,
    located: _Located,
    moves: _Moves,
) -> list[list[RenameStep]]:
    """Make the renames still needed; return those done, wave by wave."""
    origin = {entity_key(move.source): planned for move, planned in located.remaining}
    try:
        waves = order_renames(
            [move for move, _ in located.remaining],
            occupied=located.source_names,
            reserved=located.destination_names,
        )
    except ValueError as error:
        raise _mismatch(plan, [str(error)]) from None
    renamed: list[list[RenameStep]] = []
    for wave in waves:
        steps = [
            replace(step, move=origin[entity_key(step.move.source)])
            for step in wave
            if not moves.has_failed(origin[entity_key(step.move.source)])
        ]
        went_through = await asyncio.gather(
            *(_rename_reported(client, calls, plan, moves, step) for step in steps)
        )
        done = [step for step, ok in zip(steps, went_through, strict=True) if ok]
        renamed.append(done)
    return renamed


async def _rename_reported(
    client: CloudClient, calls: RecordedCalls, plan: ClaimPlan, moves: _Moves, step: RenameStep
) -> bool:
    """Make one rename of a wave and report it as soon as it is settled; True if it went
    through."""

    def report(outcome: CallOutcome | None) -> None:
        if _settled(moves, step.move, "rename", outcome, f"rename in {plan.source_org}"):
            moves.step(step.move, "rename", f"renamed {_hop(step)} in {plan.source_org}")

    outcome = await calls.make(
        step.move.journal_name,
        "rename",
        _hop(step),
        partial(_rename, client, plan.source_org, step),
        started=partial(moves.start, step.move),
        settled=report,
    )
    return outcome is not None and outcome.done


def _settled(
    moves: _Moves, move: StackMove, step: Step, outcome: CallOutcome | None, doing: str
) -> bool:
    """Whether the call went through; if not, the move is failed, unknown or stopped."""
    if outcome is None:
        moves.fail(move, MoveFailure.interrupted(step))
    elif outcome.outcome == "unknown":
        moves.fail(move, MoveFailure.unknown(step, f"{doing}: {outcome.message}"))
    elif outcome.outcome == "failed":
        moves.fail(move, MoveFailure(step, f"{doing} failed: {outcome.message}"))
    return outcome is not None and outcome.done


async def _undo_renames(
    client: CloudClient,
    calls: RecordedCalls,
    plan: ClaimPlan,
    renamed: list[list[RenameStep]],
    moves: _Moves,
) -> None:
    """Put each failed move back where this attempt found it, newest rename first.

    Moves of unknown outcome and stopped moves are left where they are: a re-run finds them.
    """
    for wave in reversed(renamed):
        undo = [
            RenameStep(
                move=step.move,
                from_project=step.to_project,
                from_stack=step.to_stack,
                to_project=step.from_project,
                to_stack=step.from_stack,
            )
            for step in wave
            if moves.outcome(step.move) == "failed"
        ]
        outcomes = await _gather(
            calls.make(
                step.move.journal_name,
                "undo",
                _hop(step),
                partial(_rename, client, plan.source_org, step),
            )
            for step in undo
        )
        for step, outcome in zip(undo, outcomes, strict=True):
            if outcome is not None and outcome.done:
                moves.step(
                    step.move,
                    "undo",
                    f"undid rename: {_name(step.to_project, step.to_stack)} is back "
                    f"in {plan.source_org}",
                )
                continue
            earlier = moves.failed[entity_key(step.move.source)].message
            still_as = _name(step.from_project, step.from_stack)
            said = outcome.message if outcome else "the run was interrupted"
            moves.fail(
                step.move,
                MoveFailure(
                    "undo",
                    f"{earlier}; undoing the rename also failed ({said}): the stack is still "
                    f"in {plan.source_org} as {still_as}; re-run the same command to finish "
                    "the move",
                    source_untouched=False,
                ),
            )


async def _rename(client: CloudClient, org: str, step: RenameStep) -> CallOutcome:
    try:
        await client.rename_stack(
            org,
            step.from_project,
            step.from_stack,
            new_project=step.to_project,
            new_name=step.to_stack,
        )
    except (ServiceError, TransportError) as error:
        return await _settle(
            client,
            error,
            arrived_at=(org, step.to_project, step.to_stack),
            left_from=(org, step.from_project, step.from_stack),
        )
    return CallOutcome("done")


async def _transfer(client: CloudClient, plan: ClaimPlan, move: StackMove) -> CallOutcome:
    project, stack = move.target.project_name, move.target.stack_name
    try:
        await client.transfer_stack(plan.source_org, project, stack, to_org=plan.destination_org)
    except (ServiceError, TransportError) as error:
        return await _settle(
            client,
            error,
            arrived_at=(plan.destination_org, project, stack),
            left_from=(plan.source_org, project, stack),
        )
    return CallOutcome("done")


async def _settle(
    client: CloudClient,
    error: ServiceError | TransportError,
    *,
    arrived_at: tuple[str, str, str],
    left_from: tuple[str, str, str],
) -> CallOutcome:
    """The outcome of a call that answered with `error`: a refusal failed; a lost answer or
    a server error is looked up on the service (the stack at `arrived_at`, none at
    `left_from`), and stays unknown when that look fails too."""
    if not outcome_unknown(error):
        return CallOutcome("failed", error.message)
    try:
        arrived, stayed = await asyncio.gather(
            client.stack_exists(*arrived_at), client.stack_exists(*left_from)
        )
    except ClaimError as look:
        return CallOutcome(
            "unknown", f"{error.message}, and looking whether it was applied failed: {look.message}"
        )
    if arrived and not stayed:
        return CallOutcome("done", f"applied, though the answer was lost ({error.message})")
    return CallOutcome("failed", error.message)


# --- Verification ---------------------------------------------------------------------------


async def _verify(client: CloudClient, plan: ClaimPlan, already_failed: FailedMoves) -> FailedMoves:
    """`verify_moves`, its listings read again with a pause when they fail; past the last
    round, every move it would have checked is of unknown outcome."""
    delay = VERIFY_BACKOFF_SECONDS
    for attempt in range(1, VERIFY_ATTEMPTS + 1):
        try:
            return await verify_moves(client, plan, already_failed)
        except ClaimError as error:
            if attempt == VERIFY_ATTEMPTS:
                unverified = MoveFailure.unknown(
                    "verify", f"could not be verified ({error.message})"
                )
                return {
                    key: unverified
                    for move in plan.moves
                    if (key := entity_key(move.source)) not in already_failed
                }
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable: the last round returns")


async def verify_moves(
    client: CloudClient, plan: ClaimPlan, already_failed: FailedMoves
) -> FailedMoves:
    """Moves that did not land: not in the destination as planned, or still in the source."""
    landing = [move for move in plan.moves if entity_key(move.source) not in already_failed]
    projects = sorted(_projects(landing))
    in_source, in_destination = await asyncio.gather(
        listed_stack_names(client, plan.source_org, projects),
        listed_stack_names(client, plan.destination_org, projects),
    )
    problems: FailedMoves = {}
    for move in landing:
        key = entity_key(move.source)
        target = (move.target.project_name, move.target.stack_name)
        if target not in in_destination:
            problem = f"verification: {_target(move)} is not in {plan.destination_org}"
        elif target in in_source:
            problem = f"verification: {_target(move)} is still in {plan.source_org} too"
        else:
            continue
        problems[key] = MoveFailure("verify", problem, source_untouched=False)
    return problems


class _Moves:
    """The failed moves so far, and every step of every move reported as it happens."""

    def __init__(self, plan: ClaimPlan, on_progress: ProgressCallback) -> None:
        self.failed: FailedMoves = {}
        self._plan = plan
        self._tally = MoveTally(len(plan.moves), on_progress)
        self._started: set[EntityKey] = set()

    def has_failed(self, move: StackMove) -> bool:
        return entity_key(move.source) in self.failed

    def outcome(self, move: StackMove) -> str | None:
        failure = self.failed.get(entity_key(move.source))
        return failure.outcome if failure else None

    def start(self, move: StackMove) -> None:
        """Report the move as started, unless an earlier step did."""
        key = entity_key(move.source)
        if key not in self._started:
            self._started.add(key)
            self._tally.started(*self._names(move))

    def step(self, move: StackMove, step: Step, summary: str) -> None:
        self._tally.step(*self._names(move), step, summary)

    def finished(self, move: StackMove, step: Step, summary: str) -> None:
        self._tally.finished(*self._names(move), step, summary)

    def fail(self, move: StackMove, failure: MoveFailure) -> None:
        self.failed[entity_key(move.source)] = failure
        self._tally.failed(*self._names(move), failure)

    def _names(self, move: StackMove) -> tuple[str, str]:
        return (
            qualified_name(self._plan.source_org, move.source),
            qualified_name(self._plan.destination_org, move.target),
        )


PROJECT_LISTINGS_MAX = 32
"""Listings read each project the moves touch, all at once, rather than page through a whole
org (a claim into an org of 50,000 stacks would otherwise read 500 pages one by one); past
this many projects they read the whole org, rather than make two calls per project."""


async def listed_stacks(
    client: CloudClient, org: str, projects: Sequence[str]
) -> list[AppStackSummary]:
    """Every stack of `org` in `projects` (and maybe of others too)."""
    if not projects:
        return []
    if len(projects) > PROJECT_LISTINGS_MAX:
        return await client.list_stacks(org)
    listings = await asyncio.gather(*(client.list_stacks(org, project) for project in projects))
    return [stack for listing in listings for stack in listing]


async def listed_stack_names(
    client: CloudClient, org: str, projects: Sequence[str]
) -> set[tuple[str, str]]:
    """(project, stack) of every stack of `org` in `projects` (and maybe of others too); how
    the strategies that move stacks on the service see what landed."""
    return {
        (stack.project_name, stack.stack_name)
        for stack in await listed_stacks(client, org, projects)
    }


async def _gather(calls: Iterable[Awaitable[CallOutcome | None]]) -> list[CallOutcome | None]:
    return list(await asyncio.gather(*calls))


def _projects(moves: Iterable[StackMove]) -> set[str]:
    return {move.target.project_name for move in moves}


def _hop(step: RenameStep) -> str:
    return f"{_name(step.from_project, step.from_stack)} -> {_name(step.to_project, step.to_stack)}"


def _source(move: StackMove) -> str:
    return _name(move.source.project_name, move.source.stack_name)


def _target(move: StackMove) -> str:
    return _name(move.target.project_name, move.target.stack_name)


def _name(project: str, stack: str) -> str:
    return f"{project}/{stack}"
