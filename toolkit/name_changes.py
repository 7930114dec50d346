"""The names a claim changes: each moved stack's and environment's old name and new one, from a
plan (what a commit would do) or from a run's journal (what a commit did); pure.

A user's repository names stacks and environments; `toolkit.repository_patch` rewrites those
names from these.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property

from toolkit.entities import EntityKey, entity_key
from toolkit.models import AgentClaimResponse, TransferEntityEnvironment
from toolkit.plan import ClaimPlan

ProjectName = tuple[str, str]
"""`(project, stack)` of a stack, or `(project, environment)` of an environment."""


@dataclass(frozen=True)
class NameChanges:
    """Old name -> new name of every stack and environment a claim moves, within the source org
    and the destination org: a stack's fully qualified name is `org/project/stack`, an
    environment's `org/project/environment`."""

    source_org: str
    destination_org: str
    stacks: dict[ProjectName, ProjectName]
    environments: dict[ProjectName, ProjectName]

    def __bool__(self) -> bool:
        return bool(self.stacks or self.environments)

    def new_stack(self, old: ProjectName) -> str:
        """The fully qualified new name of the stack named `old` in the source org."""
        return f"{self.destination_org}/{'/'.join(self.stacks[old])}"

    def new_environment(self, old: ProjectName) -> str:
        """The fully qualified new name of the environment named `old` in the source org."""
        return f"{self.destination_org}/{'/'.join(self.environments[old])}"

    @cached_property
    def stacks_by_name(self) -> dict[str, list[ProjectName]]:
        """The moved stacks by their stack name alone, in the order of `stacks`: what a short
        name may stand for, looked up for every name of every line of a checkout."""
        by_name: dict[str, list[ProjectName]] = {}
        for old in self.stacks:
            by_name.setdefault(old[1], []).append(old)
        return by_name

    @cached_property
    def renamed_environments(self) -> dict[ProjectName, ProjectName]:
        """The environments whose name within their org changes: the imports that name them
        (org-relative) must change too."""
        return {old: new for old, new in self.environments.items() if old != new}


def planned_changes(plan: ClaimPlan) -> NameChanges:
    """The names a commit of `plan` changes: every stack it moves and every environment it
    copies, or (claim-api) that the service's claim moves with the stacks; not those it
    reports as failures (entities that cannot move)."""
    return _changes(plan, failed={entity_key(failure.entity) for failure in plan.failures})


def committed_changes(plan: ClaimPlan, result: AgentClaimResponse) -> NameChanges:
    """The names a finished commit of `plan` changed: its moves and copies that `result`, the
    run's outcome, does not report as failed."""
    failures = [*plan.failures, *result.failures]
    return _changes(plan, failed={entity_key(failure.entity) for failure in failures})


def _changes(plan: ClaimPlan, *, failed: Collection[EntityKey]) -> NameChanges:
    stacks = {
        (move.source.project_name, move.source.stack_name): (
            move.target.project_name,
            move.target.stack_name,
        )
        for move in plan.moves
        if entity_key(move.source) not in failed
    }
    moved_environments = [(copy.source, copy.target) for copy in plan.environment_copies] + [
        (claimed.source, claimed.target)
        for claimed in plan.claimed_moves()
        if isinstance(claimed.source, TransferEntityEnvironment)
        and isinstance(claimed.target, TransferEntityEnvironment)
    ]
    environments = {
        (source.project_name, source.environment_name): (
            target.project_name,
            target.environment_name,
        )
        for source, target in moved_environments
        if entity_key(source) not in failed
    }
    return NameChanges(plan.source_org, plan.destination_org, stacks, environments)
