"""The transfer strategy called directly against the emulator: verification that catches a stack
not landed or left behind, an undo that fails, and verification past PROJECT_LISTINGS_MAX."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import agent_entry
from click.testing import CliRunner

from toolkit.cli import cli
from toolkit.cloud import CloudClient
from toolkit.collectors.service import collect_inventory
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import entity_key
from toolkit.journal import read_run
from toolkit.models import AgentAccountSummary, TransferEntityStack
from toolkit.plan import ClaimPlan, ClaimTarget, build_plan
from toolkit.progress import (
    MoveFailed,
    MoveFailure,
    MoveFinished,
    MoveStarted,
    ProgressCallback,
    ProgressEvent,
    StepDone,
    no_progress,
)
from toolkit.resolution_map import parse_resolution_map
from toolkit.strategies import FailedMoves
from toolkit.strategies.transfer import PROJECT_LISTINGS_MAX, execute_transfer

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-abc123"
TOKEN = "tok-alice"
RENAME_DEV = "stacks: {web/dev: web/dev-agent}"
"""web/dev collides with acme's; renamed, it moves as web/dev-agent."""


def world(agent_stacks: list[tuple[str, str]]) -> dict[str, Any]:
    """alice administers acme (which has web/dev) and the agent's org (with `agent_stacks`)."""
    return {
        "users": [{"login": "alice", "token": TOKEN, "orgs": {"acme": "admin", AGENT: "admin"}}],
        "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-abc123")],
        "orgs": {
            "acme": {"stacks": [{"project": "web", "stack": "dev"}]},
            AGENT: {"stacks": [{"project": p, "stack": s} for p, s in agent_stacks]},
        },
    }


THREE_STACKS = [("web", "dev"), ("web", "qa"), ("api", "dev")]


def plan_transfer(server: EmulatorServer, resolutions: str = RENAME_DEV) -> ClaimPlan:
    """The plan of moving everything from the agent's org into acme, from their inventories."""

    async def collect() -> ClaimPlan:
        async with CloudClient(server.url, TOKEN) as client:
            source, destination = await asyncio.gather(
                collect_inventory(client, AGENT), collect_inventory(client, "acme")
            )
        now = datetime.now(UTC)
        return build_plan(
            target=ClaimTarget(source_org=AGENT, destination_org="acme"),
            source=source,
            destination=destination,
            resolution_map=parse_resolution_map(resolutions),
            strategy="transfer",
            agent=AgentAccountSummary(login=AGENT, org_name=AGENT, created_at=now),
            claim_expires_at=now,
        )

    return asyncio.run(collect())


def transfer(
    server: EmulatorServer, plan: ClaimPlan, on_progress: ProgressCallback = no_progress
) -> FailedMoves:
    async def run() -> FailedMoves:
        async with CloudClient(server.url, TOKEN, retry_base_delay=0.01) as client:
            return await execute_transfer(plan, client, on_progress=on_progress)

    return asyncio.run(run())


def stacks_of(server: EmulatorServer, org: str) -> set[tuple[str, str]]:
    async def names() -> set[tuple[str, str]]:
        async with CloudClient(server.url, TOKEN) as client:
            return {(s.project_name, s.stack_name) for s in await client.list_stacks(org)}

    return asyncio.run(names())


def key(name: str) -> tuple[str, ...]:
    project, stack = name.split("/")
    return entity_key(TransferEntityStack(project_name=project, stack_name=stack))


def as_alice(server: EmulatorServer, method: str, path: str, **kwargs: Any) -> None:
    """A call someone else makes while the transfer runs (the callback runs between steps)."""
    headers = {"Authorization": f"token {TOKEN}", "Accept": "application/vnd.pulumi+8"}
    httpx.request(method, server.url + path, headers=headers, **kwargs).raise_for_status()


def test_a_landed_stack_gone_from_the_destination_fails_verification(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(THREE_STACKS))
    plan = plan_transfer(server)
    events: list[ProgressEvent] = []

    def delete_once_landed(event: ProgressEvent) -> None:
        events.append(event)
        if isinstance(event, MoveFinished) and event.target == "acme/web/qa":
            as_alice(server, "DELETE", "/api/stacks/acme/web/qa", params={"force": "true"})

    failed = transfer(server, plan, delete_once_landed)

    failure = MoveFailure("verify", "verification: web/qa is not in acme", source_untouched=False)
    assert failed == {key("web/qa"): failure}
    assert events[-1] == MoveFailed(
        source=f"{AGENT}/web/qa", target="acme/web/qa", failure=failure, done=2, failed=1, total=3
    )
    assert ("web", "dev-agent") in stacks_of(server, "acme")


def test_a_stack_still_in_the_source_fails_verification(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world(THREE_STACKS))
    plan = plan_transfer(server)

    def recreate_in_source(event: ProgressEvent) -> None:
        if isinstance(event, MoveFinished) and event.target == "acme/web/dev-agent":
            as_alice(server, "POST", f"/api/stacks/{AGENT}/web", json={"stackName": "dev-agent"})

    failed = transfer(server, plan, recreate_in_source)

    assert failed == {
        key("web/dev"): MoveFailure(
            "verify",
            f"verification: web/dev-agent is still in {AGENT} too",
            source_untouched=False,
        )
    }


def test_a_failed_undo_of_a_rename_says_where_the_stack_is(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(THREE_STACKS))
    plan = plan_transfer(server)
    server.faults.fail(409, method="POST", path=f"/api/stacks/{AGENT}/web/dev-agent/transfer")
    server.faults.fail(409, method="POST", path=f"/api/stacks/{AGENT}/web/dev-agent/rename")
    events: list[ProgressEvent] = []

    failed = transfer(server, plan, events.append)

    failure = failed[key("web/dev")]
    assert list(failed) == [key("web/dev")]
    assert (failure.step, failure.source_untouched) == ("undo", False)
    assert failure.message.startswith(f"transfer to acme failed: POST /api/stacks/{AGENT}/web/")
    assert "; undoing the rename also failed (POST " in failure.message
    assert failure.message.endswith(
        f"the stack is still in {AGENT} as web/dev-agent; re-run the same command to finish the "
        "move"
    )
    assert ("web", "dev-agent") in stacks_of(server, AGENT)
    of_dev = [event for event in events if event.source == f"{AGENT}/web/dev"]
    assert [type(event) for event in of_dev] == [MoveStarted, StepDone, MoveFailed, MoveFailed]
    transfer_failure = of_dev[2]
    assert isinstance(transfer_failure, MoveFailed)
    assert transfer_failure.failure.step == "transfer"
    assert transfer_failure.failure.source_untouched
    assert of_dev[3] == MoveFailed(
        source=f"{AGENT}/web/dev",
        target="acme/web/dev-agent",
        failure=failure,
        done=2,
        failed=1,
        total=3,
    )


def test_an_undone_rename_leaves_the_source_untouched(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world(THREE_STACKS))
    plan = plan_transfer(server)
    server.faults.fail(409, method="POST", path=f"/api/stacks/{AGENT}/web/dev-agent/transfer")
    events: list[ProgressEvent] = []

    failed = transfer(server, plan, events.append)

    failure = failed[key("web/dev")]
    assert (failure.step, failure.source_untouched) == ("transfer", True)
    assert ("web", "dev") in stacks_of(server, AGENT)
    assert isinstance(events[-1], StepDone)
    assert events[-1].describe() == f"undid rename: web/dev is back in {AGENT}"


def test_a_failed_verification_listing_fails_every_move_not_already_failed(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(THREE_STACKS))
    plan = plan_transfer(server)
    server.faults.fail(409, method="POST", path=f"/api/stacks/{AGENT}/api/dev/transfer")
    settled: list[ProgressEvent] = []

    def refuse_listings_once_all_settled(event: ProgressEvent) -> None:
        if isinstance(event, MoveFinished | MoveFailed) and event.settled == event.total:
            settled.append(event)
            server.faults.fail(403, method="GET", path="/api/user/stacks", times=None)

    failed = transfer(server, plan, refuse_listings_once_all_settled)

    assert settled
    assert failed[key("api/dev")].step == "transfer"
    for name in ("web/dev", "web/qa"):
        assert failed[key(name)] == MoveFailure.unknown(
            "verify",
            "could not be verified (GET /api/user/stacks failed with 403: injected fault)",
        )


@pytest.mark.parametrize(
    ("projects", "per_project"),
    [(PROJECT_LISTINGS_MAX, True), (PROJECT_LISTINGS_MAX + 1, False)],
)
def test_verification_lists_projects_up_to_a_limit_and_then_whole_orgs(
    make_emulator: EmulatorFactory, projects: int, per_project: bool
) -> None:
    stacks = [(f"p{i:02}", "dev") for i in range(projects)]
    server = make_emulator(world(stacks), page_size=10)
    plan = plan_transfer(server, "")
    server.requests.clear()

    def delete_once_landed(event: ProgressEvent) -> None:
        if isinstance(event, MoveFinished) and event.target == "acme/p07/dev":
            as_alice(server, "DELETE", "/api/stacks/acme/p07/dev")

    failed = transfer(server, plan, delete_once_landed)

    assert failed == {
        key("p07/dev"): MoveFailure(
            "verify", "verification: p07/dev is not in acme", source_untouched=False
        )
    }
    listings = [e for e in server.requests.entries() if e.path == "/api/user/stacks"]
    assert stacks_of(server, "acme") == {("web", "dev"), *stacks} - {("p07", "dev")}
    by_project = [e for e in listings if "project=" in e.query]
    # Each org is listed twice: to locate the stacks first, and to verify at the end.
    if per_project:
        assert len(by_project) == len(listings) == 2 * 2 * projects
    else:
        assert by_project == []
        # Locating: the source's 33 stacks in pages of 10, the destination's one stack.
        # Verifying: one page of the emptied source, the destination's 34 stacks in 4 pages.
        assert len(listings) == (4 + 1) + (1 + 4)


def test_a_move_is_shown_started_as_its_call_begins(
    make_emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """One call at a time, each move's "moving" line comes as its transfer begins, right before
    the line of its outcome, on the terminal and in the journal `status` prints: a move is not
    shown started while it waits for a slot (before, every move was, ahead of the first call)."""
    server = make_emulator(world([("app", f"s{i}") for i in range(3)]))
    env = {
        "PULUMI_ACCESS_TOKEN": TOKEN,
        "PULUMI_CLAIM_SOURCE_TOKEN": TOKEN,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path),
    }
    commit = ["commit", "--from", AGENT, "--to", "acme", "--strategy", "transfer", "--yes"]

    result = CliRunner().invoke(cli, [*commit, "--concurrency", "1"], env=env)

    assert result.exit_code == 0, result.stderr
    lines = [
        f"stacks [0/3] moving {AGENT}/app/s0 -> acme/app/s0",
        "stacks [1/3] transferred app/s0 to acme",
        f"stacks [1/3] moving {AGENT}/app/s1 -> acme/app/s1",
        "stacks [2/3] transferred app/s1 to acme",
        f"stacks [2/3] moving {AGENT}/app/s2 -> acme/app/s2",
        "stacks [3/3] transferred app/s2 to acme",
    ]
    assert [line for line in result.stderr.splitlines() if line.startswith("stacks [")] == lines
    assert [message for _, message in read_run(tmp_path).events] == [
        line.partition("] ")[2] for line in lines
    ]


def test_a_transferred_stack_keeps_its_deployment_settings_webhooks_and_schedules(
    make_emulator: EmulatorFactory,
) -> None:
    """A transfer moves the stack itself (renamed first when the map says so): what it carries
    beside its state goes with it, as on the service."""
    server = make_emulator(world(THREE_STACKS))
    source = f"/api/stacks/{AGENT}/web/dev"
    settings = {"operationContext": {"environmentVariables": {"KEY": {"secret": "k-1"}}}}
    hook = {"organizationName": AGENT, "name": "chat", "displayName": "Chat", "active": True}
    as_alice(server, "PUT", f"{source}/deployments/settings", json=settings)
    as_alice(server, "POST", f"{source}/hooks", json={**hook, "payloadUrl": "https://h.invalid"})
    schedule = {"scheduleCron": "0 6 * * *", "request": {"operation": "refresh"}}
    as_alice(server, "POST", f"{source}/deployments/schedules", json=schedule)

    assert transfer(server, plan_transfer(server)) == {}

    async def carried() -> tuple[Any, ...]:
        async with CloudClient(server.url, TOKEN) as client:
            return (
                await client.deployment_settings("acme", "web", "dev-agent"),
                await client.stack_webhooks("acme", "web", "dev-agent"),
                await client.deployment_schedules("acme", "web", "dev-agent"),
            )

    landed_settings, hooks, schedules = asyncio.run(carried())
    secret = landed_settings["operationContext"]["environmentVariables"]["KEY"]
    assert set(secret) == {"ciphertext"}
    assert [(h.name, h.organization_name, h.stack_name) for h in hooks] == [
        ("chat", "acme", "dev-agent")
    ]
    assert [(s.org_id, s.schedule_cron) for s in schedules] == [("acme", "0 6 * * *")]
    # Its sealed values still open to the stack: the same settings are accepted back.
    as_alice(
        server, "PUT", "/api/stacks/acme/web/dev-agent/deployments/settings", json=landed_settings
    )
