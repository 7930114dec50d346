"""A migrated stack keeps its deployment settings, webhooks and deployment schedules.

Between two orgs of the emulator, on both paths (REST and the pulumi CLI): what the service
shows is copied to the new stack; what it never shows (a secret value of the settings, sealed
with the source stack's key; a webhook's signing secret) is reported for that move, exactly,
and the source is kept; once the user has set it in the new stack, the same run finishes and
nothing is duplicated. A fault on each new call is finished by running again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_states import seed_stacks
from agent_times import agent_entry
from test_migrate import migrate_plan

from toolkit.choices import MigrateVia
from toolkit.cloud import ACCEPT
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import Journal
from toolkit.progress import MoveFailure, ProgressEvent, StepDone
from toolkit.strategies.migrate import execute_migrate

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-5s2w9x"
SOURCE = f"/api/stacks/{AGENT}/web/dev"
TARGET = "/api/stacks/acme/web/dev-agent"
WORLD: dict[str, Any] = {
    "users": [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-agent")],
    "orgs": {AGENT: {}, "acme": {}},
}
SETTINGS: dict[str, Any] = {
    "sourceContext": {"git": {"repoUrl": "https://git.invalid/web.git", "branch": "main"}},
    "operationContext": {
        "preRunCommands": ["make deps"],
        "environmentVariables": {"REGION": "eu-west-1", "API_TOKEN": {"secret": "tok-123"}},
    },
}
WEBHOOK = {
    "organizationName": AGENT,
    "projectName": "web",
    "stackName": "dev",
    "name": "deploys",
    "displayName": "Deploys to chat",
    "payloadUrl": "https://hooks.invalid/deploys",
    "secret": "signing-key",
    "active": True,
    "format": "slack",
    "filters": ["stack_update_succeeded"],
}
SCHEDULE = {"scheduleCron": "0 6 * * 1", "request": {"operation": "refresh"}}
NOT_COPIED = (
    f"acme/web/dev-agent holds the state of {AGENT}/web/dev but not all it carried: "
    "deployment setting operationContext.environmentVariables.API_TOKEN: a secret value, "
    "which only the source stack can decrypt (set it again in the new stack's deployment "
    "settings); webhook 'deploys': its signing secret, which the service never shows (set it "
    f"on the webhook of acme/web/dev-agent in Pulumi Cloud); {AGENT}/web/dev is left as it "
    "is. Once set, run the same command again"
)


@pytest.fixture(params=["rest", "cli"])
def via(request: pytest.FixtureRequest) -> MigrateVia:
    path: MigrateVia = request.param
    return path


@pytest.fixture
def server(pulumi_cli: Path, make_emulator: EmulatorFactory) -> EmulatorServer:
    """The agent's web/dev, with its state, settings (one secret value), webhook (signed)
    and weekly refresh (paused)."""
    emulator = make_emulator(WORLD)
    asyncio.run(seed_stacks(emulator, AGENT, "tok-agent", {("web", "dev"): {}}))
    with as_agent(emulator) as http:
        http.put(f"{SOURCE}/deployments/settings", json=SETTINGS).raise_for_status()
        http.post(f"{SOURCE}/hooks", json=WEBHOOK).raise_for_status()
        made = http.post(f"{SOURCE}/deployments/schedules", json=SCHEDULE).raise_for_status()
        schedule = made.json()["id"]
        http.post(f"{SOURCE}/deployments/schedules/{schedule}/pause").raise_for_status()
    return emulator


def as_agent(server: EmulatorServer) -> httpx.Client:
    return _client(server, "tok-agent")


def as_carol(server: EmulatorServer) -> httpx.Client:
    return _client(server, "tok-carol")


def _client(server: EmulatorServer, token: str) -> httpx.Client:
    headers = {"Authorization": f"token {token}", "Accept": ACCEPT}
    return httpx.Client(base_url=server.url, headers=headers)


def without_secrets(server: EmulatorServer) -> None:
    """The source stack's settings and webhook made to hold nothing the service never shows
    (no secret value, no signing secret), so that all of it can be copied."""
    with as_agent(server) as http:
        settings = {**SETTINGS, "operationContext": {"preRunCommands": ["make deps"]}}
        http.put(f"{SOURCE}/deployments/settings", json=settings).raise_for_status()
        http.delete(f"{SOURCE}/hooks/deploys").raise_for_status()
        http.post(f"{SOURCE}/hooks", json={**WEBHOOK, "secret": None}).raise_for_status()


def migrate(
    server: EmulatorServer,
    via: MigrateVia,
    journal: Journal,
    progress: list[ProgressEvent] | None = None,
) -> list[MoveFailure]:
    agent = BackendIdentity(url=server.url, token="tok-agent")
    carol = BackendIdentity(url=server.url, token="tok-carol")
    on_progress = (progress if progress is not None else []).append
    failed = asyncio.run(
        execute_migrate(
            migrate_plan(
                agent,
                carol,
                "stacks: {web/dev: web/dev-agent}",
                source_org=AGENT,
                destination_org="acme",
            ),
            agent,
            carol,
            via=via,
            delete_source=True,
            journal=journal,
            on_progress=on_progress,
        )
    )
    return list(failed.values())


def carried(server: EmulatorServer, path: str) -> tuple[Any, Any, Any]:
    """What the stack at `path` carries: settings, webhooks and schedules, as the service
    shows them (to the agent in its org, to carol in acme), less what names the stack or its
    moment of creation."""
    with _client(server, "tok-agent" if path == SOURCE else "tok-carol") as http:
        settings = http.get(f"{path}/deployments/settings").raise_for_status().json()
        hooks = http.get(f"{path}/hooks").raise_for_status().json()
        schedules = http.get(f"{path}/deployments/schedules").raise_for_status().json()
    for hook in hooks:
        for scope in ("organizationName", "projectName", "stackName"):
            del hook[scope]
    timings = [
        (s["scheduleCron"], s["definition"], s["kind"], s["paused"]) for s in schedules["schedules"]
    ]
    return settings, hooks, timings


def test_a_migrated_stack_keeps_its_settings_webhooks_and_schedules_once_its_secrets_are_set(
    server: EmulatorServer, via: MigrateVia
) -> None:
    with as_agent(server) as http:
        source_settings = http.get(f"{SOURCE}/deployments/settings").json()
    journal = Journal.in_memory()

    failures = migrate(server, via, journal)

    assert [(f.step, f.message) for f in failures] == [("settings", NOT_COPIED)]
    assert server.state.stack_names(AGENT) == {("web", "dev")}, "the source is kept"
    settings, hooks, schedules = carried(server, TARGET)
    variables = settings["operationContext"]["environmentVariables"]
    assert variables == {"REGION": "eu-west-1"}, "all but the secret value"
    assert settings["sourceContext"] == SETTINGS["sourceContext"]
    assert settings["operationContext"]["preRunCommands"] == ["make deps"]
    assert hooks == [
        {
            "name": "deploys",
            "displayName": "Deploys to chat",
            "payloadUrl": "https://hooks.invalid/deploys",
            "active": True,
            "format": "slack",
            "filters": ["stack_update_succeeded"],
            "hasSecret": False,
            "secretCiphertext": "",
        }
    ]
    assert schedules == [("0 6 * * 1", {"request": {"operation": "refresh"}}, "deployment", True)]

    # The user sets what could not be copied, as the report says, and runs again.
    with as_carol(server) as http:
        variables["API_TOKEN"] = {"secret": "tok-123"}
        http.put(f"{TARGET}/deployments/settings", json=settings).raise_for_status()
        hook = {**WEBHOOK, "organizationName": "acme", "stackName": "dev-agent"}
        http.patch(f"{TARGET}/hooks/deploys", json=hook).raise_for_status()

    assert migrate(server, via, journal) == []

    assert server.state.stack_names(AGENT) == set(), "the source is removed once all is copied"
    settings, hooks, schedules = carried(server, TARGET)
    assert set(settings["operationContext"]["environmentVariables"]) == {"REGION", "API_TOKEN"}
    secret = settings["operationContext"]["environmentVariables"]["API_TOKEN"]
    assert set(secret) == {"ciphertext"}
    assert secret != source_settings["operationContext"]["environmentVariables"]["API_TOKEN"]
    assert [(h["name"], h["hasSecret"]) for h in hooks] == [("deploys", True)], "no duplicate"
    assert len(schedules) == 1, "no duplicate"


def test_a_stack_whose_settings_hold_no_secret_lands_whole_in_one_run(
    server: EmulatorServer,
) -> None:
    without_secrets(server)
    source = carried(server, SOURCE)
    progress: list[ProgressEvent] = []

    assert migrate(server, "rest", Journal.in_memory(), progress) == []

    assert [event.summary for event in progress if isinstance(event, StepDone)] == [
        "created acme/web/dev-agent",
        "copied the deployment settings, 1 webhook(s), 1 schedule(s) to acme/web/dev-agent",
        f"migrated {AGENT}/web/dev -> acme/web/dev-agent (verified)",
    ]
    assert server.state.stack_names(AGENT) == set()
    landed = carried(server, TARGET)
    assert landed[0] == {**source[0], "version": 1}
    assert landed[1:] == source[1:]


def test_the_writes_to_the_new_stack_go_side_by_side(server: EmulatorServer) -> None:
    """The settings, the webhook and the schedule are written at once, not one round trip
    after another: at 50 ms a call, each is in flight while the others are."""
    without_secrets(server)
    server.faults.latency_ms = 50
    server.requests.clear()

    assert migrate(server, "rest", Journal.in_memory()) == []

    writes = [
        entry
        for entry in server.requests.entries()
        if (entry.method, entry.path)
        in {
            ("PUT", f"{TARGET}/deployments/settings"),
            ("POST", f"{TARGET}/hooks"),
            ("POST", f"{TARGET}/deployments/schedules"),
        }
    ]
    assert len(writes) == 3
    assert max(entry.started for entry in writes) < min(entry.finished for entry in writes)


def test_a_first_run_reads_only_the_source_and_a_later_one_the_new_stack_too(
    server: EmulatorServer,
) -> None:
    """The stack a run creates holds nothing to compare with, so it is not read; a run that
    finishes an earlier attempt's move reads it before writing (nothing duplicated)."""
    journal = Journal.in_memory()
    server.requests.clear()

    migrate(server, "rest", journal)

    reads = [e.path for e in server.requests.entries() if e.method == "GET"]
    extras = ("/deployments/settings", "/hooks", "/deployments/schedules")
    assert sorted(p for p in reads if p.endswith(extras)) == sorted(
        SOURCE + extra for extra in extras
    )
    server.requests.clear()

    migrate(server, "rest", journal)

    reads = [e.path for e in server.requests.entries() if e.method == "GET"]
    assert sorted(p for p in reads if p.endswith(extras)) == sorted(
        path + extra for path in (SOURCE, TARGET) for extra in extras
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", f"{TARGET}/deployments/settings"),
        ("POST", f"{TARGET}/hooks"),
        ("POST", f"{TARGET}/deployments/schedules"),
        ("POST", f"{TARGET}/deployments/schedules/[^/]+/pause"),
    ],
)
def test_a_fault_on_each_new_call_is_finished_by_running_again(
    server: EmulatorServer, method: str, path: str
) -> None:
    without_secrets(server)
    source = carried(server, SOURCE)
    journal = Journal.in_memory()
    # Carried out, then answered with an error: the client cannot know it happened.
    server.faults.fail_after(500, method=method, path=path, times=5)

    failures = migrate(server, "rest", journal)

    assert [f.step for f in failures] == ["settings"]
    assert "run the same command again to finish" in failures[0].message
    assert server.state.stack_names(AGENT) == {("web", "dev")}, "the source is kept"

    assert migrate(server, "rest", journal) == []

    assert server.state.stack_names(AGENT) == set()
    landed = carried(server, TARGET)
    assert landed[1:] == source[1:], "every webhook and schedule once"
    assert landed[0]["operationContext"] == source[0]["operationContext"]
