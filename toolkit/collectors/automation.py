"""An org's stacks as the `pulumi` CLI lists them, through the Automation API.

The service collector reads the REST API; this one asks the CLI, with the source identity in an
isolated workspace, so it also works on self-managed backends (`file://`, ...) and shows what
the migrate strategy, which drives the same CLI, will find. On Pulumi Cloud the two listings
should agree; `merge_inventories` reports every stack on which they do not.
"""

from __future__ import annotations

from toolkit.credentials import BackendIdentity
from toolkit.entities import Inventory, stack_name
from toolkit.models import TransferEntityStack
from toolkit.workspaces import isolated_workspace, list_all_stacks

LISTING_PROJECT = "pulumi-claim-inventory"
"""The project of the listing workspace; any name does, since the listing covers every project."""


def collect_stacks(identity: BackendIdentity, org: str) -> list[TransferEntityStack]:
    """Every stack of `org` in every project, sorted by (project, stack), as `identity` sees it.

    One `pulumi stack ls` call (the CLI pages through the service itself). On a self-managed
    backend the org is `toolkit.workspaces.SELF_MANAGED_ORG`. Synchronous: it waits on a
    subprocess, so an async caller runs it in a thread.
    """
    with isolated_workspace(identity, project=LISTING_PROJECT) as workspace:
        summaries = list_all_stacks(workspace, org=org)
    stacks = []
    for summary in summaries:
        _, project, stack = summary.name.split("/")
        stacks.append(
            TransferEntityStack(
                project_name=project,
                stack_name=stack,
                resource_count=summary.resource_count or 0,
                last_update=summary.last_update,
            )
        )
    return sorted(stacks, key=stack_name)


def merge_inventories(
    service: Inventory, automation: list[TransferEntityStack]
) -> tuple[Inventory, list[str]]:
    """The service's inventory, and one warning per stack only one of the two listings has.

    The service's view stays the inventory: it is what the plan and the REST calls act on. A
    stack the CLI lists but the service does not (or the reverse) points at a permission,
    visibility or paging problem the user should look at before moving anything.
    """
    listed_by_service = {stack_name(stack) for stack in service.stacks}
    listed_by_cli = {stack_name(stack) for stack in automation}
    warnings = [
        f"stack {project}/{stack} is listed by the service but not by the pulumi CLI"
        for project, stack in sorted(listed_by_service - listed_by_cli)
    ] + [
        f"stack {project}/{stack} is listed by the pulumi CLI but not by the service"
        for project, stack in sorted(listed_by_cli - listed_by_service)
    ]
    return service, warnings
