"""The claim plan: rename ordering, failures by strategy and the claim document it produces."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi_cloud_sdk._support import default_encoder

from toolkit.entities import Inventory, StackName, display_name, entity_key, stack_name
from toolkit.errors import ResolutionMapError
from toolkit.models import (
    AgentAccountSummary,
    AgentClaimResponse,
    TransferEntityEnvironment,
    TransferEntityEnvironmentRename,
    TransferEntityFailure,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
    TransferEntityStackRename,
)
from toolkit.moves import RenameStep, StackMove, order_renames
from toolkit.plan import (
    NOT_CLAIMED,
    ClaimPlan,
    ClaimTarget,
    EnvironmentChoice,
    Strategy,
    build_plan,
    failure_details,
    is_blocked,
    movable_kinds,
)
from toolkit.progress import MoveFailure
from toolkit.report.advice import unblocking_step
from toolkit.resolution_map import ResolutionMap, parse_resolution_map

AGENT = AgentAccountSummary(
    login="agent-abc123",
    org_name="agent-abc123",
    created_at=datetime(2026, 11, 1, 9, tzinfo=UTC),
)
EXPIRES = datetime(2026, 12, 1, 9, tzinfo=UTC)
UPDATED = datetime(2026, 11, 20, 10, tzinfo=UTC)


def stack(name: str, resources: int = 0) -> TransferEntityStack:
    project, stack_name = name.split("/")
    return TransferEntityStack(
        project_name=project,
        stack_name=stack_name,
        resource_count=resources,
        last_update=UPDATED if resources else None,
    )


def move(source: str, target: str) -> StackMove:
    return StackMove(source=stack(source), target=stack(target))


SOURCE = Inventory(
    org="agent-abc123",
    stacks=[stack("web/prod", 4), stack("web/dev", 12), stack("api/dev", 3)],
    environments=[TransferEntityEnvironment(project_name="default", environment_name="secrets")],
    insights_accounts=[TransferEntityInsightsAccount(name="aws-main")],
    registry_packages=[
        TransferEntityRegistryPackage(source="private", publisher="agent-abc123", name="vpc")
    ],
)
DESTINATION = Inventory(
    org="acme",
    stacks=[stack("web/dev"), stack("web/dev-agent")],
    environments=[TransferEntityEnvironment(project_name="default", environment_name="secrets")],
)
TARGET = ClaimTarget(source_org=SOURCE.org, destination_org=DESTINATION.org)
RESOLVED = parse_resolution_map(
    "stacks: {web/dev: web/dev-2}\nenvironments: {default/secrets: default/secrets-agent}\n"
)


def plan(
    resolution_map: ResolutionMap = RESOLVED,
    strategy: Strategy = "transfer",
    source: Inventory = SOURCE,
) -> ClaimPlan:
    return build_plan(
        target=TARGET,
        source=source,
        destination=DESTINATION,
        resolution_map=resolution_map,
        strategy=strategy,
        agent=AGENT,
        claim_expires_at=EXPIRES,
    )


# --- Strategies and failures -----------------------------------------------------------------


def test_movable_kinds_by_strategy() -> None:
    assert movable_kinds("transfer") == movable_kinds("migrate") == {"TransferEntityStack"}
    assert movable_kinds("claim-api") == {
        "TransferEntityStack",
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
        "TransferEntityRegistryPackage",
    }


def test_failure_details_say_what_to_do_instead() -> None:
    environment = TransferEntityEnvironment(project_name="default", environment_name="secrets")
    details = failure_details(environment, "transfer", destination_org="acme")
    assert details.startswith("ESC environments cannot be transferred between organizations")
    assert "recreate default/secrets in acme (esc env init acme/default/secrets)" in details
    package = SOURCE.registry_packages[0]
    assert "--publisher acme" in failure_details(package, "transfer", destination_org="acme")
    account = SOURCE.insights_accounts[0]
    assert "aws-main" in failure_details(account, "migrate", destination_org="acme")


def test_failure_details_refuse_an_entity_that_can_move() -> None:
    with pytest.raises(ValueError):
        failure_details(stack("web/dev"), "transfer", destination_org="acme")
    with pytest.raises(ValueError):
        failure_details(SOURCE.insights_accounts[0], "claim-api", destination_org="acme")


def test_claim_api_failures_are_the_services_and_nothing_else() -> None:
    assert plan(strategy="claim-api").failures == []
    said = [TransferEntityFailure(entity=SOURCE.insights_accounts[0], failure_details="no")]
    claim = build_plan(
        target=TARGET,
        source=SOURCE,
        destination=DESTINATION,
        resolution_map=RESOLVED,
        strategy="claim-api",
        agent=AGENT,
        claim_expires_at=EXPIRES,
        service_failures=said,
    )
    assert claim.failures == said
    assert claim.blocked
    with pytest.raises(ValueError):
        build_plan(
            target=TARGET,
            source=SOURCE,
            destination=DESTINATION,
            resolution_map=RESOLVED,
            strategy="transfer",
            agent=AGENT,
            claim_expires_at=EXPIRES,
            service_failures=said,
        )


def test_a_failure_blocks_only_the_claim_api_and_only_before_it_started() -> None:
    failure = TransferEntityFailure(entity=SOURCE.insights_accounts[0], failure_details="no")
    document = plan(strategy="claim-api").to_claim_response()
    assert not is_blocked(document, "claim-api")
    failed = document.model_copy(update={"failures": [failure]})
    assert is_blocked(failed, "claim-api")
    assert not is_blocked(failed, "transfer")
    assert not is_blocked(failed.model_copy(update={"transfer_token": "claim-1"}), "claim-api")
    conflicted = document.model_copy(update={"conflicts": [stack("web/dev")]})
    assert is_blocked(conflicted, "transfer")
    assert is_blocked(conflicted.model_copy(update={"transfer_token": "run-1"}), "claim-api")


def test_the_service_answer_is_the_document_and_decides_what_blocks() -> None:
    claim = plan(strategy="claim-api")
    failure = TransferEntityFailure(entity=SOURCE.insights_accounts[0], failure_details="said")
    answer = claim.to_claim_response().model_copy(
        update={"failures": [failure], "claim_expires_at": datetime(2027, 1, 1, tzinfo=UTC)}
    )
    answered = claim.answered(answer)
    assert answered.blocked
    assert answered.to_claim_response() == answer
    assert answered.claim_expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    lost = {entity_key(stack("web/prod")): MoveFailure("verify", "not there")}
    started = answered.to_claim_response(failed_moves=lost, transfer_token="claim-1")
    assert started.transfer_token == "claim-1"
    assert [f.failure_details for f in started.failures] == ["said", "not there"]


def test_conflicts_resolution_is_the_plans_renames_in_wire_form() -> None:
    renames = plan(strategy="claim-api").conflicts_resolution()
    assert [(type(r).__name__, display_name(r), display_name(r.rename_as)) for r in renames] == [
        ("TransferEntityStackRename", "web/dev", "web/dev-2"),
        ("TransferEntityEnvironmentRename", "default/secrets", "default/secrets-agent"),
    ]


def test_unblocking_steps_say_what_to_do_with_each_kind() -> None:
    orgs = {"source_org": "agent-abc123", "destination_org": "acme"}
    assert "pulumi-claim resolve" in unblocking_step(stack("web/dev"), conflict=True, **orgs)
    environment = unblocking_step(SOURCE.environments[0], conflict=False, **orgs)
    assert "esc env get agent-abc123/default/secrets" in environment
    assert "esc env rm agent-abc123/default/secrets" in environment
    account = unblocking_step(SOURCE.insights_accounts[0], conflict=False, **orgs)
    assert "remove it in agent-abc123 before claiming" in account
    package = unblocking_step(SOURCE.registry_packages[0], conflict=False, **orgs)
    assert "--publisher acme" in package


# --- Ordering renames --------------------------------------------------------------------------


def simulate(waves: list[list[RenameStep]], occupied: set[StackName]) -> dict[StackMove, StackName]:
    """Run the waves on a set of names, failing on any collision; where each move ends up."""
    names = set(occupied)
    position: dict[StackMove, StackName] = {}
    for wave in waves:
        sources = [(step.from_project, step.from_stack) for step in wave]
        targets = [(step.to_project, step.to_stack) for step in wave]
        assert len(set(targets)) == len(targets), "two steps of a wave share a target"
        for step, source, target in zip(wave, sources, targets, strict=True):
            assert source in names, f"{source} is not there to rename"
            assert target not in names, f"{target} is taken when its wave runs"
            assert position.get(step.move, stack_name(step.move.source)) == source
        names.difference_update(sources)
        names.update(targets)
        for step, target in zip(wave, targets, strict=True):
            position[step.move] = target
    return position


def hops(waves: list[list[RenameStep]]) -> list[list[str]]:
    return [
        [f"{s.from_project}/{s.from_stack}->{s.to_project}/{s.to_stack}" for s in wave]
        for wave in waves
    ]


def test_unrenamed_moves_need_no_renames() -> None:
    assert order_renames([move("web/a", "web/a")], {("web", "a")}) == []


def test_a_chain_renames_its_last_link_first() -> None:
    moves = [move("web/a", "web/b"), move("web/b", "web/c"), move("web/c", "web/d")]
    waves = order_renames(moves, {("web", "a"), ("web", "b"), ("web", "c")})
    assert hops(waves) == [["web/c->web/d"], ["web/b->web/c"], ["web/a->web/b"]]


def test_independent_renames_share_one_wave() -> None:
    moves = [move("web/a", "web/a-2"), move("api/a", "platform/a")]
    waves = order_renames(moves, {("web", "a"), ("api", "a")})
    assert hops(waves) == [["web/a->web/a-2", "api/a->platform/a"]]


def test_a_swap_goes_through_a_temporary_name() -> None:
    moves = [move("web/a", "web/b"), move("web/b", "web/a")]
    waves = order_renames(moves, {("web", "a"), ("web", "b")})
    assert hops(waves) == [
        ["web/a->web/a-claim-tmp"],
        ["web/b->web/a"],
        ["web/a-claim-tmp->web/b"],
    ]


def test_the_temporary_name_avoids_every_name_in_use() -> None:
    moves = [move("web/a", "web/b"), move("web/b", "web/a")]
    occupied = {("web", "a"), ("web", "b"), ("web", "a-claim-tmp")}
    waves = order_renames(moves, occupied, reserved={("web", "a-claim-tmp-2")})
    assert hops(waves)[0] == ["web/a->web/a-claim-tmp-3"]


def test_the_temporary_name_stays_within_100_characters() -> None:
    long_a, long_b = "web/" + "a" * 100, "web/" + "b" * 100
    waves = order_renames(
        [move(long_a, long_b), move(long_b, long_a)], {("web", "a" * 100), ("web", "b" * 100)}
    )
    assert waves[0][0].to_stack == "a" * 90 + "-claim-tmp"


def test_a_target_held_by_a_stack_that_stays_is_refused() -> None:
    with pytest.raises(ValueError, match="web/b"):
        order_renames([move("web/a", "web/b")], {("web", "a"), ("web", "b")})


def test_two_moves_to_one_name_are_refused() -> None:
    with pytest.raises(ValueError):
        order_renames([move("web/a", "web/c"), move("web/b", "web/c")], {("web", "a")})


@st.composite
def _moves(draw: st.DrawFn) -> tuple[list[StackMove], set[StackName], set[StackName]]:
    """Moves whose final names are distinct: sources mapped one-to-one into a pool of names."""
    pool = draw(
        st.lists(
            st.tuples(st.sampled_from(["web", "api"]), st.sampled_from("abcdefg")),
            unique=True,
            min_size=1,
            max_size=12,
        )
    )
    count = draw(st.integers(1, len(pool)))
    sources = pool[:count]
    finals = draw(st.permutations(pool))[:count]
    idle = [name for name in pool[count:] if name not in finals]
    occupied = set(sources) | set(
        draw(st.lists(st.sampled_from(idle), unique=True)) if idle else ()
    )
    reserved_names = st.sampled_from(["a-claim-tmp", "b-claim-tmp", "b"])
    reserved = set(draw(st.lists(st.tuples(st.just("web"), reserved_names))))
    moves = [
        StackMove(
            source=TransferEntityStack(project_name=p, stack_name=s),
            target=TransferEntityStack(project_name=tp, stack_name=ts),
        )
        for (p, s), (tp, ts) in zip(sources, finals, strict=True)
    ]
    return moves, occupied, reserved


@settings(max_examples=300, deadline=None)
@given(_moves())
def test_rename_waves_never_collide_and_end_at_every_target(
    case: tuple[list[StackMove], set[StackName], set[StackName]],
) -> None:
    moves, occupied, reserved = case
    waves = order_renames(moves, occupied, reserved=reserved)
    position = simulate(waves, occupied)
    for stack_move in moves:
        landed = position.get(stack_move, stack_name(stack_move.source))
        assert landed == stack_name(stack_move.target)
    temporary = [
        (step.to_project, step.to_stack)
        for wave in waves
        for step in wave
        if (step.to_project, step.to_stack) != stack_name(step.move.target)
    ]
    assert not set(temporary) & (occupied | reserved)
    renamed = sum(1 for stack_move in moves if stack_move.renamed)
    assert sum(len(wave) for wave in waves) <= renamed + renamed // 2


# --- The plan --------------------------------------------------------------------------------


def test_the_plan_moves_every_stack_and_fails_what_the_strategy_cannot_move() -> None:
    claim = plan()
    assert [(m.source, m.target) for m in claim.moves] == [
        (stack("api/dev", 3), stack("api/dev", 3)),
        (stack("web/dev", 12), stack("web/dev-2", 12)),
        (stack("web/prod", 4), stack("web/prod", 4)),
    ]
    assert [m.renamed for m in claim.moves] == [False, True, False]
    assert hops(claim.rename_waves) == [["web/dev->web/dev-2"]]
    assert [entity_key(f.entity)[0] for f in claim.failures] == [
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
        "TransferEntityRegistryPackage",
    ]
    assert claim.conflicts == []
    assert not claim.blocked
    assert claim.notices == [
        "ESC environment default/secrets cannot move with this strategy; its rename is not used"
    ]


def test_the_plan_carries_its_target() -> None:
    claim = plan()
    assert claim.target == TARGET
    assert (claim.source_org, claim.destination_org) == ("agent-abc123", "acme")


def test_inventories_of_other_orgs_than_the_target_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match the target"):
        build_plan(
            target=ClaimTarget(source_org="someone-else", destination_org="acme"),
            source=SOURCE,
            destination=DESTINATION,
            resolution_map=RESOLVED,
            strategy="transfer",
            agent=AGENT,
            claim_expires_at=EXPIRES,
        )


def test_unresolved_conflicts_block_the_plan() -> None:
    claim = plan(ResolutionMap.empty())
    assert claim.blocked
    assert claim.conflicts == [stack("web/dev", 12)]
    document = claim.to_claim_response()
    assert document.conflicts == [stack("web/dev", 12)]


def test_a_refused_map_raises_with_every_problem() -> None:
    bad = parse_resolution_map("stacks: {web/dev: web/dev-agent, web/nope: web/x}")
    with pytest.raises(ResolutionMapError) as refused:
        plan(bad)
    assert len(refused.value.problems) == 2


def test_only_the_transfer_strategy_renames_in_the_source_org() -> None:
    assert plan(strategy="migrate").rename_waves == []
    assert plan(strategy="claim-api").rename_waves == []
    assert any("latest state" in notice for notice in plan(strategy="migrate").notices)


def test_claim_api_renames_environments_in_the_document() -> None:
    document = plan(strategy="claim-api").to_claim_response()
    renamed = [e for e in document.entities if isinstance(e, TransferEntityEnvironmentRename)]
    assert [e.rename_as.environment_name for e in renamed] == ["secrets-agent"]
    assert document.failures == []


def test_the_document_lists_renamed_stacks_in_their_rename_form() -> None:
    document = plan().to_claim_response()
    assert len(document.entities) == 6
    (renamed,) = [e for e in document.entities if isinstance(e, TransferEntityStackRename)]
    assert (renamed.stack_name, renamed.rename_as.stack_name) == ("dev", "dev-2")
    assert renamed.rename_as.resource_count == renamed.resource_count == 12
    assert document.claim_expires_at == EXPIRES
    assert document.agent == AGENT
    assert document.transfer_token is None


def test_failed_moves_become_failures_in_rename_form() -> None:
    claim = plan()
    failed = {
        entity_key(stack("web/prod")): MoveFailure("transfer", "transfer to acme failed: 503"),
        entity_key(stack("web/dev")): MoveFailure("rename", "rename in agent-abc123 failed: 409"),
    }
    document = claim.to_claim_response(failed_moves=failed, transfer_token="run-1")
    assert document.transfer_token == "run-1"
    extra = document.failures[len(claim.failures) :]
    assert [(type(f.entity).__name__, f.failure_details) for f in extra] == [
        ("TransferEntityStackRename", "rename in agent-abc123 failed: 409"),
        ("TransferEntityStack", "transfer to acme failed: 503"),
    ]


def test_failed_moves_must_be_moves_of_the_plan() -> None:
    with pytest.raises(ValueError):
        plan().to_claim_response(
            failed_moves={entity_key(stack("web/other")): MoveFailure("transfer", "?")}
        )


@pytest.mark.parametrize("strategy", ["transfer", "migrate", "claim-api"])
def test_the_document_deserializes_with_the_official_sdk(strategy: Strategy) -> None:
    claim = plan(strategy=strategy)
    document = claim.to_claim_response(
        failed_moves={entity_key(stack("web/dev")): MoveFailure("transfer", "transfer failed")},
        transfer_token="run-1",
    )
    sdk_document = default_encoder.deserialize(document.to_wire(), "AgentClaimResponse")
    assert type(sdk_document).__name__ == "AgentClaimResponse"
    assert len(sdk_document.entities) == len(document.entities)
    assert type(sdk_document.failures[-1].entity).__name__ == "TransferEntityStackRename"
    again = default_encoder.sanitize_for_serialization(sdk_document)
    assert AgentClaimResponse.model_validate(again) == document


def test_the_document_does_not_depend_on_inventory_order() -> None:
    reordered = Inventory(
        org=SOURCE.org,
        stacks=list(reversed(SOURCE.stacks)),
        environments=SOURCE.environments,
        insights_accounts=SOURCE.insights_accounts,
        registry_packages=SOURCE.registry_packages,
    )
    assert plan(source=reordered).to_claim_response() == plan().to_claim_response()


def test_a_swap_in_the_map_is_planned_without_collisions() -> None:
    source = Inventory(org="agent-abc123", stacks=[stack("web/blue"), stack("web/green")])
    swap = parse_resolution_map("stacks: {web/blue: web/green, web/green: web/blue}")
    claim = plan(swap, source=source)
    occupied: Sequence[StackName] = [("web", "blue"), ("web", "green")]
    position = simulate(claim.rename_waves, set(occupied))
    assert sorted(position.values()) == occupied
    assert len(claim.rename_waves) == 3


def test_a_large_plan_and_its_inventory_repr_as_summaries() -> None:
    """asyncio and anyio put a finished task's result into messages they build; a plan of
    thousands of moves must not repr as all of them."""
    stacks = [TransferEntityStack(project_name="web", stack_name=f"s-{i}") for i in range(5000)]
    source = Inventory(org=SOURCE.org, stacks=stacks)
    large = plan(ResolutionMap.empty(), source=source)
    assert repr(large) == (
        "ClaimPlan('agent-abc123' -> 'acme', strategy='transfer', moves=5000, conflicts=0, "
        "failures=0)"
    )
    assert repr(source) == (
        "Inventory(org='agent-abc123', stacks=5000, environments=0, insights_accounts=0, "
        "registry_packages=0)"
    )


# --- Copying environments --------------------------------------------------------------------

SECRETS = TransferEntityEnvironment(project_name="default", environment_name="secrets")
SECRETS_AGENT = TransferEntityEnvironment(project_name="default", environment_name="secrets-agent")


def copying_plan(
    resolution_map: ResolutionMap = RESOLVED, strategy: Strategy = "transfer"
) -> ClaimPlan:
    return build_plan(
        target=TARGET,
        source=SOURCE,
        destination=DESTINATION,
        resolution_map=resolution_map,
        strategy=strategy,
        agent=AGENT,
        claim_expires_at=EXPIRES,
        environments="copy",
    )


@pytest.mark.parametrize("strategy", ["transfer", "migrate"])
def test_copied_environments_are_planned_moves_renamed_by_the_map(strategy: Strategy) -> None:
    copying = copying_plan(strategy=strategy)

    assert [(c.source, c.target) for c in copying.environment_copies] == [(SECRETS, SECRETS_AGENT)]
    assert not any(f.entity.kind == "TransferEntityEnvironment" for f in copying.failures)
    assert [f.entity.kind for f in copying.failures] == [
        "TransferEntityInsightsAccount",
        "TransferEntityRegistryPackage",
    ]
    listed = copying.to_claim_response().entities
    assert (
        TransferEntityEnvironmentRename(
            project_name="default", environment_name="secrets", rename_as=SECRETS_AGENT
        )
        in listed
    )
    assert any("ESC environments are copied" in notice for notice in copying.notices)


def test_an_environment_conflict_the_map_leaves_blocks_the_copy() -> None:
    copying = copying_plan(parse_resolution_map("stacks: {web/dev: web/dev-2}\n"))

    assert copying.blocked
    assert SECRETS in copying.conflicts


def test_by_default_environments_are_failures_as_before() -> None:
    reported = plan(parse_resolution_map("stacks: {web/dev: web/dev-2}\n"))

    assert reported.environment_copies == []
    assert not reported.blocked
    assert SECRETS in [f.entity for f in reported.failures]


def test_with_claim_api_environments_the_service_moves_are_left_to_it() -> None:
    claim = copying_plan(strategy="claim-api")

    assert claim.environment_copies == []
    assert any("leaves the ESC environments to the service" in n for n in claim.notices)


UNCLAIMABLE = [
    TransferEntityFailure(entity=entity, failure_details="the claim does not move it")
    for entity in (SECRETS, SOURCE.insights_accounts[0])
]
"""What a service that does not claim environments reports of SOURCE."""


def claim_plan(
    resolution_map: ResolutionMap = RESOLVED, environments: EnvironmentChoice = "copy"
) -> ClaimPlan:
    return build_plan(
        target=TARGET,
        source=SOURCE,
        destination=DESTINATION,
        resolution_map=resolution_map,
        strategy="claim-api",
        agent=AGENT,
        claim_expires_at=EXPIRES,
        has_claim=True,
        service_failures=UNCLAIMABLE,
        environments=environments,
    )


def test_with_claim_api_environments_the_service_cannot_claim_are_copied_first() -> None:
    claim = claim_plan()

    assert [(c.source, c.target) for c in claim.environment_copies] == [(SECRETS, SECRETS_AGENT)]
    assert [f.entity for f in claim.failures] == [SOURCE.insights_accounts[0]]
    assert claim.blocked, "the Insights account still blocks, as the service says"
    assert all(entity_key(r) != entity_key(SECRETS) for r in claim.conflicts_resolution())
    notice = next(n for n in claim.notices if "cannot claim are copied" in n)
    assert "removed from the agent's org agent-abc123 before the claim" in notice
    assert notice.endswith(": default/secrets")
    assert claim_plan(environments="report").environment_copies == []
    assert SECRETS in [f.entity for f in claim_plan(environments="report").failures]


def test_with_claim_api_a_copy_the_map_does_not_rename_is_a_conflict() -> None:
    claim = claim_plan(parse_resolution_map("stacks: {web/dev: web/dev-2}\n"))

    assert claim.blocked
    assert SECRETS in claim.conflicts
    answered = claim.answered(claim.to_claim_response().model_copy(update={"conflicts": []}))
    assert SECRETS in answered.conflicts, "the copy's conflict is the plan's own"


def test_a_recorded_claim_api_plan_restores_its_copies() -> None:
    made = claim_plan()
    dry_run = made.to_claim_response().model_copy(update={"failures": UNCLAIMABLE})
    document = made.answered(dry_run).to_claim_response()
    assert [f.entity for f in document.failures] == [SOURCE.insights_accounts[0]]
    renamed = [e for e in document.entities if e.kind == "TransferEntityEnvironmentRename"]
    assert renamed and renamed[0].rename_as == SECRETS_AGENT

    def recorded(claim_copies: Sequence[str]) -> ClaimPlan:
        return ClaimPlan.from_record(
            target=TARGET,
            strategy="claim-api",
            document=document,
            notices=made.notices,
            has_claim=True,
            claim_copies=claim_copies,
        )

    assert made.claim_copy_names() == ["default/secrets"]
    assert recorded(made.claim_copy_names()).environment_copies == made.environment_copies
    assert recorded([]).environment_copies == [], "without the record, the service moves them"


def test_a_claim_not_made_after_its_copies_is_partial_not_blocked() -> None:
    not_claimed = TransferEntityFailure(
        entity=stack("web/dev", 12), failure_details=f"{NOT_CLAIMED}the copies come first"
    )
    document = claim_plan().to_claim_response()

    assert is_blocked(document, "claim-api")
    assert not is_blocked(
        document.model_copy(update={"failures": [*document.failures, not_claimed]}), "claim-api"
    )
