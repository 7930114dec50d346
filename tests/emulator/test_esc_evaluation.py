"""ESC evaluation and open sessions in the emulator's state: imports in a chain, overrides,
secrets, interpolation, what it refuses, and what it leaves unevaluated."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.emulator.esc_evaluation import ImportedDefinition, evaluate
from toolkit.emulator.state import InvalidDefinitionFault, ServiceFault, ServiceState
from toolkit.emulator.world import parse_world
from toolkit.errors import InvalidInputError

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "labs": "admin"}}],
    "orgs": {
        "acme": {
            "environments": [
                {
                    "project": "chain",
                    "name": "one",
                    "definition": (
                        "values:\n  region: eu-west-1\n  db: {host: one, port: 5432}\n"
                        "  key:\n    fn::secret: one-secret\n"
                    ),
                },
                {
                    "project": "chain",
                    "name": "two",
                    "definition": "imports: [chain/one]\nvalues:\n  db: {host: two}\n",
                },
                {
                    "project": "chain",
                    "name": "three",
                    "definition": (
                        "imports: [chain/two]\n"
                        "values:\n"
                        "  url: postgres://${db.host}:${db.port}/${region}\n"
                        "  port: ${db.port}\n"
                        "  auth: Bearer ${key}\n"
                        "  literal: cost $${price}\n"
                        "  creds:\n    fn::open::aws-login: {oidc: {roleArn: arn}}\n"
                    ),
                },
                {
                    "project": "chain",
                    "name": "aside",
                    "definition": (
                        "imports:\n"
                        "  - chain/one: {merge: false}\n"
                        "  - {loop/a: {Merge: true}}\n"
                        "values:\n"
                        '  region: ${imports["chain/one"].region}-b\n'
                        '  key: ${imports["chain/one"].key}\n'
                    ),
                },
                {"project": "loop", "name": "a", "definition": "values: {x: 1}\n"},
                {"project": "default", "name": "solo", "definition": "values: {x: 1}\n"},
            ]
        },
        "labs": {"environments": [{"project": "chain", "name": "one"}]},
    },
}


@pytest.fixture
def state() -> ServiceState:
    return ServiceState.from_world(parse_world(WORLD))


def plain(value: dict[str, Any]) -> Any:
    inner = value["value"]
    if isinstance(inner, dict):
        return {key: plain(child) for key, child in inner.items()}
    if isinstance(inner, list):
        return [plain(child) for child in inner]
    return inner


def test_a_chain_of_three_imports_merges_and_interpolates(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    session, opened = state.open_environment(alice, "acme", "chain", "three", seconds=60)
    evaluation = state.opened_environment(alice, "acme", "chain", "three", session)
    values = {key: plain(value) for key, value in evaluation.properties(show_secrets=True).items()}
    assert values == {
        "region": "eu-west-1",
        "db": {"host": "two", "port": 5432},
        "key": "one-secret",
        "url": "postgres://two:5432/eu-west-1",
        "port": 5432,
        "auth": "Bearer one-secret",
        "literal": "cost ${price}",
        "creds": None,
    }
    properties = evaluation.properties(show_secrets=True)
    assert properties["auth"]["secret"] is True
    assert properties["creds"]["unknown"] is True
    # The value `two` overrides keeps the one it overrode as its base, named by environment.
    host = properties["db"]["value"]["host"]
    assert host["trace"]["def"]["environment"] == "chain/two"
    assert host["trace"]["base"]["trace"]["def"]["environment"] == "chain/one"
    assert [(d.severity, d.summary) for d in opened.diagnostics] == [
        ("warning", "fn::open::aws-login is not evaluated by the emulator: its value is unknown")
    ]
    redacted = evaluation.properties(show_secrets=False)
    assert redacted["key"]["value"] == redacted["auth"]["value"] == "[secret]"


def test_an_import_that_does_not_merge_is_there_for_references_only(
    state: ServiceState,
) -> None:
    # chain/one is imported with `merge: false`: its values are not aside's, but references
    # to `imports` read them; loop/a merges, as a plain import does (ESC reads `Merge` too).
    alice = state.authenticate("tok-alice")
    session, opened = state.open_environment(alice, "acme", "chain", "aside", seconds=60)
    assert opened.diagnostics == []
    evaluation = state.opened_environment(alice, "acme", "chain", "aside", session)
    properties = evaluation.properties(show_secrets=True)
    values = {key: plain(value) for key, value in properties.items()}
    assert values == {
        "x": 1,
        "region": "eu-west-1-b",
        "key": "one-secret",
    }
    assert properties["key"]["secret"] is True
    assert "base" not in properties["region"]["trace"]


def test_a_reference_to_an_import_by_its_bare_name_and_to_a_missing_one() -> None:
    definitions = {"base": ImportedDefinition("values: {x: 1}\n", None, "default/base")}
    text = (
        "imports: [{base: {merge: false}}]\n"
        "values:\n  y: ${imports.base.x}\n  z: ${imports.other.x}\n  w: ${x}\n"
    )
    evaluation = evaluate(ImportedDefinition(text, None, "<yaml>"), definitions.get)
    assert evaluation.values["y"].value == 1
    assert sorted(d.summary for d in evaluation.errors()) == [
        "cannot interpolate: unknown property 'imports.other.x'",
        "cannot interpolate: unknown property 'x'",
    ]


@pytest.mark.parametrize("key", ["imports", "context", "environments"])
def test_a_reserved_key_in_values_is_an_error(key: str) -> None:
    evaluation = evaluate(ImportedDefinition(f"values: {{{key}: 1}}\n", None, "<yaml>"), dict().get)
    assert [d.summary for d in evaluation.errors()] == [f"{key!r} is a reserved key"]
    assert key not in evaluation.values


def test_an_import_cycle_and_an_unknown_import_are_refused(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    with pytest.raises(InvalidDefinitionFault, match="cyclic import"):
        state.update_environment(alice, "acme", "loop", "a", "imports: [loop/a]\n")
    with pytest.raises(InvalidDefinitionFault, match="unknown environment 'chain/four'"):
        state.update_environment(alice, "acme", "loop", "a", "imports: [chain/four]\n")
    assert state.environment_definition(alice, "acme", "loop", "a").revision == 1


@pytest.mark.parametrize("itself", ["solo", "default/solo", "{solo: {merge: false}}"])
def test_an_import_of_itself_by_any_of_its_names_is_a_cycle(
    state: ServiceState, itself: str
) -> None:
    alice = state.authenticate("tok-alice")
    with pytest.raises(InvalidDefinitionFault, match="cyclic import"):
        state.update_environment(alice, "acme", "default", "solo", f"imports: [{itself}]\n")
    assert state.environment_definition(alice, "acme", "default", "solo").revision == 1


def test_a_cycle_through_a_bare_name_is_found_not_followed_forever() -> None:
    # default/b imports default/a, which imports itself by its bare name.
    a = ImportedDefinition("imports: [a]\nvalues: {x: 1}\n", None, "default/a")
    evaluation = evaluate(
        ImportedDefinition("imports: [default/a]\n", None, "default/b"),
        {"a": a, "default/a": a}.get,
    )
    assert [d.summary for d in evaluation.errors()] == ["default/a: cyclic import of 'a'"]


def test_imports_resolve_within_the_org_only(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    checked = state.check_environment(alice, "labs", "imports: [chain/two]\n")
    assert [d.summary for d in checked.diagnostics] == ["unknown environment 'chain/two'"]


def test_a_reference_to_nothing_or_a_cycle_is_an_error() -> None:
    definition = ImportedDefinition(
        "values:\n  a: ${b}\n  b: ${a}\n  c: ${missing.path}\n", None, "<yaml>"
    )
    evaluation = evaluate(definition, lambda name: None)
    summaries = sorted(d.summary for d in evaluation.diagnostics)
    assert summaries[0].startswith("cannot interpolate: a reference cycle")
    assert "cannot interpolate: unknown property 'missing.path'" in summaries
    assert evaluation.failed


def test_open_sessions_expire(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    session, _ = state.open_environment(alice, "acme", "chain", "one", seconds=60)
    state.advance_clock(61)
    with pytest.raises(ServiceFault) as expired:
        state.opened_environment(alice, "acme", "chain", "one", session)
    assert expired.value.status == 404


def test_a_world_with_an_invalid_definition_is_refused() -> None:
    world = {"orgs": {"acme": {"environments": [{"project": "p", "name": "e", "definition": "["}]}}}
    with pytest.raises(InvalidInputError, match=r"environments\[0\]\.definition: invalid YAML"):
        parse_world(world)
