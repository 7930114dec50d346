"""The `claim-api` strategy: the service's own claim of an agent account.

One call claims everything (`POST /api/agents/{org}/claim`, the plan's renames as its
`conflictsResolution`). The service moves all or nothing: with any conflict or failure it
changes nothing and says why. Otherwise each stack moves itself (history, tags, permissions,
secrets) and the agent's org and token are retired. The claimer needs a role in the
destination; the claim token says what is claimed, so nobody needs access to the agent's org.

The claim call only starts the claim: the service answers at once with a `transferToken` and
moves the stacks afterwards, holding the agent's org meanwhile. The strategy follows it
(`GET /api/agents/{org}/claim/status` beside listings of the destination) until every stack
the claim moves is in the destination. On today's service the ESC environments and registry
packages move too, with the last stack (`ClaimPlan.claimed_moves`): they are listed beside the
stacks. It reports each entity as it lands (phases `stacks`, `environments`, `packages`), then
verifies that every planned one landed under its planned name. A claim still running after the
wait limit leaves those not yet seen of unknown outcome: the same command follows it again
(the journal holds the started claim, and the service's status finds it), never claiming twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit.cloud import CloudClient
from toolkit.collectors.service import environment_entity, registry_package_entity
from toolkit.entities import (
    EntityKey,
    describe,
    display_name,
    entity_key,
    qualified_name,
)
from toolkit.errors import ClaimError, ServiceError, TransportError
from toolkit.journal import Journal
from toolkit.models import AgentClaimResponse, BaseEntity, RenameEntity, TransferEntityStack
from toolkit.moves import CLAIMED_BESIDES_STACKS
from toolkit.plan import ClaimPlan, is_blocked
from toolkit.progress import MoveFailure, MoveTally, Step
from toolkit.strategies import FailedMoves, ProgressCallback, StopSignal, no_progress
from toolkit.strategies.transfer import listed_stack_names

CLAIM_WAIT_SECONDS = 300.0
"""How long a started claim is followed before the stacks not yet landed are reported as of
unknown outcome (`pulumi-claim commit --claim-wait`)."""

POLL_SECONDS = 2.0
"""The longest pause between two looks at the claim's status and the destination's stacks."""

FIRST_POLL_SECONDS = 0.1
"""The first pause; each next one doubles, up to `POLL_SECONDS`: a small claim ends within a
few looks, a large one is not asked after needlessly often."""


@dataclass(frozen=True)
class Arrival:
    """One entity the claim moves (a stack, an ESC environment, a registry package), as the
    strategy waits for it in the destination; `tally` reports it in its kind's phase."""

    source: BaseEntity
    target: BaseEntity
    tally: MoveTally

    @property
    def what(self) -> str:
        """How messages name it: a stack by its name alone, as they always have."""
        if isinstance(self.target, TransferEntityStack):
            return display_name(self.target)
        return describe(self.target)


def arrivals(plan: ClaimPlan, on_progress: ProgressCallback) -> list[Arrival]:
    """Everything `plan`'s claim moves, stacks first, each kind counted in its own phase."""
    stacks = MoveTally(len(plan.moves), on_progress)
    claimed = plan.claimed_moves()
    counts = Counter(move.source.kind for move in claimed)
    tallies = {
        kind: MoveTally(count, on_progress, CLAIMED_BESIDES_STACKS[kind])
        for kind, count in counts.items()
    }
    return [
        *(Arrival(move.source, move.target, stacks) for move in plan.moves),
        *(Arrival(move.source, move.target, tallies[move.source.kind]) for move in claimed),
    ]


def fail_all(plan: ClaimPlan, on_progress: ProgressCallback, failure: MoveFailure) -> FailedMoves:
    """Report everything `plan`'s claim moves as failed with `failure` (the claim not made)."""
    failed: FailedMoves = {}
    for arrival in arrivals(plan, on_progress):
        arrival.tally.failed(*_names(plan, arrival), failure)
        failed[entity_key(arrival.source)] = failure
    return failed


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
    """Claim the agent account of `plan` with `client` (the claimer) and verify that what it
    moves landed.

    A claim an earlier attempt of the run made (its answer lost, or the run killed after it)
    is found in the destination's claim status and followed, never made twice.
    """
    journal = journal or Journal.in_memory()
    stop = stop or StopSignal()
    answer = await _earlier_claim(client, plan, journal)
    if answer is None:
        if stop.requested:
            return _not_made(plan, on_progress, MoveFailure.interrupted("claim"))
        made = await _claim(client, plan, claim_token, journal)
        if isinstance(made, MoveFailure):
            return _not_made(plan, on_progress, made)
        answer = made
    if is_blocked(answer, "claim-api"):
        return ClaimOutcome(answer=answer, failed={})
    expected = arrivals(plan, on_progress)
    for arrival in expected:
        arrival.tally.started(*_names(plan, arrival))
    followed = await _follow(
        client,
        plan,
        answer.transfer_token,
        expected,
        stop,
        Pace(wait_seconds, poll_seconds),
    )
    failed: FailedMoves = {}
    for arrival in expected:
        if entity_key(arrival.target) in followed.landed:
            continue
        failure = _not_landed(plan, arrival, answer.transfer_token, followed, wait_seconds)
        failed[entity_key(arrival.source)] = failure
        arrival.tally.failed(*_names(plan, arrival), failure)
    return ClaimOutcome(answer=followed.record or answer, failed=failed)


def _not_landed(
    plan: ClaimPlan,
    arrival: Arrival,
    transfer_token: str | None,
    followed: Followed,
    wait_seconds: float,
) -> MoveFailure:
    """Why a planned entity is not in the destination: the claim ended elsewhere, the run
    was stopped, or the claim was still running when the wait ran out."""
    if followed.ended:
        return MoveFailure(
            "verify",
            f"verification: {arrival.what} is not in {plan.destination_org} after the claim "
            "ended; look for it there and in the agent's org before claiming again",
            source_untouched=False,
        )
    if followed.stopped:
        return MoveFailure.interrupted("claim")
    claim = f"the claim {transfer_token}" if transfer_token else "the claim"
    mover = (
        "the service moves the stacks itself"
        if isinstance(arrival.target, TransferEntityStack)
        else "the service moves it with the stacks"
    )
    return MoveFailure.unknown(
        "claim",
        f"{claim} into {plan.destination_org} was still running after {wait_seconds:g} s "
        f"({arrival.what} had not landed yet; {mover})",
    )


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
    """The claim an earlier attempt of this run may have made, as the service records it.
    One whose answer the journal lacks (the attempt killed before it came) is recorded with
    its transfer token as found."""
    tried = [
        step
        for step in journal.steps()
        if step.action == CLAIM_STEP and step.outcome in (None, "done", "unknown")
    ]
    if not tried:
        return None
    found = await _claim_of(client, plan)
    if found is not None and not any(step.outcome == "done" for step in tried):
        row = journal.begin(
            JOURNAL_MOVE, CLAIM_STEP, f"follow the claim of {plan.source_org} already started"
        )
        journal.end(row, "done", f"claim {found.transfer_token}, found in the claim status")
    return found


async def _claim_of(client: CloudClient, plan: ClaimPlan) -> AgentClaimResponse | None:
    """The destination's record of a claim of the plan's agent org, if it has one."""
    status = await client.agent_claims_status(plan.destination_org)
    for token, claim in status.claims.items():
        if claim.agent.org_name == plan.source_org:
            return claim.model_copy(update={"transfer_token": claim.transfer_token or token})
    return None


def _not_made(plan: ClaimPlan, on_progress: ProgressCallback, failure: MoveFailure) -> ClaimOutcome:
    """The outcome of a claim that was not made, or whose making is of unknown outcome."""
    assert plan.service_answer is not None, "a claim-api plan carries the service's dry run"
    return ClaimOutcome(answer=plan.service_answer, failed=fail_all(plan, on_progress, failure))


@dataclass(frozen=True)
class Pace:
    """How long to follow a started claim, and the longest pause between two looks."""

    wait_seconds: float
    poll_seconds: float


@dataclass(frozen=True)
class Followed:
    """What following a started claim saw last."""

    record: AgentClaimResponse | None
    """The claim as the destination's claim status lists it (None: not listed)."""
    landed: set[EntityKey]
    """The keys of the destination's stacks (and environments and registry packages, when
    the claim moves any), as last listed."""
    ended: bool
    """Every stack the claim moves is in the destination, or the claim reports failures."""
    stopped: bool = False
    """The run was asked to stop before the claim ended."""


async def _follow(
    client: CloudClient,
    plan: ClaimPlan,
    transfer_token: str | None,
    expected: list[Arrival],
    stop: StopSignal,
    pace: Pace,
) -> Followed:
    """Look at the claim's status and the destination until the claim has ended, the run is
    stopped, or `pace.wait_seconds` have passed; report each entity as it lands."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + pace.wait_seconds
    pause = min(FIRST_POLL_SECONDS, pace.poll_seconds)
    pending = {entity_key(arrival.target): arrival for arrival in expected}
    kinds = sorted({arrival.target.kind for arrival in expected} & set(CLAIMED_BESIDES_STACKS))
    while True:
        status, landed = await asyncio.gather(
            client.agent_claims_status(plan.destination_org),
            _in_destination(client, plan, kinds),
        )
        _report_landed(plan, pending, landed)
        record = status.claims.get(transfer_token) if transfer_token else None
        if _has_ended(record, transfer_token, landed, pending):
            # What moves with the last stack is looked at once more, now that every stack
            # has been seen: the listings above ran side by side with the claim's last step.
            landed |= await _besides_stacks(client, plan.destination_org, kinds)
            _report_landed(plan, pending, landed)
            return Followed(record, landed, ended=True)
        if stop.requested:
            return Followed(record, landed, ended=False, stopped=True)
        if loop.time() >= deadline:
            return Followed(record, landed, ended=False)
        await asyncio.sleep(min(pause, max(deadline - loop.time(), 0.0)))
        pause = min(pause * 2, pace.poll_seconds)


def _report_landed(
    plan: ClaimPlan, pending: dict[EntityKey, Arrival], landed: set[EntityKey]
) -> None:
    """Report each pending entity that `landed` shows, and take it off `pending`."""
    for key in [key for key in pending if key in landed]:
        arrival = pending.pop(key)
        summary = f"claimed {arrival.what} into {plan.destination_org}"
        arrival.tally.finished(*_names(plan, arrival), "claim", summary)


async def _in_destination(
    client: CloudClient, plan: ClaimPlan, kinds: Sequence[str]
) -> set[EntityKey]:
    """The keys of the destination's stacks in the plan's projects, and of its entities of
    `kinds` (environments, registry packages), listed at once."""
    stacks, others = await asyncio.gather(
        _stacks_in(client, plan), _besides_stacks(client, plan.destination_org, kinds)
    )
    return stacks | others


async def _besides_stacks(client: CloudClient, org: str, kinds: Sequence[str]) -> set[EntityKey]:
    """The keys of `org`'s entities of `kinds` (environments, registry packages)."""
    listings = await asyncio.gather(*(_listed(client, org, kind) for kind in kinds))
    return set().union(*listings)


async def _stacks_in(client: CloudClient, plan: ClaimPlan) -> set[EntityKey]:
    projects = sorted({move.target.project_name for move in plan.moves})
    names = await listed_stack_names(client, plan.destination_org, projects)
    return {("TransferEntityStack", project, stack) for project, stack in names}


async def _listed(client: CloudClient, org: str, kind: str) -> set[EntityKey]:
    """The keys of `org`'s entities of `kind`: its environments, or the registry packages it
    owns (a claimed package keeps the agent as its publisher)."""
    if kind == "TransferEntityEnvironment":
        environments = await client.list_environments(org)
        return {entity_key(environment_entity(env)) for env in environments}
    packages = await client.list_owned_registry_packages(org)
    return {entity_key(registry_package_entity(package)) for package in packages}


def _has_ended(
    record: AgentClaimResponse | None,
    transfer_token: str | None,
    landed: set[EntityKey],
    pending: dict[EntityKey, Arrival],
) -> bool:
    """Whether the claim is over: it reports failures, or every stack it moves (under the
    names its record gives them) is in the destination; the environments and packages move
    with the last stack. Without a transfer token to look it up by, everything planned in the
    destination is the only sign."""
    if record is not None and record.failures:
        return True
    if transfer_token is None:
        return not pending
    return record is not None and _claimed_stacks(record) <= landed


def _claimed_stacks(record: AgentClaimResponse) -> set[EntityKey]:
    """The keys the claim's stacks land under in the destination."""
    landing = [
        entity.rename_as if isinstance(entity, RenameEntity) else entity
        for entity in record.entities
    ]
    return {entity_key(entity) for entity in landing if isinstance(entity, TransferEntityStack)}


def _names(plan: ClaimPlan, arrival: Arrival) -> tuple[str, str]:
    return (
        qualified_name(plan.source_org, arrival.source),
        qualified_name(plan.destination_org, arrival.target),
    )
