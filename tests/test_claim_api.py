"""The claim-api strategy in the library: the client-side plan against the service's dry run,
the claim followed to its end, and the service's refusals in words that say what to do."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import CLAIM_EXPIRES, agent_entry

from toolkit.claim import commit_claim, plan_claim
from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import Credentials
from toolkit.entities import entity_key
from toolkit.errors import ClaimRefusedError
from toolkit.models import (
    AgentClaimResponse,
    RenameEntity,
    TransferEntity,
    TransferEntityFailure,
)
from toolkit.plan import ClaimPlan, ClaimTarget, build_plan
from toolkit.progress import MoveFinished, MoveStarted, ProgressEvent
from toolkit.resolution_map import ResolutionMap, parse_resolution_map
from toolkit.sides import Sides
from toolkit.strategies.claim_api import execute_claim_api

if TYPE_CHECKING:
    from conftest import EmulatorFactory

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
CLAIM_TOKEN = "claim-abc123"
TARGET = ClaimTarget(source_org=AGENT, destination_org="acme")
UPDATED = "2026-11-20T10:00:00Z"


def world(
    agent_org: dict[str, Any], acme: dict[str, Any], *, claim_moves: str = "current"
) -> dict[str, Any]:
    """alice administers acme only; the agent's org is visible to the agent alone."""
    return {
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token=CLAIM_TOKEN)],
        "service": {"claimMoves": claim_moves},
        "orgs": {"acme": acme, AGENT: agent_org},
    }


def stacks(*names: str) -> list[dict[str, Any]]:
    return [
        {"project": name.split("/")[0], "stack": name.split("/")[1], "resourceCount": 3}
        | ({"lastUpdate": UPDATED} if index % 2 else {})
        for index, name in enumerate(names)
    ]


def environments(*names: str) -> list[dict[str, str]]:
    return [{"project": name.split("/")[0], "name": name.split("/")[1]} for name in names]


AGENT_ORG = {
    "stacks": stacks("web/dev", "web/qa", "api/dev", "api/prod", "db/main"),
    "environments": environments("default/secrets", "web/config"),
    "insightsAccounts": [{"name": "aws-sandbox"}],
    "registryPackages": [{"source": "private", "publisher": AGENT, "name": "vpc"}],
}
PARITY_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "collisions-in-several-projects": (
        AGENT_ORG,
        {
            "stacks": stacks("web/dev", "api/prod", "db/main"),
            "environments": environments("default/secrets"),
        },
        "",
    ),
    "renames-across-projects": (
        AGENT_ORG,
        {
            "stacks": stacks("web/dev", "api/prod", "db/main"),
            "environments": environments("default/secrets"),
        },
        "stacks:\n  web/dev: site/dev\n  api/prod: web/prod\n  db/main: data/main\n"
        "environments:\n  default/secrets: shared/secrets\n",
    ),
    "only-failures": (
        {
            "environments": environments("default/secrets"),
            "insightsAccounts": [{"name": "aws-sandbox"}],
            "registryPackages": [{"source": "private", "publisher": AGENT, "name": "vpc"}],
        },
        {"stacks": stacks("web/dev")},
        "",
    ),
    "empty-agent-org": ({}, {"stacks": stacks("web/dev")}, ""),
}


def wire(entities: Sequence[TransferEntity]) -> list[str]:
    """Entities in their wire form, order aside; a rename's `renameAs` by its name alone (the
    service does not repeat the stack's resourceCount and lastUpdate there)."""
    shown = []
    for entity in entities:
        document = entity.to_wire()
        if isinstance(entity, RenameEntity):
            document["renameAs"] = list(entity_key(entity.rename_as))
        shown.append(json.dumps(document, sort_keys=True))
    return sorted(shown)


def failed_keys(failures: Sequence[TransferEntityFailure]) -> list[tuple[str, ...]]:
    return sorted(entity_key(failure.entity) for failure in failures)


async def client_plan_and_dry_run(
    server: EmulatorServer, resolution_map: ResolutionMap
) -> tuple[ClaimPlan, AgentClaimResponse]:
    """The plan built from inventories (the service collector listing each org as its owner,
    the validation's failures) and the service's dry run of the claim with its renames."""
    async with (
        CloudClient(server.url, "tok-agent") as agent,
        CloudClient(server.url, "tok-alice") as alice,
    ):
        source, destination, validated = await asyncio.gather(
            collect_inventory(agent, AGENT),
            collect_inventory(alice, "acme"),
            alice.validate_claim_token(CLAIM_TOKEN),
        )
        plan = build_plan(
            target=TARGET,
            source=source,
            destination=destination,
            resolution_map=resolution_map,
            strategy="claim-api",
            agent=validated.agent,
            claim_expires_at=validated.claim_expires_at,
            has_claim=True,
            service_failures=validated.failures,
        )
        answer = await alice.claim_agent(
            "acme", CLAIM_TOKEN, plan.conflicts_resolution(), dry_run=True
        )
    return plan, answer


@pytest.mark.parametrize("claim_moves", ["launch", "current"])
@pytest.mark.parametrize("case", PARITY_CASES)
def test_the_client_side_plan_equals_the_services_dry_run(
    make_emulator: EmulatorFactory, case: str, claim_moves: str
) -> None:
    agent_org, acme, map_text = PARITY_CASES[case]
    server = make_emulator(world(agent_org, acme, claim_moves=claim_moves))

    plan, answer = asyncio.run(client_plan_and_dry_run(server, parse_resolution_map(map_text)))

    client = plan.to_claim_response()
    assert wire(client.entities) == wire(answer.entities)
    assert wire(client.conflicts) == wire(answer.conflicts)
    assert failed_keys(client.failures) == failed_keys(answer.failures)
    failing = {"TransferEntityInsightsAccount"}
    if claim_moves == "launch":
        failing |= {"TransferEntityEnvironment", "TransferEntityRegistryPackage"}
    expected = sorted(entity_key(e) for e in plan.entities if e.kind in failing)
    assert failed_keys(answer.failures) == expected
    assert len(answer.entities) == sum(len(entities) for entities in agent_org.values())


def test_plan_claim_reports_the_services_answer_without_access_to_the_agents_org(
    make_emulator: EmulatorFactory,
) -> None:
    agent_org, acme, map_text = PARITY_CASES["renames-across-projects"]
    server = make_emulator(world(agent_org, acme))
    credentials = Credentials(server.url, "tok-alice", "tok-alice", CLAIM_TOKEN)

    plan = asyncio.run(plan_claim(Sides.of(TARGET, credentials), parse_resolution_map(map_text)))

    assert plan.strategy == "claim-api"
    assert plan.service_answer is not None
    assert plan.to_claim_response() == plan.service_answer
    assert plan.blocked  # Insights accounts cannot be claimed
    assert plan.notices[0] == "strategy claim-api: a claim token is at hand (PULUMI_CLAIM_TOKEN)"
    assert {(m.target.project_name, m.target.stack_name) for m in plan.moves} >= {
        ("site", "dev"),
        ("web", "prod"),
        ("data", "main"),
    }
    assert server.requests.count(method="GET", path="/api/user/stacks") >= 1
    assert all("organization=" + AGENT not in entry.query for entry in server.requests.entries())


MOVABLE = {"stacks": stacks("web/dev", "api/prod"), "environments": environments("web/config")}


def test_the_claim_is_followed_until_every_stack_has_landed(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(MOVABLE, {"stacks": stacks("web/dev")}))
    credentials = Credentials(server.url, "tok-alice", "tok-alice", CLAIM_TOKEN)
    events: list[ProgressEvent] = []

    async def claim() -> tuple[ClaimPlan, AgentClaimResponse]:
        resolutions = parse_resolution_map("stacks:\n  web/dev: web/dev-agent\n")
        plan = await plan_claim(Sides.of(TARGET, credentials), resolutions, "claim-api")
        result = await commit_claim(Sides.of(TARGET, credentials), plan, on_progress=events.append)
        return result.plan, result.document

    plan, document = asyncio.run(claim())

    assert document.failures == [] and document.transfer_token
    assert plan.service_answer is not None
    stack_events = [event for event in events if event.phase == "stacks"]
    assert [type(event) for event in stack_events] == [MoveStarted] * 2 + [MoveFinished] * 2
    assert {event.target for event in stack_events} == {"acme/web/dev-agent", "acme/api/prod"}
    assert stack_events[-1].done == 2
    assert [
        (type(event), event.target, event.done) for event in events if event.phase != "stacks"
    ] == [(MoveStarted, "acme/web/config", 0), (MoveFinished, "acme/web/config", 1)]
    assert server.state.environment_names("acme") == {("web", "config")}
    assert server.requests.count(method="GET", path="/api/agents/acme/claim/status") >= 1


def test_a_stack_not_found_where_planned_after_the_claim_fails_verification(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(MOVABLE, {}))
    credentials = Credentials(server.url, "tok-alice", "tok-alice", CLAIM_TOKEN)

    async def claim() -> dict[tuple[str, ...], Any]:
        plan = await plan_claim(Sides.of(TARGET, credentials), ResolutionMap.empty(), "claim-api")
        first = plan.moves[0]
        elsewhere = dataclasses.replace(
            first, target=first.target.model_copy(update={"stack_name": "elsewhere"})
        )
        misplanned = dataclasses.replace(plan, moves=[elsewhere, *plan.moves[1:]])
        async with CloudClient(server.url, "tok-alice") as client:
            outcome = await execute_claim_api(
                misplanned, client, CLAIM_TOKEN, wait_seconds=0.5, poll_seconds=0.1
            )
        return dict(outcome.failed)

    failed = asyncio.run(claim())

    ((key, failure),) = failed.items()
    assert key == ("TransferEntityStack", "api", "prod")
    assert failure.step == "verify"
    assert "api/elsewhere is not in acme after the claim ended" in failure.message


def test_a_token_that_expires_between_the_preview_and_the_claim_is_refused(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(MOVABLE, {}))
    credentials = Credentials(server.url, "tok-alice", "tok-alice", CLAIM_TOKEN)
    plan = asyncio.run(
        plan_claim(Sides.of(TARGET, credentials), ResolutionMap.empty(), "claim-api")
    )
    seconds = int((CLAIM_EXPIRES - datetime.now(UTC)).total_seconds()) + 60
    httpx.post(f"{server.url}/_emulator/clock", json={"advanceSeconds": seconds}).raise_for_status()

    with pytest.raises(ClaimRefusedError) as refused:
        asyncio.run(commit_claim(Sides.of(TARGET, credentials), plan))

    assert "does not accept the claim token" in refused.value.message
    assert "fresh claim link" in str(refused.value)
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("api", "prod")}
