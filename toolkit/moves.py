"""What moves where: a stack move, an environment copy, an environment or registry package the
service's claim moves with the stacks, and the source-org renames a transfer makes on the way,
ordered in waves so that no rename lands on a name in use (pure).

The plan (`toolkit.plan`) lists them; the strategies carry them out.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from toolkit.entities import MAX_NAME_LENGTH, StackName, describe, stack_name
from toolkit.models import BaseEntity, TransferEntityEnvironment, TransferEntityStack
from toolkit.progress import Phase

TEMPORARY_SUFFIX = "-claim-tmp"
"""Ending of the name a stack takes for a moment when renames form a cycle (a swap)."""


@dataclass(frozen=True)
class StackMove:
    """One source stack and the stack it becomes in the destination org."""

    source: TransferEntityStack
    target: TransferEntityStack
    """Same resourceCount and lastUpdate as `source`; another name when `renamed`."""

    @property
    def renamed(self) -> bool:
        # A move that keeps its name lands as its source itself (`move_of`): no names to read.
        return self.target is not self.source and stack_name(self.source) != stack_name(self.target)

    @property
    def journal_name(self) -> str:
        """How a run's journal names the move: its source stack as planned, `project/stack`."""
        return f"{self.source.project_name}/{self.source.stack_name}"


@dataclass(frozen=True)
class EnvironmentCopy:
    """One source ESC environment and the environment it is copied to in the destination."""

    source: TransferEntityEnvironment
    target: TransferEntityEnvironment

    @property
    def journal_name(self) -> str:
        """How a run's journal names the copy (apart from any stack's `project/stack`)."""
        return f"environment {self.source.project_name}/{self.source.environment_name}"


CLAIMED_BESIDES_STACKS: dict[str, Phase] = {
    "TransferEntityEnvironment": "environments",
    "TransferEntityRegistryPackage": "packages",
}
"""The kinds the service's claim moves with the stacks that claim-api follows and verifies in
the destination, each with the progress phase that reports it (Insights accounts are always
the service's failures)."""


@dataclass(frozen=True)
class ClaimedMove:
    """An ESC environment or registry package the service's claim moves with the stacks."""

    source: BaseEntity
    target: BaseEntity
    """What it becomes in the destination: itself, or its rename."""


@dataclass(frozen=True)
class RenameStep:
    """One rename call in the source org, made on behalf of `move` (a cycle needs two)."""

    move: StackMove
    from_project: str
    from_stack: str
    to_project: str
    to_stack: str


def order_renames(
    moves: Sequence[StackMove],
    occupied: Collection[StackName],
    *,
    reserved: Collection[StackName] = (),
) -> list[list[RenameStep]]:
    """Waves of source-org renames that never rename onto a name in use.

    `occupied` is every (project, stack) in the source org now. Steps within a wave are
    independent, so a wave may run concurrently. A chain (a->b, b->c) renames b first; a
    cycle (a->b, b->a) parks one stack under a temporary name that avoids `occupied`,
    `reserved` (e.g. the destination's names) and every move's source and target.
    """
    targets = [stack_name(move.target) for move in moves]
    if len(set(targets)) != len(targets):
        raise ValueError("two moves have the same target")
    renamed = {stack_name(move.source): move for move in moves if move.renamed}
    in_use = {*occupied, *renamed}
    avoid = {*in_use, *reserved, *targets}
    parked = _cycle_breakers({source: stack_name(move.target) for source, move in renamed.items()})
    # Source name -> the names its stack still passes through, starting where it is now.
    paths: dict[StackName, list[StackName]] = {}
    for source, move in renamed.items():
        if source in parked:
            temporary = _temporary_name(move.source, avoid)
            avoid.add(temporary)
            paths[source] = [source, temporary, stack_name(move.target)]
        else:
            paths[source] = [source, stack_name(move.target)]

    waves: list[list[RenameStep]] = []
    while paths:
        ready = [source for source, path in paths.items() if path[1] not in in_use]
        if not ready:
            stuck = ", ".join(sorted("/".join(path[1]) for path in paths.values()))
            raise ValueError(f"rename targets held by stacks that do not move: {stuck}")
        wave: list[RenameStep] = []
        for source in ready:
            path = paths[source]
            (from_project, from_stack), (to_project, to_stack) = path[0], path[1]
            wave.append(RenameStep(renamed[source], from_project, from_stack, to_project, to_stack))
            in_use.discard(path[0])
            in_use.add(path[1])
            del path[0]
            if len(path) == 1:
                del paths[source]
        waves.append(wave)
    return waves


def _cycle_breakers(renames: Mapping[StackName, StackName]) -> set[StackName]:
    """One source from each cycle of `renames` (source -> target): the one parked for a while.

    A rename waits for the rename whose source is its target; since targets are distinct,
    those waits form chains and cycles, and a cycle can only start once one member steps aside.
    """
    finished: set[StackName] = set()
    breakers: set[StackName] = set()
    for start in renames:
        path: set[StackName] = set()
        name: StackName | None = start
        while name is not None and name not in finished and name not in path:
            path.add(name)
            target = renames[name]
            name = target if target in renames else None
        if name is not None and name in path:
            breakers.add(name)
        finished.update(path)
    return breakers


def _temporary_name(stack: TransferEntityStack, avoid: Collection[StackName]) -> StackName:
    for attempt in itertools.count(1):
        ending = TEMPORARY_SUFFIX if attempt == 1 else f"{TEMPORARY_SUFFIX}-{attempt}"
        name = (stack.project_name, stack.stack_name[: MAX_NAME_LENGTH - len(ending)] + ending)
        if name not in avoid:
            return name
    raise AssertionError("unreachable: itertools.count never ends")


def copy_of(environment: TransferEntityEnvironment, target: BaseEntity | None) -> EnvironmentCopy:
    """The copy of `environment`, under the name `target` says (None: its own)."""
    if target is None:
        return EnvironmentCopy(source=environment, target=environment)
    if not isinstance(target, TransferEntityEnvironment):
        raise TypeError(f"{describe(environment)} cannot become {describe(target)}")
    return EnvironmentCopy(source=environment, target=target)


def move_of(stack: TransferEntityStack, target: BaseEntity | None) -> StackMove:
    """The move of `stack`, under the name `target` says (None: its own); the stack it
    becomes keeps its resourceCount and lastUpdate."""
    if target is None:
        return StackMove(source=stack, target=stack)
    if not isinstance(target, TransferEntityStack):
        raise TypeError(f"{describe(stack)} cannot become {describe(target)}")
    landing = stack.model_copy(
        update={"project_name": target.project_name, "stack_name": target.stack_name}
    )
    return StackMove(source=stack, target=landing)
