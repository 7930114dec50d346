"""The service's claim runs on after its commit answered: the toolkit follows it stack by stack,
survives being killed while it runs (the same command follows it on, never claiming twice), and
says when it stopped following a claim still running (the same command finishes it).

The worlds here move a stack every `PACE` seconds of the service's clock, far more than a test
takes: the tests move the clock, so what the claim has done at each look is exact."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import agent_entry
from commit_process import Finished, StopAt, run_toolkit, toolkit_env

from toolkit.claim import CommitResult, commit_claim, plan_claim
from toolkit.credentials import Credentials
from toolkit.emulator.faults import RecordedRequest
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.plan import ClaimTarget
from toolkit.progress import MoveFinished, ProgressEvent
from toolkit.resolution_map import parse_resolution_map
from toolkit.sides import Sides
from toolkit.strategies import StopSignal

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
CLAIM_TOKEN = "claim-abc123"
PACE = 3600
STATUS_PATH = "/api/agents/acme/claim/status"
CLAIM_PATH = "/api/agents/acme/claim"
WORLD: dict[str, Any] = {
    "service": {"claimSecondsPerStack": PACE},
    "users": [{"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token=CLAIM_TOKEN)],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
        AGENT: {
            "stacks": [
                {"project": "api", "stack": "prod"},
                {"project": "web", "stack": "dev"},
                {"project": "web", "stack": "qa"},
            ]
        },
    },
}
MAP = "stacks: {web/dev: web/dev-agent}\n"
LANDED = {("web", "dev"), ("web", "dev-agent"), ("web", "qa"), ("api", "prod")}


def one_stack_per_look(server: EmulatorServer) -> None:
    """Each look at the claim's status lets one `PACE` pass: the claim moves one stack."""

    def advance(entry: RecordedRequest) -> None:
        if entry.method == "GET" and entry.path == STATUS_PATH:
            server.state.advance_clock(PACE)

    server.requests.watch(advance)


def claims_made(server: EmulatorServer) -> int:
    return sum(
        1 for e in server.requests.entries() if e.path == CLAIM_PATH and "dryRun=false" in e.query
    )


def claims_status(server: EmulatorServer) -> list[str]:
    """The transfer tokens of the claims into acme, as the service lists them."""
    answer = httpx.get(f"{server.url}{STATUS_PATH}", headers={"Authorization": "token tok-bob"})
    return list(answer.raise_for_status().json()["claims"])


def test_each_stack_is_reported_as_it_lands_while_the_claim_runs(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(WORLD)
    one_stack_per_look(server)
    credentials = Credentials(server.url, "tok-bob", "tok-bob", CLAIM_TOKEN)
    sides = Sides.of(ClaimTarget(source_org=AGENT, destination_org="acme"), credentials)
    seen: list[tuple[str, int, int]] = []

    def heard(event: ProgressEvent) -> None:
        if isinstance(event, MoveFinished):
            seen.append((event.target, event.done, server.requests.count("GET", STATUS_PATH)))

    async def claim() -> None:
        plan = await plan_claim(sides, parse_resolution_map(MAP), "claim-api")
        result = await commit_claim(sides, plan, on_progress=heard)
        assert result.failed_moves == {}

    asyncio.run(claim())

    assert [(target, done) for target, done, _ in seen] == [
        ("acme/api/prod", 1),
        ("acme/web/dev-agent", 2),
        ("acme/web/qa", 3),
    ]
    looks = [look for _, _, look in seen]
    assert looks == sorted(set(looks)), "each stack was reported at a later look than the last"
    assert claims_made(server) == 1
    assert server.state.stack_names("acme") == LANDED


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "map.yaml").write_text(MAP, encoding="utf-8")
    return toolkit_env(
        tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-bob", PULUMI_CLAIM_TOKEN=CLAIM_TOKEN
    )


def commit(
    server: EmulatorServer, env: dict[str, str], *options: str, stop: StopAt | None = None
) -> Finished:
    map_file = Path(env["PULUMI_CLAIM_RUNS_DIR"]).parent / "map.yaml"
    return run_toolkit(
        server,
        env,
        *("commit", "--from", AGENT, "--to", "acme", "--strategy", "claim-api"),
        *("-r", str(map_file), "--yes", *options),
        stop=stop,
    )


def test_the_json_log_has_a_line_per_stack_as_the_claim_moves_it(
    make_emulator: EmulatorFactory, env: dict[str, str]
) -> None:
    server = make_emulator(WORLD)
    one_stack_per_look(server)

    finished = commit(server, env, "--log-format", "json")

    assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in finished.stdout.splitlines()]
    landed = [
        (line["target"], line["done"], line["total"])
        for line in lines
        if line["event"] == "move-finished"
    ]
    assert landed == [
        ("acme/api/prod", 1, 3),
        ("acme/web/dev-agent", 2, 3),
        ("acme/web/qa", 3, 3),
    ]
    assert lines[-1]["event"] == "claim-finished" and lines[-1]["exitCode"] == 0


def test_a_commit_killed_while_the_claim_runs_is_followed_by_the_same_command(
    make_emulator: EmulatorFactory, env: dict[str, str]
) -> None:
    server = make_emulator(WORLD)
    # The plan's dry run of the claim is the first call that may change state; the claim
    # itself the second: killed as soon as the service started it.
    killed = commit(server, env, "--format", "json", stop=StopAt(2))

    assert killed.returncode == -signal.SIGKILL
    assert len(server.state.stack_names(AGENT)) == 3, "the claim runs: nothing moved yet"
    made = httpx.post(
        f"{server.url}/api/stacks/{AGENT}/web",
        json={"stackName": "new"},
        headers={"Authorization": "token tok-agent"},
    )
    assert made.status_code == 409, "the agent's org is held while the claim runs"
    server.state.advance_clock(PACE)
    assert server.state.stack_names(AGENT) == {("web", "dev"), ("web", "qa")}

    one_stack_per_look(server)
    again = commit(server, env, "--format", "json")

    assert again.returncode == 0, again.stderr
    assert claims_made(server) == 1
    assert server.state.stack_names("acme") == LANDED
    assert server.state.stack_names(AGENT) == set()
    run = read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"]))
    assert run.finished
    (token,) = claims_status(server)
    claims = [(step.outcome, step.message) for step in run.steps if step.action == "claim"]
    assert claims == [(None, None), ("done", f"claim {token}, found in the claim status")]
    assert json.loads(again.stdout)["failures"] == []


def test_a_claim_still_running_when_the_wait_ends_is_of_unknown_outcome_until_rerun(
    make_emulator: EmulatorFactory, env: dict[str, str]
) -> None:
    server = make_emulator(WORLD)

    waited = commit(server, env, "--claim-wait", "0.3", "--format", "json")

    assert waited.returncode == 4, waited.stderr
    (token,) = claims_status(server)
    still = f"the claim {token} into acme was still running after 0.3 s"
    rerun = "re-run the same command: it looks where each stack is now and finishes the move"
    assert [line for line in waited.stderr.splitlines() if line.startswith("stacks [")] == [
        "stacks [0/3] moving agent-abc123/api/prod -> acme/api/prod",
        "stacks [0/3] moving agent-abc123/web/dev -> acme/web/dev-agent",
        "stacks [0/3] moving agent-abc123/web/qa -> acme/web/qa",
        *(
            f"stacks [{done}/3, {done} failed] agent-abc123/{source} -> acme/{target} is of "
            f"unknown outcome (claim): outcome unknown: {still} ({target} had not landed yet; the "
            f"service moves the stacks itself); {rerun}"
            for done, source, target in [
                (1, "api/prod", "api/prod"),
                (2, "web/dev", "web/dev-agent"),
                (3, "web/qa", "web/qa"),
            ]
        ),
    ]
    document = json.loads(waited.stdout)
    assert len(document["failures"]) == 3
    assert len(server.state.stack_names(AGENT)) == 3

    server.state.advance_clock(3 * PACE)
    again = commit(server, env, "--claim-wait", "0.3", "--format", "json")

    assert again.returncode == 0, again.stderr
    assert claims_made(server) == 1
    assert server.state.stack_names("acme") == LANDED
    assert json.loads(again.stdout)["failures"] == []


def test_a_stop_while_the_claim_runs_leaves_its_stacks_interrupted(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(WORLD)
    credentials = Credentials(server.url, "tok-bob", "tok-bob", CLAIM_TOKEN)
    sides = Sides.of(ClaimTarget(source_org=AGENT, destination_org="acme"), credentials)
    stop = StopSignal()

    def stop_at_the_first_look(entry: RecordedRequest) -> None:
        if entry.method == "GET" and entry.path == STATUS_PATH:
            stop.request()

    server.requests.watch(stop_at_the_first_look)

    async def claim() -> CommitResult:
        plan = await plan_claim(sides, parse_resolution_map(MAP), "claim-api")
        return await commit_claim(sides, plan, stop=stop)

    result = asyncio.run(claim())

    assert result.interrupted
    assert {failure.outcome for failure in result.failed_moves.values()} == {"interrupted"}
    assert len(result.failed_moves) == 3
    assert server.requests.count("GET", STATUS_PATH) == 1
    assert claims_made(server) == 1
