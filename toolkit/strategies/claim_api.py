"""The `claim-api` strategy: the service's own claim of an agent account.

One call claims everything (`POST /api/agents/{org}/claim`, the plan's renames as its
`conflictsResolution`). The service moves all or nothing: with any conflict or failure it
changes nothing and says why. Otherwise each stack moves itself (history, tags, permissions,
secrets) and the agent's org and token are retired. The claimer needs a role in the
destination; the claim token says what is claimed, so nobody needs access to the agent's org.

The strategy then follows the claim (`GET /api/agents/{org}/claim/status`) until it has ended,
reporting each stack as it is seen in the destination, and verifies against listings of the
destination that every stack landed under its planned name.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from toolkit.cloud import CloudClient
from toolkit.entities import StackName, entity_key, stack_name
from toolkit.models import AgentClaimResponse
from toolkit.plan import ClaimPlan, StackMove, is_blocked
from toolkit.progress import MoveFailure, MoveTally
from toolkit.strategies import FailedMoves, ProgressCallback, no_progress
from toolkit.strategies.transfer import listed_stack_names

CLAIM_WAIT_SECONDS = 300.0
"""How long a started claim is followed before the stacks still missing count as failed."""

POLL_SECONDS = 0.5
"""Between two looks at the claim's status and the destination's stacks."""


@dataclass(frozen=True)
class ClaimOutcome:
    """What the service said of the claim, and the moves that did not land."""

    answer: AgentClaimResponse
    """The service's latest document of the claim: its status once it ended, else the answer
    to the claim call (which, for a blocked claim, lists what blocks it)."""
    failed: FailedMoves


async def execute_claim_api(
    plan: ClaimPlan,
    client: CloudClient,
    claim_token: str,
    *,
    on_progress: ProgressCallback = no_progress,
    wait_seconds: float = CLAIM_WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> ClaimOutcome:
    """Claim the agent account of `plan` with `client` (the claimer) and verify the stacks."""
    answer = await client.claim_agent(
        plan.destination_org, claim_token, plan.conflicts_resolution(), dry_run=False
    )
    if is_blocked(answer, "claim-api"):
        return ClaimOutcome(answer=answer, failed={})
    tally = MoveTally(len(plan.moves), on_progress)
    for move in plan.moves:
        tally.started(*_names(plan, move))
    record, landed = await _follow(
        client, plan, answer.transfer_token, tally, wait_seconds, poll_seconds
    )
    failed: FailedMoves = {}
    for move in plan.moves:
        if stack_name(move.target) in landed:
            continue
        failure = MoveFailure(
            "verify",
            f"verification: {_target(move)} is not in {plan.destination_org} after the claim "
            "ended; look for it there and in the agent's org before claiming again",
            source_untouched=False,
        )
        failed[entity_key(move.source)] = failure
        tally.failed(*_names(plan, move), failure)
    return ClaimOutcome(answer=record or answer, failed=failed)


async def _follow(
    client: CloudClient,
    plan: ClaimPlan,
    transfer_token: str | None,
    tally: MoveTally,
    wait_seconds: float,
    poll_seconds: float,
) -> tuple[AgentClaimResponse | None, set[StackName]]:
    """The claim's status record once it has ended (None if the service keeps none), and the
    destination's stacks as last listed.

    It has ended when the service lists it and every planned stack is in the destination,
    or it reports failures; after `wait_seconds` the caller verifies whatever is there.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    pending = {stack_name(move.target): move for move in plan.moves}
    projects = _projects(plan)
    while True:
        status, landed = await asyncio.gather(
            client.agent_claims_status(plan.destination_org),
            listed_stack_names(client, plan.destination_org, projects),
        )
        for name in [name for name in pending if name in landed]:
            move = pending.pop(name)
            summary = f"claimed {_target(move)} into {plan.destination_org}"
            tally.finished(*_names(plan, move), "claim", summary)
        record = status.claims.get(transfer_token) if transfer_token else None
        listed = record is not None or transfer_token is None
        if (listed and not pending) or (record and record.failures):
            return record, landed
        if loop.time() >= deadline:
            return record, landed
        await asyncio.sleep(poll_seconds)


def _projects(plan: ClaimPlan) -> list[str]:
    return sorted({move.target.project_name for move in plan.moves})


def _names(plan: ClaimPlan, move: StackMove) -> tuple[str, str]:
    source = f"{move.source.project_name}/{move.source.stack_name}"
    return f"{plan.source_org}/{source}", f"{plan.destination_org}/{_target(move)}"


def _target(move: StackMove) -> str:
    return f"{move.target.project_name}/{move.target.stack_name}"
