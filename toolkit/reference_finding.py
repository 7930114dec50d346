"""Finding what a plan breaks before it runs: the source's environment definitions read
(bounded, concurrently), what the notices say about the copies, and the references to moved
stacks and environments (`toolkit.references`) in those definitions and in the StackReferences
found in stacks' latest states.

Only the source's environments can name a moved stack or environment by its old name: ESC
reads stacks and imports environments of an environment's own org, and the moved ones were of
the source org.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.cloud import CloudClient
from toolkit.collectors.service import read_definitions
from toolkit.errors import ChoiceError
from toolkit.esc_definitions import ReadDefinitions, copy_notices, environment_name
from toolkit.models import TransferEntityEnvironment
from toolkit.name_changes import planned_changes
from toolkit.references import (
    BrokenReference,
    environments_breaks,
    moved_names,
    sorted_references,
    stack_reference_breaks,
)

if TYPE_CHECKING:
    from toolkit.plan import ClaimPlan
    from toolkit.sides import Sides
    from toolkit.stack_references import StackReferenceFound


DEFINITION_READS_AT_ONCE = 8
"""Reads of definitions in flight when nothing else is (the service's claim planned)."""


@dataclass(frozen=True)
class PlanReferences:
    """What planning found about references and copies, for the plan."""

    notices: list[str] = field(default_factory=list)
    broken: list[BrokenReference] = field(default_factory=list)


async def find_references(
    sides: Sides, plan: ClaimPlan, definitions: ReadDefinitions | None = None
) -> PlanReferences:
    """The notices about the plan's environment copies (`copy_notices`) and about definitions
    that could not be read, and the references the plan breaks. `definitions`: the source's,
    where the listings read them; else they are read here.

    With claim-api and the claimer's token alone, the agent's environments are not read (the
    claimer has no access to the agent's org): a notice says their references are unchecked.
    """
    if plan.environment_copies and not (sides.source.is_cloud and sides.destination.is_cloud):
        raise ChoiceError(
            "{environments} copy needs both orgs on Pulumi Cloud: ESC environments live there.",
            hint="Leave out {environments} copy to move the stacks only.",
        )
    copied = [environment_name(copy.source) for copy in plan.environment_copies]
    names = moved_names(planned_changes(plan), copied)
    broken = stack_reference_breaks(await found_stack_references(sides, plan), names)
    environments = [
        environment_name(entity)
        for entity in plan.entities
        if isinstance(entity, TransferEntityEnvironment)
    ]
    if not (environments and sides.source.is_cloud):
        return PlanReferences([], sorted_references(broken))
    if plan.strategy == "claim-api" and sides.one_identity and not plan.environment_copies:
        notice = (
            f"the environments of {plan.source_org} were not read (no token of the agent, "
            "PULUMI_CLAIM_SOURCE_TOKEN, was given): their references to moved stacks and "
            "environments are not checked"
        )
        return PlanReferences([notice], sorted_references(broken))
    if definitions is None:
        async with CloudClient.for_identity(sides.source) as client:
            definitions = await read_definitions(
                client, plan.source_org, environments, limit=DEFINITION_READS_AT_ONCE
            )
    read, unread = definitions.read, definitions.unread
    notices = copy_notices(
        plan.environment_copies,
        read,
        source_org=plan.source_org,
        destination_org=plan.destination_org,
    )
    in_definitions, unparsed = environments_breaks(plan.source_org, read, names)
    notices += [
        f"environment {plan.source_org}/{project}/{name} could not be read ({why}): its "
        "references to moved stacks and environments are not checked"
        for (project, name), why in sorted(unread.items())
    ]
    return PlanReferences([*notices, *unparsed], sorted_references([*broken, *in_definitions]))


async def found_stack_references(sides: Sides, plan: ClaimPlan) -> list[StackReferenceFound]:
    """The StackReferences in the latest states of the stacks that may name the plan's moved
    stacks (`toolkit.stack_references`).

    The resource search that finds them is not wired in yet: until it is, none are found and
    only environments' references are reported. This is the one place it plugs in.
    """
    del sides, plan  # What the search will read: the orgs to search, and the moved stacks.
    return []
