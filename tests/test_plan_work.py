"""The work of building a plan once the listings are in: it follows the pages' last answer,
so each entity is keyed once for the plan, not once per rule that looks it up. Counted, not
timed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import toolkit.plan
import toolkit.resolver
from toolkit.entities import EntityKey, Inventory, entity_key
from toolkit.models import (
    AgentAccountSummary,
    BaseEntity,
    RenameEntity,
    TransferEntityEnvironment,
    TransferEntityStack,
)
from toolkit.plan import ClaimTarget, build_plan
from toolkit.resolution_map import ResolutionMap
from toolkit.resolver import find_conflicts, suggest_resolution_map

AGENT = AgentAccountSummary(
    login="agent-x", org_name="agent-x", created_at=datetime(2026, 11, 1, tzinfo=UTC)
)


def inventories() -> tuple[Inventory, Inventory]:
    """400 stacks and 40 environments in the agent's org, 400 stacks in acme's, 40 of them
    with the agent's stacks' names."""
    source = Inventory(
        org="agent-x",
        stacks=[
            TransferEntityStack(project_name="web", stack_name=f"s{i:03d}") for i in range(400)
        ],
        environments=[
            TransferEntityEnvironment(project_name="default", environment_name=f"e{i:02d}")
            for i in range(40)
        ],
    )
    destination = Inventory(
        org="acme",
        stacks=[
            TransferEntityStack(project_name="web" if i < 40 else "api", stack_name=f"s{i:03d}")
            for i in range(400)
        ],
    )
    return source, destination


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[int]]:
    """How many times each entity (by its `id`) was keyed by the planner and the resolver."""
    counted: Counter[int] = Counter()

    def counting(entity: BaseEntity | RenameEntity) -> EntityKey:
        counted[id(entity)] += 1
        return entity_key(entity)

    for module in (toolkit.plan, toolkit.resolver):
        monkeypatch.setattr(module, "entity_key", counting)
    yield counted


@pytest.mark.parametrize("with_map", [False, True], ids=["no map", "map"])
def test_a_plan_keys_each_listed_entity_at_most_twice(keyed: Counter[int], with_map: bool) -> None:
    """Once where the plan orders the source, once where the resolver indexes each org
    (a renamed stack's new name is keyed where the map is read, too)."""
    source, destination = inventories()
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
    keyed.clear()

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
    listed = (*source.entities, *destination.entities)
    assert max(keyed[id(entity)] for entity in listed) <= 2
