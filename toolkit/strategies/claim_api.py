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
from toolkit.entities import StackName, entity_key, qualified_name, stack_name
from toolkit.errors import ClaimError, ServiceError, TransportError
from toolkit.journal import Journal
from toolkit.models import AgentClaimResponse
from toolkit.moves import StackMove
from toolkit.plan import ClaimPlan, is_blocked
from toolkit.progress import MoveFailure, MoveTally, Step
from toolkit.strategies import FailedMoves, ProgressCallback, StopSignal, no_progress
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
    journal: Journal | None = None,
    stop: StopSignal | None = None,
    on_progress: ProgressCallback = no_progress,
    wait_seconds: float = CLAIM_WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> ClaimOutcome:
    """Claim the agent account of `plan` with `client` (the claimer) and verify the stacks.

    A claim an earlier attempt of the run made (its answer lost, or the run killed after it)
    is found in the destination's claim status and followed, never made twice.
    """
    journal = journal or Journal.in_memory()
    tally = MoveTally(len(plan.moves), on_progress)
    answer = await _earlier_claim(client, plan, journal)
    if answer is None:
        if (stop or StopSignal()).requested:
            return _all_moves(plan, tally, MoveFailure.interrupted("claim"), plan.service_answer)
        made = await _claim(client, plan, claim_token, journal)
        if isinstance(made, MoveFailure):
            return _all_moves(plan, tally, made, plan.service_answer)
        answer = made
    if is_blocked(answer, "claim-api"):
        return ClaimOutcome(answer=answer, failed={})
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


CLAIM_STEP: Step = "claim"
JOURNAL_MOVE = "(the whole account)"
"""How the journal names the one call that claims every entity at once."""


async def _claim(
    client: CloudClient, plan: ClaimPlan, claim_token: str, journal: Journal
) -> AgentClaimResponse | MoveFailure:
    """The service's answer to the claim, or why no answer can be had.

    A lost answer (5xx, dropped connection) is settled by the destination's claim status: the
    claim is there, or it is not and the error is raised, or the status cannot be read and
    the claim's outcome is unknown.
    """
    row = journal.begin(
        JOURNAL_MOVE, CLAIM_STEP, f"claim {plan.source_org} into {plan.destination_org}"
    )
    try:
        answer = await client.claim_agent(
            plan.destination_org, claim_token, plan.conflicts_resolution(), dry_run=False
        )
    except (ServiceError, TransportError) as error:
        if isinstance(error, ServiceError) and error.status < 500:
            journal.end(row, "failed", error.message)
            raise
        try:
            found = await _claim_of(client, plan)
        except ClaimError as look:
            message = f"{error.message}, and reading the claim's status failed: {look.message}"
            journal.end(row, "unknown", message)
            return MoveFailure.unknown("claim", f"the claim call: {message}")
        if found is None:
            journal.end(row, "failed", error.message)
            raise
        journal.end(row, "done", f"applied, though the answer was lost ({error.message})")
        return found
    journal.end(row, "done", f"claim {answer.transfer_token}")
    return answer


async def _earlier_claim(
    client: CloudClient, plan: ClaimPlan, journal: Journal
) -> AgentClaimResponse | None:
    """The claim an earlier attempt of this run may have made, as the service records it."""
    tried = [
        step
        for step in journal.steps()
        if step.action == CLAIM_STEP and step.outcome in (None, "done", "unknown")
    ]
    return await _claim_of(client, plan) if tried else None


async def _claim_of(client: CloudClient, plan: ClaimPlan) -> AgentClaimResponse | None:
    """The destination's record of a claim of the plan's agent org, if it has one."""
    status = await client.agent_claims_status(plan.destination_org)
    for token, claim in status.claims.items():
        if claim.agent.org_name == plan.source_org:
            return claim.model_copy(update={"transfer_token": claim.transfer_token or token})
    return None


def _all_moves(
    plan: ClaimPlan,
    tally: MoveTally,
    failure: MoveFailure,
    answer: AgentClaimResponse | None,
) -> ClaimOutcome:
    for move in plan.moves:
        tally.failed(*_names(plan, move), failure)
    assert answer is not None, "a claim-api plan carries the service's dry run"
    return ClaimOutcome(
        answer=answer, failed={entity_key(move.source): failure for move in plan.moves}
    )


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
    return (
        qualified_name(plan.source_org, move.source),
        qualified_name(plan.destination_org, move.target),
    )


def _target(move: StackMove) -> str:
    return f"{move.target.project_name}/{move.target.stack_name}"
