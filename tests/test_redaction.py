"""The one redaction rule: what it masks, what it leaves, and that no token leaves the CLI."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from agent_times import agent_entry

from toolkit.redaction import (
    CODE_FIELD,
    MASK,
    RedactingFormatter,
    redact,
    redact_strings,
)

if TYPE_CHECKING:
    from conftest import EmulatorFactory

ACCESS_TOKEN = "pul-" + "0123456789abcdef" * 2 + "01234567"
CLAIM_TOKEN = "9f" * 24
"""Shaped as the emulator issues them: `pul-` and 40 hex digits; 48 hex digits."""


# --- What it recognises without being told ---------------------------------------------------


def test_masks_a_pulumi_access_token_anywhere_in_text() -> None:
    assert len(ACCESS_TOKEN) == 44
    assert redact(f"Authorization: token {ACCESS_TOKEN}.") == f"Authorization: token {MASK}."
    assert redact(f"x{ACCESS_TOKEN}y") == f"x{MASK}y"


def test_masks_a_claim_token_of_48_hex_digits_but_not_other_lengths() -> None:
    assert redact(f"claim token {CLAIM_TOKEN} expired") == f"claim token {MASK} expired"
    digest = "ab" * 32
    uuid_hex = "cd" * 16
    assert redact(f"{digest} {uuid_hex}") == f"{digest} {uuid_hex}"


def test_masks_the_token_of_a_claim_link_whatever_its_shape() -> None:
    link = "https://app.pulumi.com/claim/Zm9v-bar_baz.1"
    assert redact(f"open {link} to claim") == f"open https://app.pulumi.com/claim/{MASK} to claim"
    assert redact(f"(see {link})") == f"(see https://app.pulumi.com/claim/{MASK})"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET /api/agents/signup/validate/abc", f"GET /api/agents/signup/validate/{MASK}"),
        ("see /claim/xyz.1 now", f"see /claim/{MASK} now"),
        (f"{ACCESS_TOKEN}", MASK),
        (f"{CLAIM_TOKEN}", MASK),
        ("db postgresql://u:pw@h/d", f"db postgresql://u:{MASK}@h/d"),
    ],
)
def test_masks_each_recognised_form_alone_in_a_line(text: str, masked: str) -> None:
    """Each form on its own, without another form's mark beside it in the line."""
    assert redact(text) == masked
    assert redact(text, ["some-other-secret"]) == masked


def test_masks_the_token_in_the_claim_validation_path() -> None:
    line = 'HTTP Request: GET http://127.0.0.1:8080/api/agents/signup/validate/abc%2Fd "200 OK"'
    assert redact(line) == (
        f'HTTP Request: GET http://127.0.0.1:8080/api/agents/signup/validate/{MASK} "200 OK"'
    )


def test_masks_the_password_of_a_url_and_keeps_the_rest() -> None:
    assert (
        redact("connect postgresql://claim:s3cr%40t@db.example:5432/runs failed")
        == f"connect postgresql://claim:{MASK}@db.example:5432/runs failed"
    )
    assert redact("postgres://:pw-only@127.0.0.1/runs") == f"postgres://:{MASK}@127.0.0.1/runs"
    for kept in (
        "http://127.0.0.1:8080/api/user",
        "postgresql://claim@db.example:5432/runs",
        "USER:PASSWORD@HOST",
    ):
        assert redact(kept) == kept


def test_keeps_the_claim_api_paths_that_hold_no_secret() -> None:
    for text in (
        "GET /api/agents/acme/claim/status -> 200",
        "POST /api/agents/acme/claim?dryRun=true -> 200",
        "the part after /claim/ in the claim link",
        "a claim link (https://app.pulumi.com/claim/<token>)",
        "stack web/dev moved to acme",
    ):
        assert redact(text) == text


# --- Secrets it is given ---------------------------------------------------------------------


def test_masks_given_secrets_and_their_url_escaped_form() -> None:
    passphrase = "correct horse/battery"
    text = f"passphrase {passphrase!r}, in a path: /x/correct%20horse%2Fbattery/y"
    assert redact(text, [passphrase]) == f"passphrase '{MASK}', in a path: /x/{MASK}/y"


def test_a_secret_holding_another_is_masked_whole() -> None:
    assert redact("tok-alice-long", ["tok-alice", "tok-alice-long"]) == MASK


def test_given_secrets_shorter_than_four_characters_are_left() -> None:
    assert redact("abc is a stack", ["abc", ""]) == "abc is a stack"


def test_every_recognised_and_given_token_is_gone_from_a_mixed_text() -> None:
    given = "tok-" + secrets.token_urlsafe(12)
    text = (
        f"{given} {ACCESS_TOKEN} {CLAIM_TOKEN} /claim/{given}x "
        f"/api/agents/signup/validate/{CLAIM_TOKEN}"
    )
    masked = redact(text, [given])
    for token in (given, ACCESS_TOKEN, CLAIM_TOKEN):
        assert token not in masked


# --- Structures and logs ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    name: str
    style: str = field(metadata=CODE_FIELD)
    count: int = 0


def test_redact_strings_reaches_into_dataclasses_tuples_lists_and_dicts() -> None:
    value = {
        "rows": [_Row(f"web/{ACCESS_TOKEN}", "good", 3)],
        "pair": ("tok-alice", 1),
        ACCESS_TOKEN: None,
    }
    masked = redact_strings(value, ["tok-alice"])
    assert masked == {"rows": [_Row(f"web/{MASK}", "good", 3)], "pair": (MASK, 1), MASK: None}


def test_redact_strings_leaves_code_fields_alone() -> None:
    assert redact_strings(_Row("good", "good"), ["good"]) == _Row(MASK, "good")


def test_the_formatter_masks_secrets_learned_after_it_was_made() -> None:
    known: set[str] = set()
    formatter = RedactingFormatter("%(levelname)s %(message)s", known)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", ("tok-later",), None)
    assert formatter.format(record) == "INFO sent tok-later"
    known.add("tok-later")
    assert formatter.format(record) == f"INFO sent {MASK}"


def test_the_formatter_masks_tracebacks_too() -> None:
    formatter = RedactingFormatter("%(message)s", {"tok-secret"})
    try:
        raise RuntimeError("failed with tok-secret")
    except RuntimeError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "boom", (), exc_info=sys.exc_info()
        )
    shown = formatter.format(record)
    assert "RuntimeError" in shown
    assert "tok-secret" not in shown


# --- The command line leaks no token ---------------------------------------------------------

DESTINATION_TOKEN = "pul-" + "a1" * 20
SOURCE_TOKEN = "tok-source-" + "b2" * 8
PASSPHRASE = "passphrase-" + "c3" * 8


def test_no_token_reaches_stderr_stdout_or_the_report_with_vv(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """A real process with -vv (every log line of the toolkit, httpx and httpcore), a claim
    token in the validation URL, error messages, and a report written to a file."""
    server = make_emulator(
        {
            "users": [
                {"login": "alice", "token": DESTINATION_TOKEN, "orgs": {"acme": "admin"}},
                {"login": "src", "token": SOURCE_TOKEN, "orgs": {}},
            ],
            "agents": [agent_entry("agent-abc123", token="tok-agent", claim_token=CLAIM_TOKEN)],
            "orgs": {
                "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
                # A name that spells a secret: the report must not show it either.
                "agent-abc123": {"stacks": [{"project": "web", "stack": SOURCE_TOKEN}]},
            },
        }
    )
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_ACCESS_TOKEN": DESTINATION_TOKEN,
        "PULUMI_CLAIM_SOURCE_TOKEN": SOURCE_TOKEN,
        "PULUMI_CLAIM_TOKEN": CLAIM_TOKEN,
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }
    command = [sys.executable, "-m", "toolkit", "-vv", "preview"]
    orgs = ["--from", "agent-abc123", "--to", "acme"]
    previewed = subprocess.run(
        [*command, *orgs, "--output", str(report)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert previewed.returncode == 0, previewed.stderr
    assert "/api/agents/signup/validate/***" in previewed.stderr  # httpx's line, masked
    # A claim the service refuses: its answer and the toolkit's error are shown too.
    refused = subprocess.run(
        [*command, "--from", "agent-abc123", "--to", "elsewhere"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1
    assert "error: " in refused.stderr
    # An error message that names a secret (here a map file named after one).
    unreadable = subprocess.run(
        [*command, *orgs, "-r", str(tmp_path / f"{SOURCE_TOKEN}.yaml")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unreadable.returncode == 1
    assert "error: cannot read the resolution map" in unreadable.stderr
    shown = previewed.stdout + previewed.stderr + refused.stdout + refused.stderr
    shown += unreadable.stdout + unreadable.stderr
    shown += report.read_text(encoding="utf-8")
    for token in (DESTINATION_TOKEN, SOURCE_TOKEN, CLAIM_TOKEN, PASSPHRASE):
        assert token not in shown


@pytest.mark.parametrize("token", [ACCESS_TOKEN, CLAIM_TOKEN])
def test_recognised_tokens_are_gone_whatever_surrounds_them(token: str) -> None:
    for text in (token, f"'{token}'", f'"{token}",', f"<td>{token}</td>", f"{token}\n"):
        assert token not in redact(text)
