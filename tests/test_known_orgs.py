"""An org the token has no role in (a misspelled `--to` or `--from`) is one error that lists
the orgs the token does have a role in, with a did-you-mean when one is close; nothing changes
(the listings start with the check, and its failure cancels them). Through the CLI, real
emulator over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import EmulatorFactory, RunCli

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
WORLD = {
    "users": [
        {
            "login": "alice",
            "token": "tok-alice",
            "orgs": {"acme": "admin", "acme-labs": "member", AGENT: "admin"},
        },
        {"login": "bob", "token": "tok-bob", "orgs": {"globex": "member"}},
    ],
    "orgs": {
        "acme": {},
        "acme-labs": {},
        "globex": {},
        AGENT: {"stacks": [{"project": "web", "stack": "dev"}]},
    },
}
"""alice has a role in acme, acme-labs and the agent's org; bob only in globex."""


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


def writes(server: EmulatorServer) -> int:
    """Requests that could change something: all but reads."""
    return len(server.requests.entries()) - server.requests.count("GET")


@pytest.mark.parametrize("command", [["preview"], ["commit", "--yes"], ["resolve"]])
def test_an_unknown_to_org_lists_the_orgs_with_a_did_you_mean(
    command: list[str], server: EmulatorServer, run_cli: RunCli
) -> None:
    result = run_cli(server, *command, "--from", AGENT, "--to", "acmee", source_token=None)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: --to acmee: alice has no role in acmee (did you mean acme?)",
        f"The orgs alice has a role in: acme, acme-labs, {AGENT}. Name one of them, or use "
        "the token of a member of acmee.",
    ]
    assert writes(server) == 0
    assert server.state.stack_names(AGENT) == {("web", "dev")}


def test_an_unknown_from_org_is_answered_the_same_way(
    server: EmulatorServer, run_cli: RunCli
) -> None:
    result = run_cli(server, "preview", "--from", "agent-abc132", "--to", "acme", source_token=None)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: --from agent-abc132: alice has no role in agent-abc132 (did you mean {AGENT}?)",
        f"The orgs alice has a role in: acme, acme-labs, {AGENT}. Name one of them, or use "
        "the token of a member of agent-abc132.",
    ]
    assert writes(server) == 0


def test_the_source_org_is_checked_with_the_source_token(
    server: EmulatorServer, run_cli: RunCli
) -> None:
    """bob's token is the source identity: the org he lacks is the source, named by --from."""
    result = run_cli(server, "preview", "--from", AGENT, "--to", "acme", source_token="tok-bob")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: --from {AGENT}: bob has no role in {AGENT}",
        f"The orgs bob has a role in: globex. Name one of them, or use the token of a member "
        f"of {AGENT}.",
    ]


def test_a_known_org_plans_as_before(server: EmulatorServer, run_cli: RunCli) -> None:
    result = run_cli(
        server, "preview", "--from", AGENT, "--to", "acme", "--format", "json", source_token=None
    )

    assert result.exit_code == 0, result.stderr
    assert '"orgName": "agent-abc123"' in result.stdout
