"""The `transfer` strategy: rename in the source org where the plan says so, then REST-transfer.

Needs one identity that is admin of both orgs. Keeps update history, tags and permissions,
because the stack itself moves. Order of work:

1. the plan's rename waves, in the source org (each wave concurrently);
2. every transfer concurrently (bounded by the client);
3. for each move that failed after its renames, the renames undone in reverse wave order, so the
   stack is back under its original name in the source org;
4. verification against listings of both orgs (of the projects the moves land in): each landed
   stack at its planned name in the destination and gone from the source.

A call whose answer was lost (5xx, dropped connection) may still have been applied, so instead of
retrying it blindly the strategy looks at the service to learn what happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence

from toolkit.cloud import CloudClient
from toolkit.entities import EntityKey, entity_key
from toolkit.errors import ClaimError, ServiceError, TransportError
from toolkit.plan import ClaimPlan, RenameStep, StackMove
from toolkit.progress import MoveFailure, MoveTally, Step
from toolkit.strategies import FailedMoves, ProgressCallback, no_progress


async def execute_transfer(
    plan: ClaimPlan, client: CloudClient, *, on_progress: ProgressCallback = no_progress
) -> FailedMoves:
    """Move every stack of `plan` with `client` (admin of both orgs); return the failed moves."""
    moves = _Moves(plan, on_progress)
    renamed: list[list[RenameStep]] = []
    for wave in plan.rename_waves:
        pending = [step for step in wave if not moves.has_failed(step.move)]
        for step in pending:
            moves.start(step.move)
        outcomes = await _gather(_rename(client, plan.source_org, step) for step in pending)
        done: list[RenameStep] = []
        for step, error in zip(pending, outcomes, strict=True):
            if error is None:
                done.append(step)
                moves.step(
                    step.move,
                    "rename",
                    f"renamed {_name(step.from_project, step.from_stack)} -> "
                    f"{_name(step.to_project, step.to_stack)} in {plan.source_org}",
                )
            else:
                moves.fail(
                    step.move, MoveFailure("rename", f"rename in {plan.source_org} failed: {error}")
                )
        renamed.append(done)

    to_transfer = [move for move in plan.moves if not moves.has_failed(move)]
    for move in to_transfer:
        moves.start(move)
    outcomes = await _gather(_transfer(client, plan, move) for move in to_transfer)
    for move, error in zip(to_transfer, outcomes, strict=True):
        if error is None:
            moves.finished(
                move, "transfer", f"transferred {_target(move)} to {plan.destination_org}"
            )
        else:
            moves.fail(
                move, MoveFailure("transfer", f"transfer to {plan.destination_org} failed: {error}")
            )

    await _undo_renames(client, plan, renamed, moves)
    try:
        problems = await verify_moves(client, plan, moves.failed)
    except ClaimError as error:
        unverified = MoveFailure(
            "verify", f"could not be verified: {error.message}", source_untouched=False
        )
        problems = {entity_key(move.source): unverified for move in plan.moves}
    for move in plan.moves:
        key = entity_key(move.source)
        if key in problems and not moves.has_failed(move):
            moves.fail(move, problems[key])
    return moves.failed


async def verify_moves(
    client: CloudClient, plan: ClaimPlan, already_failed: FailedMoves
) -> FailedMoves:
    """Moves that did not land: not in the destination as planned, or still in the source."""
    landing = [move for move in plan.moves if entity_key(move.source) not in already_failed]
    projects = sorted({move.target.project_name for move in landing})
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
        source = _name(move.source.project_name, move.source.stack_name)
        return f"{self._plan.source_org}/{source}", f"{self._plan.destination_org}/{_target(move)}"


PROJECT_LISTINGS_MAX = 32
"""Verification lists each project the moves land in, all at once, rather than page through a
whole org (a claim into an org of 50,000 stacks would otherwise read 500 pages one by one);
past this many projects it lists the whole org, rather than make two calls per project."""


async def listed_stack_names(
    client: CloudClient, org: str, projects: Sequence[str]
) -> set[tuple[str, str]]:
    """(project, stack) of every stack of `org` in `projects` (and maybe of others too); how
    the strategies that move stacks on the service see what landed."""
    if len(projects) > PROJECT_LISTINGS_MAX:
        listings = [await client.list_stacks(org)]
    else:
        listings = await asyncio.gather(*(client.list_stacks(org, project) for project in projects))
    return {(stack.project_name, stack.stack_name) for listing in listings for stack in listing}


async def _rename(client: CloudClient, org: str, step: RenameStep) -> str | None:
    try:
        await client.rename_stack(
            org,
            step.from_project,
            step.from_stack,
            new_project=step.to_project,
            new_name=step.to_stack,
        )
    except (ServiceError, TransportError) as error:
        if _outcome_unknown(error) and await _renamed(client, org, step):
            return None
        return error.message
    return None


async def _transfer(client: CloudClient, plan: ClaimPlan, move: StackMove) -> str | None:
    project, stack = move.target.project_name, move.target.stack_name
    try:
        await client.transfer_stack(plan.source_org, project, stack, to_org=plan.destination_org)
    except (ServiceError, TransportError) as error:
        if _outcome_unknown(error) and await _transferred(client, plan, move):
            return None
        return error.message
    return None


async def _undo_renames(
    client: CloudClient, plan: ClaimPlan, renamed: list[list[RenameStep]], moves: _Moves
) -> None:
    """Put each failed move back under its original source name, newest rename first."""
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
            if moves.has_failed(step.move)
        ]
        outcomes = await _gather(_rename(client, plan.source_org, step) for step in undo)
        for step, error in zip(undo, outcomes, strict=True):
            if error is None:
                moves.step(
                    step.move,
                    "undo",
                    f"undid rename: {_name(step.to_project, step.to_stack)} is back "
                    f"in {plan.source_org}",
                )
            else:
                earlier = moves.failed[entity_key(step.move.source)].message
                still_as = _name(step.from_project, step.from_stack)
                moves.fail(
                    step.move,
                    MoveFailure(
                        "undo",
                        f"{earlier}; undoing the rename also failed ({error}): the stack is still "
                        f"in {plan.source_org} as {still_as}",
                        source_untouched=False,
                    ),
                )


async def _renamed(client: CloudClient, org: str, step: RenameStep) -> bool:
    return await _moved(
        client, (org, step.to_project, step.to_stack), (org, step.from_project, step.from_stack)
    )


async def _transferred(client: CloudClient, plan: ClaimPlan, move: StackMove) -> bool:
    project, stack = move.target.project_name, move.target.stack_name
    return await _moved(
        client, (plan.destination_org, project, stack), (plan.source_org, project, stack)
    )


async def _moved(
    client: CloudClient, arrived_at: tuple[str, str, str], left_from: tuple[str, str, str]
) -> bool:
    """Whether the service shows a stack at `arrived_at` and none at `left_from`."""
    try:
        arrived, stayed = await asyncio.gather(
            client.stack_exists(*arrived_at), client.stack_exists(*left_from)
        )
    except ClaimError:
        return False
    return arrived and not stayed


def _outcome_unknown(error: ClaimError) -> bool:
    """A lost answer or a server error: the call may or may not have been applied."""
    return isinstance(error, TransportError) or (
        isinstance(error, ServiceError) and error.status >= 500
    )


async def _gather(calls: Iterable[Awaitable[str | None]]) -> list[str | None]:
    return list(await asyncio.gather(*calls))


def _target(move: StackMove) -> str:
    return _name(move.target.project_name, move.target.stack_name)


def _name(project: str, stack: str) -> str:
    return f"{project}/{stack}"
