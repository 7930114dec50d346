"""The renames of a sweep's claims, planned together before any of them is made.

The claims of a sweep land one after another in one destination, so each account's names are
checked against the destination as the claims before it leave it: what the destination holds,
plus every name an earlier account of the sweep lands at. An entity whose name is taken there
is renamed by the naming policy; a new name that is invalid or taken as well is a problem, and
the sweep lists every problem before it claims anything. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.entities import (
    EntityKey,
    Inventory,
    as_rename,
    base_of,
    describe,
    entity_key,
    make_entity,
    name_problem,
    stable_order,
    target_of,
)
from toolkit.models import AgentClaimResponse, BaseEntity, RenameEntity
from toolkit.naming_policy import NamingPolicy, PolicyKind
from toolkit.resolution_map import ResolutionMap

_POLICY_KIND_BY_WIRE: dict[str, PolicyKind] = {
    "TransferEntityStack": "stacks",
    "TransferEntityEnvironment": "environments",
}
"""The kinds a naming policy renames: those a claim moves and a person names."""


@dataclass(frozen=True)
class AgentAccount:
    """An agent account to claim: its claim file and what validating its token showed."""

    file: Path
    claim: AgentClaimResponse

    @property
    def agent(self) -> str:
        return self.claim.agent.login

    @property
    def org(self) -> str:
        return self.claim.agent.org_name


@dataclass(frozen=True)
class PlannedClaim:
    """One account of the sweep and the renames its claim asks for."""

    account: AgentAccount
    renames: tuple[RenameEntity, ...]

    @property
    def resolution_map(self) -> ResolutionMap:
        return ResolutionMap(renames=self.renames)


def plan_sweep(
    policy: NamingPolicy,
    destination: Inventory,
    accounts: Sequence[AgentAccount],
    *,
    claimed_before: Sequence[AgentClaimResponse] = (),
) -> tuple[list[PlannedClaim], list[str]]:
    """Each account's renames, in order, and every problem of the whole sweep (an invalid
    new name, a new name that is taken too): with any problem, no claim should be made.
    `claimed_before`: the plans of claims an earlier sweep started, whose names are taken
    whether or not the service has moved them yet."""
    taken = {entity_key(entity) for entity in destination.entities}
    taken |= {key for plan in claimed_before for key in landing_keys(plan)}
    planned: list[PlannedClaim] = []
    problems: list[str] = []
    for account in accounts:
        renames, landed, found = _plan_account(policy, account, taken)
        planned.append(PlannedClaim(account, tuple(renames)))
        problems += found
        taken |= landed
    return planned, problems


def landing_keys(plan: AgentClaimResponse) -> set[EntityKey]:
    """Where a claim's plan lands each entity: at its new name when renamed."""
    return {
        entity_key(target_of(entity) if isinstance(entity, RenameEntity) else entity)
        for entity in plan.entities
    }


def _plan_account(
    policy: NamingPolicy, account: AgentAccount, taken: set[tuple[str, ...]]
) -> tuple[list[RenameEntity], set[tuple[str, ...]], list[str]]:
    """The renames of one account, the keys its entities land at, and its problems."""
    entities = sorted(
        (base_of(e) for e in account.claim.entities if e.kind in _POLICY_KIND_BY_WIRE),
        key=stable_order,
    )
    own = {entity_key(entity) for entity in entities}
    renames: list[RenameEntity] = []
    landed: set[EntityKey] = set()
    problems: list[str] = []
    where = f"{account.file.name} ({account.agent})"
    for entity in entities:
        key = entity_key(entity)
        if key not in taken:
            landed.add(key)
            continue
        target, problem = _renamed(policy, account.agent, entity)
        if problem is not None:
            problems.append(f"{where}: {describe(entity)}: {problem}")
            continue
        target_key = entity_key(target)
        if target_key in taken or target_key in landed or target_key in own:
            problems.append(
                f"{where}: {describe(entity)} is taken in the destination and its new name "
                f"{describe(target)} is taken too"
            )
            continue
        renames.append(as_rename(entity, target))
        landed.add(target_key)
    return renames, landed, problems


def _renamed(policy: NamingPolicy, agent: str, entity: BaseEntity) -> tuple[BaseEntity, str | None]:
    """The entity the policy renames `entity` to, or why the new name is invalid."""
    wire_kind, project, name = entity_key(entity)
    kind = _POLICY_KIND_BY_WIRE[wire_kind]
    new_name = policy.new_name(kind, agent=agent, project=project, name=name)
    what = "stack" if kind == "stacks" else "environment"
    problem = name_problem(f"new {what}", new_name)
    if problem is not None:
        return entity, problem
    return make_entity(wire_kind, [project, new_name]), None
