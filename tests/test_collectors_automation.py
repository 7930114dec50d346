"""The Automation API collector (real `pulumi` CLI) against file:// backends and the emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulumi.automation import ConfigValue, Stack

from tests.workload.workload import pulumi_program
from toolkit.cloud import CloudClient
from toolkit.collectors.automation import collect_stacks, merge_inventories
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import Inventory
from toolkit.models import TransferEntityStack
from toolkit.workspaces import SELF_MANAGED_ORG, isolated_workspace

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory


def stack(project: str, name: str) -> TransferEntityStack:
    return TransferEntityStack(project_name=project, stack_name=name)


def names(stacks: list[TransferEntityStack]) -> list[tuple[str, str]]:
    return [(s.project_name, s.stack_name) for s in stacks]


def service_inventory(server: EmulatorServer, org: str, token: str) -> Inventory:
    async def scenario() -> Inventory:
        async with CloudClient(server.url, token, retry_base_delay=0.001) as client:
            return await collect_inventory(client, org)

    return asyncio.run(scenario())


def test_merge_of_agreeing_listings_has_no_warnings() -> None:
    service = Inventory(org="acme", stacks=[stack("api", "prod"), stack("web", "dev")])
    merged, warnings = merge_inventories(service, [stack("web", "dev"), stack("api", "prod")])
    assert merged == service
    assert warnings == []


def test_merge_warns_once_per_stack_only_one_side_lists() -> None:
    service = Inventory(org="acme", stacks=[stack("web", "dev"), stack("web", "qa")])
    merged, warnings = merge_inventories(service, [stack("web", "dev"), stack("api", "prod")])
    assert merged == service
    assert warnings == [
        "stack web/qa is listed by the service but not by the pulumi CLI",
        "stack api/prod is listed by the pulumi CLI but not by the service",
    ]


def test_collects_every_project_of_a_file_backend(pulumi_cli: Path, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    identity = BackendIdentity(url=(tmp_path / "state").as_uri(), secrets_passphrase="pw")
    with isolated_workspace(identity, project="web", program=pulumi_program) as workspace:
        deployed = Stack.create(f"{SELF_MANAGED_ORG}/web/dev", workspace)
        deployed.set_config("components", ConfigValue("1"))
        deployed.set_config("apiKey", ConfigValue("key", secret=True))
        deployed.up()
        workspace.create_stack(f"{SELF_MANAGED_ORG}/web/prod")
    with isolated_workspace(identity, project="api") as workspace:
        workspace.create_stack(f"{SELF_MANAGED_ORG}/api/canary")

    stacks = collect_stacks(identity, SELF_MANAGED_ORG)

    assert names(stacks) == [("api", "canary"), ("web", "dev"), ("web", "prod")]
    assert [s.resource_count for s in stacks] == [0, 4, 0]
    assert all(s.last_update is not None and s.last_update.tzinfo is UTC for s in stacks)
    assert collect_stacks(identity, "another-org") == []


def test_cli_and_service_agree_on_three_projects_of_25_stacks_and_report_the_differences(
    pulumi_cli: Path, make_emulator: EmulatorFactory
) -> None:
    projects = {"web": 10, "api": 9, "billing": 6}
    world: dict[str, Any] = {
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
        "orgs": {
            "acme": {
                "stacks": [
                    {
                        "project": project,
                        "stack": f"env-{index:02d}",
                        "resourceCount": index,
                        "lastUpdate": f"2026-11-{index + 1:02d}T10:00:00Z",
                    }
                    for project, count in projects.items()
                    for index in range(count)
                ]
            },
            "other": {"stacks": [{"project": "web", "stack": "elsewhere"}]},
        },
    }
    # A small page size makes the CLI page through the listing, as it must with a large org.
    server = make_emulator(world, page_size=7)
    identity = BackendIdentity(url=server.url, token="tok-alice")

    service = service_inventory(server, "acme", "tok-alice")
    automation = collect_stacks(identity, "acme")

    assert len(automation) == 25
    assert automation == service.stacks
    assert automation[0] == TransferEntityStack(
        project_name="api",
        stack_name="env-00",
        resource_count=0,
        last_update=datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
    )
    assert merge_inventories(service, automation) == (service, [])

    # The org changes between the two listings: one stack goes, another comes.
    alice = server.state.authenticate("tok-alice")
    server.state.delete_stack(alice, "acme", "web", "env-03", force=True)
    server.state.create_stack(alice, "acme", "api", "hotfix", tags={})
    _, warnings = merge_inventories(service, collect_stacks(identity, "acme"))
    assert warnings == [
        "stack web/env-03 is listed by the service but not by the pulumi CLI",
        "stack api/hotfix is listed by the pulumi CLI but not by the service",
    ]
