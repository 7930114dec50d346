"""Finding what a plan breaks before it runs: the source's environment definitions read
(bounded, concurrently), what the notices say about the copies, and the references to moved
stacks and environments (`toolkit.references`) in those definitions and in the StackReferences
found in stacks' latest states.

Only the source's environments can name a moved stack or environment by its old name: ESC
reads stacks and imports environments of an environment's own org, and the moved ones were of
the source org. A StackReference may name any org's stack: the source org is searched as the
source's identity, the destination org and the other orgs the user names (`reference_orgs`)
as the destination's (`toolkit.collectors.stack_references`). The searches depend on no
listing, so they start with them (`search_stack_references`) and the plan reads what they
found once it is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.checks_first import checked_first
from toolkit.cloud import CloudClient
from toolkit.collectors.service import read_definitions
from toolkit.collectors.stack_references import StackReferenceSearch, find_stack_references
from toolkit.credentials import BackendIdentity
from toolkit.errors import ChoiceError, ClaimError
from toolkit.esc_definitions import ReadDefinitions, copy_notices, environment_name
from toolkit.known_orgs import require_visible
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
    from toolkit.checks_first import CurrentUsers
    from toolkit.plan import ClaimPlan
    from toolkit.sides import Sides


DEFINITION_READS_AT_ONCE = 8
"""Reads of definitions in flight when nothing else is (the service's claim planned)."""


@dataclass(frozen=True)
class PlanReferences:
    """What planning found about references and copies, for the plan."""

    notices: list[str] = field(default_factory=list)
    broken: list[BrokenReference] = field(default_factory=list)


@dataclass(frozen=True)
class OrgSearched:
    """How one org's StackReferences were looked for: what was found (`search`), else why
    the org could not be searched (`why`)."""

    org: str
    search: StackReferenceSearch | None = None
    why: str | None = None

    def notices(self) -> list[str]:
        """What a report says of it: how the org was searched and each stack whose state
        could not be read, or that the org was not searched; never a silent "none"."""
        if self.search is None:
            return [
                f"stack references in {self.org} were not searched ({self.why}): the "
                "StackReferences its stacks hold to moved stacks are not checked"
            ]
        refused = self.search.search_refused
        how = self.search.found_by + (f" (the search answered {refused})" if refused else "")
        return [
            f"stack references in {self.org}: {how}",
            *(
                f"stack {stack.org}/{stack.project}/{stack.stack} could not be read "
                f"({stack.reason}): its StackReferences are not checked"
                for stack in self.search.unreadable
            ),
        ]


async def search_stack_references(
    sides: Sides,
    users: CurrentUsers,
    reference_orgs: Sequence[str] = (),
    *,
    wanted: bool = True,
    by_the_service: bool = False,
) -> list[OrgSearched]:
    """The StackReferences of the source org (as the source's identity), the destination org
    and each of `reference_orgs` (as the destination's), the orgs searched at once; none
    unless `wanted` (a caller that needs only the names a plan changes). When the service
    claims (`by_the_service`) with the claimer's token alone, the agent's org is not searched:
    the claimer has no role there, and the notice says so. A reference org the
    destination's identity has no role in is refused (`require_visible`): the user named it,
    and a misspelled org must not read as one without references. That check runs beside the
    searches (`checked_first`), so no search waits for it."""
    if not wanted:
        return []
    if reference_orgs and not sides.destination.is_cloud:
        raise ChoiceError(
            "{reference_orgs} names orgs of Pulumi Cloud, but the destination is not there.",
            hint="Leave out {reference_orgs}, or move into an org of Pulumi Cloud.",
        )
    searched: dict[str, BackendIdentity] = {}
    unsearched: list[OrgSearched] = []
    if by_the_service and sides.one_identity:
        unsearched.append(_without_the_agents_token(sides.source_org))
    elif sides.source.is_cloud:
        searched[sides.source_org] = sides.source
    for org in (sides.destination_org, *reference_orgs):
        if sides.destination.is_cloud:
            searched.setdefault(org, sides.destination)
    _, found = await checked_first(
        _require_visible_all(users, sides.destination, reference_orgs),
        _searched_all(searched),
    )
    return [*unsearched, *found]


@asynccontextmanager
async def stack_references_searched(
    sides: Sides,
    users: CurrentUsers,
    reference_orgs: Sequence[str] = (),
    *,
    wanted: bool = True,
    by_the_service: bool = False,
) -> AsyncIterator[asyncio.Future[list[OrgSearched]]]:
    """`search_stack_references` started at once, for the plan to read once it is built;
    cancelled if planning ends first."""
    searching = asyncio.ensure_future(
        search_stack_references(
            sides, users, reference_orgs, wanted=wanted, by_the_service=by_the_service
        )
    )
    try:
        yield searching
    finally:
        searching.cancel()
        await asyncio.gather(searching, return_exceptions=True)


async def _require_visible_all(
    users: CurrentUsers, identity: BackendIdentity, orgs: Sequence[str]
) -> None:
    for org in orgs:
        await require_visible(users, identity, org, "reference_orgs")


async def _searched_all(searched: dict[str, BackendIdentity]) -> list[OrgSearched]:
    """Each org searched as its identity, all at once, through one client an identity: the
    orgs searched as one identity share its call slots, as all its other calls do."""
    async with AsyncExitStack() as clients:
        client_of = {
            identity: await clients.enter_async_context(CloudClient.for_identity(identity))
            for identity in dict.fromkeys(searched.values())
        }
        return list(
            await asyncio.gather(
                *(_searched(org, client_of[identity]) for org, identity in searched.items())
            )
        )


async def _searched(org: str, client: CloudClient) -> OrgSearched:
    try:
        return OrgSearched(org, search=await find_stack_references(client, org))
    except ClaimError as failed:
        return OrgSearched(org, why=failed.message)


def _without_the_agents_token(agent_org: str) -> OrgSearched:
    """claim-api with the claimer's token alone: the claimer has no role in the agent's org,
    so its stacks' references are unknown, and the notice says why."""
    why = "no token of the agent, PULUMI_CLAIM_SOURCE_TOKEN, was given"
    return OrgSearched(agent_org, why=why)


async def find_references(
    sides: Sides,
    plan: ClaimPlan,
    definitions: ReadDefinitions | None,
    searched: Awaitable[list[OrgSearched]],
) -> PlanReferences:
    """The notices about the plan's environment copies (`copy_notices`), about definitions
    that could not be read and about how the orgs' StackReferences were `searched`, and the
    references the plan breaks. `definitions`: the source's, where the listings read them;
    else they are read here.

    With claim-api and the claimer's token alone, the agent's environments and stacks are not
    read (the claimer has no access to the agent's org): notices say their references are
    unchecked.
    """
    copied = [environment_name(copy.source) for copy in plan.environment_copies]
    names = moved_names(planned_changes(plan), copied)
    orgs = await searched
    found = [
        reference for org in orgs if org.search is not None for reference in org.search.references
    ]
    broken = stack_reference_breaks(found, names)
    searches = [notice for org in orgs for notice in org.notices()]
    environments = [
        environment_name(entity)
        for entity in plan.entities
        if isinstance(entity, TransferEntityEnvironment)
    ]
    if not (environments and sides.source.is_cloud):
        return PlanReferences(searches, sorted_references(broken))
    if plan.strategy == "claim-api" and sides.one_identity and not plan.environment_copies:
        notice = (
            f"the environments of {plan.source_org} were not read (no token of the agent, "
            "PULUMI_CLAIM_SOURCE_TOKEN, was given): their references to moved stacks and "
            "environments are not checked"
        )
        return PlanReferences([notice, *searches], sorted_references(broken))
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
    return PlanReferences(
        [*notices, *unparsed, *searches], sorted_references([*broken, *in_definitions])
    )
