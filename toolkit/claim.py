"""The library's front door: plan a claim, commit it, suggest resolutions.

Each function takes both sides of the claim, resolved once (`toolkit.sides.Sides`); nothing is
read from the environment here, so the same calls serve the command line, scheduled jobs and
tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from toolkit.checks_first import CurrentUsers, checked_first, nothing
from toolkit.choices import EnvironmentChoice, MigrateVia, Strategy
from toolkit.claim_refusals import token_refused
from toolkit.cloud import CloudClient
from toolkit.collectors import collect
from toolkit.collectors.service import collect_inventory
from toolkit.copy_checks import check_agent_reads, check_copies_reach_esc
from toolkit.credentials import BackendIdentity
from toolkit.entities import Inventory, base_of
from toolkit.errors import (
    ChoiceError,
    ClaimRefusedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from toolkit.esc_definitions import ReadDefinitions
from toolkit.gc_pauses import fewer_gc_pauses
from toolkit.journal import Journal
from toolkit.known_orgs import require_known_orgs
from toolkit.models import AgentAccountSummary, AgentClaimResponse
from toolkit.name_changes import planned_changes
from toolkit.plan import (
    NOT_CLAIMED,
    ClaimPlan,
    build_plan,
    movable_kinds,
)
from toolkit.progress import MoveFailure, ProgressEvent
from toolkit.reference_finding import (
    PlanReferences,
    find_references,
    stack_references_searched,
)
from toolkit.references import stack_read_renames
from toolkit.resolution_map import ResolutionMap
from toolkit.resolver import find_conflicts, suggest_resolution_map
from toolkit.sides import ClaimToken, Sides
from toolkit.strategies import FailedMoves, ProgressCallback, StopSignal, no_progress
from toolkit.strategies.claim_api import CLAIM_WAIT_SECONDS, execute_claim_api, fail_all
from toolkit.strategies.transfer import execute_transfer
from toolkit.strategy_choice import (
    StrategyChoice,
    auto_claims_by_token,
    check_backends,
    choose_migrate_via,
    strategy_for,
)

T = TypeVar("T")

MIGRATE_VIA_NOTICES: dict[MigrateVia, str] = {
    "rest": "migrate over REST: every step is a call to the service (export, batch-decrypt, "
    "create, batch-encrypt, import, tags, deployment settings, webhooks, schedules), with no "
    "pulumi process",
    "cli": "migrate through the pulumi CLI (Automation API), one isolated workspace per "
    "identity; the source is listed through the CLI too",
}

ENVIRONMENT_CONCURRENCY = 8
"""Environments copied at once by default."""


@dataclass(frozen=True)
class CommitResult:
    """What a commit did: the document to report and the moves that failed."""

    plan: ClaimPlan
    document: AgentClaimResponse
    failed_moves: FailedMoves = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        """Whether the run was stopped before every move was tried."""
        return any(failure.outcome == "interrupted" for failure in self.failed_moves.values())


@fewer_gc_pauses()
async def plan_claim(
    sides: Sides,
    resolution_map: ResolutionMap,
    strategy: StrategyChoice = None,
    environments: EnvironmentChoice = "report",
    migrate_via: MigrateVia | None = None,
    reference_orgs: Sequence[str] = (),
    *,
    references: bool = True,
) -> ClaimPlan:
    """Inventory both orgs (concurrently) and build the plan; changes nothing.

    With `migrate`, a notice says how it reaches both sides (`migrate_via`, as
    `choose_migrate_via` chooses); through the pulumi CLI, the source is listed through the CLI
    too, and a stack that only one of the two listings shows becomes a notice. With
    `claim-api` the plan is checked by the service's dry run of the claim, whose conflicts and
    failures it then carries. The first notice says which strategy runs and why.
    `environments="copy"` plans copying the source's ESC environments (with claim-api: those
    the service says it cannot claim), and with claim-api the source identity must be able to
    read them decrypted (it acts as the agent), or planning fails saying whose token to give.
    The source's environment definitions are read (secrets as ciphertext) for the notices
    about the copies and for the references the plan breaks (`toolkit.reference_finding`);
    the StackReferences of both orgs and the `reference_orgs` are searched from the start,
    beside the listings. A caller that needs only the names the plan changes (`references`
    false) gets neither.

    The listings start at once with the checks (`toolkit.checks_first`): who each token is,
    the orgs it sees, the claim token's validation. The collector pauses less meanwhile
    (`toolkit.gc_pauses`).
    """
    by_the_service = strategy == "claim-api" or (strategy is None and auto_claims_by_token(sides))
    async with (
        CurrentUsers() as users,
        stack_references_searched(
            sides, users, reference_orgs, wanted=references, by_the_service=by_the_service
        ) as searching,
    ):
        if by_the_service:
            chosen, why = await strategy_for(sides, users, strategy)
            check_backends(sides, chosen)
            plan, _ = await _plan_with_the_service(sides, users, resolution_map, environments)
            warnings: list[str] = []
            definitions = None
        else:
            if strategy is not None:
                check_backends(sides, strategy)
            plan, warnings, (chosen, why), definitions = await _plan_from_listings(
                sides, users, resolution_map, strategy, environments, migrate_via, references
            )
        check_copies_reach_esc(sides, plan)
        # The agent's reads (claim-api) are checked as the definitions are read.
        copied_by_agent = plan.environment_copies and chosen == "claim-api"
        agent_reads = check_agent_reads(sides, plan) if copied_by_agent else nothing()
        if references:
            _, found = await checked_first(
                agent_reads, find_references(sides, plan, definitions, searching)
            )
        else:
            await agent_reads
            found = PlanReferences()
    return replace(
        plan,
        notices=[f"strategy {chosen}: {why}", *warnings, *found.notices, *plan.notices],
        broken_references=found.broken,
    )


async def _plan_from_listings(
    sides: Sides,
    users: CurrentUsers,
    resolution_map: ResolutionMap,
    strategy: StrategyChoice,
    environments: EnvironmentChoice,
    migrate_via: MigrateVia | None,
    with_definitions: bool,
) -> tuple[ClaimPlan, list[str], tuple[Strategy, str], ReadDefinitions | None]:
    """The plan of transfer or migrate (`strategy`, or None: as `choose_strategy` picks),
    from listings of both orgs, the listings' warnings (with migrate, first how it reaches
    both sides), the strategy chosen with why, and the source's environment definitions
    (read beside the listings, `with_definitions`).

    The checks come first: the strategy's choice, the orgs each token sees, then the source's
    owner (the claim token's validation); the listings start with them. Only a listing
    through the pulumi CLI as well (migrate via the CLI) waits for the choice it depends on.
    """
    target, source = sides.target, sides.source
    choosing = asyncio.ensure_future(strategy_for(sides, users, strategy))
    try:
        (chosen, why), ((agent, expires), listings) = await checked_first(
            _choice_then_orgs(sides, users, choosing),
            checked_first(
                _agent_summary(sides, users),
                asyncio.gather(
                    _listed_source(sides, choosing, migrate_via, with_definitions),
                    collect(sides.destination, target.destination_org, cross_check=False),
                ),
            ),
        )
    finally:
        choosing.cancel()
    (source_inventory, warnings), (destination_inventory, _) = listings
    via = (
        choose_migrate_via(source, sides.destination, migrate_via) if chosen == "migrate" else None
    )
    plan = build_plan(
        target=target,
        source=source_inventory,
        destination=destination_inventory,
        resolution_map=resolution_map,
        strategy=chosen,
        agent=agent,
        claim_expires_at=expires,
        has_claim=sides.claim_token is not None and source.is_cloud,
        environments=environments,
    )
    if via is not None:
        warnings = [MIGRATE_VIA_NOTICES[via], *warnings]
    return plan, warnings, (chosen, why), source_inventory.definitions


async def _choice_then_orgs(
    sides: Sides, users: CurrentUsers, choosing: asyncio.Future[tuple[Strategy, str]]
) -> tuple[Strategy, str]:
    """The strategy chosen and why, once the orgs named are known to their tokens (transfer
    and migrate check both); the choice's error comes first. (`choosing` is shared, so a
    cancelled wait here does not cancel it.)"""
    choice, _ = await checked_first(
        asyncio.shield(choosing), require_known_orgs(sides, users, claim_api=False)
    )
    return choice


async def _listed_source(
    sides: Sides,
    choosing: asyncio.Future[tuple[Strategy, str]],
    migrate_via: MigrateVia | None,
    with_definitions: bool,
) -> tuple[Inventory, list[str]]:
    """The source's inventory (`collect`), `with_definitions` of its environments (what may
    name a moved stack or environment), cross-checked through the pulumi CLI when migrate runs via
    the CLI: only then does the listing wait for the strategy's choice."""
    source = sides.source
    cross_check = False
    if source.is_cloud and choose_migrate_via(source, sides.destination, migrate_via) == "cli":
        chosen, _ = await asyncio.shield(choosing)
        cross_check = chosen == "migrate"
    return await collect(
        source, sides.source_org, cross_check=cross_check, with_definitions=with_definitions
    )


async def _plan_with_the_service(
    sides: Sides,
    users: CurrentUsers,
    resolution_map: ResolutionMap,
    environments: EnvironmentChoice = "report",
) -> tuple[ClaimPlan, Inventory]:
    """The claim-api plan: the agent's inventory from the claim token's validation (the
    claimer needs no access to the agent's org), the destination as the claimer lists it, the
    map checked here first, then the service's dry run of the claim with the map's renames.
    The destination's inventory comes back too. The destination's listing starts with the
    checks (the destination known to the claimer, then the claim token's validation)."""
    target, claim_token = sides.target, _claim_token(sides)
    async with CloudClient.for_identity(sides.destination) as client:
        _, (claim, destination_inventory) = await checked_first(
            require_known_orgs(sides, users, claim_api=True),
            checked_first(
                _validated_claim(sides, client, claim_token),
                _refusals(sides, collect_inventory(client, target.destination_org)),
            ),
        )
        plan = build_plan(
            target=target,
            source=Inventory.from_entities(target.source_org, claim.entities),
            destination=destination_inventory,
            resolution_map=resolution_map,
            strategy="claim-api",
            agent=claim.agent,
            claim_expires_at=claim.claim_expires_at,
            has_claim=True,
            service_failures=claim.failures,
            environments=environments,
        )
        answer = await _refusals(
            sides,
            client.claim_agent(
                target.destination_org, claim_token.value, plan.conflicts_resolution(), dry_run=True
            ),
        )
    return plan.answered(answer), destination_inventory


async def _validated_claim(
    sides: Sides, client: CloudClient, claim_token: ClaimToken
) -> AgentClaimResponse:
    """What the claim token claims, refused unless it is the source org."""
    claim = await _refusals(sides, client.validate_claim_token(claim_token.value))
    _check_claimed_org(claim_token, claim.agent, sides.source_org)
    return claim


async def commit_claim(
    sides: Sides,
    plan: ClaimPlan,
    *,
    delete_source: bool = False,
    on_progress: ProgressCallback = no_progress,
    journal: Journal | None = None,
    stop: StopSignal | None = None,
    concurrency: int | None = None,
    claim_wait: float | None = None,
    workspace_root: Path | None = None,
    migrate_via: MigrateVia | None = None,
) -> CommitResult:
    """Execute `plan`, recording each call in `journal` (by default one kept in memory).

    A blocked plan changes nothing and comes back as it was. `delete_source` (migrate)
    removes each source stack once its copy is verified, and the sources of the plan's
    environment copies once every copy is verified. With claim-api, the environments the
    service cannot claim are copied, verified and removed from the agent's org first, and the
    claim is made only once all of them are. Once `stop` is set no new call
    starts; the moves not finished then come back as interrupted. `concurrency` bounds the
    calls (migrate: the stacks) at once; `claim_wait` is how long a claim-api claim is
    followed (None: `CLAIM_WAIT_SECONDS`). `migrate_via` is how migrate is to reach both
    sides (`toolkit.strategy_choice.choose_migrate_via`); through the CLI, it makes its
    workspaces under `workspace_root` (default: the system temp folder).
    """
    if delete_source and plan.strategy != "migrate" and not plan.environment_copies:
        raise ChoiceError(
            "{delete_source} applies to {strategy} migrate only ({chosen} moves the stack "
            "itself), and to environments copied with {environments} copy.",
            values={"chosen": plan.strategy},
        )
    # The claim API hands out its own transferToken, and only for a claim that started.
    run_id = journal.run_id if journal and plan.strategy != "claim-api" else None
    journal = journal or Journal.in_memory()
    stop = stop or StopSignal()
    journal.on_failure(stop.request)  # no call can begin once none can be recorded
    if plan.blocked:
        result = CommitResult(plan=plan, document=plan.to_claim_response(transfer_token=run_id))
    else:
        execution = _Execution(
            sides,
            plan,
            journal,
            stop,
            concurrency,
            CLAIM_WAIT_SECONDS if claim_wait is None else claim_wait,
            delete_source,
            migrate_via,
            workspace_root,
        )
        recorded = _recorded(on_progress, journal)
        if plan.strategy == "claim-api" and plan.environment_copies:
            done, failed = await execution.copy_then_claim(recorded)
        else:
            done, failed = await execution.run(recorded)
            if done.environment_copies:
                failed |= await execution.copy_environments(recorded)
        document = done.to_claim_response(failed_moves=failed, transfer_token=run_id)
        result = CommitResult(plan=done, document=document, failed_moves=failed)
    journal.finish(result.document, state="interrupted" if result.interrupted else "finished")
    return result


@dataclass(frozen=True)
class _Execution:
    """One strategy's execution of a plan, with the run's journal and stop signal."""

    sides: Sides
    plan: ClaimPlan
    journal: Journal
    stop: StopSignal
    concurrency: int | None
    claim_wait: float
    delete_source: bool
    migrate_via: MigrateVia | None
    workspace_root: Path | None

    async def run(self, on_progress: ProgressCallback) -> tuple[ClaimPlan, FailedMoves]:
        """The moves that failed, and the plan as executed (with the service's answer,
        claim-api)."""
        plan = self.plan
        if plan.strategy == "transfer":
            async with self._client() as client:
                failed = await execute_transfer(
                    plan, client, journal=self.journal, stop=self.stop, on_progress=on_progress
                )
            return plan, failed
        if plan.strategy == "claim-api":
            async with self._client() as client:
                outcome = await _refusals(
                    self.sides,
                    execute_claim_api(
                        plan,
                        client,
                        _claim_token(self.sides).value,
                        journal=self.journal,
                        stop=self.stop,
                        on_progress=on_progress,
                        wait_seconds=self.claim_wait,
                    ),
                )
            return plan.answered(outcome.answer), outcome.failed
        # Imported here: its state handling is a quarter of what a preview or a transfer
        # imports of the toolkit, and only a migration uses it.
        from toolkit.strategies.migrate import execute_migrate

        failed = await execute_migrate(
            plan,
            self.sides.source,
            self.sides.destination,
            via=self.migrate_via,
            delete_source=self.delete_source,
            max_concurrency=self.concurrency,
            journal=self.journal,
            stop=self.stop,
            on_progress=on_progress,
            workspace_root=self.workspace_root,
        )
        return plan, failed

    async def copy_then_claim(self, on_progress: ProgressCallback) -> tuple[ClaimPlan, FailedMoves]:
        """claim-api: copy the environments the service cannot claim and remove them from the
        agent's org (dependents first), then claim; no claim while any of them remains."""
        plan = self.plan
        failed = await self.copy_environments(on_progress, delete_source=True)
        if not failed:
            return await self.run(on_progress)
        interrupted = any(failure.outcome == "interrupted" for failure in failed.values())
        removals = any(failure.step == "delete-source" for failure in failed.values())
        cause = (
            f"the copies in {plan.destination_org} stand, verified, but removing the agent's "
            "environments failed (see their failures); an agent's access token stops "
            "authenticating 72 hours after its sign-up, and then cannot remove them: the "
            "service's claim stays blocked by them"
            if removals
            else f"copying the agent's environments to {plan.destination_org} failed (see "
            "their failures); the verified copies stand and the sources stay"
        )
        why = (
            MoveFailure.interrupted("claim")
            if interrupted
            else MoveFailure(
                "claim",
                f"{NOT_CLAIMED}the claim is not made while ESC environments the service cannot "
                f"claim remain in {plan.source_org}: {cause}. Once the cause is fixed, run the "
                "same command again",
            )
        )
        return plan, failed | fail_all(plan, on_progress, why)

    async def copy_environments(
        self, on_progress: ProgressCallback, *, delete_source: bool | None = None
    ) -> FailedMoves:
        """Copy the plan's environments (`environment_copy`): after the stack moves, or
        with claim-api before the claim, removing their sources (`delete_source`)."""
        from toolkit.strategies.environment_copy import copy_environments

        plan = self.plan
        async with (
            CloudClient.for_identity(self.sides.source) as source,
            self._client() as destination,
        ):
            return await copy_environments(
                plan.environment_copies,
                source,
                destination,
                source_org=plan.source_org,
                destination_org=plan.destination_org,
                delete_source=self.delete_source if delete_source is None else delete_source,
                journal=self.journal,
                stop=self.stop,
                stack_reads=stack_read_renames(planned_changes(plan)),
                on_progress=on_progress,
                limit=self.concurrency or ENVIRONMENT_CONCURRENCY,
            )

    def _client(self) -> CloudClient:
        return CloudClient.for_identity(self.sides.destination, max_concurrency=self.concurrency)


def _recorded(on_progress: ProgressCallback, journal: Journal) -> ProgressCallback:
    def record_and_report(event: ProgressEvent) -> None:
        journal.record(event.describe())
        on_progress(event)

    return record_and_report


async def suggest_resolutions(sides: Sides, *, suffix: str) -> tuple[ResolutionMap, int]:
    """A valid resolution map for today's conflicts, and how many conflicts it covers.

    With a claim token the conflicts are the service's (its dry run of the claim, without
    renames), and the collisions of the environments it cannot claim, which `--environments
    copy` copies (without it, their renames are not used); without one, every collision of
    the two orgs' listings.
    """
    target = sides.target
    async with CurrentUsers() as users:
        if sides.claim_token:
            plan, destination_inventory = await _plan_with_the_service(
                sides, users, ResolutionMap.empty(), "copy"
            )
            source_inventory = Inventory.from_entities(target.source_org, plan.entities)
            conflicts = [base_of(entity) for entity in plan.conflicts]
        else:
            _, ((source_inventory, _), (destination_inventory, _)) = await checked_first(
                require_known_orgs(sides, users, claim_api=False),
                asyncio.gather(
                    collect(sides.source, target.source_org, cross_check=False),
                    collect(sides.destination, target.destination_org, cross_check=False),
                ),
            )
            conflicts = find_conflicts(
                source_inventory, destination_inventory, movable_kinds("claim-api")
            )
    suggestion = suggest_resolution_map(
        conflicts, source=source_inventory, destination=destination_inventory, suffix=suffix
    )
    return suggestion, len(conflicts)


async def org_inventory(identity: BackendIdentity, org: str) -> Inventory:
    """What one org holds, as `identity` sees it."""
    async with CloudClient.for_identity(identity) as client:
        return await collect_inventory(client, org)


async def _agent_summary(sides: Sides, users: CurrentUsers) -> tuple[AgentAccountSummary, datetime]:
    """Who owns the source, and when the claim expires.

    With a claim token the service says both. Without one (an org-to-org move) the source
    identity's login (or, on a self-managed backend, the org) stands for the owner, and both
    times are the time of this plan.
    """
    source, source_org = sides.source, sides.source_org
    now = datetime.now(UTC).replace(microsecond=0)
    if not source.is_cloud:
        return AgentAccountSummary(login=source_org, org_name=source_org, created_at=now), now
    if not sides.claim_token:
        user = await users.of(source)
        return AgentAccountSummary(
            login=user.github_login, org_name=source_org, created_at=now
        ), now
    async with CloudClient.for_identity(source) as client:
        claim = await client.validate_claim_token(sides.claim_token.value)
    _check_claimed_org(_claim_token(sides), claim.agent, source_org)
    return claim.agent, claim.claim_expires_at


def _check_claimed_org(
    claim_token: ClaimToken, agent: AgentAccountSummary, source_org: str
) -> None:
    if agent.org_name != source_org:
        origin = claim_token.origin
        raise InvalidInputError(
            f"{origin} claims org {agent.org_name!r}, not {source_org!r}.",
            hint=f"Run with --from {agent.org_name}, or claim with the token of {source_org}.",
        )


def _claim_token(sides: Sides) -> ClaimToken:
    if not sides.claim_token:
        raise InvalidInputError(
            "the claim-api strategy needs the agent's claim token.",
            hint="Set PULUMI_CLAIM_TOKEN, or pass the agent-claim.json the pulumi CLI wrote "
            "with --claim-file.",
        )
    return sides.claim_token


async def _refusals(sides: Sides, call: Awaitable[T]) -> T:
    """`call`, with the service's refusals of a claim said in words that tell what to do.

    Only for calls of the claim API and the claimer's listing of the destination: a 404 there
    is the claim token's, a 403 the claimer's lack of a role in the destination.
    """
    try:
        return await call
    except PermissionDeniedError:
        destination = sides.destination_org
        raise ClaimRefusedError(
            f"the claiming identity has no role in {destination}, so it cannot claim into it.",
            hint=f"Set PULUMI_ACCESS_TOKEN to the token of a member of {destination} (any role "
            "will do), or run `pulumi login` as one. The agent's own token cannot claim its "
            "account.",
        ) from None
    except NotFoundError as error:
        if "/api/agents/" not in error.path:
            raise
        raise token_refused(_claim_token(sides)) from None
