"""The calls before a preview's first page: the listings start with the checks (who each token
is, the orgs it sees, the claim token's validation) rather than after them, and who a token is
is asked once; after the last page, the agent's reads of the environments to copy are checked
as their definitions are read. The emulator holds the checks' calls unanswered; the reads
must be answered meanwhile. Real emulator over HTTP; no clock: the order of the emulator's
answers decides."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from toolkit.choices import Strategy
from toolkit.claim import plan_claim
from toolkit.credentials import Credentials
from toolkit.emulator.server import EmulatorServer
from toolkit.known_orgs import UnknownOrgError
from toolkit.plan import ClaimPlan, ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-fast"
CLAIM_TOKEN = "claim-fast"
STACK_PAGES = "/api/user/stacks"
CHECKS = r"/api/user|/api/agents/signup/validate/.*"
"""The checks' calls: who a token is, what a claim token claims."""
POLLS = 2_000
"""Turns of the event loop (10 ms apart) to wait for the emulator, at most."""


def world() -> dict[str, Any]:
    """alice administers both orgs; the agent's org holds 12 stacks (3 pages of 5), acme 7."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}
        ],
        "agents": [
            {
                "login": AGENT,
                "token": "tok-agent",
                "claimToken": CLAIM_TOKEN,
                "createdAt": (now - timedelta(hours=1)).isoformat(),
                "claimExpiresAt": (now + timedelta(days=30)).isoformat(),
            }
        ],
        "orgs": {
            AGENT: {"stacks": [{"project": "web", "stack": f"dev-{i:02d}"} for i in range(12)]},
            "acme": {"stacks": [{"project": "api", "stack": f"prod-{i:02d}"} for i in range(7)]},
        },
    }


def world_with_environments() -> dict[str, Any]:
    """`world`, with a service that cannot claim ESC environments (as at the claim API's
    launch) and two environments in the agent's org, to copy."""
    environments = [{"project": "default", "name": name} for name in ("base", "app")]
    return (
        world()
        | {"service": {"claimMoves": "launch"}}
        | {
            "orgs": world()["orgs"]
            | {AGENT: world()["orgs"][AGENT] | {"environments": environments}}
        }
    )


def sides(
    server: EmulatorServer,
    *,
    to: str = "acme",
    source_token: str = "tok-alice",
    claim_token: str | None = None,
) -> Sides:
    credentials = Credentials(server.url, "tok-alice", source_token, claim_token)
    return Sides.of(ClaimTarget(source_org=AGENT, destination_org=to), credentials)


async def planned_while_held(
    server: EmulatorServer,
    planning: Coroutine[Any, Any, ClaimPlan],
    *,
    held: str,
    answered: str,
    count: int,
    what: str,
) -> ClaimPlan:
    """The plan, made while the emulator holds every GET matching `held` unanswered until
    `count` GETs matching `answered` (`what`) have been answered; fails if they never are, or
    if a held call was answered first."""
    server.faults.hold(method="GET", path=held, times=None)
    task = asyncio.create_task(planning)
    for _ in range(POLLS):
        if server.requests.count("GET", answered) >= count:
            break
        assert not task.done(), f"planning finished before {what} were answered"
        await asyncio.sleep(0.01)
    answered_count = server.requests.count("GET", answered)
    held_answered = server.requests.count("GET", held)
    server.faults.clear()
    plan = await task
    assert (answered_count, held_answered) == (count, 0), f"{what} waited for the held calls"
    return plan


async def planned_with_checks_held(
    server: EmulatorServer, planning: Sides, strategy: Strategy | None, *, listing_pages: int
) -> ClaimPlan:
    """The plan, made while the emulator holds every call of the checks unanswered until
    `listing_pages` stack pages have been answered; fails if they never are."""
    return await planned_while_held(
        server,
        plan_claim(planning, ResolutionMap.empty(), strategy),
        held=CHECKS,
        answered=STACK_PAGES,
        count=listing_pages,
        what="the listings",
    )


@pytest.mark.parametrize("strategy", [None, "transfer"])
def test_the_listings_are_read_while_the_checks_are_unanswered(
    make_emulator: EmulatorFactory, strategy: Strategy | None
) -> None:
    """Transfer (chosen by auto or asked): both orgs' every stack page (3 + 2) is read while
    who alice is has not been answered; she is asked once, by all the checks together."""
    server = make_emulator(world(), page_size=5)

    plan = asyncio.run(planned_with_checks_held(server, sides(server), strategy, listing_pages=5))

    assert len(plan.moves) == 12
    assert plan.notices[0].startswith("strategy transfer: ")
    assert server.requests.count("GET", "/api/user") == 1


def test_each_token_is_asked_who_it_is_once(make_emulator: EmulatorFactory) -> None:
    """With the agent's own token for the source, its user and alice's are asked once each."""
    server = make_emulator(world(), page_size=5)

    plan = asyncio.run(
        planned_with_checks_held(
            server, sides(server, source_token="tok-agent"), None, listing_pages=5
        )
    )

    assert len(plan.moves) == 12
    assert server.requests.count("GET", "/api/user") == 2


def test_the_claimers_listing_is_read_while_the_claim_token_is_validated(
    make_emulator: EmulatorFactory,
) -> None:
    """claim-api: the destination's stack pages (2) are read while the claimer's org check
    and the claim token's validation are unanswered."""
    server = make_emulator(world(), page_size=5)

    plan = asyncio.run(
        planned_with_checks_held(
            server, sides(server, claim_token=CLAIM_TOKEN), None, listing_pages=2
        )
    )

    assert plan.strategy == "claim-api"
    assert len(plan.moves) == 12
    assert server.requests.count("GET", "/api/user") == 1


def test_a_failed_check_cancels_the_listings_and_its_error_is_raised(
    make_emulator: EmulatorFactory,
) -> None:
    """The stack pages are held unanswered; the check of a misspelled --to fails meanwhile,
    and planning ends with the check's error without waiting for them."""
    server = make_emulator(world(), page_size=5)
    server.faults.hold(method="GET", path=STACK_PAGES, times=None)

    async def scenario() -> None:
        with pytest.raises(UnknownOrgError) as refused:
            await plan_claim(sides(server, to="acmee"), ResolutionMap.empty(), "transfer")
        assert server.faults.holding >= 1, "the listings were not started with the check"
        assert refused.value.values["org"] == "acmee"
        assert server.requests.count("GET", STACK_PAGES) == 0

    try:
        asyncio.run(scenario())
    finally:
        server.faults.clear()


def test_the_definitions_to_copy_are_read_while_the_agents_reads_are_checked(
    make_emulator: EmulatorFactory,
) -> None:
    """claim-api with environments copied: both definitions are read while the agent's
    decrypted reads of them (its token's check) are held unanswered."""
    server = make_emulator(world_with_environments())
    decrypted = rf"/api/esc/environments/{AGENT}/default/\w+/decrypt"
    planning = plan_claim(
        sides(server, source_token="tok-agent", claim_token=CLAIM_TOKEN),
        ResolutionMap.empty(),
        "claim-api",
        "copy",
    )

    plan = asyncio.run(
        planned_while_held(
            server,
            planning,
            held=decrypted,
            answered=rf"/api/esc/environments/{AGENT}/default/\w+",
            count=2,
            what="the definitions",
        )
    )

    assert len(plan.environment_copies) == 2
    assert server.requests.count("GET", decrypted) == 2


@pytest.mark.parametrize("reference_orgs", [(), (AGENT,)])
def test_the_stack_references_are_searched_while_the_checks_and_listings_are_unanswered(
    make_emulator: EmulatorFactory, reference_orgs: tuple[str, ...]
) -> None:
    """Both orgs' StackReference searches depend on no listing: they are answered while every
    check and every stack page is held (the check of the `reference_orgs` too), and the plan
    reads them once built."""
    server = make_emulator(world(), page_size=5)
    planning = plan_claim(
        sides(server), ResolutionMap.empty(), "transfer", reference_orgs=reference_orgs
    )

    plan = asyncio.run(
        planned_while_held(
            server,
            planning,
            held=f"{CHECKS}|{STACK_PAGES}",
            answered=r"/api/orgs/[^/]+/search/resourcesv2",
            count=2,
            what="the searches",
        )
    )

    assert [n for n in plan.notices if n.startswith("stack references in ")] == [
        f"stack references in {AGENT}: found by the service's search",
        "stack references in acme: found by the service's search",
    ]


def test_the_sources_definitions_are_read_while_its_stack_pages_are_unanswered(
    make_emulator: EmulatorFactory,
) -> None:
    """transfer: once the agent's environments are listed, their definitions (what may name
    a moved stack) are read while every stack page is held unanswered, not after the
    listings: the stack pages are the preview's longest chain."""
    server = make_emulator(world_with_environments(), page_size=5)
    definitions = rf"/api/esc/environments/{AGENT}/default/\w+"
    planning = plan_claim(sides(server), ResolutionMap.empty(), "transfer")

    plan = asyncio.run(
        planned_while_held(
            server,
            planning,
            held=STACK_PAGES,
            answered=definitions,
            count=2,
            what="the definitions",
        )
    )

    assert len(plan.moves) == 12
    assert server.requests.count("GET", definitions) == 2, "each definition is read once"
