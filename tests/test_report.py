"""The report renderers: JSON is the wire document, the human formats escape every name."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from io import StringIO

import markupsafe
import pytest
from pulumi_cloud_sdk._support import default_encoder
from rich.console import Console

from toolkit.choices import FORMATS, Format
from toolkit.entities import Inventory, entity_key
from toolkit.models import (
    AgentAccountSummary,
    AgentClaimResponse,
    BaseEntity,
    RenameEntity,
    TransferEntityEnvironment,
    TransferEntityFailure,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
    TransferEntityStackRename,
)
from toolkit.plan import ClaimTarget, build_plan
from toolkit.report import ReportContext, print_report, render, report_context
from toolkit.report.view import build_summary, build_view
from toolkit.resolution_map import parse_resolution_map

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'


def stack(project: str, name: str, resources: int = 0) -> TransferEntityStack:
    return TransferEntityStack(
        project_name=project,
        stack_name=name,
        resource_count=resources,
        last_update=datetime(2026, 11, 20, 10, tzinfo=UTC) if resources else None,
    )


def renamed(project: str, name: str, new_name: str) -> TransferEntityStackRename:
    return TransferEntityStackRename(
        project_name=project,
        stack_name=name,
        resource_count=12,
        rename_as=TransferEntityStack(project_name=project, stack_name=new_name),
    )


def claim(
    entities: Sequence[BaseEntity | RenameEntity],
    conflicts: Sequence[BaseEntity | RenameEntity] = (),
    failures: Sequence[TransferEntityFailure] = (),
) -> AgentClaimResponse:
    return AgentClaimResponse(
        agent=AgentAccountSummary(
            login="agent-abc123",
            org_name="agent-abc123",
            created_at=datetime(2026, 11, 1, 9, tzinfo=UTC),
        ),
        entities=list(entities),
        conflicts=list(conflicts),
        failures=list(failures),
        claim_expires_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
    )


ENVIRONMENT = TransferEntityEnvironment(project_name="default", environment_name="secrets")
INSIGHTS = TransferEntityInsightsAccount(name="aws-main")
PACKAGE = TransferEntityRegistryPackage(source="private", publisher="agent-abc123", name="vpc")
ENTITIES: list[BaseEntity | RenameEntity] = [
    stack("web", "prod", 40),
    renamed("web", "dev", "dev-agent"),
    stack("api", "dev"),
    ENVIRONMENT,
    INSIGHTS,
    PACKAGE,
]
DOCUMENT = claim(
    ENTITIES,
    conflicts=[stack("api", "dev")],
    failures=[
        TransferEntityFailure(entity=ENVIRONMENT, failure_details="ESC environments cannot move"),
        TransferEntityFailure(entity=INSIGHTS, failure_details="Insights accounts cannot move"),
        TransferEntityFailure(entity=PACKAGE, failure_details="registry packages cannot move"),
    ],
)
CONTEXT = ReportContext(
    mode="preview",
    source_org="agent-abc123",
    destination_org="acme",
    strategy="transfer",
    outcome="blocked: 1 unresolved conflict; nothing was changed",
    notices=("stack web/qa had no conflict; it will be renamed to web/qa-2 as the map asks",),
)


def markdown_rows(markdown: str, section: str) -> list[list[str]]:
    """Body rows of the table under `## section`, split on unescaped pipes."""
    body = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


# --- json --------------------------------------------------------------------------------


def test_json_is_the_wire_document_the_sdk_reads() -> None:
    document = DOCUMENT.model_copy(update={"transfer_token": "xfer-1"})
    output = render(document, "json", CONTEXT)

    wire = json.loads(output)
    parsed = default_encoder.deserialize(wire, "AgentClaimResponse")
    assert type(parsed).__name__ == "AgentClaimResponse"
    assert len(parsed.entities) == len(ENTITIES)
    assert parsed.entities[1].rename_as.stack_name == "dev-agent"
    again = AgentClaimResponse.model_validate(default_encoder.sanitize_for_serialization(parsed))
    assert again == document
    assert set(wire) == {
        "agent",
        "entities",
        "conflicts",
        "failures",
        "claimExpiresAt",
        "transferToken",
    }
    assert CONTEXT.outcome not in output


def test_print_report_writes_json_verbatim_even_on_a_narrow_console() -> None:
    buffer = StringIO()
    print_report(DOCUMENT, "json", CONTEXT, Console(file=buffer, width=30, force_terminal=True))
    assert AgentClaimResponse.model_validate(json.loads(buffer.getvalue())) == DOCUMENT


# --- markdown ----------------------------------------------------------------------------


def test_markdown_has_one_row_per_entity_with_its_action() -> None:
    rows = markdown_rows(render(DOCUMENT, "markdown", CONTEXT), "Inventory")

    actions = {row[1]: row[4] for row in rows}
    assert actions == {
        "api/dev": "blocked: name taken in acme",
        "web/dev": "move as web/dev-agent",
        "web/prod": "move",
        "default/secrets": "cannot move",
        "aws-main": "cannot move",
        "private/agent-abc123/vpc": "cannot move",
    }
    assert [len(row) for row in rows] == [5] * len(ENTITIES)


def test_markdown_counts_and_sections() -> None:
    markdown = render(DOCUMENT, "markdown", CONTEXT)
    lines = markdown.splitlines()
    counts = lines.index("| Entities | To move | Renamed | Conflicts | Failures |")
    assert lines[counts + 2] == "| 6 | 2 | 1 | 1 | 3 |"
    assert markdown_rows(markdown, "Conflicts") == [["stack", "api/dev", "api/dev"]]
    assert "pulumi-claim resolve" in markdown
    assert [row[1] for row in markdown_rows(markdown, "Failures")] == [
        "default/secrets",
        "aws-main",
        "private/agent-abc123/vpc",
    ]
    assert f"- {CONTEXT.notices[0]}" in markdown


def test_markdown_escapes_what_would_break_a_table_or_inject_html() -> None:
    document = claim(
        [stack("we|b", "dev"), stack("ap`i", "dev"), stack(SCRIPT, "dev"), stack("*x*", "[y]")]
    )
    markdown = render(document, "markdown", CONTEXT)

    rows = markdown_rows(markdown, "Inventory")
    assert [len(row) for row in rows] == [5] * 4
    names = {row[1] for row in rows}
    assert names == {
        "we\\|b/dev",
        "ap\\`i/dev",
        "&lt;script&gt;alert(1)&lt;/script&gt;/dev",
        "\\*x\\*/\\[y\\]",
    }
    assert "<script" not in markdown
    assert "we|b" not in markdown


def test_markdown_notice_cannot_start_a_nested_list_or_heading() -> None:
    context = ReportContext(
        mode="preview",
        source_org="a",
        destination_org="b",
        strategy="transfer",
        outcome="ok",
        notices=("- not a list", "1. not a list", "# not a heading"),
    )
    markdown = render(claim([]), "markdown", context)
    assert "- \\- not a list" in markdown
    assert "- 1\\. not a list" in markdown
    assert "- \\# not a heading" in markdown


# --- html --------------------------------------------------------------------------------


def test_html_escapes_hostile_names_everywhere_and_is_self_contained() -> None:
    document = claim(
        [stack(SCRIPT, "dev", 3), renamed(IMAGE, "dev", "dev-agent"), stack("web", "prod")],
        conflicts=[stack(SCRIPT, "dev")],
        failures=[
            TransferEntityFailure(
                entity=TransferEntityEnvironment(project_name=IMAGE, environment_name="x"),
                failure_details=SCRIPT,
            )
        ],
    )
    context = ReportContext(
        mode="commit",
        source_org=SCRIPT,
        destination_org=IMAGE,
        strategy="transfer",
        outcome=SCRIPT,
        notices=(IMAGE,),
        generated_at=datetime(2026, 11, 25, 12, tzinfo=UTC),
    )
    html = render(document, "html", context)

    for hostile in (SCRIPT, IMAGE):
        assert hostile not in html
        assert str(markupsafe.escape(hostile)) in html
    # One script, the page's own filter, which the page's policy names by its hash.
    assert html.lower().count("<script") == 1
    assert "<script>// The review page's filter" in html
    assert "script-src 'sha256-" in html
    assert "<img" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
    assert html.startswith("<!DOCTYPE html>")
    assert "<style>" in html
    assert "<link" not in html.lower()


def test_html_colour_codes_actions_and_shows_counts() -> None:
    html = render(DOCUMENT, "html", CONTEXT)
    assert html.count('class="action action-failed"') == 3
    assert html.count('class="action action-blocked"') == 1
    assert html.count('class="action action-rename"') == 1
    assert html.count('class="action action-move"') == 1
    assert '<span class="value">6</span><span class="label">Entities</span>' in html


# --- copied environments -----------------------------------------------------------------


def copy_preview() -> tuple[AgentClaimResponse, ReportContext]:
    """A real plan with `--environments copy`: default/base copied as it is, default/secrets
    (taken in acme) copied under the map's name; one stack moves."""
    environments = [
        TransferEntityEnvironment(project_name="default", environment_name=name)
        for name in ("base", "secrets")
    ]
    plan = build_plan(
        target=ClaimTarget(source_org="agent-abc123", destination_org="acme"),
        source=Inventory(
            org="agent-abc123", stacks=[stack("web", "prod", 4)], environments=environments
        ),
        destination=Inventory(org="acme", environments=environments[1:]),
        resolution_map=parse_resolution_map(
            "environments: {default/secrets: default/secrets-agent}\n"
        ),
        strategy="transfer",
        agent=DOCUMENT.agent,
        claim_expires_at=DOCUMENT.claim_expires_at,
        environments="copy",
    )
    document = plan.to_claim_response()
    return document, report_context(
        plan, "preview", document, now=datetime(2026, 11, 25, tzinfo=UTC)
    )


def inventory_actions(text: str, fmt: Format) -> dict[str, str]:
    """Name -> action of each inventory row, read from the rendered report."""
    if fmt == "markdown":
        return {row[1]: row[4] for row in markdown_rows(text, "Inventory")}
    if fmt == "html":
        found = re.findall(
            r'<td class="name">([^<]*)</td>.*?<span class="action [^"]*">([^<]*)</span>', text
        )
        return dict(found)
    actions = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in ("stack", "ESC environment"):
            actions[cells[1]] = cells[-1]
    return actions


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_an_environment_that_is_copied_says_copy_not_move(fmt: Format) -> None:
    document, context = copy_preview()
    assert context.copied

    actions = inventory_actions(render(document, fmt, context, width=140), fmt)

    assert actions == {
        "web/prod": "move",
        "default/base": "copy",
        "default/secrets": "copy as default/secrets-agent",
    }


def test_json_of_a_copy_is_the_wire_document_whatever_the_reports_say() -> None:
    document, context = copy_preview()
    without_copies = dataclasses.replace(context, copied=frozenset())

    output = render(document, "json", context)

    assert output == render(document, "json", without_copies)
    wire = json.loads(output)
    assert AgentClaimResponse.model_validate(wire) == document
    assert set(wire) == {"agent", "entities", "conflicts", "failures", "claimExpiresAt"}
    parsed = default_encoder.deserialize(wire, "AgentClaimResponse")
    kinds = sorted(type(entity).__name__ for entity in parsed.entities)
    assert kinds == [
        "TransferEntityEnvironment",
        "TransferEntityEnvironmentRename",
        "TransferEntityStack",
    ]
    assert "copy" not in output


# --- table -------------------------------------------------------------------------------


def test_table_shows_names_targets_and_outcome_within_100_columns() -> None:
    table = render(DOCUMENT, "table", CONTEXT, width=100)

    for name in ("web/prod", "web/dev", "api/dev", "default/secrets", "aws-main", "vpc"):
        assert name in table
    assert "move as web/dev-agent" in table
    assert "blocked: name taken in acme" in table
    assert "pulumi-claim resolve" in table
    assert f"Outcome: {CONTEXT.outcome}" in table
    assert CONTEXT.notices[0] in table
    assert "agent-abc123 → acme" in table
    assert "2026-12-01 09:00 UTC" in table
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "\x1b[" not in table


def test_table_prints_names_literally_not_as_rich_markup() -> None:
    markup = "[bold]web[/bold]"
    context = ReportContext(
        mode="preview",
        source_org="[red]agent[/red]",
        destination_org="acme",
        strategy="transfer",
        outcome="[blink]ok[/blink]",
        notices=("[i]note[/i]",),
    )
    document = claim([stack(markup, ":smile:")])
    buffer = StringIO()
    print_report(document, "table", context, Console(file=buffer, width=100))
    output = buffer.getvalue()

    assert f"{markup}/:smile:" in output
    assert output.count("[red]agent[/red]") == 2  # the title and the header
    assert "[blink]ok[/blink]" in output
    assert "[i]note[/i]" in output


def test_print_report_colours_the_table_on_a_terminal() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system="standard")
    print_report(DOCUMENT, "table", CONTEXT, console)
    output = buffer.getvalue()
    assert "\x1b[" in output
    assert "move as web/dev-agent" in output


def test_claim_expiry_is_flagged_once_past() -> None:
    context = ReportContext(
        mode="preview",
        source_org="agent-abc123",
        destination_org="acme",
        strategy="claim-api",
        outcome="ok",
        generated_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert "2026-12-01 09:00 UTC (expired)" in render(DOCUMENT, "table", context)
    assert "(expired)" not in render(DOCUMENT, "table", CONTEXT)
    naive = dataclasses.replace(context, generated_at=datetime(2026, 11, 30))
    assert "(expired)" not in render(DOCUMENT, "table", naive)


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "json"])
def test_the_claim_window_warns_when_under_24_hours_are_left(fmt: Format) -> None:
    context = dataclasses.replace(CONTEXT, generated_at=datetime(2026, 11, 30, 15, 48, tzinfo=UTC))
    soon = render(DOCUMENT, fmt, context)
    assert "closes 2026-12-01 09:00 UTC (17 h 12 min left: under 24 hours)" in soon
    assert "warning: the claim window closes in 17 h 12 min" in soon
    early = dataclasses.replace(context, generated_at=datetime(2026, 11, 20, 6, tzinfo=UTC))
    later = render(DOCUMENT, fmt, early)
    assert "closes 2026-12-01 09:00 UTC (11 d 3 h left)" in later
    assert "warning" not in later


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "json"])
def test_without_a_claim_the_reports_say_so_instead_of_stand_ins(fmt: Format) -> None:
    context = dataclasses.replace(
        CONTEXT, has_claim=False, generated_at=datetime(2026, 11, 30, 15, tzinfo=UTC)
    )
    output = render(DOCUMENT, fmt, context)
    assert "no claim: an org-to-org move" in output
    assert "2026-12-01 09:00" not in output
    assert "created 2026-11-01" not in output
    assert "warning" not in output
    assert json.loads(render(DOCUMENT, "json", context))["claimExpiresAt"]


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "json"])
def test_a_blocked_claim_says_what_to_do_about_each_blocking_entity(fmt: Format) -> None:
    context = dataclasses.replace(CONTEXT, strategy="claim-api")
    output = render(DOCUMENT, fmt, context)
    assert "What to do" in output
    for step in (
        "stack api/dev: the name is taken in acme",
        "esc env get agent-abc123/default/secrets",
        "Insights account aws-main: remove it in agent-abc123 before claiming",
        "--publisher acme",
    ):
        assert str(markupsafe.escape(step)) in output if fmt == "html" else step in output
    failures_only = claim(ENTITIES, failures=DOCUMENT.failures)
    assert "What to do" in render(failures_only, fmt, context)
    assert "What to do" not in render(failures_only, fmt, CONTEXT)


# --- all human formats -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "json"])
def test_rows_are_sorted_whatever_the_input_order(fmt: Format) -> None:
    shuffled = list(ENTITIES)
    random.Random(7).shuffle(shuffled)
    assert shuffled != ENTITIES
    document = DOCUMENT.model_copy(update={"entities": shuffled})
    assert render(document, fmt, CONTEXT) == render(DOCUMENT, fmt, CONTEXT)


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "json"])
def test_entities_only_named_by_a_failure_or_conflict_still_get_a_row(fmt: Format) -> None:
    document = claim(
        [],
        conflicts=[stack("api", "dev")],
        failures=[TransferEntityFailure(entity=INSIGHTS, failure_details="cannot move")],
    )
    output = render(document, fmt, CONTEXT)
    assert "blocked: name taken in acme" in output
    assert "aws-main" in output


def test_a_rename_whose_target_is_taken_shows_the_taken_name() -> None:
    document = claim([renamed("web", "dev", "dev-2")], conflicts=[renamed("web", "dev", "dev-2")])
    markdown = render(document, "markdown", CONTEXT)
    assert markdown_rows(markdown, "Conflicts") == [["stack", "web/dev", "web/dev-2"]]
    assert markdown_rows(markdown, "Inventory")[0][4] == "blocked: name taken in acme"


def test_human_reports_leave_the_transfer_token_out() -> None:
    document = DOCUMENT.model_copy(update={"transfer_token": "xfer-secret-handle"})
    human: tuple[Format, ...] = ("table", "markdown", "html")
    for fmt in human:
        assert "xfer-secret-handle" not in render(document, fmt, CONTEXT)


# --- secrets -----------------------------------------------------------------------------------

ACCESS_TOKEN = "pul-" + "5e" * 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_tokens_are_masked_in_every_format_even_where_a_narrow_table_wraps(fmt: Format) -> None:
    """A service's failure text that quotes a token, and a notice that names a given secret:
    masked before any layout, so a table 40 columns wide cannot split them past the mask."""
    document = claim(
        ENTITIES,
        failures=[
            TransferEntityFailure(
                entity=INSIGHTS, failure_details=f"token {ACCESS_TOKEN} may not read this"
            )
        ],
    )
    context = dataclasses.replace(CONTEXT, notices=("tok-given-secret was used",))
    output = render(document, fmt, context, width=40, secrets=["tok-given-secret"])
    buffer = StringIO()
    print_report(document, fmt, context, Console(file=buffer, width=40), secrets=["tok-given"])
    for shown in (output, buffer.getvalue()):
        for fragment in (ACCESS_TOKEN[:12], ACCESS_TOKEN[-12:], "tok-given"):
            assert fragment not in shown.replace("\n", "").replace(" ", ""), fragment
    if fmt != "json":
        assert "***" in output.replace("\\", "")  # Markdown escapes it


def test_a_secret_that_spells_a_style_does_not_break_the_table() -> None:
    output = render(DOCUMENT, "table", CONTEXT, secrets=["good", "move", "bad!"])
    assert "Outcome:" in output


def test_the_summary_says_the_notices_and_outcome_the_report_shows() -> None:
    """`build_summary` (the lines on stderr after any report) against `build_view` (the
    report): a claim window warning, a notice with a token and a control character, a stale
    acceptance and an outcome with a token, each masked and printable alike."""
    context = dataclasses.replace(
        CONTEXT,
        generated_at=datetime(2026, 11, 30, 15, 48, tzinfo=UTC),
        notices=("tok-given-secret was used\x1b[2J", *CONTEXT.notices),
        outcome="blocked for tok-given-secret",
        accepted=frozenset({entity_key(stack("web", "gone"))}),
    )

    view = build_view(DOCUMENT, context, {"tok-given-secret"})
    summary = build_summary(DOCUMENT, context, {"tok-given-secret"})

    assert (summary.notices, summary.outcome) == (view.notices, view.outcome)
    assert len(summary.notices) == 4
    shown = "\n".join([*summary.notices, summary.outcome])
    assert "tok-given-secret" not in shown and "\x1b" not in shown
