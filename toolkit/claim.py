"""The library's front door: plan a claim, commit it, suggest resolutions.

Each function takes explicit credentials and names; nothing is read from the environment
here, so the same calls serve the command line, scheduled jobs and tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from toolkit.cloud import CloudClient
from toolkit.collectors import collect
from toolkit.collectors.service import collect_inventory
from toolkit.credentials import BackendIdentity, Credentials
from toolkit.entities import Inventory
from toolkit.errors import InvalidInputError
from toolkit.journal import Journal
from toolkit.models import AgentAccountSummary, AgentClaimResponse
from toolkit.plan import ClaimPlan, ClaimTarget, Strategy, build_plan, movable_kinds
from toolkit.progress import ProgressEvent
from toolkit.resolution_map import ResolutionMap
from toolkit.resolver import find_conflicts, suggest_resolution_map
from toolkit.strategies import FailedMoves, ProgressCallback, no_progress
from toolkit.strategies.transfer import execute_transfer

StrategyChoice = Strategy | None
"""A strategy by name, or None to let `choose_strategy` pick one."""


@dataclass(frozen=True)
class CommitResult:
    """What a commit did: the document to report and the moves that failed."""

    plan: ClaimPlan
    document: AgentClaimResponse
    failed_moves: FailedMoves = field(default_factory=dict)


async def plan_claim(
    credentials: Credentials,
    target: ClaimTarget,
    resolution_map: ResolutionMap,
    strategy: StrategyChoice = None,
) -> ClaimPlan:
    """Inventory both orgs (concurrently) and build the plan; changes nothing.

    With `migrate`, the source is listed through the pulumi CLI too, and a stack that only one
    of the two listings shows becomes a notice.
    """
    source, destination = (
        target.source_identity(credentials),
        target.destination_identity(credentials),
    )
    chosen = strategy or await choose_strategy(source, destination, target)
    if chosen == "transfer" and (not source.is_cloud or source.url != destination.url):
        raise InvalidInputError(
            "the transfer strategy moves stacks within one Pulumi Cloud only.",
            hint="Use --strategy migrate to move stacks between backends.",
        )
    (
        (source_inventory, warnings),
        (destination_inventory, _),
        (agent, expires),
    ) = await asyncio.gather(
        collect(source, target.source_org, cross_check=chosen == "migrate"),
        collect(destination, target.destination_org, cross_check=False),
        _agent_summary(credentials, source, target.source_org),
    )
    plan = build_plan(
        target=target,
        source=source_inventory,
        destination=destination_inventory,
        resolution_map=resolution_map,
        strategy=chosen,
        agent=agent,
        claim_expires_at=expires,
    )
    return replace(plan, notices=[*warnings, *plan.notices]) if warnings else plan


async def commit_claim(
    credentials: Credentials,
    plan: ClaimPlan,
    *,
    delete_source: bool = False,
    on_progress: ProgressCallback = no_progress,
    journal: Journal | None = None,
) -> CommitResult:
    """Execute `plan`, recording each step in `journal` when given.

    A blocked plan changes nothing and comes back as it was. `delete_source` (migrate only)
    removes each source stack once its copy is verified.
    """
    if delete_source and plan.strategy != "migrate":
        raise InvalidInputError(
            "--delete-source applies to --strategy migrate only "
            f"({plan.strategy} moves the stack itself)."
        )
    run_id = journal.run_id if journal else None
    if plan.blocked:
        result = CommitResult(plan=plan, document=plan.to_claim_response(transfer_token=run_id))
    else:
        failed = await _execute(credentials, plan, delete_source, _recorded(on_progress, journal))
        document = plan.to_claim_response(failed_moves=failed, transfer_token=run_id)
        result = CommitResult(plan=plan, document=document, failed_moves=failed)
    if journal:
        journal.finish(result.document)
    return result


async def _execute(
    credentials: Credentials,
    plan: ClaimPlan,
    delete_source: bool,
    on_progress: ProgressCallback,
) -> FailedMoves:
    if plan.strategy == "transfer":
        async with _client(plan.target.destination_identity(credentials)) as client:
            return await execute_transfer(plan, client, on_progress=on_progress)
    if plan.strategy == "migrate":
        from toolkit.strategies.migrate import execute_migrate

        return await execute_migrate(
            plan,
            plan.target.source_identity(credentials),
            plan.target.destination_identity(credentials),
            delete_source=delete_source,
            on_progress=on_progress,
        )
    raise InvalidInputError(
        f"strategy {plan.strategy!r} is not available in this version of pulumi-claim.",
        hint="Use --strategy transfer or --strategy migrate.",
    )


def _recorded(on_progress: ProgressCallback, journal: Journal | None) -> ProgressCallback:
    if journal is None:
        return on_progress

    def record_and_report(event: ProgressEvent) -> None:
        journal.record(event.describe())
        on_progress(event)

    return record_and_report


async def suggest_resolutions(
    credentials: Credentials, target: ClaimTarget, *, suffix: str
) -> tuple[ResolutionMap, int]:
    """A valid resolution map for today's conflicts, and how many conflicts it covers."""
    (source_inventory, _), (destination_inventory, _) = await asyncio.gather(
        collect(target.source_identity(credentials), target.source_org, cross_check=False),
        collect(
            target.destination_identity(credentials), target.destination_org, cross_check=False
        ),
    )
    conflicts = find_conflicts(source_inventory, destination_inventory, movable_kinds("claim-api"))
    suggestion = suggest_resolution_map(
        conflicts, source=source_inventory, destination=destination_inventory, suffix=suffix
    )
    return suggestion, len(conflicts)


async def org_inventory(credentials: Credentials, org: str) -> Inventory:
    """What one org at the API URL holds, as the destination identity sees it."""
    async with CloudClient(credentials.api_url, credentials.destination_token) as client:
        return await collect_inventory(client, org)


async def choose_strategy(
    source: BackendIdentity, destination: BackendIdentity, target: ClaimTarget
) -> Strategy:
    """`transfer` when one Pulumi Cloud holds both orgs and the claiming identity administers
    both; `migrate` otherwise (it needs only read access to the source)."""
    if not (source.is_cloud and destination.is_cloud) or source.url != destination.url:
        return "migrate"
    async with _client(destination) as client:
        user = await client.get_current_user()
    roles = {org.name: org.role for org in user.organizations}
    both_admin = all(
        roles.get(org) == "admin" for org in (target.source_org, target.destination_org)
    )
    return "transfer" if both_admin else "migrate"


async def _agent_summary(
    credentials: Credentials, source: BackendIdentity, source_org: str
) -> tuple[AgentAccountSummary, datetime]:
    """Who owns the source, and when the claim expires.

    With a claim token the service says both. Without one (an org-to-org move) the source
    identity's login (or, on a self-managed backend, the org) stands for the owner, and both
    times are the time of this plan.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    if not source.is_cloud:
        return AgentAccountSummary(login=source_org, org_name=source_org, created_at=now), now
    async with _client(source) as client:
        if credentials.claim_token:
            claim = await client.validate_claim_token(credentials.claim_token)
        else:
            user = await client.get_current_user()
            return (
                AgentAccountSummary(login=user.github_login, org_name=source_org, created_at=now),
                now,
            )
    if claim.agent.org_name != source_org:
        raise InvalidInputError(
            f"PULUMI_CLAIM_TOKEN claims org {claim.agent.org_name!r}, not {source_org!r}.",
            hint=f"Run with --from {claim.agent.org_name}, or unset PULUMI_CLAIM_TOKEN.",
        )
    return claim.agent, claim.claim_expires_at


def _client(identity: BackendIdentity) -> CloudClient:
    return CloudClient(identity.url, identity.token or "")
