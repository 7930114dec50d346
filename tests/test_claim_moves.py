"""What a claim moves, as the service says it: on today's service (the emulator's default) ESC
environments and registry packages move with the claim and collide as stacks do; at the claim
API's launch (`service.claimMoves: launch`) they were failures. The toolkit plans from the
service's answer, so the same commands do the right thing on both."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import agent_entry
from click.testing import CliRunner, Result

from toolkit.claim import CommitResult, commit_claim, plan_claim
from toolkit.cli import cli
from toolkit.credentials import Credentials
from toolkit.emulator.faults import RecordedRequest
from toolkit.journal import read_run
from toolkit.outcomes import exit_code
from toolkit.plan import ClaimPlan, ClaimTarget
from toolkit.progress import RERUN_HINT, MoveFailed, ProgressEvent
from toolkit.report import report_context
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides
from toolkit.strategies import StopSignal

if TYPE_CHECKING:
    from conftest import EmulatorFactory

    from toolkit.emulator.server import EmulatorServer

AGENT = "agent-abc123"
CLAIM_TOKEN = "claim-abc123"
ORGS = ("--from", AGENT, "--to", "acme")
PACKAGE = {"source": "private", "publisher": AGENT, "name": "vpc"}
PACE = 3600
"""Seconds of the service's clock a claim takes per stack, where a test moves the clock."""


def world(*, acme: dict[str, Any] | None = None, **service: str) -> dict[str, Any]:
    """alice is a member of acme; the agent has a stack, an environment and a package."""
    return {
        **({"service": service} if service else {}),
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "member"}}],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token=CLAIM_TOKEN)],
        "orgs": {
            AGENT: {
                "stacks": [{"project": "web", "stack": "dev", "resourceCount": 3}],
                "environments": [
                    {"project": "default", "name": "secrets", "definition": "values: {x: 1}\n"}
                ],
                "registryPackages": [PACKAGE],
            },
            "acme": acme or {},
        },
    }


def run(server: EmulatorServer, *args: str, runs: Path) -> Result:
    """`pulumi-claim` as alice with the agent's claim token, and no agent access token."""
    env = {
        "PULUMI_ACCESS_TOKEN": "tok-alice",
        "PULUMI_CLAIM_SOURCE_TOKEN": None,
        "PULUMI_CLAIM_TOKEN": CLAIM_TOKEN,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(runs),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def destination(server: EmulatorServer) -> dict[str, list[str]]:
    """What acme lists, as alice sees it through the service."""
    headers = {"Authorization": "token tok-alice"}
    with httpx.Client(base_url=server.url, headers=headers) as alice:
        stacks = alice.get("/api/user/stacks", params={"organization": "acme"}).json()
        environments = alice.get("/api/esc/environments/acme").json()
        packages = alice.get("/api/preview/registry/packages").json()
    return {
        "stacks": sorted(f"{s['projectName']}/{s['stackName']}" for s in stacks["stacks"]),
        "environments": sorted(f"{e['project']}/{e['name']}" for e in environments["environments"]),
        "packages": sorted(
            f"{p['source']}/{p['publisher']}/{p['name']}" for p in packages["packages"]
        ),
    }


def test_today_a_claim_moves_environments_and_packages_without_the_agents_token_or_a_copy(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world())

    result = run(
        server,
        "commit",
        *ORGS,
        "--environments",
        "copy",
        "--yes",
        "--format",
        "table",
        runs=tmp_path,
    )

    assert result.exit_code == 0, result.stdout + result.stderr
    shown = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "Entities 3 Moved 3 Renamed 0 Conflicts 0 Failures 0" in shown
    assert "ESC environment default/secrets — — move" in shown
    assert f"registry package private/{AGENT}/vpc — — move" in shown
    assert result.stderr.splitlines()[-7:] == [
        "strategy claim-api: a claim token is at hand (PULUMI_CLAIM_TOKEN)",
        f"the environments of {AGENT} were not read (no token of the agent, "
        "PULUMI_CLAIM_SOURCE_TOKEN, was given): their references to moved stacks and "
        "environments are not checked",
        f"stack references in {AGENT} were not searched (no token of the agent, "
        "PULUMI_CLAIM_SOURCE_TOKEN, was given): the StackReferences its stacks hold to moved "
        "stacks are not checked",
        "stack references in acme: found by the service's search",
        "--environments copy leaves the ESC environments to the service: its claim moves them",
        "outcome: moved 1 of 1 stack(s), 1 environment(s) and 1 registry package(s)",
        "exit 0: done",
    ]
    assert destination(server) == {
        "stacks": ["web/dev"],
        "environments": ["default/secrets"],
        "packages": [f"private/{AGENT}/vpc"],
    }
    assert server.requests.count(method="GET", path="/api/esc/environments/.*/decrypt") == 0
    assert server.requests.count(method="POST", path="/api/esc/environments/.*") == 0
    assert server.requests.count(path=f"/api/orgs/{AGENT}/search/.*") == 0, (
        "the agent's org is not searched with a token that has no role there"
    )


def test_at_launch_the_same_command_copies_and_needs_the_agents_token(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    server = make_emulator(world(claimMoves="launch"))
    listed = destination(server)

    result = run(server, "preview", *ORGS, "--environments", "copy", runs=tmp_path)

    assert result.exit_code == 1
    assert "reading agent-abc123/default/secrets failed (no PULUMI_CLAIM_SOURCE_TOKEN is set" in (
        " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr
    assert destination(server) == listed


@pytest.mark.parametrize("map_form", ["friendly", "resolve"])
def test_a_colliding_environment_and_package_are_renamed_by_the_map(
    make_emulator: EmulatorFactory, tmp_path: Path, map_form: str
) -> None:
    taken = {
        "environments": [{"project": "default", "name": "secrets"}],
        "registryPackages": [PACKAGE],
    }
    server = make_emulator(world(acme=taken))
    resolutions = tmp_path / "map.yaml"
    if map_form == "friendly":
        resolutions.write_text(
            "environments:\n  default/secrets: default/secrets-agent\n"
            f"registryPackages:\n  private/{AGENT}/vpc: private/{AGENT}/vpc-agent\n",
            encoding="utf-8",
        )
    else:
        written = run(server, "resolve", *ORGS, "-o", str(resolutions), runs=tmp_path)
        assert written.exit_code == 0, written.stderr

    blocked = run(server, "preview", *ORGS, runs=tmp_path)
    committed = run(server, "commit", *ORGS, "-r", str(resolutions), "--yes", runs=tmp_path)

    assert blocked.exit_code == 3, blocked.stdout + blocked.stderr
    assert committed.exit_code == 0, committed.stdout + committed.stderr
    assert destination(server) == {
        "stacks": ["web/dev"],
        "environments": ["default/secrets", "default/secrets-agent"],
        "packages": [f"private/{AGENT}/vpc", f"private/{AGENT}/vpc-agent"],
    }


@pytest.mark.parametrize("output", ["table", "markdown", "html", "json"])
def test_the_outcome_counts_the_environments_and_packages_the_claim_moves(
    make_emulator: EmulatorFactory, tmp_path: Path, output: str
) -> None:
    server = make_emulator(world())
    both = "1 of 1 stack(s), 1 environment(s) and 1 registry package(s)"

    previewed = run(server, "preview", *ORGS, "--format", output, runs=tmp_path)
    committed = run(server, "commit", *ORGS, "--yes", "--format", output, runs=tmp_path)

    assert previewed.exit_code == 0, previewed.stdout + previewed.stderr
    assert committed.exit_code == 0, committed.stdout + committed.stderr
    assert f"outcome: would move {both}" in previewed.stderr.splitlines()
    assert f"outcome: moved {both}" in committed.stderr.splitlines()
    if output == "json":
        service_shape = {"agent", "entities", "conflicts", "failures", "claimExpiresAt"}
        assert set(json.loads(previewed.stdout)) == service_shape
        assert set(json.loads(committed.stdout)) == {*service_shape, "transferToken"}
    else:
        assert f"would move {both}" in " ".join(previewed.stdout.split())
        assert f"moved {both}" in " ".join(committed.stdout.split())


def test_an_environment_the_claim_did_not_land_is_reported_and_the_rest_verified(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """The claim runs on after a commit that stopped following it; by the time the same
    command follows it again, someone in acme has removed the environment it moved."""
    server = make_emulator(world(claimSecondsPerStack=str(PACE)))
    package = f"registry package private/{AGENT}/vpc"

    waited = run(server, "commit", *ORGS, "--yes", "--claim-wait", "0", runs=tmp_path)

    assert waited.exit_code == 4, waited.stdout + waited.stderr
    unknown = "is of unknown outcome (claim): outcome unknown: the claim"
    assert [line for line in waited.stderr.splitlines() if unknown in line] == [
        f"stacks [1/1, 1 failed] {AGENT}/web/dev -> acme/web/dev {unknown}"
        f" {token(server)} into acme was still running after 0 s (web/dev had not landed yet;"
        f" the service moves the stacks itself); {RERUN_HINT}",
        f"environments [1/1, 1 failed] {AGENT}/default/secrets -> acme/default/secrets {unknown}"
        f" {token(server)} into acme was still running after 0 s (ESC environment"
        f" default/secrets had not landed yet; the service moves it with the stacks);"
        f" {RERUN_HINT}",
        f"packages [1/1, 1 failed] {AGENT}/private/{AGENT}/vpc -> acme/private/{AGENT}/vpc"
        f" {unknown} {token(server)} into acme was still running after 0 s ({package} had not"
        f" landed yet; the service moves it with the stacks); {RERUN_HINT}",
    ]
    assert (
        "outcome: moved 0 of 1 stack(s), 0 of 1 environment(s) and 0 of 1 registry package(s);"
        " 3 of unknown outcome (run the same command again to settle them: it looks where each"
        " stack is)"
    ) in waited.stderr.splitlines()

    server.state.advance_clock(PACE)
    httpx.delete(
        f"{server.url}/api/esc/environments/acme/default/secrets",
        headers={"Authorization": "token tok-alice"},
    ).raise_for_status()
    again = run(
        server, "commit", *ORGS, "--yes", "--claim-wait", "0", "--format", "json", runs=tmp_path
    )

    assert again.exit_code == 4, again.stdout + again.stderr
    missing = (
        "verification: ESC environment default/secrets is not in acme after the claim ended; "
        "look for it there and in the agent's org before claiming again"
    )
    assert [
        (failure["entity"]["kind"], failure["failureDetails"])
        for failure in json.loads(again.stdout)["failures"]
    ] == [("TransferEntityEnvironment", missing)]
    assert (
        "outcome: moved 1 of 1 stack(s), 0 of 1 environment(s) and 1 registry package(s);"
        " 1 failed (run the same command again)"
    ) in again.stderr.splitlines()
    events = [message for _, message in read_run(tmp_path).events]
    assert f"claimed {package} into acme" in events
    assert f"{AGENT}/default/secrets -> acme/default/secrets failed (verify): {missing}" in events
    assert destination(server) == {
        "stacks": ["web/dev"],
        "environments": [],
        "packages": [f"private/{AGENT}/vpc"],
    }


def test_a_claim_not_made_leaves_its_environments_and_packages_not_landed(
    make_emulator: EmulatorFactory,
) -> None:
    """Stopped before the claim call, the run reports everything the claim would have moved
    as interrupted, environments and packages too, and claims nothing."""
    server = make_emulator(world())
    credentials = Credentials(server.url, "tok-alice", "tok-alice", CLAIM_TOKEN)
    sides = Sides.of(ClaimTarget(source_org=AGENT, destination_org="acme"), credentials)
    stop = StopSignal()
    events: list[ProgressEvent] = []

    async def claim() -> CommitResult:
        plan = await plan_claim(sides, ResolutionMap.empty(), "claim-api")
        stop.request()
        return await commit_claim(sides, plan, stop=stop, on_progress=events.append)

    result = asyncio.run(claim())

    assert [(event.phase, event.target) for event in events if isinstance(event, MoveFailed)] == [
        ("stacks", "acme/web/dev"),
        ("environments", "acme/default/secrets"),
        ("packages", f"acme/private/{AGENT}/vpc"),
    ]
    assert [failure.entity.kind for failure in result.document.failures] == [
        "TransferEntityStack",
        "TransferEntityEnvironment",
        "TransferEntityRegistryPackage",
    ]
    assert result.interrupted
    claims = [
        entry for entry in server.requests.entries() if entry.path == "/api/agents/acme/claim"
    ]
    assert [entry.query for entry in claims] == ["dryRun=true"]


def token(server: EmulatorServer) -> str:
    """The transfer token of the one claim into acme."""
    headers = {"Authorization": "token tok-alice"}
    status = httpx.get(f"{server.url}/api/agents/acme/claim/status", headers=headers)
    (transfer_token,) = status.raise_for_status().json()["claims"]
    return str(transfer_token)


def test_a_claim_call_the_service_refuses_leaves_nothing_behind_and_the_same_command_claims(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """The claim call answered 503 on every try (after the dry run): the run ends on that error
    with nothing moved, and the same command claims once the service answers."""
    server = make_emulator(world())

    def refuse_the_claim(entry: RecordedRequest) -> None:
        if entry.path == "/api/agents/acme/claim" and "dryRun=true" in entry.query:
            server.faults.fail(503, method="POST", path="/api/agents/acme/claim$", times=None)

    server.requests.watch(refuse_the_claim)
    refused = run(server, "commit", *ORGS, "--yes", "--format", "json", runs=tmp_path)

    assert refused.exit_code == 1, refused.stderr
    assert "error: POST /api/agents/acme/claim failed with 503: injected fault" in (
        refused.stderr.splitlines()
    )
    assert destination(server)["stacks"] == []

    server.faults.clear()
    again = run(server, "commit", *ORGS, "--yes", "--format", "json", runs=tmp_path)
    assert again.exit_code == 0, again.stderr
    assert destination(server)["stacks"] == ["web/dev"]


def test_a_claim_stopped_before_its_call_is_not_called_blocked(
    make_emulator: EmulatorFactory,
) -> None:
    """Stopped before the claim call, nothing blocks the claim: the outcome says what did not
    land and to run the same command again, not that the service cannot claim it."""
    server = make_emulator(world())
    credentials = Credentials(server.url, "tok-alice", "tok-alice", CLAIM_TOKEN)
    sides = Sides.of(ClaimTarget(source_org=AGENT, destination_org="acme"), credentials)
    stop = StopSignal()

    async def claim() -> tuple[ClaimPlan, CommitResult]:
        plan = await plan_claim(sides, ResolutionMap.empty(), "claim-api")
        stop.request()
        return plan, await commit_claim(sides, plan, stop=stop)

    plan, result = asyncio.run(claim())

    outcome = report_context(plan, "commit", result.document).outcome
    assert outcome == (
        "moved 0 of 1 stack(s), 0 of 1 environment(s) and 0 of 1 registry package(s); "
        "3 failed (run the same command again)"
    )
    assert (
        exit_code(result.document, plan.strategy, retryable=plan.did_not_land(result.document)) == 4
    )
