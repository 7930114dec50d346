"""The claim API's one call, killed right after the service applied it, or its answer lost:
the claim is found in the destination's claim status and followed, never made twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from agent_times import agent_entry
from commit_process import Finished, StopAt, run_toolkit, toolkit_env

from toolkit.emulator.faults import RecordedRequest
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
CLAIM_PATH = "/api/agents/acme/claim"
WORLD: dict[str, Any] = {
    "users": [{"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
        AGENT: {
            "stacks": [
                {"project": "web", "stack": "dev"},
                {"project": "web", "stack": "qa"},
                {"project": "api", "stack": "prod"},
            ]
        },
    },
}
LANDED = {("web", "dev"), ("web", "dev-agent"), ("web", "qa"), ("api", "prod")}


@pytest.fixture
def setup(make_emulator: EmulatorFactory, tmp_path: Path) -> tuple[EmulatorServer, dict[str, str]]:
    (tmp_path / "map.yaml").write_text("stacks: {web/dev: web/dev-agent}\n", encoding="utf-8")
    env = toolkit_env(
        tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-bob", PULUMI_CLAIM_TOKEN="claim-abc123"
    )
    return make_emulator(WORLD), env


def commit(server: EmulatorServer, env: dict[str, str], stop: StopAt | None = None) -> Finished:
    map_file = Path(env["PULUMI_CLAIM_RUNS_DIR"]).parent / "map.yaml"
    return run_toolkit(
        server,
        env,
        *("commit", "--from", AGENT, "--to", "acme", "--strategy", "claim-api"),
        *("-r", str(map_file), "--yes", "--format", "json"),
        stop=stop,
    )


def claims_made(server: EmulatorServer) -> int:
    return sum(
        1 for e in server.requests.entries() if e.path == CLAIM_PATH and "dryRun=false" in e.query
    )


def assert_claimed(server: EmulatorServer, env: dict[str, str], finished: Finished) -> None:
    assert finished.returncode == 0, finished.stderr
    document = AgentClaimResponse.model_validate(json.loads(finished.stdout))
    assert document.failures == [] and document.transfer_token
    assert server.state.stack_names("acme") == LANDED
    run = read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"]))
    assert run.finished and run.result == document


def test_a_claim_killed_once_the_service_applied_it_is_followed_not_made_again(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup
    # The plan's dry run of the claim is the first call that may change state; the claim
    # itself the second.
    killed = commit(server, env, StopAt(2))

    assert killed.returncode == -signal.SIGKILL
    assert server.state.stack_names("acme") == LANDED, "the claim was applied"
    server.requests.clear()
    again = commit(server, env)

    assert_claimed(server, env, again)
    assert claims_made(server) == 0


def test_a_claim_whose_answer_was_lost_is_settled_by_the_claim_status(
    setup: tuple[EmulatorServer, dict[str, str]],
) -> None:
    server, env = setup

    def lose_the_claims_answer(entry: RecordedRequest) -> None:
        if entry.path == CLAIM_PATH and "dryRun=true" in entry.query:
            server.faults.fail_after(500, method="POST", path=CLAIM_PATH)

    server.requests.watch(lose_the_claims_answer)
    finished = commit(server, env)

    assert_claimed(server, env, finished)
    assert claims_made(server) == 1
    run = read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"]))
    (claim,) = [step for step in run.steps if step.action == "claim"]
    assert claim.outcome == "done"
    assert claim.message is not None and claim.message.startswith(
        "applied, though the answer was lost"
    )
