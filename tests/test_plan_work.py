"""The work of building a plan once the listings are in, which follows the last page's answer:
the collector keys each entity as its page lands, so the plan keys none of them again but the
few conflicts it orders. Real emulator over HTTP; counted, not timed."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

import toolkit.entities
import toolkit.plan
import toolkit.resolver
from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.entities import EntityKey, Inventory, entity_key
from toolkit.models import AgentAccountSummary, BaseEntity, RenameEntity
from toolkit.plan import ClaimTarget, build_plan
from toolkit.resolution_map import ResolutionMap
from toolkit.resolver import find_conflicts, suggest_resolution_map

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = AgentAccountSummary(
    login="agent-x", org_name="agent-x", created_at=datetime(2026, 11, 1, tzinfo=UTC)
)


def world() -> dict[str, Any]:
    """alice administers both orgs: 400 stacks and 40 environments in the agent's org, 400
    stacks in acme's, 40 of them with the agent's stacks' names (pages of 100)."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "agent-x": "admin"}}
        ],
        "orgs": {
            "agent-x": {
                "stacks": [{"project": "web", "stack": f"s{i:03d}"} for i in range(400)],
                "environments": [{"project": "default", "name": f"e{i:02d}"} for i in range(40)],
            },
            "acme": {
                "stacks": [
                    {"project": "web" if i < 40 else "api", "stack": f"s{i:03d}"}
                    for i in range(400)
                ]
            },
        },
    }


async def collected(url: str) -> tuple[Inventory, Inventory]:
    async with CloudClient(url, "tok-alice") as client:
        return await collect_inventory(client, "agent-x"), await collect_inventory(client, "acme")


@pytest.mark.parametrize("with_map", [False, True], ids=["no map", "map"])
def test_the_plan_after_the_last_page_keys_only_the_conflicts_again(
    make_emulator: EmulatorFactory, with_map: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = asyncio.run(collected(make_emulator(world()).url))
    resolution_map = (
        suggest_resolution_map(
            find_conflicts(source, destination, {"TransferEntityStack"}),
            source=source,
            destination=destination,
            suffix="-agent",
        )
        if with_map
        else ResolutionMap.empty()
    )
    counted: Counter[int] = Counter()

    def counting(entity: BaseEntity | RenameEntity) -> EntityKey:
        counted[id(entity)] += 1
        return entity_key(entity)

    for module in (toolkit.entities, toolkit.plan, toolkit.resolver):
        monkeypatch.setattr(module, "entity_key", counting)

    plan = build_plan(
        target=ClaimTarget(source_org="agent-x", destination_org="acme"),
        source=source,
        destination=destination,
        resolution_map=resolution_map,
        strategy="transfer",
        agent=AGENT,
        claim_expires_at=datetime(2026, 12, 1, tzinfo=UTC),
    )

    assert len(plan.moves) == 400
    assert len(plan.conflicts) == (0 if with_map else 40)
    # Only the conflicts are keyed again, to order them for the report.
    listed = (*source.entities, *destination.entities)
    assert sum(counted[id(entity)] for entity in listed) <= len(plan.conflicts)
