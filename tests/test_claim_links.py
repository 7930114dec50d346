"""The claim token as people hold it: the claim link (`--claim-url`, or pasted into
`PULUMI_CLAIM_TOKEN`), the block the pulumi CLI prints after an agent's sign-up saved to a file,
a file holding just the link, and the CLI's agent-claim.json; each claims against the emulator,
and each refusal is one clear error that shows no token and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from agent_times import CLAIM_EXPIRES_AT
from click.testing import CliRunner, Result
from test_cli_claim_api import AGENT, CLAIM_TOKEN, MOVABLE, ORGS, claim_world

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory

RESOLUTIONS = "stacks:\n  api/prod: api/prod-agent\n"
CLAIMED = {("web", "dev"), ("api", "prod"), ("web", "qa"), ("api", "prod-agent")}


def sign_up_block(link: str) -> str:
    """What the pulumi CLI writes on stderr after an agent's sign-up
    (`workspace.FormatAgentClaimInstruction`), after a line of the command's own output."""
    return (
        "Logged in to the agent's account\n"
        "PULUMI_EPHEMERAL_AGENT_ACCOUNT\n"
        f"CLAIM_URL={link}\n"
        "EPHEMERAL_ACCOUNT_ACCESS_EXPIRES_IN=2d23h59m\n"
        "ACTION_REQUIRED=Tell the user to claim this Pulumi agent account.\n"
        "INSTRUCTION=Tell the user Pulumi created an ephemeral agent account. It is important "
        "to surface the claim URL to the user so they can take ownership of the account. "
        "Include the claim URL and say they must claim the account within 2d23h59m before "
        "agent access expires. Tell them claiming the account will lock the Pulumi "
        "organization during the claim process, so they should let the agent finish its work "
        "before claiming it.\n"
    )


LOGIN_BLOCK = (
    "PULUMI_EPHEMERAL_AGENT_ACCOUNT\n"
    "ACTION_REQUIRED=Tell the user to run pulumi login.\n"
    "INSTRUCTION=Tell the user this Pulumi ephemeral agent account can no longer authenticate, "
    "and its claim URL is no longer claimable.\n"
)
"""The CLI's block once no claim is possible (`FormatAgentLoginRequiredInstruction`)."""


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(claim_world(claim_moves="current", **MOVABLE))


def run(
    server: EmulatorServer,
    tmp_path: Path,
    *args: str,
    claim_token: str | None = None,
    console_domain: str | None = None,
) -> Result:
    """Commit the claim of the agent's org into acme, the claim token from where `args` and
    `claim_token` (PULUMI_CLAIM_TOKEN) say; no token shows in any output."""
    resolutions = tmp_path / "resolutions.yaml"
    resolutions.write_text(RESOLUTIONS, encoding="utf-8")
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": None,
        "PULUMI_CLAIM_TOKEN": claim_token,
        "PULUMI_CONSOLE_DOMAIN": console_domain,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
    }
    command = ["commit", *ORGS, "--strategy", "claim-api", "-r", str(resolutions), "--yes"]
    result = CliRunner().invoke(cli, [*command, *args], env=env, catch_exceptions=False)
    assert CLAIM_TOKEN not in result.stdout + result.stderr
    return result


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def link_of(console: str) -> str:
    return f"{console}/claim/{CLAIM_TOKEN}"


def assert_claimed(result: Result, server: EmulatorServer) -> None:
    assert result.exit_code == 0, result.output
    assert server.state.stack_names("acme") == CLAIMED
    assert server.state.stack_names(AGENT) == set()


def assert_nothing_sent(server: EmulatorServer) -> None:
    assert server.requests.count(method="POST") == 0
    assert server.state.stack_names(AGENT) == {("web", "qa"), ("api", "prod")}


# --- each form claims ----------------------------------------------------------------------


def test_the_claim_link_option_claims(server: EmulatorServer, tmp_path: Path) -> None:
    """Every request logged (-vv), and still no token in the output (`run`)."""
    result = run(server, tmp_path, "--claim-url", link_of(server.url), "-vv")
    assert "/api/agents/signup/validate/***" in result.stderr
    assert_claimed(result, server)


def test_a_claim_link_in_the_variable_claims(server: EmulatorServer, tmp_path: Path) -> None:
    assert_claimed(run(server, tmp_path, claim_token=link_of(server.url)), server)


def test_a_link_of_the_console_the_pulumi_cli_names_claims(
    server: EmulatorServer, tmp_path: Path
) -> None:
    """The CLI builds claim links on `PULUMI_CONSOLE_DOMAIN` when it is set: so does the check."""
    link = link_of("http://console.invalid")
    assert_claimed(
        run(server, tmp_path, claim_token=link, console_domain="console.invalid"), server
    )


def test_the_pulumi_cli_block_saved_to_a_file_claims(
    server: EmulatorServer, tmp_path: Path
) -> None:
    block = write(tmp_path, "sign-up.txt", sign_up_block(link_of(server.url)))
    assert_claimed(run(server, tmp_path, "--claim-file", str(block)), server)


def test_a_file_holding_the_claim_link_claims(server: EmulatorServer, tmp_path: Path) -> None:
    link = write(tmp_path, "claim-link.txt", link_of(server.url) + "\n")
    assert_claimed(run(server, tmp_path, "--claim-file", str(link)), server)


def test_the_claim_file_claims(server: EmulatorServer, tmp_path: Path) -> None:
    document = {
        "claimUrl": link_of(server.url),
        "claimToken": CLAIM_TOKEN,
        "validUntil": CLAIM_EXPIRES_AT,
        "cloudUrl": server.url,
    }
    path = write(tmp_path, "agent-claim.json", json.dumps(document, indent=4))
    assert_claimed(run(server, tmp_path, "--claim-file", str(path)), server)


# --- each refusal is one clear error -------------------------------------------------------


def test_a_link_of_another_service_is_refused_naming_its_origin(
    server: EmulatorServer, tmp_path: Path
) -> None:
    link = link_of("https://app.pulumi.com")
    block = write(tmp_path, "sign-up.txt", sign_up_block(link))
    refusals = {
        "--claim-url": run(server, tmp_path, "--claim-url", link),
        "the claim link in PULUMI_CLAIM_TOKEN": run(server, tmp_path, claim_token=link),
        f"the claim link of the claim file {block}": run(
            server, tmp_path, "--claim-file", str(block)
        ),
    }

    for origin, result in refusals.items():
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"error: {origin} is a claim link of https://app.pulumi.com, not of the service at "
            f"{server.url}: its claim token is not sent there",
            "Run with the --api-url of the service whose console is https://app.pulumi.com "
            f"(https://api.pulumi.com), or give the claim link of {server.url}.",
        ]
    assert_nothing_sent(server)


@pytest.mark.parametrize(
    "link",
    [
        f"https://app.pulumi.com/claims/{CLAIM_TOKEN}",
        f"https://app.pulumi.com/claim/{CLAIM_TOKEN}/more",
        "https://app.pulumi.com/claim/",
        f"https:///claim/{CLAIM_TOKEN}",
        f"https://app.pulumi.com:port/claim/{CLAIM_TOKEN}",
    ],
    ids=["wrong-path", "longer-path", "no-token", "no-host", "bad-port"],
)
def test_a_malformed_link_is_refused_without_showing_it(
    server: EmulatorServer, tmp_path: Path, link: str
) -> None:
    for origin, result in {
        "--claim-url": run(server, tmp_path, "--claim-url", link),
        "the claim link in PULUMI_CLAIM_TOKEN": run(server, tmp_path, claim_token=link),
    }.items():
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"error: {origin} is not a claim link (the console's address, then "
            "/claim/<claimToken>)",
            "Give the claim link as the pulumi CLI printed it, such as "
            "https://app.pulumi.com/claim/<claimToken>.",
        ]
    assert_nothing_sent(server)


def test_a_block_without_a_claim_link_is_refused(server: EmulatorServer, tmp_path: Path) -> None:
    block = write(tmp_path, "sign-up.txt", LOGIN_BLOCK)
    result = run(server, tmp_path, "--claim-file", str(block))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: the claim file {block} holds the pulumi CLI's PULUMI_EPHEMERAL_AGENT_ACCOUNT "
        "block, but no CLAIM_URL= line",
        "Save the block the pulumi CLI printed after the agent's sign-up, with its CLAIM_URL= "
        "line; a block that only asks to run `pulumi login` has no claim link.",
    ]
    assert_nothing_sent(server)


def test_a_file_of_something_else_is_refused_without_showing_it(
    server: EmulatorServer, tmp_path: Path
) -> None:
    other = write(tmp_path, "notes.txt", f"the claim token is {CLAIM_TOKEN}\n")
    result = run(server, tmp_path, "--claim-file", str(other))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: the claim file {other} is no agent-claim.json, PULUMI_EPHEMERAL_AGENT_ACCOUNT "
        "block or claim link",
        "Pass the agent-claim.json the pulumi CLI wrote, the block it printed after sign-up, "
        "or a file holding the claim link; or set PULUMI_CLAIM_TOKEN instead.",
    ]
    assert_nothing_sent(server)


def test_a_link_and_a_claim_file_together_are_refused(
    server: EmulatorServer, tmp_path: Path
) -> None:
    link = write(tmp_path, "claim-link.txt", link_of(server.url))
    result = run(server, tmp_path, "--claim-url", link_of(server.url), "--claim-file", str(link))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --claim-url and --claim-file both give the claim token",
        "Pass one of them.",
    ]
    assert_nothing_sent(server)
