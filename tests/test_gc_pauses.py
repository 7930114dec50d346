"""While a plan is read and built, the garbage collector leaves the objects that existed before
alone and runs its young collections less often; once the plan is done, it is as it was.
Real emulator over HTTP; what the collector saw is read from its own callbacks."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from toolkit.claim import plan_claim
from toolkit.credentials import Credentials
from toolkit.gc_pauses import YOUNG_THRESHOLD, fewer_gc_pauses
from toolkit.plan import ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT_STACKS = 3_000
"""Enough stacks that the collector runs during the plan even at `YOUNG_THRESHOLD`."""


def world() -> dict[str, Any]:
    """alice administers both orgs; 3,000 stacks in the agent's org, 1,000 in acme's."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "agent-x": "admin"}}
        ],
        "orgs": {
            "agent-x": {"stacks": stacks("web", "dev", AGENT_STACKS)},
            "acme": {"stacks": stacks("api", "prod", 1_000)},
        },
    }


def stacks(project: str, prefix: str, count: int) -> list[dict[str, str]]:
    return [{"project": project, "stack": f"{prefix}-{i:05d}"} for i in range(count)]


@contextmanager
def collections_seen() -> Iterator[list[tuple[int, int, bool]]]:
    """Each collection that starts within: its generation, the youngest generation's
    threshold, and whether objects were frozen."""
    seen: list[tuple[int, int, bool]] = []

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append((info["generation"], gc.get_threshold()[0], gc.get_freeze_count() > 0))

    gc.callbacks.append(on_collection)
    try:
        yield seen
    finally:
        gc.callbacks.remove(on_collection)


def test_a_plan_is_built_with_the_earlier_objects_frozen_and_fewer_young_collections(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    sides = Sides.of(
        ClaimTarget(source_org="agent-x", destination_org="acme"),
        Credentials(server.url, "tok-alice", "tok-alice"),
    )
    thresholds = gc.get_threshold()

    with collections_seen() as seen:
        plan = asyncio.run(plan_claim(sides, ResolutionMap.empty(), "transfer"))

    assert len(plan.moves) == AGENT_STACKS
    assert seen, "the collector never ran during the plan: the world is too small to tell"
    assert {(threshold, frozen) for _, threshold, frozen in seen} == {(YOUNG_THRESHOLD, True)}
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, 0)


def test_only_the_last_of_plans_at_once_restores_the_collector() -> None:
    thresholds = gc.get_threshold()

    async def two_plans_at_once() -> None:
        async with fewer_gc_pauses():
            async with fewer_gc_pauses():
                pass
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
            assert gc.get_freeze_count() > 0

    asyncio.run(two_plans_at_once())
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, 0)


def test_a_freeze_made_before_the_plan_is_left_as_it_was() -> None:
    gc.freeze()
    try:
        asyncio.run(a_plan())
        assert gc.get_freeze_count() > 0, "the earlier freeze was undone"
    finally:
        gc.unfreeze()


async def a_plan() -> None:
    async with fewer_gc_pauses():
        pass
