"""Conflicts, and resolution maps checked against inventories: pure functions, no service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.entities import Inventory, as_rename, describe, entity_key, target_of
from toolkit.errors import InvalidInputError, ResolutionMapError
from toolkit.models import (
    BaseEntity,
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
    TransferEntityStackRename,
)
from toolkit.resolution_map import ResolutionMap, format_resolution_map, parse_resolution_map
from toolkit.resolver import find_conflicts, resolve, suggest_resolution_map

STACKS = {"TransferEntityStack"}
ALL_KINDS = {
    "TransferEntityStack",
    "TransferEntityEnvironment",
    "TransferEntityInsightsAccount",
    "TransferEntityRegistryPackage",
}


def stack(name: str) -> TransferEntityStack:
    project, stack_name = name.split("/")
    return TransferEntityStack(project_name=project, stack_name=stack_name)


def env(name: str) -> TransferEntityEnvironment:
    project, environment = name.split("/")
    return TransferEntityEnvironment(project_name=project, environment_name=environment)


def account(name: str) -> TransferEntityInsightsAccount:
    return TransferEntityInsightsAccount(name=name)


def package(name: str) -> TransferEntityRegistryPackage:
    source, publisher, package_name = name.split("/")
    return TransferEntityRegistryPackage(source=source, publisher=publisher, name=package_name)


def inventory(
    org: str,
    stacks: Sequence[str] = (),
    environments: Sequence[str] = (),
    accounts: Sequence[str] = (),
    packages: Sequence[str] = (),
) -> Inventory:
    return Inventory(
        org=org,
        stacks=[stack(name) for name in stacks],
        environments=[env(name) for name in environments],
        insights_accounts=[account(name) for name in accounts],
        registry_packages=[package(name) for name in packages],
    )


def stack_renames(pairs: dict[str, str]) -> ResolutionMap:
    return ResolutionMap(renames=tuple(as_rename(stack(a), stack(b)) for a, b in pairs.items()))


def refusal(source: Inventory, destination: Inventory, resolution_map: ResolutionMap) -> list[str]:
    with pytest.raises(ResolutionMapError) as refused:
        resolve(source, destination, resolution_map, kinds=ALL_KINDS)
    return refused.value.problems


AGENT = inventory(
    "agent-abc123",
    stacks=["web/dev", "web/prod", "api/dev", "web/qa"],
    environments=["default/secrets"],
    accounts=["aws-main"],
    packages=["private/agent-abc123/vpc"],
)
ACME = inventory(
    "acme",
    stacks=["web/dev", "web/dev-agent", "db/prod"],
    environments=["default/secrets"],
    accounts=["aws-main"],
    packages=["private/agent-abc123/vpc"],
)


# --- Identity --------------------------------------------------------------------------------


def test_each_kind_has_a_key_and_a_description() -> None:
    cases: list[tuple[BaseEntity, tuple[str, ...], str]] = [
        (stack("web/dev"), ("TransferEntityStack", "web", "dev"), "stack web/dev"),
        (
            env("default/secrets"),
            ("TransferEntityEnvironment", "default", "secrets"),
            "ESC environment default/secrets",
        ),
        (
            account("aws-main"),
            ("TransferEntityInsightsAccount", "aws-main"),
            "Insights account aws-main",
        ),
        (
            package("private/acme/vpc"),
            ("TransferEntityRegistryPackage", "private", "acme", "vpc"),
            "registry package private/acme/vpc",
        ),
    ]
    for entity, key, text in cases:
        assert entity_key(entity) == key
        assert describe(entity) == text


def test_a_rename_has_the_key_of_the_entity_it_renames() -> None:
    rename = as_rename(stack("web/dev"), stack("web/dev-agent"))
    assert isinstance(rename, TransferEntityStackRename)
    assert entity_key(rename) == entity_key(stack("web/dev"))
    assert target_of(rename) == stack("web/dev-agent")
    assert describe(rename) == "stack web/dev"


# --- Conflicts -------------------------------------------------------------------------------


def test_conflicts_are_found_only_for_the_kinds_asked() -> None:
    assert find_conflicts(AGENT, ACME, STACKS) == [stack("web/dev")]
    assert find_conflicts(AGENT, ACME, ALL_KINDS) == [
        stack("web/dev"),
        env("default/secrets"),
        account("aws-main"),
        package("private/agent-abc123/vpc"),
    ]


def test_same_stack_name_in_another_project_does_not_collide() -> None:
    source = inventory("agent", stacks=["api/prod", "web/prod"])
    destination = inventory("acme", stacks=["db/prod", "web/staging"])
    assert find_conflicts(source, destination, STACKS) == []


def test_same_environment_name_in_another_project_does_not_collide() -> None:
    source = inventory("agent", environments=["app/secrets"])
    destination = inventory("acme", environments=["default/secrets"])
    assert find_conflicts(source, destination, ALL_KINDS) == []


# --- Resolving: every kind of map problem ------------------------------------------------------


def test_a_stack_rename_may_change_the_project() -> None:
    result = resolve(
        AGENT, ACME, parse_resolution_map("stacks: {web/dev: platform/web-dev}"), kinds=STACKS
    )
    assert result.renames == {entity_key(stack("web/dev")): stack("platform/web-dev")}
    assert result.unresolved == []


def test_a_valid_map_resolves_the_conflicts_it_covers() -> None:
    result = resolve(AGENT, ACME, stack_renames({"web/dev": "web/dev-2"}), kinds=STACKS)
    assert result.renames == {entity_key(stack("web/dev")): stack("web/dev-2")}
    assert result.unresolved == []
    assert result.notices == []


def test_conflicts_no_rename_covers_stay_unresolved() -> None:
    result = resolve(AGENT, ACME, ResolutionMap.empty(), kinds=ALL_KINDS)
    assert result.renames == {}
    assert result.unresolved == find_conflicts(AGENT, ACME, ALL_KINDS)


def test_refused_unknown_entity() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/nope": "web/nope-2"}))
    assert problem == "stack web/nope: no such entity in agent-abc123"


def test_refused_invalid_source_name() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev dev": "web/dev-2"}))
    assert problem.startswith('stack web/dev dev: "dev dev" is not a valid name')


def test_refused_invalid_target_name() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev": "web/dev:agent"}))
    assert problem.startswith("stack web/dev: cannot rename to web/dev:agent: ")
    assert '"dev:agent" is not a valid name' in problem


def test_refused_target_longer_than_100_characters() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev": "web/" + "d" * 101}))
    assert "is not a valid name" in problem


def test_refused_same_entity_renamed_twice() -> None:
    twice = parse_resolution_map("stacks:\n  web/dev: web/dev-2\n  web/dev: web/dev-3\n")
    (problem,) = refusal(AGENT, ACME, twice)
    assert problem == "stack web/dev: renamed more than once (to web/dev-2, web/dev-3)"


def test_refused_target_that_exists_in_the_destination() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev": "web/dev-agent"}))
    assert problem == (
        "stack web/dev: cannot rename web/dev to web/dev-agent: "
        "web/dev-agent already exists in acme"
    )


def test_refused_rename_to_its_own_name_while_it_collides() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev": "web/dev"}))
    assert "web/dev already exists in acme" in problem


def test_refused_two_renames_to_one_name() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev": "web/x", "api/dev": "web/x"}))
    assert problem == (
        "stack web/dev (renamed) and stack api/dev (renamed) would both end up as web/x in acme"
    )


def test_refused_rename_onto_a_source_entity_that_keeps_its_name() -> None:
    (problem,) = refusal(AGENT, ACME, stack_renames({"web/dev": "web/prod"}))
    assert problem == (
        "stack web/dev (renamed) and stack web/prod (keeps its name) would both end up as "
        "web/prod in acme"
    )


def test_every_problem_is_listed_at_once_each_naming_its_entity() -> None:
    text = "\n".join(
        [
            "stacks:",
            "  web: web/x",  # malformed
            "  web/nope: web/nope-2",  # unknown
            "  web/dev: web/dev agent",  # invalid target
            "  web/prod: web/p1",  # renamed twice
            "  web/prod: web/p2",
            "  api/dev: web/dev-agent",  # collides with the destination
            "  web/qa: web/stays",  # collides with another final name
            "environments:",
            "  default/secrets: default/other",  # fine
            "insightsAccounts:",
            "  aws-main: aws-main",  # renamed to itself while it collides
        ]
    )
    source = replace(AGENT, stacks=[*AGENT.stacks, stack("web/stays")])
    problems = refusal(source, ACME, parse_resolution_map(text))
    assert len(problems) == 7
    expected = [
        '"web"',
        "stack web/nope",
        "stack web/dev:",
        "stack web/prod",
        "stack api/dev",
        "Insights account aws-main",
        "stack web/qa (renamed) and stack web/stays (keeps its name)",
    ]
    for problem, names in zip(problems, expected, strict=True):
        assert names in problem


def test_a_rename_without_a_conflict_is_applied_with_a_notice() -> None:
    result = resolve(AGENT, ACME, stack_renames({"web/qa": "web/qa-2"}), kinds=STACKS)
    assert result.renames == {entity_key(stack("web/qa")): stack("web/qa-2")}
    assert result.notices == [
        "stack web/qa had no conflict; it will be renamed to web/qa-2 as the map asks"
    ]
    assert result.unresolved == [stack("web/dev")]


def test_a_rename_to_its_own_name_is_a_notice_and_changes_nothing() -> None:
    result = resolve(AGENT, ACME, stack_renames({"web/qa": "web/qa"}), kinds=STACKS)
    assert result.renames == {}
    assert result.notices == ["stack web/qa is renamed to its own name; the entry changes nothing"]


def test_a_rename_of_a_kind_that_does_not_move_is_not_used() -> None:
    resolution_map = parse_resolution_map("environments: {default/secrets: default/x}")
    result = resolve(AGENT, ACME, resolution_map, kinds=STACKS)
    assert result.renames == {}
    assert result.notices == [
        "ESC environment default/secrets cannot move with this strategy; its rename is not used"
    ]


def test_chains_and_swaps_are_valid_maps() -> None:
    source = inventory("agent", stacks=["web/a", "web/b", "web/c", "web/d"])
    chain_and_swap = stack_renames(
        {"web/a": "web/b", "web/b": "web/e", "web/c": "web/d", "web/d": "web/c"}
    )
    result = resolve(source, inventory("acme"), chain_and_swap, kinds=STACKS)
    assert len(result.renames) == 4


# --- Suggestions -----------------------------------------------------------------------------


def test_suggestion_appends_the_suffix_and_counts_past_taken_names() -> None:
    conflicts = find_conflicts(AGENT, ACME, ALL_KINDS)
    suggestion = suggest_resolution_map(conflicts, source=AGENT, destination=ACME, suffix="-agent")
    assert [(describe(r), "/".join(entity_key(target_of(r))[1:])) for r in suggestion.renames] == [
        ("stack web/dev", "web/dev-agent-2"),  # web/dev-agent exists in acme
        ("ESC environment default/secrets", "default/secrets-agent"),
        ("Insights account aws-main", "aws-main-agent"),
        ("registry package private/agent-abc123/vpc", "private/agent-abc123/vpc-agent"),
    ]
    assert resolve(AGENT, ACME, suggestion, kinds=ALL_KINDS).unresolved == []


def test_suggestion_shortens_long_names_to_100_characters() -> None:
    long_name = "web/" + "s" * 100
    source = inventory("agent", stacks=[long_name])
    destination = inventory("acme", stacks=[long_name])
    (rename,) = suggest_resolution_map(
        [stack(long_name)], source=source, destination=destination, suffix="-agent"
    ).renames
    assert target_of(rename) == stack("web/" + "s" * 94 + "-agent")


@pytest.mark.parametrize("suffix", ["/agent", " agent", "-" + "a" * 95])
def test_suggestion_refuses_a_suffix_that_makes_invalid_names(suffix: str) -> None:
    with pytest.raises(InvalidInputError):
        suggest_resolution_map(
            find_conflicts(AGENT, ACME, STACKS), source=AGENT, destination=ACME, suffix=suffix
        )


_SHORT_NAMES = ["a", "b", "a-agent", "a-agent-2", "b-agent-3", "l" * 100, "l" * 94 + "-agent"]


@st.composite
def _inventory(draw: st.DrawFn, org: str) -> Inventory:
    """An inventory drawn from few names, so that two of them collide often."""
    names = st.sampled_from(_SHORT_NAMES)
    projects = st.sampled_from(["web", "api"])
    stacks = draw(st.lists(st.tuples(projects, names), unique=True, max_size=8))
    environments = draw(st.lists(st.tuples(projects, names), unique=True, max_size=4))
    accounts = draw(st.lists(names, unique=True, max_size=4))
    packages = draw(st.lists(names, unique=True, max_size=3))
    return Inventory(
        org=org,
        stacks=[TransferEntityStack(project_name=p, stack_name=s) for p, s in stacks],
        environments=[
            TransferEntityEnvironment(project_name=p, environment_name=e) for p, e in environments
        ],
        insights_accounts=[account(name) for name in accounts],
        registry_packages=[
            TransferEntityRegistryPackage(source="private", publisher="acme", name=name)
            for name in packages
        ],
    )


@settings(max_examples=150, deadline=None)
@given(
    source=_inventory("agent"),
    destination=_inventory("acme"),
    suffix=st.sampled_from(["-agent", "", "-2", "_b"]),
)
def test_resolve_accepts_every_suggestion_and_leaves_nothing_unresolved(
    source: Inventory, destination: Inventory, suffix: str
) -> None:
    conflicts = find_conflicts(source, destination, ALL_KINDS)
    suggestion = suggest_resolution_map(
        conflicts, source=source, destination=destination, suffix=suffix
    )
    result = resolve(source, destination, suggestion, kinds=ALL_KINDS)
    assert result.unresolved == []
    assert result.notices == []
    assert set(result.renames) == {entity_key(entity) for entity in conflicts}
    reparsed = parse_resolution_map(format_resolution_map(suggestion.renames))
    assert reparsed == suggestion
