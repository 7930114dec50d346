"""Collecting an org's inventory from the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import Inventory
from toolkit.errors import NotFoundError, PermissionDeniedError
from toolkit.models import (
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory


def collect(server: EmulatorServer, org: str, *, token: str = "tok-alice") -> Inventory:
    async def scenario() -> Inventory:
        async with CloudClient(server.url, token, retry_base_delay=0.001) as client:
            return await collect_inventory(client, org)

    return asyncio.run(scenario())


def test_agent_org_of_the_demo_world(demo_emulator: EmulatorServer) -> None:
    inventory = collect(demo_emulator, "agent-7f3k2q")
    assert inventory.org == "agent-7f3k2q"
    assert [(s.project_name, s.stack_name) for s in inventory.stacks] == [
        ("api", "canary"),
        ("api", "dev"),
        ("api", "prod"),
        ("web", "dev"),
        ("web", "preview-42"),
        ("web", "prod"),
        ("web", "staging"),
    ]
    assert inventory.stacks[3] == TransferEntityStack(
        project_name="web",
        stack_name="dev",
        resource_count=12,
        last_update=datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
    )
    assert inventory.environments == [
        TransferEntityEnvironment(project_name="default", environment_name="agent-secrets")
    ]
    assert inventory.insights_accounts == [TransferEntityInsightsAccount(name="aws-sandbox")]
    assert inventory.registry_packages == []


def test_inventory_matches_what_the_claim_token_shows(demo_emulator: EmulatorServer) -> None:
    """The service's own view of the agent's inventory is the same set of entities."""
    inventory = collect(demo_emulator, "agent-7f3k2q")
    claim = demo_emulator.state.validate_claim("claim-7f3k2q")
    assert inventory.entities == claim.entities


def test_registry_packages_the_org_publishes(demo_emulator: EmulatorServer) -> None:
    inventory = collect(demo_emulator, "acme")
    assert inventory.registry_packages == [
        TransferEntityRegistryPackage(source="private", publisher="acme", name="vpc")
    ]


BIG_WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"big": "admin"}}],
    "orgs": {
        "big": {
            # Declared out of order: the inventory sorts by identity, not by the service's order.
            "stacks": [
                *({"project": "zeta", "stack": f"s{i:02}", "resourceCount": i} for i in range(9)),
                *({"project": "alpha", "stack": f"s{i:02}"} for i in range(10)),
            ],
            "environments": [{"project": f"p{i % 2}", "name": f"e{i:02}"} for i in range(15)],
            "insightsAccounts": [{"name": f"a{i:02}"} for i in reversed(range(8))],
            "registryPackages": [
                {"source": "private", "publisher": "big", "name": f"pkg{i}"} for i in range(9)
            ],
        }
    },
}


def test_every_entity_once_across_pages(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(BIG_WORLD, page_size=7)
    inventory = collect(server, "big")

    stacks = [(s.project_name, s.stack_name) for s in inventory.stacks]
    assert stacks == sorted(server.state.stack_names("big"))
    assert len(stacks) == 19
    environments = [(e.project_name, e.environment_name) for e in inventory.environments]
    assert environments == sorted(server.state.environment_names("big"))
    assert [a.name for a in inventory.insights_accounts] == [f"a{i:02}" for i in range(8)]
    assert [p.name for p in inventory.registry_packages] == [f"pkg{i}" for i in range(9)]

    requests = server.requests
    assert requests.count("GET", "/api/user/stacks") == 3
    assert requests.count("GET", "/api/esc/environments/big") == 3
    assert requests.count("GET", "/api/preview/insights/big/accounts") == 2
    assert requests.count("GET", "/api/preview/registry/packages") == 2


def test_never_updated_stack_has_no_last_update(make_emulator: EmulatorFactory) -> None:
    inventory = collect(make_emulator(BIG_WORLD), "big")
    first = inventory.stacks[0]
    assert (first.project_name, first.stack_name, first.last_update) == ("alpha", "s00", None)
    assert inventory.stacks[-1].resource_count == 8


def test_the_four_listings_run_at_once(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(BIG_WORLD, latency_ms=100)
    collect(server, "big")
    assert server.requests.peak_in_flight == 4


def test_listing_the_service_does_not_serve_counts_as_none(
    make_emulator: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_emulator(BIG_WORLD)
    server.faults.fail(404, path="/api/preview/insights/.*", times=None)
    with caplog.at_level(logging.WARNING, logger="toolkit.collectors.service"):
        inventory = collect(server, "big")
    assert inventory.insights_accounts == []
    assert len(inventory.stacks) == 19
    assert "Insights accounts of big" in caplog.text


def test_missing_environments_listing_is_an_error(make_emulator: EmulatorFactory) -> None:
    """ESC environments must be reported as failures, so not seeing them stops the collection."""
    server = make_emulator(BIG_WORLD)
    server.faults.fail(404, path="/api/esc/environments/.*", times=None)
    with pytest.raises(NotFoundError):
        collect(server, "big")


def test_org_without_a_role_is_refused(demo_emulator: EmulatorServer) -> None:
    with pytest.raises(PermissionDeniedError):
        collect(demo_emulator, "agent-7f3k2q", token="tok-bob")
