"""The source org's lock as the user meets it: a run that changed nothing leaves no lock
behind, and one org is one lock whatever the spelling of its service's URL.

Each commit runs in its own process against the emulator, as a user or a scheduler runs it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from agent_times import agent_entry
from commit_process import (
    Finished,
    is_state_changing,
    run_toolkit,
    settle,
    toolkit_command,
    toolkit_env,
)
from waiting import wait_until

from toolkit.credentials import load_credentials
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import InvalidInputError
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse
from toolkit.plan import ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.runs import ClaimRequest, run_key
from toolkit.service_urls import canonical_url
from toolkit.sides import Sides

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
GOOD_MAP = "stacks:\n  web/dev: web/dev-agent\n"
BAD_MAP = "stacks:\n  web/dev: web/dev-agent\n  web/nope: web/nope-agent\n"
"""Renames a stack the agent's org does not hold: refused before anything moves."""


def world() -> dict[str, Any]:
    """alice administers acme (which holds web/dev) and the agent's org (web/dev, web/prod);
    bob belongs to acme only."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}},
            {"login": "bob", "token": "tok-bob", "orgs": {"acme": "admin"}},
        ],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
        "orgs": {
            "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
            AGENT: {
                "stacks": [
                    {"project": "web", "stack": "dev"},
                    {"project": "web", "stack": "prod"},
                ]
            },
        },
    }


def commit(
    server: EmulatorServer,
    runs_dir: Path,
    map_file: Path,
    *,
    token: str = "tok-alice",
    strategy: str = "transfer",
) -> Finished:
    env = toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN=token)
    args = ("commit", *ORGS, "--strategy", strategy, "-r", str(map_file), "--yes")
    return run_toolkit(server, env, *args, "--format", "json")


def assert_moved(server: EmulatorServer, finished: Finished) -> None:
    assert finished.returncode == 0, finished.stderr
    assert AgentClaimResponse.model_validate(json.loads(finished.stdout)).failures == []
    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == {
        ("web", "dev"),
        ("web", "dev-agent"),
        ("web", "prod"),
    }


def test_a_commit_refused_for_its_map_leaves_no_lock_and_the_fixed_map_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(BAD_MAP, encoding="utf-8")

    refused = commit(server, runs_dir, map_file)

    assert refused.returncode == 1
    assert "the resolution map was refused" in refused.stderr
    assert "Traceback" not in refused.stderr
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    fixed = commit(server, runs_dir, map_file)
    assert "unfinished run" not in fixed.stderr
    assert_moved(server, fixed)
    assert read_run(runs_dir).finished


def test_a_commit_refused_for_its_token_leaves_no_lock_and_another_token_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")

    refused = commit(server, runs_dir, map_file, token="tok-bob", strategy="auto")

    assert refused.returncode == 1
    assert f"error: --from {AGENT}: bob has no role in {AGENT}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}
    other = commit(server, runs_dir, map_file)
    assert "unfinished run" not in other.stderr
    assert_moved(server, other)


def test_a_commit_stopped_before_its_first_call_leaves_no_lock_and_another_commits(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    env = toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN="tok-alice")
    server.faults.hold(method="GET", path="/api/user/stacks")
    said = tmp_path / "stderr.txt"
    with said.open("w", encoding="utf-8") as stderr:
        stopped = subprocess.Popen(
            toolkit_command(server, "commit", *ORGS, "-r", str(map_file), "--yes"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    wait_until(lambda: server.faults.holding == 1, "the run's first listing arrived")
    stopped.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping:" in said.read_text(encoding="utf-8"), "the run is stopping")
    server.faults.release()
    assert stopped.wait(timeout=300) == 130, said.read_text(encoding="utf-8")
    assert read_run(runs_dir).steps == []
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}

    other = commit(server, runs_dir, map_file, strategy="transfer")

    assert "unfinished run" not in other.stderr
    assert_moved(server, other)


SPELLINGS = [
    "http://localhost:{port}/",
    "HTTP://LocalHost:{port}",
    "http://127.0.0.1:{port}/api",
    "http://[0:0:0:0:0:0:0:1]:{port}//",
    "http://[::1]:{port}/api/",
    "http://[::ffff:127.0.0.1]:{port}",
]
"""Six spellings of the emulator's `http://127.0.0.1:{port}`."""
API_URL_SPELLINGS = [
    *(spelling for spelling in SPELLINGS if not spelling.rstrip("/").endswith("/api")),
    "http://127.0.0.1:{port}//",
    "http://[::1]:{port}",
]
"""Six spellings of it that `--api-url` takes: one ending in `/api` is refused as no API URL
(the API's paths are added to it), though it names the same service."""


@pytest.mark.parametrize("spelling", API_URL_SPELLINGS)
def test_every_spelling_of_a_service_url_is_one_service_and_one_run(spelling: str) -> None:
    url, other = "http://127.0.0.1:8080", spelling.format(port=8080)
    request = ClaimRequest(
        target=ClaimTarget(AGENT, "acme"), resolution_map=ResolutionMap.empty(), map_identity="none"
    )

    def key(api_url: str) -> str:
        credentials = load_credentials(api_url, {"PULUMI_ACCESS_TOKEN": "tok"})
        return run_key(Sides.of(request.target, credentials), request)

    assert canonical_url(other) == url
    assert key(other) == key(url)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("http://127.0.0.1:8080", "https://127.0.0.1:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.2:8080"),
        ("https://api.pulumi.com", "https://api.pulumi.example"),
        ("https://pulumi.example/one", "https://pulumi.example/two"),
    ],
)
def test_different_services_stay_different(one: str, other: str) -> None:
    assert canonical_url(one) != canonical_url(other)


def test_default_ports_and_case_do_not_make_another_service() -> None:
    assert canonical_url("HTTPS://API.Pulumi.com:443/api/") == "https://api.pulumi.com"
    assert canonical_url("http://pulumi.example:80/") == "http://pulumi.example"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_spelling_names_the_service_whatever_its_form(spelling: str) -> None:
    assert canonical_url(spelling.format(port=8080)) == "http://127.0.0.1:8080"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_login_stored_under_any_spelling_is_found(spelling: str, tmp_path: Path) -> None:
    stored = {"accessTokens": {spelling.format(port=8080): "tok-stored"}}
    (tmp_path / "credentials.json").write_text(json.dumps(stored), encoding="utf-8")

    found = load_credentials("http://127.0.0.1:8080", {"PULUMI_HOME": str(tmp_path)})

    assert found.destination_token == "tok-stored"
    assert found.api_url == "http://127.0.0.1:8080", "the URL as given is the one connected to"


@pytest.mark.parametrize("spelling", API_URL_SPELLINGS)
def test_one_run_per_org_whatever_the_spelling_of_its_url(
    make_emulator: EmulatorFactory, tmp_path: Path, spelling: str
) -> None:
    server = make_emulator(world())
    runs_dir, map_file = tmp_path / "runs", tmp_path / "map.yaml"
    map_file.write_text(GOOD_MAP, encoding="utf-8")
    env = toolkit_env(runs_dir, PULUMI_ACCESS_TOKEN="tok-alice")
    args = ["commit", *ORGS, "--strategy", "transfer", "-r", str(map_file), "--yes"]
    server.faults.hold(method="POST", path=f"/api/stacks/{AGENT}/.*")
    first = subprocess.Popen(
        toolkit_command(server, *args, "--format", "json"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: server.faults.holding == 1, "the first run's first call arrived")
        changes_before = [e for e in server.requests.entries() if is_state_changing(e)]

        elsewhere = spelling.format(port=urlsplit(server.url).port)
        second = subprocess.run(
            [sys.executable, "-m", "toolkit", "--api-url", elsewhere, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

        assert second.returncode == 1, second.stderr
        assert f"org {AGENT} is locked by run " in second.stderr
        assert [e for e in server.requests.entries() if is_state_changing(e)] == changes_before
    finally:
        server.faults.release()
        stdout, stderr = first.communicate(timeout=300)
    settle(server)
    assert_moved(server, Finished(first.returncode, stdout, stderr))


def test_one_org_named_twice_under_two_spellings_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="--from and --to are both 'acme'"):
        ClaimTarget("acme", "acme", "http://localhost:8080/", "http://127.0.0.1:8080")
