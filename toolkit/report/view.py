"""What every human format of a report shows, pure: the claim document and the run around it
(`ReportContext`) flattened into sorted rows of display text (`ReportView`), one per entity,
with the counts, what blocks and what to do about it, and a one-line outcome.

Every name that reaches a report comes from a service or a map file and is treated as hostile:
the view masks tokens and writes control characters as escapes (`toolkit.display.printable`);
each format escapes it for the markup it lands in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from toolkit.choices import Strategy
from toolkit.display import printable
from toolkit.entities import (
    KINDS,
    EntityKey,
    describe,
    display_name,
    entity_key,
    kind_of,
    make_entity,
    target_of,
)
from toolkit.models import (
    AgentClaimResponse,
    BaseEntity,
    RenameEntity,
    TransferEntityStack,
    TransferEntityStackRename,
)
from toolkit.outcomes import unaccepted_failures
from toolkit.plan import is_blocked
from toolkit.progress import RERUN_HINT, unknown_outcomes
from toolkit.redaction import CODE_FIELD, map_strings, redact_strings
from toolkit.report.advice import unblocking_advice, unblocking_step
from toolkit.report.groups import (
    ACCEPTED,
    CANNOT_MOVE,
    RETRY,
    AdviceGroup,
    FailureGroup,
    ProjectGroup,
    failure_groups,
    project_groups,
)
from toolkit.report.header import claim_window_warning, day, header_rows
from toolkit.report.references import reference_lines

if TYPE_CHECKING:
    from toolkit.plan import ClaimPlan
    from toolkit.references import BrokenReference

Mode = Literal["preview", "commit"]

CONFLICT_HINT = (
    "To fix: add a rename to the resolution map, or run `pulumi-claim resolve` to write one."
)


@dataclass(frozen=True)
class ReportContext:
    """What the document itself does not say: the run around it."""

    mode: Mode
    source_org: str
    destination_org: str
    strategy: Strategy
    outcome: str
    """One line, e.g. "blocked: 2 unresolved conflicts; nothing was changed"."""
    notices: tuple[str, ...] = ()
    """Warnings and notes, e.g. a rename of an entity that had no conflict."""
    generated_at: datetime | None = None
    """Shown when given, and the time the claim window is measured from; left out, two
    renders of one document are identical."""
    has_claim: bool = True
    """Whether a claim token stands behind the document's agent and claim window; without
    one (an org-to-org move) the document holds stand-ins, which the reports do not show."""
    landing: str | None = None
    """What the run's landing did, or why it failed (`status` shows the journal's record)."""
    copied: frozenset[EntityKey] = frozenset()
    """The environments recreated in the destination rather than moved (`--environments
    copy`), by their source's key: a reviewer is to see they are copies, made anew."""
    retryable: frozenset[EntityKey] = frozenset()
    """The failures that running the same command again can settle (moves that did not land),
    by their entity's key; every other failure is of an entity that cannot move."""
    accepted: frozenset[EntityKey] = frozenset()
    """The failures the resolution map's `accept:` section acknowledges: shown as accepted,
    and not counted against the exit code."""
    run_id: str | None = None
    """The commit's run, where the command knows it: what `status` and a re-run refer to."""
    landing_changes: tuple[str, ...] = ()
    """What the landing changes (or changed), one line a resource: `create team platform`."""
    broken_references: tuple[BrokenReference, ...] = ()
    """What names a moved stack or environment by its old name (`toolkit.references`)."""


def report_context(
    plan: ClaimPlan, mode: Mode, document: AgentClaimResponse, *, now: datetime | None = None
) -> ReportContext:
    """What a report says around the document: orgs, strategy, notices, a one-line outcome,
    and the time it was made (`now`, by default the current time)."""
    return ReportContext(
        mode=mode,
        source_org=plan.source_org,
        destination_org=plan.destination_org,
        strategy=plan.strategy,
        outcome=_outcome(plan, mode, document),
        notices=tuple(plan.notices),
        generated_at=now or datetime.now(UTC).replace(microsecond=0),
        has_claim=plan.has_claim,
        copied=copied_environments(plan),
        retryable=plan.did_not_land(document),
        accepted=plan.accepted,
        broken_references=tuple(plan.broken_references),
    )


def copied_environments(plan: ClaimPlan) -> frozenset[EntityKey]:
    """The keys of the environments `plan` copies, for `ReportContext.copied`."""
    return frozenset(entity_key(copy.source) for copy in plan.environment_copies)


def _outcome(plan: ClaimPlan, mode: Mode, document: AgentClaimResponse) -> str:
    if document.conflicts:
        return (
            f"blocked: {len(document.conflicts)} unresolved conflict(s); nothing was changed. "
            "Rename them in a resolution map (pulumi-claim resolve writes one)."
        )
    if is_blocked(document, plan.strategy, plan.did_not_land(document)):
        return (
            f"blocked: the service cannot claim {len(document.failures)} entit(ies); nothing "
            "was changed. Remove or copy them first (see What to do)."
        )
    failed_moves, failed_copies = plan.not_landed(document)
    moved = len(plan.moves) - failed_moves
    verb = "would move" if mode == "preview" else "moved"
    counts = [f"{moved} of {len(plan.moves)} stack(s)", *_claimed_counts(plan, document)]
    line = f"{verb} {_listed_counts(counts)}"
    if copies := len(plan.environment_copies):
        verb = "would copy" if mode == "preview" else "copied"
        line += f" and {verb} {copies - failed_copies} of {copies} environment(s)"
    unknown = unknown_outcomes(f.failure_details for f in document.failures)
    if unknown:
        line += (
            f"; {unknown} of unknown outcome (run the same command again to settle them: it "
            "looks where each stack is)"
        )
    retryable = len(plan.did_not_land(document))
    if failed := retryable - unknown:
        line += f"; {failed} failed (run the same command again)"
    if cannot_move := len(document.failures) - retryable:
        line += f"; {cannot_move} cannot move"
        if accepted := len(document.failures) - len(
            unaccepted_failures(document.failures, plan.accepted)
        ):
            line += f", {accepted} of them accepted"
    return line


CLAIMED_NOUNS = {
    "TransferEntityEnvironment": "environment(s)",
    "TransferEntityRegistryPackage": "registry package(s)",
}
"""How the outcome line counts what the service's claim moves besides stacks."""


def _claimed_counts(plan: ClaimPlan, document: AgentClaimResponse) -> list[str]:
    """The environments and registry packages the claim moves (or moved), per kind: `2
    environment(s)` when all of them land, `1 of 2 environment(s)` when some do not."""
    failed = plan.did_not_land(document)
    counts = []
    for kind, noun in CLAIMED_NOUNS.items():
        planned = [move for move in plan.claimed_moves() if move.source.kind == kind]
        landed = sum(entity_key(move.source) not in failed for move in planned)
        if planned:
            total = "" if landed == len(planned) else f" of {len(planned)}"
            counts.append(f"{landed}{total} {noun}")
    return counts


def _listed_counts(counts: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(counts[:-1]), counts[-1]] if len(counts) > 1 else counts)


def _stale_acceptances(document: AgentClaimResponse, context: ReportContext) -> tuple[str, ...]:
    """A warning for each `accept:` entry that names no failure of this claim: a warning, not
    an error, since a known failure that went away is good news, and must not turn a scheduled
    job red; the entry is left for the user to remove."""
    failed = {entity_key(failure.entity) for failure in document.failures}
    return tuple(
        f"warning: accept: {describe(make_entity(key[0], key[1:]))} is not a failure of this "
        "claim; remove it from the resolution map's accept: section"
        for key in sorted(context.accepted - failed)
    )


ActionKind = Literal["move", "rename", "blocked", "failed", "retry"]
Tone = Literal["neutral", "good", "warn", "bad"]
NOT_APPLICABLE = "\N{EM DASH}"
"""Shown for facts a kind does not have (resources and last update of an environment)."""


@dataclass(frozen=True)
class InventoryRow:
    kind: str
    name: str
    resources: str
    last_update: str
    action: str
    action_kind: ActionKind = field(metadata=CODE_FIELD)


@dataclass(frozen=True)
class ConflictRow:
    kind: str
    name: str
    taken_name: str
    """The name that already exists in the destination (the rename target, if one was asked)."""
    reason: str
    """Why it blocks, naming the taken name only where it is not the entity's own."""


@dataclass(frozen=True)
class FailureRow:
    kind: str
    name: str
    failure: str
    """`RETRY` or `CANNOT_MOVE`: whether the same command again can settle it."""
    reason: str


@dataclass(frozen=True)
class Count:
    label: str
    value: int
    tone: Tone = field(metadata=CODE_FIELD)


@dataclass(frozen=True)
class ReportView:
    """The document and its context, flattened into sorted rows of display text."""

    title: str
    header: tuple[tuple[str, str], ...]
    counts: tuple[Count, ...]
    inventory: tuple[InventoryRow, ...]
    conflicts: tuple[ConflictRow, ...]
    failures: tuple[FailureRow, ...]
    notices: tuple[str, ...]
    next_steps: tuple[str, ...]
    """For a blocked claim: what to do about each entity that blocks it."""
    outcome: str
    outcome_tone: Tone = field(metadata=CODE_FIELD)
    conflict_hint: str = CONFLICT_HINT
    mode: Mode = field(default="preview", metadata=CODE_FIELD)
    advice: tuple[AdviceGroup, ...] = ()
    """`next_steps` with identical advice given once, for reports that list many entities."""
    renames: tuple[InventoryRow, ...] = ()
    """The entities that move under a new name: a reviewer approves each."""
    failure_groups: tuple[FailureGroup, ...] = ()
    projects: tuple[ProjectGroup, ...] = ()
    """The plain moves (no rename, no failure, no conflict), per project."""
    landing_changes: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    """The references that break, one line each (`toolkit.report.references`)."""


def build_view(
    document: AgentClaimResponse, context: ReportContext, secrets: Iterable[str] = ()
) -> ReportView:
    """Flatten the document into rows, one per entity, sorted by kind then name; every text
    in them masked (`toolkit.redaction.redact_strings`) before a layout can wrap a token, then
    made printable (`toolkit.display.printable`): no format shows a control character."""
    conflicts = {entity_key(entity): entity for entity in document.conflicts}
    failed = {entity_key(failure.entity) for failure in document.failures}

    # Conflicts and failures normally repeat an inventory entity; any that do not still get a row.
    entities: dict[EntityKey, BaseEntity | RenameEntity] = {}
    for entity in [*document.entities, *conflicts.values(), *(f.entity for f in document.failures)]:
        entities.setdefault(entity_key(entity), entity)

    inventory = sorted(
        (
            _inventory_row(
                entity,
                failed=key in failed,
                accepted=key in context.accepted,
                conflicting=key in conflicts,
                copied=key in context.copied,
                context=context,
            )
            for key, entity in entities.items()
        ),
        key=lambda row: (_KIND_ORDER[row.kind], row.name.casefold(), row.name, row.action),
    )
    conflict_rows = sorted(
        (_conflict_row(entity, context.destination_org) for entity in document.conflicts),
        key=lambda row: (_KIND_ORDER[row.kind], row.name.casefold(), row.name, row.taken_name),
    )
    failure_rows = sorted(
        (
            FailureRow(
                _kind(failure.entity),
                _name_with_target(failure.entity),
                RETRY if entity_key(failure.entity) in context.retryable else CANNOT_MOVE,
                f"{ACCEPTED}: {failure.failure_details}"
                if entity_key(failure.entity) in context.accepted
                else failure.failure_details,
            )
            for failure in document.failures
        ),
        key=lambda row: (
            row.failure != RETRY,
            _KIND_ORDER[row.kind],
            row.name.casefold(),
            row.name,
            row.reason,
        ),
    )
    moving = [row for row in inventory if row.action_kind in ("move", "rename")]
    renamed = [row for row in moving if row.action_kind == "rename"]
    counts = (
        Count("Entities", len(inventory), "neutral"),
        Count(
            "To move" if context.mode == "preview" else "Moved",
            len(moving),
            "good" if moving else "neutral",
        ),
        Count("Renamed", len(renamed), "neutral"),
        Count("Conflicts", len(conflict_rows), "bad" if conflict_rows else "good"),
        Count("Failures", len(failure_rows), "warn" if failure_rows else "good"),
    )
    blocked = is_blocked(document, context.strategy, context.retryable)
    view = ReportView(
        title=f"pulumi-claim {context.mode}: {context.source_org} → {context.destination_org}",
        header=header_rows(document, context),
        counts=counts,
        inventory=tuple(inventory),
        conflicts=tuple(conflict_rows),
        failures=tuple(failure_rows),
        notices=_notices(document, context),
        next_steps=_next_steps(document, context) if blocked else _retry_steps(context),
        advice=_advice(document, context) if blocked else _retry_advice(context, failure_rows),
        outcome=context.outcome,
        outcome_tone="bad"
        if blocked
        else "warn"
        if unaccepted_failures(document.failures, context.accepted)
        else "good",
        mode=context.mode,
        renames=tuple(renamed),
        failure_groups=failure_groups(failure_rows),
        projects=project_groups(row for row in inventory if row.action_kind == "move"),
        landing_changes=context.landing_changes,
        references=reference_lines(context.broken_references),
    )
    return map_strings(redact_strings(view, secrets), printable)


@dataclass(frozen=True)
class SummaryView:
    """What the summary on stderr after a report says of it: the report's notices and
    outcome, as `build_view` shows them."""

    notices: tuple[str, ...]
    outcome: str


def build_summary(
    document: AgentClaimResponse, context: ReportContext, secrets: Iterable[str] = ()
) -> SummaryView:
    """The notices and outcome of `build_view`, masked and printable as there, without the
    rows: a report of thousands of entities is not flattened and masked again for two lines."""
    summary = SummaryView(notices=_notices(document, context), outcome=context.outcome)
    return map_strings(redact_strings(summary, secrets), printable)


def _notices(document: AgentClaimResponse, context: ReportContext) -> tuple[str, ...]:
    """The claim window's warning, the run's notices, then the acceptances that name no
    failure."""
    return (
        *claim_window_warning(document, context),
        *context.notices,
        *_stale_acceptances(document, context),
    )


def _next_steps(document: AgentClaimResponse, context: ReportContext) -> tuple[str, ...]:
    """One line per entity that blocks the claim, in report order, saying what to do."""
    orgs = {"source_org": context.source_org, "destination_org": context.destination_org}
    # Only with claim-api does a failure block; otherwise the Failures table says what to do.
    refusals = document.failures if context.strategy == "claim-api" else []
    blocking = [(entity, True) for entity in document.conflicts] + [
        (failure.entity, False) for failure in refusals
    ]
    blocking.sort(
        key=lambda item: (not item[1], _KIND_ORDER[_kind(item[0])], display_name(item[0]))
    )
    return tuple(
        unblocking_step(entity, conflict=conflict, **orgs) for entity, conflict in blocking
    )


def _retry_steps(context: ReportContext) -> tuple[str, ...]:
    """For a claim that went through with moves that did not land: run it again."""
    if not context.retryable:
        return ()
    return (
        f"{len(context.retryable)} move(s) failed: {RERUN_HINT}; what cannot move stays "
        "(the Failures table says what to do about each)",
    )


def _conflict_row(entity: BaseEntity | RenameEntity, destination_org: str) -> ConflictRow:
    name, target = display_name(entity), _target(entity)
    taken = name if target is None else display_name(target)
    reason = (
        f"blocked: name taken in {destination_org}"
        if taken == name
        else f"blocked: new name {taken} taken in {destination_org}"
    )
    return ConflictRow(_kind(entity), name, taken, reason)


def _advice(document: AgentClaimResponse, context: ReportContext) -> tuple[AdviceGroup, ...]:
    """`_next_steps` with the entities that call for the same advice in one group: "121
    stacks: the name is taken in acme; rename it ..." and their names."""
    refusals = document.failures if context.strategy == "claim-api" else []
    blocking = [(entity, True) for entity in document.conflicts] + [
        (failure.entity, False) for failure in refusals
    ]
    groups: dict[tuple[bool, int], list[BaseEntity | RenameEntity]] = {}
    for entity, conflict in blocking:
        groups.setdefault((not conflict, _KIND_ORDER[_kind(entity)]), []).append(entity)
    orgs = {"source_org": context.source_org, "destination_org": context.destination_org}
    advice = []
    for (not_conflict, _), entities in sorted(groups.items(), key=lambda item: item[0]):
        if len(entities) == 1:
            advice.append(
                AdviceGroup(unblocking_step(entities[0], conflict=not not_conflict, **orgs))
            )
            continue
        kind = kind_of(entities[0])
        shared = unblocking_advice(kind, conflict=not not_conflict, name="<name>", **orgs)
        names = sorted(
            {display_name(entity) for entity in entities}, key=lambda n: (n.casefold(), n)
        )
        advice.append(AdviceGroup(f"{len(names)} {kind.label}s: {shared}", tuple(names)))
    return tuple(advice)


def _retry_advice(
    context: ReportContext, failures: Iterable[FailureRow]
) -> tuple[AdviceGroup, ...]:
    """`_retry_steps`, naming the moves that a re-run settles."""
    return tuple(
        AdviceGroup(step, tuple(row.name for row in failures if row.failure == RETRY))
        for step in _retry_steps(context)
    )


def _inventory_row(
    entity: BaseEntity | RenameEntity,
    *,
    failed: bool,
    accepted: bool,
    conflicting: bool,
    copied: bool,
    context: ReportContext,
) -> InventoryRow:
    """One entity's row; an entity that is copied (an environment with `--environments copy`)
    says "copy" where one that moves says "move", and counts as moving all the same."""
    target = _target(entity)
    verb = "copy" if copied else "move"
    action: str
    action_kind: ActionKind
    if failed and entity_key(entity) in context.retryable:
        action, action_kind = RETRY, "retry"
    elif failed:
        action, action_kind = f"cannot {verb}", "failed"
        if accepted:
            action = f"{action} ({ACCEPTED})"
    elif conflicting:
        action, action_kind = f"blocked: name taken in {context.destination_org}", "blocked"
    elif target is not None:
        action, action_kind = f"{verb} as {display_name(target)}", "rename"
    else:
        action, action_kind = verb, "move"
    resources, last_update = NOT_APPLICABLE, NOT_APPLICABLE
    if isinstance(entity, TransferEntityStack | TransferEntityStackRename):
        resources = str(entity.resource_count)
        if entity.last_update is not None:
            last_update = day(entity.last_update)
    return InventoryRow(
        _kind(entity), display_name(entity), resources, last_update, action, action_kind
    )


# --- Entity kinds and display names ------------------------------------------------------

_KIND_ORDER = {kind.label: order for order, kind in enumerate(KINDS)}


def _kind(entity: BaseEntity | RenameEntity) -> str:
    return kind_of(entity).label


def _target(entity: BaseEntity | RenameEntity) -> BaseEntity | None:
    return target_of(entity) if isinstance(entity, RenameEntity) else None


def _name_with_target(entity: BaseEntity | RenameEntity) -> str:
    target = _target(entity)
    return (
        display_name(entity)
        if target is None
        else f"{display_name(entity)} → {display_name(target)}"
    )
