"""Every StackReference of an org: who reads which stack by name, before a move renames it.

The service's resource search finds them in one listing (`type:pulumi:pulumi:StackReference`
with their properties). Where the org's subscription has no properties (402), the same search
without them still names each one: the pulumi CLI sets a StackReference's ID to the name it
reads. Where the search is not there at all (a service without it: 404, 501; its cluster
unreachable: 422), each stack's latest state is exported instead, at most the client's
concurrency at once. A stack whose state cannot be read is reported, not taken for one
without references.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from toolkit.cloud import CloudClient
from toolkit.errors import ServiceError, TransportError
from toolkit.models import AppStackSummary, ResourceResult
from toolkit.stack_references import (
    STACK_REFERENCE_TYPE,
    StackReferenceFound,
    referenced_name,
    references_in_state,
)

logger = logging.getLogger(__name__)

SEARCH_UNAVAILABLE = frozenset({402, 404, 422, 501})
"""Answers of the search that mean "use the exports": not a failure of the org's stacks."""

NO_PROPERTIES = 402
"""The search's answer when the org's subscription does not show resources' properties."""


@dataclass(frozen=True)
class UnreadableStack:
    """A stack whose state could not be exported: its references are unknown."""

    org: str
    project: str
    stack: str
    reason: str


@dataclass(frozen=True)
class StackReferenceSearch:
    """The StackReferences of an org, and how they were found: by the service's search
    (`exported` None; `by_ids` when it showed no properties, so each name was read from the
    resource's ID) or by exporting `exported` states, since the search answered
    `search_refused`."""

    org: str
    references: tuple[StackReferenceFound, ...]
    exported: int | None
    search_refused: str | None
    unreadable: tuple[UnreadableStack, ...] = ()
    by_ids: bool = False

    @property
    def found_by(self) -> str:
        """How a report says they were found."""
        if self.exported is None and self.by_ids:
            return "found by the service's search, each name read from its resource's ID"
        if self.exported is None:
            return "found by the service's search"
        states = "state" if self.exported == 1 else "states"
        return f"by exporting {self.exported:,} {states}"


async def find_stack_references(client: CloudClient, org: str) -> StackReferenceSearch:
    """Every StackReference in the latest states of `org`'s stacks, by the service's search
    (without properties where the org has none), else by exporting each state."""
    by_ids = False
    try:
        try:
            references = await _by_search(client, org, properties=True)
        except ServiceError as refused:
            if refused.status != NO_PROPERTIES:
                raise
            logger.info("the resource search of %s shows no properties; reading IDs", org)
            references, by_ids = await _by_search(client, org, properties=False), True
    except ServiceError as refused:
        if refused.status not in SEARCH_UNAVAILABLE:
            raise
        logger.info(
            "the resource search of %s answered %d (%s); exporting each stack's state",
            org,
            refused.status,
            refused.service_message,
        )
        return await _by_exports(client, org, f"{refused.status}: {refused.service_message}")
    logger.info("found %d StackReferences of %s by the service's search", len(references), org)
    return StackReferenceSearch(org, references, exported=None, search_refused=None, by_ids=by_ids)


async def _by_search(
    client: CloudClient, org: str, *, properties: bool
) -> tuple[StackReferenceFound, ...]:
    found: list[StackReferenceFound] = []
    query = f"type:{STACK_REFERENCE_TYPE}"
    async for result in client.search_resources(org, query, properties=properties):
        reference = _from_result(org, result)
        if reference is not None:
            found.append(reference)
    return tuple(sorted(set(found), key=_order))


def _from_result(org: str, result: ResourceResult) -> StackReferenceFound | None:
    """The StackReference a search result is; None for any other resource the query
    matched."""
    if result.type != STACK_REFERENCE_TYPE or not result.project or not result.stack:
        return None
    name = referenced_name(result.properties, resource_id=result.id)
    if name is None:
        logger.warning(
            "a StackReference of %s/%s/%s names no stack", org, result.project, result.stack
        )
        return None
    return StackReferenceFound(org, result.project, result.stack, name)


async def _by_exports(client: CloudClient, org: str, refused: str) -> StackReferenceSearch:
    """Each stack's state exported by `client.max_concurrency` workers, as the listing
    hands the stacks over."""
    stacks: asyncio.Queue[AppStackSummary | None] = asyncio.Queue(maxsize=client.max_concurrency)
    found: list[StackReferenceFound] = []
    unreadable: list[UnreadableStack] = []
    exported = 0

    async def export_each() -> None:
        nonlocal exported
        while (summary := await stacks.get()) is not None:
            where = (org, summary.project_name, summary.stack_name)
            try:
                state = await client.export_stack(*where)
            except (ServiceError, TransportError) as failed:
                unreadable.append(UnreadableStack(*where, reason=failed.message))
                continue
            exported += 1
            found.extend(references_in_state(*where, state.deployment))

    workers = [asyncio.create_task(export_each()) for _ in range(client.max_concurrency)]
    try:
        async for summary in client.iter_stacks(org):
            await stacks.put(summary)
        for _ in workers:
            await stacks.put(None)
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
    logger.info(
        "found %d StackReferences of %s by exporting %d states (%d unreadable)",
        len(found),
        org,
        exported,
        len(unreadable),
    )
    return StackReferenceSearch(
        org,
        tuple(sorted(set(found), key=_order)),
        exported=exported,
        search_refused=refused,
        unreadable=tuple(sorted(unreadable, key=lambda s: (s.project, s.stack))),
    )


def _order(reference: StackReferenceFound) -> tuple[str, str, str, str]:
    return (reference.org, reference.project, reference.stack, reference.name)
