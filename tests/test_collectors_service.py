"""Collecting an org's inventory from the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest
from waiting import wait_until

from toolkit.claim import plan_claim
from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import Credentials
from toolkit.emulator.faults import FaultRule
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import Inventory, stack_name
from toolkit.errors import NotFoundError, PermissionDeniedError, ServiceError
from toolkit.models import (
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)
from toolkit.plan import ClaimPlan, ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides

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


def test_an_inventory_not_collected_says_nothing_of_its_parts(
    make_emulator: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An org that does not exist: Insights and the registry answer 404 first, then the
    stacks and the environments do too. The collection fails with the 404, and logs no
    "treated as none" for the lists it did not finish (a check beside it may fail the same
    way and cancel it: its error is then the only word)."""
    server = make_emulator(BIG_WORLD)
    server.faults.hold(path="/api/(user/stacks|esc/environments/ghost)", times=2)
    outcome: list[BaseException] = []

    def collect_ghost() -> None:
        try:
            collect(server, "ghost")
        except NotFoundError as error:
            outcome.append(error)

    with caplog.at_level(logging.WARNING, logger="toolkit.collectors.service"):
        collecting = threading.Thread(target=collect_ghost)
        collecting.start()
        wait_until(
            lambda: (
                server.faults.holding == 2
                and sum(
                    1
                    for entry in server.requests.entries()
                    if entry.status == 404 and "/api/preview/" in entry.path
                )
                == 2
            ),
            "Insights and the registry answered while the other two are held",
        )
        server.faults.release()
        collecting.join()

    assert len(outcome) == 1
    assert "treated as none" not in caplog.text


def test_missing_environments_listing_is_an_error(make_emulator: EmulatorFactory) -> None:
    """ESC environments must be reported as failures, so not seeing them stops the collection."""
    server = make_emulator(BIG_WORLD)
    server.faults.fail(404, path="/api/esc/environments/.*", times=None)
    with pytest.raises(NotFoundError):
        collect(server, "big")


def test_org_without_a_role_is_refused(demo_emulator: EmulatorServer) -> None:
    with pytest.raises(PermissionDeniedError):
        collect(demo_emulator, "agent-7f3k2q", token="tok-bob")


TWO_ORGS: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"big": "admin", "other": "admin"}}],
    "orgs": {
        "big": BIG_WORLD["orgs"]["big"],
        "other": {"stacks": [{"project": "web", "stack": f"s{i:02}"} for i in range(12)]},
    },
}


def _query(server: EmulatorServer, path: str) -> list[dict[str, str]]:
    return [
        dict(parse_qsl(entry.query))
        for entry in server.requests.entries()
        if entry.method == "GET" and entry.path == path
    ]


def test_each_listing_asks_for_its_largest_page(make_emulator: EmulatorFactory) -> None:
    """A service whose default page is 7 but which serves up to 1000 lists each kind of
    entity in one page when asked for the largest page the service takes."""
    server = make_emulator(BIG_WORLD, page_size=7, max_page_size=1000)
    inventory = collect(server, "big")

    assert len(inventory.stacks) == 19
    assert len(inventory.environments) == 15
    assert len(inventory.insights_accounts) == 8
    assert len(inventory.registry_packages) == 9
    assert [q.get("maxResults") for q in _query(server, "/api/user/stacks")] == ["1000"]
    assert [q.get("maxResults") for q in _query(server, "/api/esc/environments/big")] == ["1000"]
    insights = _query(server, "/api/preview/insights/big/accounts")
    assert [q.get("count") for q in insights] == ["1000"]
    packages = _query(server, "/api/preview/registry/packages")
    assert [q.get("limit") for q in packages] == ["499"]


def test_a_refused_page_size_falls_back_to_the_default_once(
    make_emulator: EmulatorFactory,
) -> None:
    """A service that refuses the size (a 400 naming `maxResults`) gets the same page asked
    again without it; every stack is still listed, and the client asks that listing at the
    default from then on, without trying the refused size again."""
    server = make_emulator(BIG_WORLD, page_size=7)
    server.faults.arm(
        FaultRule(
            method="GET",
            path="/api/user/stacks",
            status=400,
            message="maxResults must be at most 100",
        )
    )

    async def scenario() -> tuple[Inventory, Inventory]:
        async with CloudClient(server.url, "tok-alice", retry_base_delay=0.001) as client:
            return await collect_inventory(client, "big"), await collect_inventory(client, "big")

    first, second = asyncio.run(scenario())

    assert [stack_name(s) for s in first.stacks] == sorted(server.state.stack_names("big"))
    assert second.stacks == first.stacks
    sizes = [q.get("maxResults") for q in _query(server, "/api/user/stacks")]
    assert sizes == ["1000", None, None, None, None, None, None]
    # The other listings were not refused and keep their large page.
    assert {q.get("count") for q in _query(server, "/api/preview/insights/big/accounts")} == {
        "1000"
    }


def test_a_listing_refused_at_the_default_too_fails_without_asking_again(
    make_emulator: EmulatorFactory,
) -> None:
    """The fallback is one more request, never a loop: a service that refuses the default
    page too ends the listing with its error."""
    server = make_emulator(BIG_WORLD, page_size=7)
    server.faults.arm(
        FaultRule(
            method="GET",
            path="/api/user/stacks",
            status=400,
            message="maxResults is not supported",
            times=None,
        )
    )

    with pytest.raises(ServiceError) as caught:
        collect(server, "big")

    assert "maxResults is not supported" in caught.value.message
    sizes = [q.get("maxResults") for q in _query(server, "/api/user/stacks")]
    assert sizes == ["1000", None]


def test_a_400_not_about_the_page_size_is_not_asked_again(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(BIG_WORLD, page_size=7)
    server.faults.arm(
        FaultRule(
            method="GET",
            path="/api/preview/insights/big/accounts",
            status=400,
            message="Bad continuationToken",
        )
    )

    with pytest.raises(ServiceError) as caught:
        collect(server, "big")

    assert caught.value.status == 400
    assert server.requests.count("GET", "/api/preview/insights/big/accounts") == 1


def test_both_orgs_first_pages_are_in_flight_at_once(make_emulator: EmulatorFactory) -> None:
    """Planning holds neither org's listing back for the other's: the emulator keeps the
    first stack page of each org waiting, and both arrive before either is answered."""
    server = make_emulator(TWO_ORGS, page_size=5)
    server.faults.hold(method="GET", path="/api/user/stacks", times=2)
    credentials = Credentials(server.url, "tok-alice", "tok-alice", None)

    async def scenario() -> ClaimPlan:
        planning = asyncio.create_task(
            plan_claim(
                Sides.of(ClaimTarget(source_org="big", destination_org="other"), credentials),
                ResolutionMap.empty(),
                "transfer",
            )
        )
        deadline = asyncio.get_running_loop().time() + 10
        while server.faults.holding < 2:
            assert not planning.done(), "planning finished with a listing still held"
            assert asyncio.get_running_loop().time() < deadline, "only one org's page arrived"
            await asyncio.sleep(0.01)
        answered_while_held = _query(server, "/api/user/stacks")
        server.faults.release()
        plan = await planning
        assert answered_while_held == []
        return plan

    plan = asyncio.run(scenario())

    assert len(plan.moves) == 19
    orgs = {q["organization"] for q in _query(server, "/api/user/stacks")}
    assert orgs == {"big", "other"}
