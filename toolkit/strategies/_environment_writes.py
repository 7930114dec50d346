"""The destination writes of an environment copy, each converging under faults.

The service answers a write, but the answer can be lost (a 5xx, a dropped connection). A
write that is safe to repeat is repeated by the client (`CloudClient`); these are the ones
that are not, made safe by looking at what landed: a create is looked up, a conditional write
refused as stale is compared with what it wrote, a removal that finds nothing is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from toolkit.errors import ClaimError, ConflictError, NotFoundError, outcome_unknown
from toolkit.esc_definitions import definition_difference, parse_definition, render_definition

if TYPE_CHECKING:
    from toolkit.cloud import CloudClient
    from toolkit.models import EnvironmentDefinition


_CREATE_ATTEMPTS = 4
"""Times a create is sent while its answer is lost and a look-up finds it not applied."""
_CREATE_PAUSE = 0.2
"""Seconds before a create is sent again, doubled each time."""


async def create_environment(client: CloudClient, org: str, project: str, name: str) -> None:
    """Create `org/project/name`, which was not there a moment ago.

    A create is not safe to repeat blindly, so one whose answer was lost (5xx, a dropped
    connection) is looked up, as a stack's transfer is: there, it was applied; not there, it
    is sent again, a few times at most.
    """
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            await client.create_environment(org, project, name)
            return
        except ClaimError as error:
            if not outcome_unknown(error):
                raise
            if await client.environment_exists(org, project, name):
                return
            if attempt == _CREATE_ATTEMPTS:
                raise
        await asyncio.sleep(_CREATE_PAUSE * 2 ** (attempt - 1))


async def write_definition(
    client: CloudClient,
    org: str,
    project: str,
    name: str,
    expected: Mapping[str, Any],
    *,
    over: EnvironmentDefinition | None = None,
) -> None:
    """Write `expected` over the environment on the condition that it is still as read
    (`over`, else read now: the one this run just created): a conditional write is safe to
    repeat, so the client sends it again when its answer is lost. A repeat refused as stale
    (409) counts when the environment now decrypts to `expected` (the lost write had been
    applied); otherwise the refusal stands."""
    read = over or await client.get_environment(org, project, name)
    try:
        await client.update_environment(
            org, project, name, render_definition(expected), etag=read.etag
        )
    except ConflictError:
        landed = parse_definition(await client.get_environment_decrypted(org, project, name))
        if definition_difference(expected, landed) is not None:
            raise


async def remove_environment(client: CloudClient, org: str, project: str, name: str) -> None:
    """Remove a destination environment this run made; one already gone (removed by an
    attempt whose answer was lost) is what removing it is for."""
    try:
        await client.delete_environment(org, project, name)
    except NotFoundError:
        return
