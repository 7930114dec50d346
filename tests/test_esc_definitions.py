"""ESC environment definitions: imports found and rewritten, import order, dynamic providers,
the comparison a copy is verified by (`toolkit.esc_definitions`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.esc_definitions import (
    DefinitionError,
    ImportRef,
    ciphertexts,
    copy_notices,
    definition_difference,
    dynamic_providers,
    import_order,
    imports_of,
    parse_definition,
    plaintext_secrets,
    render_definition,
    rewrite_imports,
)
from toolkit.models import TransferEntityEnvironment
from toolkit.moves import EnvironmentCopy

CHAIN = """
imports:
  - base
  - shared/network@3
  - {shared/keys: {merge: false}}
values:
  greeting: hello
  password:
    fn::secret: s3cret
"""


def test_imports_read_as_esc_reads_them() -> None:
    references = imports_of(parse_definition(CHAIN))

    assert [(r.project, r.name, r.pin, r.bare) for r in references] == [
        ("default", "base", None, True),
        ("shared", "network", "3", False),
        ("shared", "keys", None, False),
    ]
    assert [r.text() for r in references] == ["base", "shared/network@3", "shared/keys"]


@pytest.mark.parametrize("text", ["", "a/b/c", "/x", "x/", "@3"])
def test_an_import_that_is_no_name_is_refused(text: str) -> None:
    with pytest.raises(DefinitionError):
        ImportRef.parse(text)


@pytest.mark.parametrize(
    "text", ["imports: base", "imports: [{a: {}, b: {}}]", "imports: [3]", "- a list", "a: [b"]
)
def test_a_definition_that_cannot_be_read_is_refused(text: str) -> None:
    with pytest.raises(DefinitionError):
        imports_of(parse_definition(text))


def test_rewrite_follows_renames_keeps_the_form_and_drops_pins() -> None:
    definition = parse_definition(CHAIN)
    renames = {
        ("default", "base"): ("default", "base-agent"),
        ("shared", "network"): ("shared", "network"),
        ("shared", "keys"): ("infra", "keys"),
    }

    rewritten = rewrite_imports(definition, renames)

    assert rewritten["imports"] == [
        "base-agent",
        "shared/network",
        {"infra/keys": {"merge": False}},
    ]
    assert rewritten["values"] == definition["values"]
    assert definition["imports"][0] == "base", "the input is left as it was"


def test_references_to_a_renamed_import_name_it_as_its_import_now_reads() -> None:
    definition = parse_definition(
        """imports:
  - base
  - shared/keys: {merge: false}
  - other
values:
  url: https://${imports.base.host}:${imports["shared/keys"].port}/x
  nested:
    - ${imports.base.token}
    - {fn::secret: "${imports.other.key}"}
  literal: $${imports.base.host}
  own: ${url}
"""
    )
    renames = {("default", "base"): ("default", "base-agent"), ("shared", "keys"): ("infra", "k")}

    values = rewrite_imports(definition, renames)["values"]

    assert values == {
        "url": 'https://${imports["base-agent"].host}:${imports["infra/k"].port}/x',
        "nested": ['${imports["base-agent"].token}', {"fn::secret": "${imports.other.key}"}],
        "literal": "$${imports.base.host}",
        "own": "${url}",
    }


def test_a_bare_import_moved_out_of_the_default_project_names_its_project() -> None:
    rewritten = rewrite_imports(
        parse_definition("imports: [base]"), {("default", "base"): ("x", "y")}
    )

    assert rewritten["imports"] == ["x/y"]


def test_imports_of_environments_not_copied_stay_as_written() -> None:
    definition = parse_definition("imports: [other/env@stable]")

    assert rewrite_imports(definition, {}) == definition


names = st.tuples(st.sampled_from(["default", "p"]), st.sampled_from(list("abcdef")))


@given(st.dictionaries(names, st.lists(names, max_size=3), max_size=6))
def test_import_order_puts_every_import_first_and_finds_every_cycle(
    graph: dict[tuple[str, str], list[tuple[str, str]]],
) -> None:
    ordered, stuck = import_order(graph)

    assert sorted([*ordered, *stuck]) == sorted(graph)
    position = {name: index for index, name in enumerate(ordered)}
    for name in ordered:
        for imported in graph[name]:
            if imported in graph:
                assert imported in position and position[imported] < position[name]
    for name in stuck:
        # Stuck: it reaches an environment of `graph` that reaches itself.
        seen, frontier, cyclic = set(), [name], False
        while frontier:
            here = frontier.pop()
            for imported in graph.get(here, []):
                if imported == name or (imported in stuck and imported in seen):
                    cyclic = True
                if imported in graph and imported not in seen:
                    seen.add(imported)
                    frontier.append(imported)
        assert cyclic or any(other in stuck for other in seen)


def test_a_cycle_is_stuck_and_what_imports_it_too() -> None:
    graph = {("d", "a"): [("d", "b")], ("d", "b"): [("d", "a")], ("d", "c"): [("d", "a")]}
    graph[("d", "e")] = []

    assert import_order(graph) == ([("d", "e")], [("d", "a"), ("d", "b"), ("d", "c")])


def test_dynamic_providers_are_found_in_both_forms() -> None:
    definition = parse_definition(
        """
values:
  aws:
    login:
      fn::open::aws-login:
        oidc: {roleArn: arn}
  vault:
    fn::open:
      provider: vault-secrets
      inputs: {}
  rotated:
    fn::rotate::aws-iam: {}
  plain: {fn::secret: x}
"""
    )

    assert dynamic_providers(definition) == [
        "fn::open::aws-login",
        "fn::open::vault-secrets",
        "fn::rotate::aws-iam",
    ]


def test_ciphertexts_and_plaintext_secrets_of_a_stored_definition() -> None:
    stored = parse_definition(
        "values: {a: {fn::secret: {ciphertext: ZXNjeA1}}, b: [{fn::secret: plain}]}"
    )

    assert ciphertexts(stored) == {"ZXNjeA1"}
    assert plaintext_secrets(stored) == 1


def test_the_comparison_names_where_never_what() -> None:
    expected = parse_definition(CHAIN)
    landed = parse_definition(CHAIN.replace("s3cret", "other"))

    difference = definition_difference(expected, landed)

    assert difference == "values.password.fn::secret holds another value"
    assert definition_difference(expected, parse_definition(CHAIN)) is None
    assert definition_difference({"a": 1}, {"a": True}) is not None
    assert definition_difference({"a": [1]}, {"a": [1, 2]}) == "a has 2 entries, not 1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4))
def test_a_rendered_definition_reads_back_the_same(values: dict[str, object]) -> None:
    definition = {"imports": ["a", {"p/b": {"merge": False}}], "values": values}

    assert parse_definition(render_definition(definition)) == definition


def test_copy_notices_name_dynamic_providers_pins_of_copies_and_cycles() -> None:
    def environment(project: str, name: str) -> EnvironmentCopy:
        entity = TransferEntityEnvironment(project_name=project, environment_name=name)
        return EnvironmentCopy(source=entity, target=entity)

    copies = [environment("default", n) for n in ("base", "app", "loop-a", "loop-b")]
    definitions = {
        ("default", "base"): parse_definition("values: {login: {fn::open::aws-login: {}}}"),
        ("default", "app"): parse_definition("imports: [base@4, elsewhere/x@2]"),
        ("default", "loop-a"): parse_definition("imports: [loop-b]"),
        ("default", "loop-b"): parse_definition("imports: [loop-a]"),
    }

    notices = copy_notices(copies, definitions, source_org="agent", destination_org="acme")

    assert notices == [
        "environment agent/default/base uses fn::open::aws-login: its trust policy (an OIDC "
        "role's, say) may name agent; allow acme there too",
        "environment agent/default/app imports base@4: revisions are not copied, so its copy "
        "imports the latest definition",
        "environments agent/default/loop-a, agent/default/loop-b cannot be copied: their "
        "imports form a cycle, or import one that does",
    ]
