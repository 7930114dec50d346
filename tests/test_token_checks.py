"""Tokens that cannot be tokens (a trailing line break, a space, a control character) are
refused where they are read, naming where they came from and never their value; and the
redaction masks a configured token whatever form it stands in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from toolkit.cli import cli
from toolkit.credentials import BackendIdentity, Credentials, load_credentials
from toolkit.emulator.demo_world import demo_world
from toolkit.errors import InvalidInputError
from toolkit.redaction import MASK, redact

if TYPE_CHECKING:
    from conftest import EmulatorFactory

URL = "http://127.0.0.1:9000"
TOKEN = "tok-alice"
"""The demo world's admin of acme."""

BAD_FORMS = {
    "trailing line break": (f"{TOKEN}\n", "a line break (character 10 of 10)"),
    "leading space": (f" {TOKEN}", "a space (character 1 of 10)"),
    "carriage return": (f"{TOKEN}\r\n", "a carriage return (character 10 of 11)"),
    "escape": (f"tok\x1b[2J{TOKEN}", "a control character (U+001B) (character 4 of"),
    "C1 control": (f"{TOKEN}\x9b", "a control character (U+009B) (character 10 of 10)"),
    "no-break space": (f"{TOKEN}\u00a0", "a space character (U+00A0)"),
    "non-ASCII": (f"{TOKEN}\u00e9", "a character outside ASCII (U+00E9)"),
}


def refusal(call: object) -> str:
    """The message of the `InvalidInputError` that `call` raises."""
    assert callable(call)
    with pytest.raises(InvalidInputError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize("form", BAD_FORMS.values(), ids=BAD_FORMS.keys())
@pytest.mark.parametrize(
    "variable", ["PULUMI_ACCESS_TOKEN", "PULUMI_CLAIM_SOURCE_TOKEN", "PULUMI_CLAIM_TOKEN"]
)
def test_a_token_variable_that_is_no_token_is_refused_naming_it(
    tmp_path: Path, variable: str, form: tuple[str, str]
) -> None:
    value, said = form
    env = {"PULUMI_ACCESS_TOKEN": TOKEN, variable: value}

    message = refusal(lambda: load_credentials(URL, env=env, home=tmp_path))

    assert message.startswith(f"{variable} holds {said}")
    assert f"Set {variable} to the token alone" in message
    assert TOKEN not in message and value not in message


def test_a_claim_file_whose_claim_token_is_no_token_is_refused_naming_it(tmp_path: Path) -> None:
    claim_file = tmp_path / "agent-claim.json"
    claim_file.write_text(json.dumps({"claimToken": "claim-abc\n", "cloudUrl": URL}), "utf-8")
    env = {"PULUMI_ACCESS_TOKEN": TOKEN}

    message = refusal(lambda: load_credentials(URL, env=env, home=tmp_path, claim_file=claim_file))

    assert message.startswith(f"the claimToken of the claim file {claim_file} holds a line break")
    assert "claim-abc" not in message


def test_a_cli_login_whose_token_is_no_token_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / ".pulumi"
    folder.mkdir()
    logins = {"current": URL, "accessTokens": {URL: f"{TOKEN}\n"}}
    (folder / "credentials.json").write_text(json.dumps(logins), encoding="utf-8")

    message = refusal(lambda: load_credentials(URL, env={}, home=tmp_path))

    assert message.startswith(f"the pulumi CLI's login for {URL} in {folder / 'credentials.json'}")
    assert f"pulumi login {URL}" in message
    assert TOKEN not in message


def test_credentials_and_identities_made_in_python_refuse_a_token_that_is_no_token() -> None:
    assert "Credentials.source_token holds a line break" in refusal(
        lambda: Credentials(URL, TOKEN, f"{TOKEN}\n")
    )
    assert "BackendIdentity.token holds a tab" in refusal(
        lambda: BackendIdentity(URL, f"\t{TOKEN}")
    )


def test_a_job_naming_a_variable_whose_token_is_no_token_is_refused_naming_the_variable(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(demo_world())
    job = tmp_path / "job.yaml"
    job.write_text(
        f"apiUrl: {server.url}\nclaims:\n"
        "  - {name: one, from: agent-7f3k2q, to: acme, tokens: {destination: ACME_TOKEN}}\n"
        "  - {name: two, from: agent-7f3k2q, to: acme}\n",
        encoding="utf-8",
    )
    env = {
        "ACME_TOKEN": f"{TOKEN}\n",
        "PULUMI_ACCESS_TOKEN": TOKEN,
        "PULUMI_CLAIM_SOURCE_TOKEN": f" {TOKEN}",
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }

    result = CliRunner().invoke(cli, ["job", "run", str(job)], env=env, catch_exceptions=False)

    assert result.exit_code == 1
    assert "claim 'one' (claims[0]): tokens.destination: ACME_TOKEN holds a line break" in (
        result.stderr
    )
    assert "claim 'two' (claims[1]): tokens.source: PULUMI_CLAIM_SOURCE_TOKEN holds a space" in (
        result.stderr
    )
    assert TOKEN not in result.stderr
    assert server.requests.count() == 0


def test_a_token_with_a_trailing_line_break_is_one_clear_error_and_nothing_is_sent(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """The whole command line, as a process with -vv: one error line naming the variable, no
    retry, no "may have been applied", no trace of the token, no request."""
    server = make_emulator(demo_world())
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_ACCESS_TOKEN": f"{TOKEN}\n",
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }

    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "-vv",
            "preview",
            "--from",
            "agent-7f3k2q",
            "--to",
            "acme",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert ran.returncode == 1
    assert ran.stdout == ""
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: PULUMI_ACCESS_TOKEN holds a line break (character 10 of 10): a token is "
        "visible ASCII characters only; nothing was sent"
    ]
    assert "Traceback" not in ran.stderr
    assert "retrying" not in ran.stderr and "may have been applied" not in ran.stderr
    assert TOKEN not in ran.stderr
    assert server.requests.count() == 0


# --- Redaction, whatever form a configured token stands in -----------------------------------


@pytest.mark.parametrize("form", BAD_FORMS.values(), ids=BAD_FORMS.keys())
def test_a_configured_token_is_masked_as_it_is_escaped_or_trimmed(form: tuple[str, str]) -> None:
    secret, _ = form
    shown = (
        f"raw {secret} | repr {secret!r} | bytes {secret.encode()!r} | json {json.dumps(secret)}"
        f" | trimmed '{secret.strip()}'"
    )

    masked = redact(shown, [secret])

    assert TOKEN not in masked
    assert masked.count(MASK) >= 4
