"""The terminal table at 60, 80 and 120 columns: no name, rename target, taken name or reason
loses a character, and no line is wider than the terminal."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console
from rich.text import Text
from terminals import run_on_terminal
from test_cli import as_document
from test_report import CONTEXT, DOCUMENT, claim, renamed, stack

from toolkit.models import (
    TransferEntityEnvironment,
    TransferEntityFailure,
    TransferEntityInsightsAccount,
    TransferEntityStackRename,
)
from toolkit.report import print_report, render
from toolkit.report.table import fitted_widths

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

WIDTHS = (60, 80, 120)
SOURCE = "agent-0f3c9a1e7b2d4c6e8a0b1c2d3e4f5a6b"
DESTINATION = "acme-corporation-platform-engineering-eu"
"""Org names of 40 characters, as long as the service allows."""
PROJECT = "payments-platform-ingestion-service-eu"
STACK = "production-eu-west-1-blue-green-canary"
TARGET = f"{STACK}-agent-claimed"
LONGEST_PROJECT = ("ledger-reconciliation-" * 5)[:100]
LONGEST_STACK = ("nightly-batch-settlement-" * 4)[:100]
"""Project and stack names at the service's limit (100 characters each)."""
ACCOUNT = "aws-sandbox-data-engineering-team-shared-account-eu-central-1"
REASON = (
    f"the service refused the transfer of {PROJECT}/{STACK}: 503 Service Unavailable "
    "(upstream-connect-error-or-disconnect-before-headers-reset)"
)


ENVIRONMENT = TransferEntityEnvironment(
    project_name=PROJECT, environment_name="shared-observability-runtime-secrets"
)
ACCOUNT_ENTITY = TransferEntityInsightsAccount(name=ACCOUNT)
TAKEN = TransferEntityStackRename(
    project_name="checkout-api",
    stack_name="staging-us-east-2",
    resource_count=3,
    rename_as=stack("checkout-api", "staging-us-east-2-taken-in-the-destination"),
)
LONG_DOCUMENT = claim(
    [
        renamed(PROJECT, STACK, TARGET),
        TAKEN,
        stack(LONGEST_PROJECT, LONGEST_STACK, 1234),
        ENVIRONMENT,
        ACCOUNT_ENTITY,
    ],
    conflicts=[TAKEN],
    failures=[
        TransferEntityFailure(entity=ACCOUNT_ENTITY, failure_details=REASON),
        TransferEntityFailure(
            entity=ENVIRONMENT, failure_details="ESC environments cannot move with the claim API"
        ),
    ],
)
LONG_NAMES = [
    SOURCE,
    DESTINATION,
    f"{PROJECT}/{STACK}",
    f"{PROJECT}/{TARGET}",
    "checkout-api/staging-us-east-2",
    "checkout-api/staging-us-east-2-taken-in-the-destination",
    f"{LONGEST_PROJECT}/{LONGEST_STACK}",
    f"{PROJECT}/shared-observability-runtime-secrets",
    ACCOUNT,
]
"""Every name of `LONG_DOCUMENT` and its run: each must appear whole."""
LONG_CONTEXT = dataclasses.replace(
    CONTEXT,
    source_org=SOURCE,
    destination_org=DESTINATION,
    strategy="claim-api",
    outcome=f"blocked: 1 unresolved conflict; nothing was changed in {DESTINATION}",
    notices=(f"stack {PROJECT}/{STACK} will be renamed to {PROJECT}/{TARGET} as the map asks",),
    generated_at=datetime(2026, 11, 20, 9, tzinfo=UTC),
)


def assert_every_name_whole(output: str, names: list[str], width: int) -> None:
    """Each name (or word) on one line of the output; one longer than a line (less the stacked
    layout's indent) folded deliberately, whole once its lines are joined."""
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= width
    joined = "".join(line.strip() for line in lines)
    for name in names:
        if len(name) <= width - 4:
            assert any(name in line for line in lines), (name, width)
        else:
            assert name in joined, (name, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_name_or_reason_is_cut_at_any_width(width: int) -> None:
    output = render(LONG_DOCUMENT, "table", LONG_CONTEXT, width=width)

    assert_every_name_whole(output, LONG_NAMES, width)
    for prose in (REASON, LONG_CONTEXT.outcome, *LONG_CONTEXT.notices):
        assert_every_name_whole(output, prose.split(), width)  # prose wraps between words
    assert "move as" in output
    assert "blocked: name taken in" in output


def test_at_80_columns_the_inventory_is_stacked_one_block_per_entity() -> None:
    """The names being approved, each whole on its line, its action whole below it."""
    output = render(DOCUMENT, "table", CONTEXT, width=80)
    inventory = output.split("Inventory\n", 1)[1].split("\n\n", 1)[0]

    assert inventory.splitlines() == [
        "  api/dev",
        "    stack · 0 resources · blocked: name taken in acme",
        "  web/dev",
        "    stack · 12 resources · move as web/dev-agent",
        "  web/prod",
        "    stack · 40 resources · updated 2026-11-20 · move",
        "  default/secrets",
        "    ESC environment · cannot move",
        "  aws-main",
        "    Insights account · cannot move",
        "  private/agent-abc123/vpc",
        "    registry package · cannot move",
    ]


def test_at_120_columns_the_inventory_is_a_table_with_whole_cells() -> None:
    output = render(DOCUMENT, "table", CONTEXT, width=120)
    inventory = output.split("Inventory\n", 1)[1].split("\n\n", 1)[0].splitlines()

    assert inventory[0].split() == ["Kind", "Name", "Resources", "Last", "update", "Action"]
    assert inventory[2:5] == [
        "stack              api/dev                            0   —             "
        "blocked: name taken in acme",
        "stack              web/dev                           12   —             "
        "move as web/dev-agent",
        "stack              web/prod                          40   2026-11-20    move",
    ]


def test_prose_wraps_between_words_inside_a_table() -> None:
    """The Failures table stays a table at 80 columns: its reasons wrap, its names do not."""
    output = render(DOCUMENT, "table", CONTEXT, width=80)
    failures = output.split("Failures\n", 1)[1].split("\n\n", 1)[0].splitlines()

    assert failures[2:4] == [
        "ESC environment    default/secrets            cannot move   ESC environments",
        "                                                            cannot move",
    ]


def test_bullets_wrap_under_their_own_text() -> None:
    output = render(DOCUMENT, "table", CONTEXT, width=60)
    steps = output.split("What to do\n", 1)[1].split("\n\n", 1)[0].splitlines()

    assert steps == [
        "  • stack api/dev: the name is taken in acme; rename it in",
        "    the resolution map (pulumi-claim resolve writes one) and",
        "    pass the map with --resolutions",
    ]


@pytest.mark.parametrize(
    ("minimums", "maximums", "available", "widths"),
    [
        ((4, 8, 6), (4, 8, 30), 100, (4, 8, 30)),  # room for every cell on one line
        ((4, 8, 6), (4, 8, 30), 20, (4, 8, 8)),  # the widest shrinks first
        ((4, 3, 6), (4, 20, 20), 30, (4, 13, 13)),  # then the widest in turn
        ((4, 8, 6), (4, 8, 30), 18, (4, 8, 6)),  # down to its longest word
        ((4, 8, 6), (4, 8, 30), 17, None),  # and no further: stacked instead
    ],
)
def test_fitted_widths_shrink_the_widest_columns_down_to_their_longest_word(
    minimums: tuple[int, ...],
    maximums: tuple[int, ...],
    available: int,
    widths: tuple[int, ...] | None,
) -> None:
    assert fitted_widths(minimums, maximums, available) == widths


# --- through the command line, against the emulator ----------------------------------------


def long_names_world() -> dict[str, Any]:
    """alice administers both orgs; the agent's stacks have long names, one of them taken."""
    return {
        "users": [
            {
                "login": "alice",
                "token": "tok-alice",
                "orgs": {DESTINATION: "admin", SOURCE: "admin"},
            },
        ],
        "orgs": {
            DESTINATION: {
                "stacks": [
                    {
                        "project": "checkout-api",
                        "stack": "staging-us-east-2-taken-in-the-destination",
                    },
                ]
            },
            SOURCE: {
                "stacks": [
                    {"project": PROJECT, "stack": STACK, "resourceCount": 12},
                    {
                        "project": "checkout-api",
                        "stack": "staging-us-east-2-taken-in-the-destination",
                    },
                    {"project": LONGEST_PROJECT, "stack": LONGEST_STACK, "resourceCount": 1234},
                ],
                "insightsAccounts": [{"name": ACCOUNT}],
            },
        },
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_preview_table_keeps_every_name_whole_at_the_terminals_width(
    make_emulator: EmulatorFactory,
    run_cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    width: int,
) -> None:
    server = make_emulator(long_names_world())
    resolutions = tmp_path / "map.yaml"
    resolutions.write_text(
        f"stacks:\n  {PROJECT}/{STACK}: {PROJECT}/{TARGET}\n",
        encoding="utf-8",
    )
    preview = ("preview", "--from", SOURCE, "--to", DESTINATION, "--strategy", "transfer")
    preview += ("--resolutions", str(resolutions))
    as_json = run_cli(server, *preview, "--format", "json", source_token="tok-alice")
    document = as_document(as_json.stdout)
    assert document.failures
    monkeypatch.setenv("COLUMNS", str(width))
    result = run_cli(server, *preview, "--format", "table", source_token="tok-alice")

    assert result.exit_code == 3, result.output
    for failure in document.failures:  # the service's reasons, every word of them
        assert_every_name_whole(result.stdout, failure.failure_details.split(), width)
    assert_every_name_whole(
        result.stdout,
        [
            SOURCE,
            DESTINATION,
            f"{PROJECT}/{STACK}",
            f"{PROJECT}/{TARGET}",
            "checkout-api/staging-us-east-2-taken-in-the-destination",
            f"{LONGEST_PROJECT}/{LONGEST_STACK}",
            ACCOUNT,
        ],
        width,
    )
    assert "move as" in result.stdout
    assert f"blocked: name taken in {DESTINATION}" in " ".join(result.stdout.split())


def test_a_header_value_with_a_word_too_long_for_its_column_goes_under_its_label() -> None:
    landing = "applied programs/landing-zone-for-acme-platform-engineering"
    output = render(DOCUMENT, "table", dataclasses.replace(CONTEXT, landing=landing), width=60)

    assert output.split("\n\n", 1)[0].splitlines() == [
        "pulumi-claim preview: agent-abc123 → acme",
        "Mode",
        "  preview",
        "From → to",
        "  agent-abc123 → acme",
        "Strategy",
        "  transfer",
        "Agent",
        "  agent-abc123, created 2026-11-01 09:00 UTC",
        "Claim window",
        "  closes 2026-12-01 09:00 UTC",
        "Landing",
        "  applied",
        "  programs/landing-zone-for-acme-platform-engineering",
    ]


def test_the_stacked_layout_on_a_terminal_keeps_its_colours() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=60, force_terminal=True, color_system="standard")
    print_report(LONG_DOCUMENT, "table", LONG_CONTEXT, console)
    output = buffer.getvalue()

    assert "\x1b[" in output
    assert_every_name_whole(Text.from_ansi(output).plain, LONG_NAMES, 60)


def test_a_real_80_column_terminal_gets_every_name_whole(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """`preview` on a pseudo-terminal 80 columns wide (its own size, no COLUMNS): the table
    rich draws for the terminal it finds."""
    server = make_emulator(long_names_world())
    env = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    env |= {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        "TERM": "xterm-256color",
    }
    command = [sys.executable, "-m", "toolkit", "preview", "--from", SOURCE, "--to", DESTINATION]

    code, shown = run_on_terminal([*command, "--strategy", "transfer"], env, columns=80)

    assert code == 3, shown
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", shown)
    report = plain[plain.index("pulumi-claim preview:") : plain.index("Outcome:")]
    assert "Inventory" in report and "\x1b" not in report
    assert_every_name_whole(
        report,
        [
            f"{PROJECT}/{STACK}",
            "checkout-api/staging-us-east-2-taken-in-the-destination",
            f"{LONGEST_PROJECT}/{LONGEST_STACK}",
            ACCOUNT,
            DESTINATION,
        ],
        80,
    )
