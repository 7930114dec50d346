"""References that break, pure: every form a StackReference name, an ESC stack read and an
ESC import can take, resolved from where its holder is before and after the move."""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

import pytest
import yaml
from test_report import CONTEXT, ENTITIES, claim

from toolkit.esc_definitions import rewrite_stack_reads, stack_reads_of
from toolkit.name_changes import NameChanges
from toolkit.references import (
    BrokenReference,
    MovedNames,
    environment_breaks,
    environments_breaks,
    moved_names,
    resolve_stack_reference,
    stack_read_renames,
    stack_reference_breaks,
)
from toolkit.report import render
from toolkit.report.markdown import MARKDOWN_LIMIT, render_markdown
from toolkit.report.references import reference_line
from toolkit.report.view import build_view
from toolkit.stack_references import StackReferenceFound

AGENT = "agent-abc"
CHANGES = NameChanges(
    AGENT,
    "acme",
    stacks={
        ("web", "dev"): ("web", "dev-agent"),
        ("web", "prod"): ("web", "prod"),
        ("api", "dev"): ("api", "dev"),
    },
    environments={
        ("default", "app"): ("default", "app"),
        ("default", "base"): ("default", "base-agent"),
    },
)
NAMES = moved_names(CHANGES, copied=[("default", "app"), ("default", "base")])
"""Three stacks move to acme, web/dev renamed; two environments are copied, one renamed."""


def test_the_names_a_claim_changes_are_fully_qualified_with_the_copies() -> None:
    expected = MovedNames(
        stacks={
            (AGENT, "web", "dev"): ("acme", "web", "dev-agent"),
            (AGENT, "web", "prod"): ("acme", "web", "prod"),
            (AGENT, "api", "dev"): ("acme", "api", "dev"),
        },
        environments={
            (AGENT, "default", "app"): ("acme", "default", "app"),
            (AGENT, "default", "base"): ("acme", "default", "base-agent"),
        },
        copied=frozenset({(AGENT, "default", "app"), (AGENT, "default", "base")}),
    )
    assert moved_names(CHANGES, copied=[("default", "app"), ("default", "base")]) == expected
    assert stack_read_renames(CHANGES) == {"web/dev": "web/dev-agent"}


def definition(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@pytest.mark.parametrize(
    ("written", "resolved"),
    [
        ("dev", ("o", "p", "dev")),
        ("other/dev", ("other", "p", "dev")),
        ("other/q/dev", ("other", "q", "dev")),
        ("a/b/c/d", None),
        ("a//c", None),
    ],
)
def test_a_stack_reference_resolves_from_its_holders_org_and_project(
    written: str, resolved: tuple[str, str, str] | None
) -> None:
    """`stack` is the holder's org and project; two parts are `org/stack` (the holder's
    project), never `project/stack`; three are fully qualified."""
    assert resolve_stack_reference(written, "o", "p") == resolved


@pytest.mark.parametrize(
    ("holder", "name", "new", "rewrite"),
    [
        # A stack of the destination naming a moved, renamed stack in full.
        (("acme", "app", "main"), f"{AGENT}/web/dev", "acme/web/dev-agent", "acme/web/dev-agent"),
        # Moved holders: the short forms follow the holder to the destination.
        ((AGENT, "web", "prod"), "dev", "acme/web/dev-agent", "dev-agent"),
        ((AGENT, "web", "prod"), f"{AGENT}/dev", "acme/web/dev-agent", "acme/dev-agent"),
        # A stack that keeps its name still changes org: the full name breaks.
        ((AGENT, "api", "dev"), f"{AGENT}/web/prod", "acme/web/prod", "acme/web/prod"),
        # Two parts from another project name the holder's project: the form cannot follow.
        ((AGENT, "api", "dev"), f"{AGENT}/dev", "acme/api/dev", "acme/dev"),
    ],
)
def test_a_stack_reference_to_a_moved_stack_breaks_and_says_its_new_name(
    holder: tuple[str, str, str], name: str, new: str, rewrite: str
) -> None:
    found = StackReferenceFound(*holder, name=name)

    (broken,) = stack_reference_breaks([found], NAMES)

    assert broken.holder == "/".join(holder)
    assert (broken.kind, broken.written, broken.new, broken.rewrite) == (
        "stack reference",
        name,
        new,
        rewrite,
    )
    assert broken.fixer == "user", "program code is never edited"
    assert broken.edit == f'StackReference name: "{name}" → "{rewrite}"'


@pytest.mark.parametrize(
    ("holder", "name"),
    [
        # Two parts are org/stack: `web/dev` from acme is org `web`, not the agent's web/dev.
        (("acme", "app", "main"), "web/dev"),
        # A moved holder's short name of a stack moved under its own name still resolves.
        ((AGENT, "web", "dev"), "prod"),
        # Stacks that do not move.
        (("partner", "x", "y"), "acme/web/dev"),
        (("acme", "app", "main"), "acme/app/other"),
        # Not a stack name at all.
        (("acme", "app", "main"), "a/b/c/d"),
    ],
)
def test_a_stack_reference_that_still_resolves_is_no_break(
    holder: tuple[str, str, str], name: str
) -> None:
    assert stack_reference_breaks([StackReferenceFound(*holder, name=name)], NAMES) == []


def test_a_copied_environments_reads_and_imports_are_the_toolkits_to_rewrite() -> None:
    app = definition(
        """
imports:
  - base
  - default/app-shared
values:
  stacks:
    fn::open::pulumi-stacks:
      stacks:
        web: {stack: web/dev}
        prod: {stack: web/prod}
"""
    )

    broken = environment_breaks(AGENT, ("default", "app"), app, NAMES)

    assert [(b.kind, b.written, b.rewrite, b.fixer) for b in broken] == [
        ("stack outputs read", "web/dev", "web/dev-agent", "toolkit"),
        ("environment import", "base", "base-agent", "toolkit"),
        # default/app-shared is not copied: the copy in acme would import acme's own.
        ("environment import", "default/app-shared", None, "user"),
    ]
    assert [b.edit for b in broken] == [
        "stack: web/dev → stack: web/dev-agent",
        "imports: base → imports: base-agent",
        "imports: default/app-shared cannot name agent-abc/default/app-shared: ESC reads "
        "environments of the environment's own org only, so move the environment to "
        "agent-abc or drop it",
    ]
    assert broken[0].old == f"{AGENT}/web/dev" and broken[0].new == "acme/web/dev-agent"


def test_a_copy_reading_a_stack_left_behind_cannot_name_it() -> None:
    """ESC reads the stacks of the environment's own org: `project/stack` cannot name
    another org, so the copy in acme cannot read a stack that stays with the agent."""
    app = definition(
        "values:\n  fn::open:\n    provider: pulumi-stacks\n    inputs:\n"
        "      stacks: {tools: {stack: ops/tools}}\n"
    )

    (broken,) = environment_breaks(AGENT, ("default", "app"), app, NAMES)

    assert (broken.rewrite, broken.fixer, broken.new) == (None, "user", f"{AGENT}/ops/tools")
    assert "cannot name agent-abc/ops/tools: ESC reads stacks of the" in broken.edit


def test_an_environment_left_in_the_source_reading_a_moved_stack_is_the_users() -> None:
    left = definition(
        "values:\n  x:\n    fn::open::pulumi-stacks:\n      stacks: {a: {stack: web/prod}}\n"
    )

    (broken,) = environment_breaks(AGENT, ("ops", "left"), left, NAMES)

    assert broken.holder == f"{AGENT}/ops/left"
    assert (broken.rewrite, broken.fixer, broken.new) == (None, "user", "acme/web/prod")
    assert reference_line(broken) == (
        "environment agent-abc/ops/left reads the outputs of stack agent-abc/web/prod → "
        "acme/web/prod; you edit it: stack: web/prod cannot name acme/web/prod: ESC reads "
        "stacks of the environment's own org only, so move the environment to acme or drop it"
    )


def test_an_environment_the_service_moves_importing_a_renamed_one_is_the_users() -> None:
    """claim-api: the service moves environments as they are written; the toolkit does not
    write them, so the user edits the import."""
    names = MovedNames(
        stacks={},
        environments={
            (AGENT, "default", "app"): ("acme", "default", "app"),
            (AGENT, "default", "base"): ("acme", "default", "base-agent"),
        },
    )
    app = definition("imports: [base@3]\n")

    (broken,) = environment_breaks(AGENT, ("default", "app"), app, names)

    assert (broken.written, broken.rewrite, broken.fixer) == ("base@3", "base-agent", "user")
    assert reference_line(broken) == (
        "environment agent-abc/default/app imports environment agent-abc/default/base → "
        "acme/default/base-agent; you edit it: imports: base@3 → imports: base-agent"
    )


def test_an_unreadable_import_is_a_notice_and_the_others_are_checked() -> None:
    broken, notices = environments_breaks(
        AGENT,
        {
            ("default", "bad"): {"imports": "base"},
            ("default", "app"): definition("imports: [base]\n"),
        },
        NAMES,
    )

    assert [b.holder for b in broken] == [f"{AGENT}/default/app"]
    assert notices == [
        f"environment {AGENT}/default/bad: its references to moved stacks and environments "
        "are not checked: an environment's `imports` is not a list"
    ]


def test_stack_reads_are_found_and_rewritten_in_both_forms_and_nothing_else_changes() -> None:
    text = """
imports: [base]
values:
  short:
    fn::open::pulumi-stacks:
      stacks:
        a: {stack: web/dev}
        b: {stack: web/prod}
  nested:
    - long:
        fn::open:
          provider: pulumi-stacks
          inputs:
            stacks:
              c: {stack: web/dev}
  other:
    fn::open::aws-login: {stacks: {d: {stack: web/dev}}}
  plain: {stack: web/dev}
"""
    source = definition(text)

    assert stack_reads_of(source) == ["web/dev", "web/prod", "web/dev"]
    rewritten = rewrite_stack_reads(source, stack_read_renames(CHANGES))

    assert stack_reads_of(rewritten) == ["web/dev-agent", "web/prod", "web/dev-agent"]
    assert rewritten["values"]["other"] == source["values"]["other"]
    assert rewritten["values"]["plain"] == {"stack": "web/dev"}
    assert rewritten["imports"] == ["base"]
    assert source == definition(text), "the source definition is left as it was"


def test_a_broken_reference_keeps_every_field_through_its_record() -> None:
    (broken,) = stack_reference_breaks(
        [StackReferenceFound("acme", "app", "main", f"{AGENT}/web/dev")], NAMES
    )

    record = broken.to_record()

    assert record == {
        "holderKind": "stack",
        "holder": "acme/app/main",
        "kind": "stack reference",
        "written": f"{AGENT}/web/dev",
        "old": f"{AGENT}/web/dev",
        "new": "acme/web/dev-agent",
        "rewrite": "acme/web/dev-agent",
        "fixer": "user",
        "edit": f'StackReference name: "{AGENT}/web/dev" → "acme/web/dev-agent"',
    }
    assert BrokenReference.from_record(record) == broken


STACK_LINE = (
    f"stack acme/app/main references stack {AGENT}/web/dev → acme/web/dev-agent; you edit it: "
    f'StackReference name: "{AGENT}/web/dev" → "acme/web/dev-agent"'
)


@pytest.mark.parametrize("limit", [MARKDOWN_LIMIT, 10])
def test_a_stack_reference_is_one_line_in_every_format_and_a_record_in_json(limit: int) -> None:
    """Also in the Markdown summary a long report becomes (`limit` small forces it)."""
    broken = stack_reference_breaks(
        [StackReferenceFound("acme", "app", "main", f"{AGENT}/web/dev")], NAMES
    )
    context = dataclasses.replace(CONTEXT, broken_references=tuple(broken))
    document = claim(ENTITIES)

    view = build_view(document, context)
    markdown = render_markdown(view, limit=limit)
    table = render(document, "table", context, width=400)
    page = html.unescape(render(document, "html", context))
    wire = json.loads(render(document, "json", context))

    assert view.references == (STACK_LINE,)
    listed = f"\n- {STACK_LINE}\n" if limit == MARKDOWN_LIMIT else "\n\n*1 more reference(s) not"
    assert f"## References that break\n{listed}" in markdown.replace("\\_", "_")
    assert f"References that break\n  • {STACK_LINE}\n" in table
    assert f"<li>{STACK_LINE}</li>" in page
    assert wire["brokenReferences"] == [broken[0].to_record()]
    assert "brokenReferences" not in json.loads(render(document, "json", CONTEXT))
