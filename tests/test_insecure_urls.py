"""Tokens never travel in cleartext to another machine unless --insecure says so.

The emulator listens on 127.0.0.1; `http://0.0.0.0:<port>` reaches it too (Linux connects the
unspecified address to this machine) without being a loopback URL. So a refusal that failed
would show as requests in the emulator's log, and nothing ever leaves the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from agent_times import agent_entry
from click.testing import CliRunner, Result

from toolkit.cli import cli
from toolkit.credentials import load_credentials
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import InvalidInputError
from toolkit.plan import ClaimTarget
from toolkit.service_urls import is_cleartext_remote

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
REFUSED = "refusing to send tokens in cleartext"

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "prod"}]},
        AGENT: {"stacks": [{"project": "web", "stack": "dev"}]},
    },
}


def elsewhere(server: EmulatorServer) -> str:
    """The emulator by a URL that is not a loopback one."""
    return f"http://0.0.0.0:{urlsplit(server.url).port}"


def run(*args: str, env: dict[str, str | None] | None = None, tmp_path: Path) -> Result:
    environment: dict[str, str | None] = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": "tok-agent",
        "PULUMI_CLAIM_TOKEN": None,
        "PULUMI_BACKEND_URL": None,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        **(env or {}),
    }
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


# --- The rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:9000/",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "http://[::ffff:127.0.0.1]:8080",
        "https://api.pulumi.com",
        "https://10.0.0.5",
        "file:///var/lib/pulumi",
        "s3://bucket/state",
    ],
)
def test_loopback_https_and_self_managed_urls_are_not_cleartext_remote(url: str) -> None:
    assert not is_cleartext_remote(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.pulumi.com",
        "http://10.255.255.1:9",
        "http://pulumi.example.invalid",
        "HTTP://example.com",
        "http://0.0.0.0:8080",
        "http://localhost.example.com",
        "http://[fd00::2]:80",
        "http://[::1",
    ],
)
def test_http_to_other_machines_is_cleartext_remote(url: str) -> None:
    assert is_cleartext_remote(url)


def test_load_credentials_refuses_cleartext_unless_allowed(tmp_path: Path) -> None:
    env = {"PULUMI_ACCESS_TOKEN": "tok", "PULUMI_BACKEND_URL": "http://10.255.255.1:9"}
    with pytest.raises(InvalidInputError, match="from PULUMI_BACKEND_URL") as refused:
        load_credentials(None, env=env, home=tmp_path)
    assert "--insecure" in str(refused.value)
    with pytest.raises(InvalidInputError, match="from --api-url"):
        load_credentials("http://pulumi.example.invalid", env=env, home=tmp_path)
    allowed = load_credentials(None, env=env, home=tmp_path, allow_insecure=True)
    assert allowed.api_url == "http://10.255.255.1:9"


def test_claim_target_refuses_cleartext_backends_unless_allowed() -> None:
    with pytest.raises(InvalidInputError, match="from --source-backend"):
        ClaimTarget("a", "b", source_backend="http://10.255.255.1:9")
    with pytest.raises(InvalidInputError, match="from --destination-backend"):
        ClaimTarget("a", "b", destination_backend="http://pulumi.example.invalid")
    ClaimTarget("a", "b", "http://10.255.255.1:9", "file:///x", allow_insecure=True)
    ClaimTarget("a", "b", "file:///state", "http://127.0.0.1:8080")


# --- The command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["preview"], ["resolve"], ["commit", "--yes"]], ids=lambda c: c[0]
)
@pytest.mark.parametrize("given_by", ["option", "environment"])
def test_cleartext_api_url_is_refused_before_any_request(
    make_emulator: EmulatorFactory, tmp_path: Path, command: list[str], given_by: str
) -> None:
    server = make_emulator(WORLD)
    url = elsewhere(server)
    if given_by == "option":
        result = run("--api-url", url, *command, *ORGS, tmp_path=tmp_path)
        origin = "--api-url"
    else:
        result = run(*command, *ORGS, env={"PULUMI_BACKEND_URL": url}, tmp_path=tmp_path)
        origin = "PULUMI_BACKEND_URL"
    assert result.exit_code == 1
    assert f"error: {REFUSED} to {url} (from {origin}); nothing was sent." in result.stderr
    assert "Use an https:// URL" in result.stderr and "--insecure" in result.stderr
    assert server.requests.count() == 0
    assert server.state.stack_names(AGENT) == {("web", "dev")}


@pytest.mark.parametrize("url", ["http://10.255.255.1:9", "http://pulumi.example.invalid"])
def test_unreachable_cleartext_urls_are_refused_not_tried(tmp_path: Path, url: str) -> None:
    """Were they tried, the error would be the network's ("got no answer"), not the refusal."""
    result = run("--api-url", url, "preview", *ORGS, tmp_path=tmp_path)
    assert result.exit_code == 1
    assert REFUSED in result.stderr
    assert "no answer" not in result.stderr


@pytest.mark.parametrize("option", ["--source-backend", "--destination-backend"])
def test_cleartext_backends_are_refused_before_any_request(
    make_emulator: EmulatorFactory, tmp_path: Path, option: str
) -> None:
    server = make_emulator(WORLD)
    result = run(
        "preview",
        *ORGS,
        "--strategy",
        "migrate",
        option,
        elsewhere(server),
        env={"PULUMI_BACKEND_URL": server.url},
        tmp_path=tmp_path,
    )
    assert result.exit_code == 1
    assert f"(from {option})" in result.stderr
    assert server.requests.count() == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_urls_work_as_before_without_a_warning(
    make_emulator: EmulatorFactory, tmp_path: Path, host: str
) -> None:
    server = make_emulator(WORLD)
    url = server.url.replace("127.0.0.1", host)
    result = run("--api-url", url, "preview", *ORGS, "--format", "json", tmp_path=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr


def test_insecure_lets_a_cleartext_url_through_with_one_warning(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(WORLD)
    url = elsewhere(server)
    result = run(
        "--insecure", "--api-url", url, "preview", *ORGS, "--format", "json", tmp_path=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: --insecure: tokens travel unencrypted to {url}"]
    assert server.requests.count() > 0
