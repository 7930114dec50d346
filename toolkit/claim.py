"""The library's front door: plan a claim, commit it, suggest resolutions.

Each function takes explicit credentials and names; nothing is read from the environment
here, so the same calls serve the command line, scheduled jobs and tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from toolkit.cloud import CloudClient
from toolkit.collectors import Inventory
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import Credentials
from toolkit.errors import InvalidInputError
from toolkit.journal import Journal
from toolkit.models import AgentAccountSummary, AgentClaimResponse
from toolkit.plan import ClaimPlan, Strategy, build_plan, movable_kinds
from toolkit.report import Mode, ReportContext
from toolkit.resolver import (
    ResolutionMap,
    find_conflicts,
    suggest_resolution_map,
)
from toolkit.strategies import FailedMoves, ProgressCallback, no_progress
from toolkit.strategies.transfer import execute_transfer

StrategyChoice = Strategy | None
"""A strategy by name, or None to let `choose_strategy` pick one."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_PARTIAL = 4


@dataclass(frozen=True)
class ClaimTarget:
    """Which orgs a claim moves between."""

    source_org: str
    destination_org: str

    def __post_init__(self) -> None:
        if self.source_org == self.destination_org:
            raise InvalidInputError(
                f"--from and --to are both {self.source_org!r}; name two different orgs."
            )


@dataclass(frozen=True)
class CommitResult:
    """What a commit did: the document to report and the moves that failed."""

    plan: ClaimPlan
    document: AgentClaimResponse
    failed_moves: FailedMoves = field(default_factory=dict)

    @property
    def changed_anything(self) -> bool:
        return not self.plan.blocked and len(self.failed_moves) < len(self.plan.moves)


def exit_code(document: AgentClaimResponse) -> int:
    """DESIGN §5: 3 when blocked by conflicts, 4 when anything is reported as failed, else 0."""
    if document.conflicts:
        return EXIT_BLOCKED
    if document.failures:
        return EXIT_PARTIAL
    return EXIT_OK


def report_context(plan: ClaimPlan, mode: Mode, document: AgentClaimResponse) -> ReportContext:
    """What a report says around the document: orgs, strategy, notices and a one-line outcome."""
    return ReportContext(
        mode=mode,
        source_org=plan.source_org,
        destination_org=plan.destination_org,
        strategy=plan.strategy,
        outcome=_outcome(plan, mode, document),
        notices=tuple(plan.notices),
    )


def _outcome(plan: ClaimPlan, mode: Mode, document: AgentClaimResponse) -> str:
    if document.conflicts:
        return (
            f"blocked: {len(document.conflicts)} unresolved conflict(s); nothing was changed. "
            "Rename them in a resolution map (pulumi-claim resolve writes one)."
        )
    failed_moves = len(document.failures) - len(plan.failures)
    moved = len(plan.moves) - failed_moves
    verb = "would move" if mode == "preview" else "moved"
    line = f"{verb} {moved} of {len(plan.moves)} stack(s)"
    return f"{line}; {len(document.failures)} failure(s) reported" if document.failures else line


async def plan_claim(
    credentials: Credentials,
    target: ClaimTarget,
    resolution_map: ResolutionMap,
    strategy: StrategyChoice = None,
) -> ClaimPlan:
    """Inventory both orgs (concurrently) and build the plan; changes nothing."""
    async with _clients(credentials) as (source, destination):
        chosen = strategy or await choose_strategy(destination, target)
        source_inventory, destination_inventory, (agent, expires) = await asyncio.gather(
            collect_inventory(source, target.source_org),
            collect_inventory(destination, target.destination_org),
            _agent_summary(credentials, source, destination, target.source_org),
        )
    return build_plan(
        source=source_inventory,
        destination=destination_inventory,
        resolution_map=resolution_map,
        strategy=chosen,
        agent=agent,
        claim_expires_at=expires,
    )


async def commit_claim(
    credentials: Credentials,
    plan: ClaimPlan,
    *,
    on_progress: ProgressCallback = no_progress,
    journal: Journal | None = None,
) -> CommitResult:
    """Execute `plan`, recording each step in `journal` when given.

    A blocked plan changes nothing and comes back as it was.
    """
    run_id = journal.run_id if journal else None
    if plan.blocked:
        result = CommitResult(plan=plan, document=plan.to_claim_response(transfer_token=run_id))
    else:
        failed = await _execute(credentials, plan, _recorded(on_progress, journal))
        document = plan.to_claim_response(failed_moves=failed, transfer_token=run_id)
        result = CommitResult(plan=plan, document=document, failed_moves=failed)
    if journal:
        journal.finish(result.document)
    return result


async def _execute(
    credentials: Credentials, plan: ClaimPlan, on_progress: ProgressCallback
) -> FailedMoves:
    if plan.strategy != "transfer":
        raise InvalidInputError(
            f"strategy {plan.strategy!r} is not available in this version of pulumi-claim.",
            hint="Use --strategy transfer with an identity that is admin of both orgs.",
        )
    async with CloudClient(credentials.api_url, credentials.destination_token) as client:
        return await execute_transfer(plan, client, on_progress=on_progress)


def _recorded(on_progress: ProgressCallback, journal: Journal | None) -> ProgressCallback:
    if journal is None:
        return on_progress

    def record_and_report(message: str) -> None:
        journal.record(message)
        on_progress(message)

    return record_and_report


async def suggest_resolutions(
    credentials: Credentials, target: ClaimTarget, *, suffix: str
) -> tuple[ResolutionMap, int]:
    """A valid resolution map for today's conflicts, and how many conflicts it covers."""
    async with _clients(credentials) as (source, destination):
        source_inventory, destination_inventory = await asyncio.gather(
            collect_inventory(source, target.source_org),
            collect_inventory(destination, target.destination_org),
        )
    conflicts = find_conflicts(source_inventory, destination_inventory, movable_kinds("claim-api"))
    suggestion = suggest_resolution_map(
        conflicts, source=source_inventory, destination=destination_inventory, suffix=suffix
    )
    return suggestion, len(conflicts)


async def list_org_stacks(credentials: Credentials, org: str) -> Inventory:
    """The destination identity's view of one org's inventory."""
    async with CloudClient(credentials.api_url, credentials.destination_token) as client:
        return await collect_inventory(client, org)


async def choose_strategy(destination: CloudClient, target: ClaimTarget) -> Strategy:
    """`transfer` when the claiming identity is admin of both orgs; else say what is missing."""
    user = await destination.get_current_user()
    roles = {org.name: org.role for org in user.organizations}
    missing = [
        org for org in (target.source_org, target.destination_org) if roles.get(org) != "admin"
    ]
    if not missing:
        return "transfer"
    raise InvalidInputError(
        f"{user.github_login} is not admin of {' and '.join(missing)}, so the stacks cannot be "
        "transferred, and no other strategy is available in this version.",
        hint="Run with PULUMI_ACCESS_TOKEN of an identity that is admin of both orgs.",
    )


async def _agent_summary(
    credentials: Credentials,
    source: CloudClient,
    destination: CloudClient,
    source_org: str,
) -> tuple[AgentAccountSummary, datetime]:
    """Who owns the source, and when the claim expires.

    With a claim token the service says both. Without one (an org-to-org move) the source
    identity's login stands for the owner, and both times are the time of this plan.
    """
    if credentials.claim_token:
        claim = await destination.validate_claim_token(credentials.claim_token)
        if claim.agent.org_name != source_org:
            raise InvalidInputError(
                f"PULUMI_CLAIM_TOKEN claims org {claim.agent.org_name!r}, not {source_org!r}.",
                hint=f"Run with --from {claim.agent.org_name}, or unset PULUMI_CLAIM_TOKEN.",
            )
        return claim.agent, claim.claim_expires_at
    user = await source.get_current_user()
    now = datetime.now(UTC).replace(microsecond=0)
    return AgentAccountSummary(login=user.github_login, org_name=source_org, created_at=now), now


@asynccontextmanager
async def _clients(credentials: Credentials) -> AsyncIterator[tuple[CloudClient, CloudClient]]:
    """The source and destination clients, opened and closed together."""
    async with (
        CloudClient(credentials.api_url, credentials.source_token) as source,
        CloudClient(credentials.api_url, credentials.destination_token) as destination,
    ):
        yield source, destination
