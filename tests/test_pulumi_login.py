"""The backend `pulumi login` made current is the API URL when none is given, and its stored
token the destination's when PULUMI_ACCESS_TOKEN is unset; a current backend that is no Pulumi
Cloud is one clear error. Real emulator over HTTP, a PULUMI_HOME of the test's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from toolkit.cli import cli

if TYPE_CHECKING:
    from conftest import EmulatorFactory

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
WORLD = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}},
        {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
    ],
    "orgs": {"acme": {}, AGENT: {"stacks": [{"project": "web", "stack": "dev"}]}},
}
"""alice administers both orgs, bob only belongs to acme; one stack to move."""


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


def login(pulumi_home: Path, document: dict[str, Any]) -> None:
    """What `pulumi login` leaves in PULUMI_HOME: `credentials.json`."""
    pulumi_home.mkdir(parents=True, exist_ok=True)
    (pulumi_home / "credentials.json").write_text(json.dumps(document), encoding="utf-8")


def preview(pulumi_home: Path, tmp_path: Path, **env: str) -> Result:
    """`pulumi-claim preview` with no API URL given and only `env`'s tokens."""
    environment: dict[str, str | None] = {
        "PULUMI_HOME": str(pulumi_home),
        "PULUMI_CREDENTIALS_PATH": None,
        "PULUMI_BACKEND_URL": None,
        "PULUMI_ACCESS_TOKEN": None,
        "PULUMI_CLAIM_SOURCE_TOKEN": None,
        "PULUMI_CLAIM_TOKEN": None,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        **env,
    }
    args = ["preview", *ORGS, "--format", "json"]
    return CliRunner().invoke(cli, args, env=environment, catch_exceptions=False)


def previewed_as(result: Result) -> str:
    """Who the preview's document says owns the source (the source identity's login)."""
    assert result.exit_code == 0, result.stderr
    login_name: str = json.loads(result.stdout)["agent"]["login"]
    return login_name


def test_the_current_login_names_the_service_and_its_token(
    server: EmulatorServer, tmp_path: Path
) -> None:
    home = tmp_path / "pulumi-home"
    login(
        home,
        {
            "current": server.url,
            "accessTokens": {server.url: "tok-alice"},
            "accounts": {server.url: {"accessToken": "tok-alice", "username": "alice"}},
        },
    )

    assert previewed_as(preview(home, tmp_path)) == "alice"
    assert server.state.stack_names(AGENT) == {("web", "dev")}


def test_the_account_token_is_read_as_the_pulumi_cli_reads_it(
    server: EmulatorServer, tmp_path: Path
) -> None:
    """`accounts.<url>.accessToken` first, as the pulumi CLI's `GetAccount`; the older
    `accessTokens` only for a backend without an account."""
    home = tmp_path / "pulumi-home"
    login(
        home,
        {
            "current": f"{server.url}/",
            "accessTokens": {server.url: "tok-bob"},
            "accounts": {f"{server.url}/": {"accessToken": "tok-alice"}},
        },
    )

    assert previewed_as(preview(home, tmp_path)) == "alice"


def test_pulumi_access_token_wins_over_the_stored_one(
    server: EmulatorServer, tmp_path: Path
) -> None:
    home = tmp_path / "pulumi-home"
    login(home, {"current": server.url, "accessTokens": {server.url: "tok-bob"}})

    result = preview(home, tmp_path, PULUMI_ACCESS_TOKEN="tok-alice")

    assert previewed_as(result) == "alice"


def test_pulumi_credentials_path_locates_the_login(server: EmulatorServer, tmp_path: Path) -> None:
    """The pulumi CLI's own switch for the folder of `credentials.json` wins over PULUMI_HOME."""
    elsewhere = tmp_path / "credentials-elsewhere"
    login(elsewhere, {"current": server.url, "accessTokens": {server.url: "tok-alice"}})

    result = preview(tmp_path / "empty-home", tmp_path, PULUMI_CREDENTIALS_PATH=str(elsewhere))

    assert previewed_as(result) == "alice"


@pytest.mark.parametrize(
    "backend", ["file:///home/alice/.pulumi-state", "s3://acme-state", "gs://acme-state"]
)
def test_a_self_managed_current_backend_is_said_to_be_no_pulumi_cloud(
    backend: str, server: EmulatorServer, tmp_path: Path
) -> None:
    home = tmp_path / "pulumi-home"
    login(home, {"current": backend, "accessTokens": {server.url: "tok-alice"}})

    result = preview(home, tmp_path, PULUMI_ACCESS_TOKEN="tok-alice")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: the current backend of `pulumi login` (in {home / 'credentials.json'}) is "
        f"{backend}, a self-managed backend, not a Pulumi Cloud: pulumi-claim moves stacks "
        "between Pulumi Cloud orgs.",
        "Pass --api-url (or set PULUMI_BACKEND_URL) to the Pulumi Cloud to claim into, or run "
        "`pulumi login` to it; a self-managed backend goes in --source-backend or "
        "--destination-backend.",
    ]
    assert server.requests.count("GET") == 0


def test_an_api_url_given_wins_over_the_current_login(
    server: EmulatorServer, tmp_path: Path
) -> None:
    home = tmp_path / "pulumi-home"
    login(home, {"current": "file:///somewhere", "accessTokens": {server.url: "tok-alice"}})

    result = preview(home, tmp_path, PULUMI_BACKEND_URL=server.url)

    assert previewed_as(result) == "alice"
