"""The claim plan: what a commit will do, decided before anything is done.

Like a database migration script, the plan can be printed and reviewed on its own; preview
shows it, commit executes it. Building it is pure: the target, inventories and a resolution map
in, plan out (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence, Sized
from dataclasses import dataclass, field, replace
from datetime import datetime

from toolkit.choices import EnvironmentChoice, Strategy
from toolkit.entities import (
    KINDS,
    EntityKey,
    Inventory,
    as_rename,
    base_of,
    describe,
    display_name,
    entity_key,
    key_order,
    naming_warnings,
    stable_order,
    stack_name,
    target_of,
)
from toolkit.errors import InvalidInputError
from toolkit.models import (
    AgentAccountSummary,
    AgentClaimResponse,
    BaseEntity,
    RenameEntity,
    TransferEntity,
    TransferEntityEnvironment,
    TransferEntityFailure,
    TransferEntityStack,
)
from toolkit.moves import (
    CLAIMED_BESIDES_STACKS,
    ClaimedMove,
    EnvironmentCopy,
    RenameStep,
    StackMove,
    copy_of,
    move_of,
    order_renames,
)
from toolkit.progress import MoveFailure
from toolkit.references import BrokenReference
from toolkit.resolution_map import ResolutionMap
from toolkit.resolver import resolve
from toolkit.service_urls import canonical_url, require_secure_url

_MIGRATE_NOTICES = (
    "the migrate strategy copies each stack's latest state, its tags and (between Pulumi "
    "Clouds) its deployment settings, webhooks and schedules into a new stack: update history "
    "and permissions stay behind in the source org; secret values of the deployment settings "
    "and webhooks' signing secrets cannot be read, so each is reported, to be set again",
    "secret values in a stack's config file (Pulumi.<stack>.yaml) are encrypted for the old "
    "stack: set them again (pulumi config set --secret) for the new one",
    "each source stack stays as it was unless --delete-source is given; until it is removed, "
    "it and its copy manage the same cloud resources",
)
"""What does not carry over when stacks are migrated rather than transferred."""

_COPY_NOTICE = (
    "ESC environments are copied: each is created anew in the destination with its latest "
    "definition (secrets encrypted by the destination) and its tags; revisions, revision tags, "
    "permissions and webhooks stay with the source, which stays unless --delete-source is given"
)
_CLAIM_API_LEAVES_NOTICE = (
    "--environments copy leaves the ESC environments to the service: its claim moves them"
)
_CLAIM_API_COPY_NOTICE = (
    "ESC environments the service cannot claim are copied to {destination} (each created "
    "anew with its latest definition, secrets encrypted by {destination}, and its tags; "
    "revisions, revision tags, permissions and webhooks stay behind), verified, and removed "
    "from the agent's org {source} before the claim, so that they no longer block it: {names}"
)

NOT_CLAIMED = "not claimed: "
"""How the failure of a stack begins when the claim was not made because an environment
could not be copied or removed first: something changed (the copies), so the claim is not
blocked but partial, and the same command finishes it."""


def movable_kinds(strategy: Strategy, environments: EnvironmentChoice = "report") -> frozenset[str]:
    """The entity kinds `strategy` plans to move.

    transfer and migrate move stacks only, and environments too when they are to be copied;
    they report every other entity as a failure. claim-api offers every kind to the service:
    which entities it cannot move is the service's answer (its failures), never a list of the
    toolkit's.
    """
    if strategy == "claim-api":
        return _EVERY_KIND
    return _STACK_AND_ENVIRONMENT_KINDS if environments == "copy" else _STACK_KINDS


_STACK_KINDS = frozenset({"TransferEntityStack"})
_STACK_AND_ENVIRONMENT_KINDS = frozenset({"TransferEntityStack", "TransferEntityEnvironment"})
_EVERY_KIND = frozenset(kind.wire_kind for kind in KINDS)


def is_blocked(
    document: AgentClaimResponse,
    strategy: Strategy,
    retryable: Collection[EntityKey] = frozenset(),
) -> bool:
    """Whether `document` is of a claim stopped before anything moved (or that would be).

    Any unresolved conflict blocks. The service's claim moves all or nothing, so with claim-api
    any failure blocks too, unless the claim started (the service handed out a transferToken)
    and the failure is a stack the verification found missing afterwards, or the toolkit
    copied environments first and did not make the claim (`NOT_CLAIMED`). A failure of a
    commit's own moves (`retryable`: `ClaimPlan.did_not_land`, e.g. a run stopped before its
    claim call) blocks nothing: the same command runs it again.
    """
    started = strategy == "claim-api" and (
        document.transfer_token is not None
        or any(failure.failure_details.startswith(NOT_CLAIMED) for failure in document.failures)
    )
    failures = [] if started else document.failures
    blocking = [failure for failure in failures if entity_key(failure.entity) not in retryable]
    return _blocks(strategy, document.conflicts, blocking)


def _blocks(strategy: Strategy, conflicts: Sized, failures: Sized) -> bool:
    return bool(conflicts) or (strategy == "claim-api" and bool(failures))


def failure_details(entity: BaseEntity, strategy: Strategy, *, destination_org: str) -> str:
    """Why `entity` cannot move with `strategy`, and what the user can do instead."""
    if entity.kind in movable_kinds(strategy):
        raise ValueError(f"{describe(entity)} can move with the {strategy} strategy")
    name = display_name(entity)
    match entity.kind:
        case "TransferEntityEnvironment":
            return (
                "ESC environments cannot be transferred between organizations; copy them "
                "with --environments copy, or recreate "
                f"{name} in {destination_org} (esc env init {destination_org}/{name}) and copy "
                "its definition"
            )
        case "TransferEntityInsightsAccount":
            return (
                "Insights accounts cannot be transferred between organizations; add "
                f"{name} again in {destination_org} with the same cloud credentials and let it "
                "scan again"
            )
        case _:
            return (
                "registry packages cannot be transferred between organizations; publish "
                f"{name} again with publisher {destination_org} "
                f"(pulumi package publish <schema> --publisher {destination_org})"
            )


# --- The plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimTarget:
    """Which orgs a claim moves between, and where they live.

    Both sides live at the credentials' API URL unless a backend URL says otherwise: another
    Pulumi Cloud, or a self-managed backend such as `file:///path` (whose only org is
    `organization`). Only the `migrate` strategy can move between two backends. An `http://`
    backend on another machine is refused unless `allow_insecure` (`require_secure_url`).
    """

    source_org: str
    destination_org: str
    source_backend: str | None = None
    destination_backend: str | None = None
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        for url, origin in (
            (self.source_backend, "--source-backend"),
            (self.destination_backend, "--destination-backend"),
        ):
            if url:
                require_secure_url(url, origin, allow_insecure=self.allow_insecure)
        backends = [
            canonical_url(url) if url else None
            for url in (self.source_backend, self.destination_backend)
        ]
        if self.source_org == self.destination_org and backends[0] == backends[1]:
            raise InvalidInputError(
                f"--from and --to are both {self.source_org!r}; name two different orgs."
            )


@dataclass(frozen=True, repr=False)
class ClaimPlan:
    """Everything a claim will do, and everything that stops it or will not move.

    Its repr is a summary: asyncio and anyio put the result of a finished task into messages
    they build, and the full repr of a plan of 10,000 moves takes over half a second.
    """

    target: ClaimTarget
    strategy: Strategy
    agent: AgentAccountSummary
    claim_expires_at: datetime
    entities: list[BaseEntity]
    """The full source inventory, in a stable order."""
    moves: list[StackMove]
    """Every source stack, renamed or not."""
    rename_waves: list[list[RenameStep]]
    """Renames in the source org before the moves; only the transfer strategy makes them."""
    conflicts: list[BaseEntity | RenameEntity]
    """Conflicts with the destination that no rename resolves: while any remain, nothing moves."""
    failures: list[TransferEntityFailure]
    """Entities this strategy cannot move, each with what to do instead."""
    notices: list[str]
    renames: dict[EntityKey, BaseEntity] = field(default_factory=dict)
    """Source key -> the entity it becomes, for every renamed entity that moves."""
    has_claim: bool = False
    """Whether a claim token stands behind `agent` and `claim_expires_at`; without one (an
    org-to-org move) they are stand-ins that the claim document requires."""
    environment_copies: list[EnvironmentCopy] = field(default_factory=list)
    """With `--environments copy`: every source environment, renamed or not (claim-api: those
    the service says it cannot claim, copied and removed from the agent's org before it)."""
    service_answer: AgentClaimResponse | None = None
    """claim-api: the service's own document for this plan (its dry run, or the claim itself)."""
    accepted: frozenset[EntityKey] = frozenset()
    """The failures the resolution map's `accept:` section acknowledges, by key."""
    broken_references: list[BrokenReference] = field(default_factory=list)
    """What names a moved stack or environment by its old name (`toolkit.references`)."""

    def __repr__(self) -> str:
        return (
            f"ClaimPlan({self.source_org!r} -> {self.destination_org!r}, "
            f"strategy={self.strategy!r}, moves={len(self.moves)}, "
            f"conflicts={len(self.conflicts)}, failures={len(self.failures)})"
        )

    @property
    def source_org(self) -> str:
        return self.target.source_org

    @property
    def destination_org(self) -> str:
        return self.target.destination_org

    @property
    def blocked(self) -> bool:
        """Whether a commit of this plan changes nothing (`is_blocked`)."""
        return _blocks(self.strategy, self.conflicts, self.failures)

    def not_landed(self, document: AgentClaimResponse) -> tuple[int, int]:
        """How many stack moves and environment copies of this plan a commit's `document`
        reports as failed (`did_not_land`)."""
        failed = self.did_not_land(document)
        failed_moves = len(failed & {entity_key(move.source) for move in self.moves})
        return failed_moves, len(failed & self._copy_keys())

    def claimed_moves(self) -> list[ClaimedMove]:
        """claim-api: the ESC environments and registry packages the service's claim moves
        with the stacks (neither its failures nor the plan's copies), which the strategy
        verifies in the destination at their planned names."""
        if self.strategy != "claim-api":
            return []
        skipped = self._copy_keys() | {entity_key(failure.entity) for failure in self.failures}
        return [
            ClaimedMove(entity, self.renames.get(key, entity))
            for entity in self.entities
            if entity.kind in CLAIMED_BESIDES_STACKS and (key := entity_key(entity)) not in skipped
        ]

    def did_not_land(self, document: AgentClaimResponse) -> frozenset[EntityKey]:
        """The keys of `document`'s failures beyond this plan's own: its moves and copies that
        did not land, which the same command runs again. The plan's own failures are of
        entities that cannot move (with claim-api, the service's word)."""
        cannot_move = {entity_key(failure.entity) for failure in self.failures}
        keys = (entity_key(failure.entity) for failure in document.failures)
        return frozenset(key for key in keys if key not in cannot_move)

    def conflicts_resolution(self) -> list[RenameEntity]:
        """The renames this plan makes, as the claim API's `conflictsResolution` takes them
        (not the copies' renames: the toolkit makes the copies, not the claim)."""
        copies = self._copy_keys()
        return [
            as_rename(entity, self.renames[key])
            for entity in self.entities
            if (key := entity_key(entity)) in self.renames and key not in copies
        ]

    def answered(self, answer: AgentClaimResponse) -> ClaimPlan:
        """This plan with the service's word on it (claim-api): the agent, the claim window,
        the conflicts and the failures are the service's, and so is its claim document; but
        the environments this plan copies before the claim are no failures, and their
        conflicts with the destination are the plan's own."""
        copies = self._copy_keys()
        return replace(
            self,
            agent=answer.agent,
            claim_expires_at=answer.claim_expires_at,
            conflicts=[
                *answer.conflicts,
                *(c for c in self.conflicts if entity_key(c) in copies),
            ],
            failures=[f for f in answer.failures if entity_key(f.entity) not in copies],
            service_answer=answer,
        )

    def to_claim_response(
        self,
        *,
        failed_moves: Mapping[EntityKey, MoveFailure] | None = None,
        transfer_token: str | None = None,
    ) -> AgentClaimResponse:
        """The plan as the claim document (preview), or a commit's outcome.

        With the service's answer (claim-api) that is the service's document. `failed_moves`
        (source key -> why) adds one failure per stack move, environment copy or claimed move
        (`claimed_moves`) that did not land; its `failureDetails` is the failure's message,
        which says what to do next.
        `transfer_token`, when given, replaces the document's.
        """
        failed_moves = failed_moves or {}
        sources: list[BaseEntity] = [
            *(move.source for move in self.moves),
            *(copy.source for copy in self.environment_copies),
            *(claimed.source for claimed in self.claimed_moves()),
        ]
        unknown = set(failed_moves) - {entity_key(source) for source in sources}
        if unknown:
            raise ValueError(f"not moves of this plan: {sorted(unknown)}")
        failures = [
            *self.failures,
            *(
                TransferEntityFailure(
                    entity=self._listed(source), failure_details=failed_moves[key].message
                )
                for source in sources
                if (key := entity_key(source)) in failed_moves
            ),
        ]
        if self.service_answer is not None:
            token = transfer_token or self.service_answer.transfer_token
            # The copies are listed in their rename form, also once the claim no longer lists
            # them (they left the agent's org before it).
            copies = self._copy_keys()
            entities = [
                self._listed(base_of(entity)) if entity_key(entity) in copies else entity
                for entity in self.service_answer.entities
            ]
            listed = {entity_key(entity) for entity in entities}
            entities += [
                self._listed(copy.source)
                for copy in self.environment_copies
                if entity_key(copy.source) not in listed
            ]
            return self.service_answer.model_copy(
                update={
                    "entities": entities,
                    "conflicts": list(self.conflicts),
                    "failures": failures,
                    "transfer_token": token,
                }
            )
        return AgentClaimResponse(
            agent=self.agent,
            entities=[self._listed(entity) for entity in self.entities],
            conflicts=list(self.conflicts),
            failures=failures,
            claim_expires_at=self.claim_expires_at,
            transfer_token=transfer_token,
        )

    @classmethod
    def from_record(
        cls,
        *,
        target: ClaimTarget,
        strategy: Strategy,
        document: AgentClaimResponse,
        notices: Sequence[str],
        has_claim: bool,
        claim_copies: Collection[str] = (),
        broken_references: Sequence[BrokenReference] = (),
    ) -> ClaimPlan:
        """The plan a run recorded (its `to_claim_response()`), to continue that run.

        The renames are the recorded ones, whatever the source shows now; rename waves are not
        recorded, since a continued run orders its renames from where the stacks are then.
        Environments the plan did not list as failures were to be copied (outside claim-api,
        environments are either failures or copies). With claim-api, the copies are those
        `claim_copies` names (`project/name`, as `claim_copy_names` gives them): the others
        were the service's to move.
        """
        entities = [base_of(entity) for entity in document.entities]
        renames = {
            entity_key(base_of(entity)): target_of(entity)
            for entity in document.entities
            if isinstance(entity, RenameEntity)
        }
        failed = {entity_key(failure.entity) for failure in document.failures}
        copies = [
            copy_of(entity, renames.get(entity_key(entity)))
            for entity in entities
            if isinstance(entity, TransferEntityEnvironment)
            and entity_key(entity) not in failed
            and (strategy != "claim-api" or _copy_name(entity) in claim_copies)
        ]
        return cls(
            target=target,
            strategy=strategy,
            agent=document.agent,
            claim_expires_at=document.claim_expires_at,
            entities=entities,
            moves=[
                move_of(entity, renames.get(entity_key(entity)))
                for entity in entities
                if isinstance(entity, TransferEntityStack)
            ],
            rename_waves=[],
            conflicts=list(document.conflicts),
            failures=list(document.failures),
            notices=list(notices),
            renames=renames,
            has_claim=has_claim,
            environment_copies=copies,
            service_answer=document if strategy == "claim-api" else None,
            broken_references=list(broken_references),
        )

    def claim_copy_names(self) -> list[str]:
        """With claim-api, the environments this plan copies (`project/name`), for the run's
        record: the claim document alone cannot tell them from those the service moves."""
        if self.strategy != "claim-api":
            return []
        return [_copy_name(copy.source) for copy in self.environment_copies]

    def _copy_keys(self) -> set[EntityKey]:
        return {entity_key(copy.source) for copy in self.environment_copies}

    def _listed(self, entity: BaseEntity) -> TransferEntity:
        """`entity` as the claim document lists it: in its rename form when it is renamed."""
        target = self.renames.get(entity_key(entity))
        return entity if target is None else as_rename(entity, target)


def build_plan(
    *,
    target: ClaimTarget,
    source: Inventory,
    destination: Inventory,
    resolution_map: ResolutionMap,
    strategy: Strategy,
    agent: AgentAccountSummary,
    claim_expires_at: datetime,
    has_claim: bool = False,
    service_failures: Sequence[TransferEntityFailure] = (),
    environments: EnvironmentChoice = "report",
) -> ClaimPlan:
    """Plan moving everything `strategy` can move from `source` to `destination`.

    The inventories are those of `target`'s two orgs. `has_claim`: a claim token stands behind
    `agent` and `claim_expires_at`. `service_failures` (claim-api only) are the entities the
    service says it cannot move, in its words: they are the plan's failures, and their kinds do
    not move. `environments="copy"` (transfer, migrate) plans a copy of every source
    environment, whose name conflicts the map resolves as it does stacks'. Raises
    `ResolutionMapError` listing every problem of `resolution_map`. With claim-api,
    `environments="copy"` plans a copy of each environment among `service_failures` instead:
    it is no failure then, since the copy and its removal from the agent's org come first.
    """
    if (source.org, destination.org) != (target.source_org, target.destination_org):
        raise ValueError(
            f"inventories of {source.org} and {destination.org} do not match the target "
            f"{target.source_org} -> {target.destination_org}"
        )
    if service_failures and strategy != "claim-api":
        raise ValueError(f"the {strategy} strategy decides its own failures")
    copied = {
        entity_key(failure.entity)
        for failure in service_failures
        if environments == "copy" and isinstance(failure.entity, TransferEntityEnvironment)
    }
    unmovable = {entity_key(failure.entity) for failure in service_failures} - copied
    # The source's entities in stable order, with their keys: the plan lists them so, and
    # finds each one's rename by its key.
    keyed = [(key, source.by_key[key]) for key in sorted(source.by_key, key=key_order)]
    entities = [entity for _, entity in keyed]
    moving_kinds = {e.kind for key, e in keyed if key not in unmovable}
    kinds = movable_kinds(strategy, environments) - {
        e.kind for e in entities if e.kind not in moving_kinds
    }
    resolution = resolve(source, destination, resolution_map, kinds=kinds)
    keyed_moves = [
        (key, move_of(entity, resolution.renames.get(key)))
        for key, entity in keyed
        if isinstance(entity, TransferEntityStack)
    ]
    moves = [move for _, move in keyed_moves]
    copies = [
        copy_of(entity, resolution.renames.get(key))
        for key, entity in keyed
        if isinstance(entity, TransferEntityEnvironment)
        and (key in copied if strategy == "claim-api" else environments == "copy")
    ]
    renames = dict(resolution.renames)
    renames.update({key: move.target for key, move in keyed_moves if move.renamed})
    rename_waves = (
        order_renames(
            moves,
            occupied=[stack_name(stack) for stack in source.stacks],
            reserved=[stack_name(stack) for stack in destination.stacks],
        )
        if strategy == "transfer"
        else []
    )
    failures = (
        [f for f in service_failures if entity_key(f.entity) not in copied]
        if strategy == "claim-api"
        else [
            TransferEntityFailure(
                entity=entity,
                failure_details=failure_details(entity, strategy, destination_org=destination.org),
            )
            for entity in entities
            if entity.kind not in kinds
        ]
    )
    notices = [*naming_warnings(entities), *resolution.notices]
    if strategy == "migrate" and moves:
        notices.extend(_MIGRATE_NOTICES)
    if copies and strategy == "claim-api":
        names = ", ".join(_copy_name(copy.source) for copy in copies)
        notices.append(
            _CLAIM_API_COPY_NOTICE.format(
                source=source.org, destination=destination.org, names=names
            )
        )
    elif copies:
        notices.append(_COPY_NOTICE)
    elif environments == "copy" and strategy == "claim-api":
        notices.append(_CLAIM_API_LEAVES_NOTICE)
    return ClaimPlan(
        target=target,
        strategy=strategy,
        agent=agent,
        claim_expires_at=claim_expires_at,
        entities=entities,
        moves=moves,
        rename_waves=rename_waves,
        conflicts=sorted(resolution.unresolved, key=stable_order),
        failures=failures,
        notices=notices,
        renames=renames,
        has_claim=has_claim,
        environment_copies=copies,
        accepted=resolution_map.accepted,
    )


def _copy_name(environment: TransferEntityEnvironment) -> str:
    return f"{environment.project_name}/{environment.environment_name}"
