"""Inventory of an org read from the Pulumi Cloud REST API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

from toolkit.cloud import CloudClient
from toolkit.entities import EntityKey, Inventory, entity_key
from toolkit.errors import ClaimError, NotFoundError
from toolkit.esc_definitions import (
    DEFAULT_PROJECT,
    EnvironmentName,
    ReadDefinitions,
    parse_definition,
)
from toolkit.models import (
    AppStackSummary,
    BaseEntity,
    InsightsAccount,
    OrgEnvironment,
    PackageMetadata,
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")

DEFINITION_READS_SPARED = 4
"""Call slots the reads of the definitions leave free for the listings' chains of pages,
which they run beside: the longest chain sets how long a preview takes."""


async def collect_inventory(
    client: CloudClient, org: str, *, with_definitions: bool = False
) -> Inventory:
    """Everything `org` owns, as wire entities sorted by identity; the four lists load at once.
    `with_definitions`: each environment's definition is read too, as soon as the environments
    are listed, beside the other listings (`read_definitions`).

    Insights and the registry are preview APIs that a self-hosted or older service may not
    serve; their 404 counts as "nothing there", while any other error stops the collection,
    since an incomplete inventory would plan a partial claim. The 404s are logged once the
    whole inventory is collected: one that was not (an org that does not exist, a listing
    cancelled by a check that failed beside it) says nothing about its parts.
    """
    not_served: list[tuple[str, NotFoundError]] = []
    stacks, (environments, definitions), accounts, packages = await asyncio.gather(
        _stacks(client, org),
        _environments(client, org, with_definitions=with_definitions),
        _unless_not_served(client.list_insights_accounts(org), "Insights accounts", not_served),
        _unless_not_served(client.list_registry_packages(org), "registry packages", not_served),
    )
    for what, reason in not_served:
        logger.warning("%s of %s treated as none: the service answered 404 (%s)", what, org, reason)
    stacks.sort(key=itemgetter(0))  # by key: by project, then stack
    environment_entities = sorted(
        (environment_entity(env) for env in environments),
        key=lambda entity: (entity.project_name, entity.environment_name),
    )
    account_entities = sorted(
        (_insights_account(account) for account in accounts), key=lambda entity: entity.name
    )
    package_entities = sorted(
        (registry_package_entity(package) for package in packages),
        key=lambda entity: (entity.source, entity.publisher, entity.name),
    )
    others: list[BaseEntity] = [*environment_entities, *account_entities, *package_entities]
    keys: dict[EntityKey, BaseEntity] = dict(stacks)
    keys.update((entity_key(entity), entity) for entity in others)
    return Inventory(
        org=org,
        stacks=[stack for _, stack in stacks],
        environments=environment_entities,
        insights_accounts=account_entities,
        registry_packages=package_entities,
        definitions=definitions,
        keys=keys,
    )


async def _environments(
    client: CloudClient, org: str, *, with_definitions: bool
) -> tuple[list[OrgEnvironment], ReadDefinitions | None]:
    environments = await client.list_environments(org)
    if not with_definitions:
        return environments, None
    names = [(env.project or DEFAULT_PROJECT, env.name) for env in environments]
    limit = max(1, client.max_concurrency - DEFINITION_READS_SPARED)
    return environments, await read_definitions(client, org, names, limit=limit)


async def read_definitions(
    client: CloudClient, org: str, names: Sequence[EnvironmentName], *, limit: int
) -> ReadDefinitions:
    """The stored definitions (secrets as ciphertext) of `org`'s environments `names`, `limit`
    reads at a time, and why each that could not be read was not."""
    slots = asyncio.Semaphore(limit)

    async def read(name: EnvironmentName) -> dict[str, Any] | str:
        async with slots:
            try:
                stored = await client.get_environment(org, *name)
                return parse_definition(stored.yaml)
            except ClaimError as error:
                return error.message

    found = await asyncio.gather(*(read(name) for name in names))
    return ReadDefinitions(
        read={n: f for n, f in zip(names, found, strict=True) if not isinstance(f, str)},
        unread={n: f for n, f in zip(names, found, strict=True) if isinstance(f, str)},
    )


async def _stacks(client: CloudClient, org: str) -> list[tuple[EntityKey, TransferEntityStack]]:
    """The org's stacks as wire entities, each with its key: converted and keyed page by page
    as the listing arrives, so that planning finds them keyed once the last page is in."""
    keyed: list[tuple[EntityKey, TransferEntityStack]] = []
    async for summary in client.iter_stacks(org):
        stack = _stack(summary)
        keyed.append((entity_key(stack), stack))
    return keyed


async def _unless_not_served(
    listing: Awaitable[list[ItemT]], what: str, not_served: list[tuple[str, NotFoundError]]
) -> list[ItemT]:
    """The listing, or none when the service answered 404 (kept in `not_served`)."""
    try:
        return await listing
    except NotFoundError as exc:
        not_served.append((what, exc))
        return []


def _stack(summary: AppStackSummary) -> TransferEntityStack:
    last_update = (
        datetime.fromtimestamp(summary.last_update, tz=UTC) if summary.last_update else None
    )
    return TransferEntityStack(
        project_name=summary.project_name,
        stack_name=summary.stack_name,
        resource_count=summary.resource_count,
        last_update=last_update,
    )


def environment_entity(env: OrgEnvironment) -> TransferEntityEnvironment:
    """A listed environment as the claim document names it."""
    return TransferEntityEnvironment(
        project_name=env.project or DEFAULT_PROJECT, environment_name=env.name
    )


def _insights_account(account: InsightsAccount) -> TransferEntityInsightsAccount:
    return TransferEntityInsightsAccount(name=account.name)


def registry_package_entity(package: PackageMetadata) -> TransferEntityRegistryPackage:
    """A listed registry package as the claim document names it."""
    return TransferEntityRegistryPackage(
        source=package.source, publisher=package.publisher, name=package.name
    )
