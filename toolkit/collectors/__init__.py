"""Inventory of what an org owns, gathered from the service or from the Automation API; and
(`stack_references`) who in an org reads which stack by name."""

from __future__ import annotations

import asyncio

from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import BackendIdentity
from toolkit.entities import Inventory


async def collect(
    identity: BackendIdentity, org: str, *, cross_check: bool, with_definitions: bool = False
) -> tuple[Inventory, list[str]]:
    """What `org` holds, from the service where there is one, else from the pulumi CLI.

    With `cross_check`, a service's listing is compared with the CLI's, and the stacks only one
    of them shows come back as warnings. `with_definitions`: the service's environments'
    definitions are read too (`collect_inventory`).
    """
    if identity.is_cloud and not cross_check:
        async with CloudClient.for_identity(identity) as client:
            return await collect_inventory(client, org, with_definitions=with_definitions), []
    # Only now: the Automation API (and the pulumi CLI behind it) costs start-up time.
    from toolkit.collectors.automation import collect_stacks, merge_inventories

    if not identity.is_cloud:
        stacks = await asyncio.to_thread(collect_stacks, identity, org)
        return Inventory(org=org, stacks=stacks), []
    async with CloudClient.for_identity(identity) as client:
        service, automation = await asyncio.gather(
            collect_inventory(client, org, with_definitions=with_definitions),
            asyncio.to_thread(collect_stacks, identity, org),
        )
    return merge_inventories(service, automation)
