"""Copies of ESC environments on a bad day: a tenth of the service's answers are 503, one in
twenty calls is carried out and then loses its connection, and the toolkit is SIGKILLed at
random moments. After the last kill, plain re-runs of the same command finish the job in a few
runs: every stack in the destination once, every environment of an import chain copied once,
verified, and the sources as they were."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from commit_process import (
    Finished,
    StopAt,
    assert_transferred_once,
    run_toolkit,
    toolkit_env,
    transfer_world,
)

from toolkit.emulator.faults import FaultRates
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-abc123"
TOKEN = "tok-alice"
STACKS = [("web", f"s{i:02}") for i in range(12)]
CHAIN = ["a", "b", "c", "d"]
"""default/a imports default/b, which imports default/c, which imports default/d."""

RATES = {"503": 0.10, "dropAfterApply": 0.05}
SEEDS = [4, 6]
"""Each seeds both the faults and the kill moments; the client makes one call at a time
(`--concurrency 1`), so the service meets the same faults on every run of the test."""
KILLS = 3
LATEST_KILL = 14
"""A kill comes after one of the first this many state-changing calls a run makes (a run
that makes fewer ends by itself)."""
MOST_RERUNS = 4
"""Plain runs after the last kill by which the job is done."""
COMMAND = ("commit", "--from", AGENT, "--to", "acme", "--strategy", "transfer")
COPY = ("--environments", "copy", "--concurrency", "1", "--yes", "--format", "json")


def definition(index: int) -> str:
    imports = f"imports: [{CHAIN[index + 1]}]\n" if index + 1 < len(CHAIN) else ""
    return f"{imports}values:\n  level: {index}\n  password:\n    fn::secret: pw-{index}-7c1d\n"


def tags(index: int) -> dict[str, str]:
    return {"team": f"team-{index}", "tier": "gold"}


def world() -> dict[str, Any]:
    spec = transfer_world(AGENT, TOKEN, [], STACKS)
    spec["orgs"][AGENT]["environments"] = [
        {"project": "default", "name": name, "definition": definition(i), "tags": tags(i)}
        for i, name in enumerate(CHAIN)
    ]
    return spec


def read(server: EmulatorServer, org: str, name: str, tail: str = "") -> httpx.Response:
    response = httpx.get(
        f"{server.url}/api/esc/environments/{org}/default/{name}{tail}",
        headers={"Authorization": f"token {TOKEN}"},
    )
    response.raise_for_status()
    return response


def environments_of(server: EmulatorServer, org: str) -> list[tuple[str, str]]:
    listed = httpx.get(
        f"{server.url}/api/esc/environments/{org}", headers={"Authorization": f"token {TOKEN}"}
    ).json()["environments"]
    return sorted((e["project"], e["name"]) for e in listed)


def failures_of(run: Finished) -> list[str]:
    """What a run's document says did not land."""
    document = AgentClaimResponse.model_validate(json.loads(run.stdout))
    return [failure.failure_details for failure in document.failures]


@pytest.mark.parametrize("seed", SEEDS)
def test_an_import_chain_and_its_stacks_converge_under_faults_and_kills(
    make_emulator: EmulatorFactory, tmp_path: Path, seed: int
) -> None:
    server = make_emulator(world())
    env = toolkit_env(tmp_path / "runs", PULUMI_ACCESS_TOKEN=TOKEN)
    server.faults.set_rates(FaultRates(seed=seed, rates=RATES))
    kill_points = random.Random(seed)

    killed: list[StopAt] = []
    for _ in range(KILLS):
        stop = StopAt(kill_points.randint(1, LATEST_KILL))
        run_toolkit(server, env, *COMMAND, *COPY, stop=stop)
        killed.append(stop)
    reruns: list[Finished] = []
    while not reruns or reruns[-1].returncode != 0:
        assert len(reruns) < MOST_RERUNS, [failures_of(run) for run in reruns]
        reruns.append(run_toolkit(server, env, *COMMAND, *COPY))
        assert reruns[-1].returncode in (0, 4), reruns[-1].stderr
        assert "Traceback" not in reruns[-1].stderr

    assert killed[0].fired
    counts = server.faults.rate_counts()
    assert counts.fired["503"] > 0 and counts.fired["dropAfterApply"] > 0
    server.faults.clear_rates()
    document = AgentClaimResponse.model_validate(json.loads(reruns[-1].stdout))
    assert document.failures == []
    assert server.state.stack_names(AGENT) == set()
    assert server.state.stack_names("acme") == set(STACKS)
    assert environments_of(server, "acme") == [("default", name) for name in CHAIN]
    assert environments_of(server, AGENT) == [("default", name) for name in CHAIN]
    for index, name in enumerate(CHAIN):
        source = yaml.safe_load(definition(index))
        assert yaml.safe_load(read(server, "acme", name, "/decrypt").text) == source
        assert yaml.safe_load(read(server, AGENT, name, "/decrypt").text) == source
        copied_tags = read(server, "acme", name, "/tags").json()["tags"].values()
        assert {tag["name"]: tag["value"] for tag in copied_tags} == tags(index)
        stored = read(server, "acme", name)
        assert f"pw-{index}-7c1d" not in stored.text
        assert stored.headers["Pulumi-ESC-Revision"] == "2", "created, then written once"
    run = read_run(tmp_path / "runs")
    assert run.finished
    assert_transferred_once(run.steps, [f"{project}/{stack}" for project, stack in STACKS])
    print(
        f"\nkilled after {[stop.changes[-1] for stop in killed if stop.fired]}, then "
        f"{len(reruns)} run(s): exit codes {[r.returncode for r in reruns]}; "
        f"{counts.considered} requests, faults fired: {dict(counts.fired)}"
    )
