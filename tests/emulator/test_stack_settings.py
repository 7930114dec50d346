"""A stack's deployment settings, webhooks and schedules on the emulator, over HTTP, as the
pulumiservice provider's client and Pulumi's API document have them: secret values sealed
with the stack's own key, a webhook's secret never shown; all of it follows the stack through
a rename and a transfer (it is the same stack) and goes away with the stack. The official
`pulumi-cloud-sdk` reads every answer into its model of the same name (the settings' secret
values aside: see below)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pulumi_cloud_sdk._support import default_encoder

from toolkit.cloud import ACCEPT, CloudClient
from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import EmulatorFactory

STACK = "/api/stacks/acme/web/dev"
WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "beta": "admin"}},
        {"login": "dave", "token": "tok-dave", "orgs": {"elsewhere": "admin"}},
    ],
    "orgs": {
        "acme": {
            "stacks": [
                {
                    "project": "web",
                    "stack": "dev",
                    "deploymentSettings": {
                        "operationContext": {
                            "environmentVariables": {"REGION": "eu", "KEY": {"secret": "k-1"}}
                        }
                    },
                    "webhooks": [
                        {"name": "chat", "payloadUrl": "https://hooks.invalid/c", "secret": "s"}
                    ],
                    "schedules": [
                        {"scheduleCron": "0 6 * * *", "request": {"operation": "update"}}
                    ],
                },
                {"project": "web", "stack": "qa"},
            ]
        },
        "beta": {},
    },
}


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


def client(server: EmulatorServer, token: str = "tok-alice") -> httpx.Client:
    headers = {"Authorization": f"token {token}", "Accept": ACCEPT}
    return httpx.Client(base_url=server.url, headers=headers)


def test_a_world_stack_carries_its_settings_webhooks_and_schedules(server: EmulatorServer) -> None:
    with client(server) as http:
        settings = http.get(f"{STACK}/deployments/settings").raise_for_status().json()
        hooks = http.get(f"{STACK}/hooks").raise_for_status().json()
        schedules = http.get(f"{STACK}/deployments/schedules").raise_for_status().json()

    variables = settings["operationContext"]["environmentVariables"]
    assert variables["REGION"] == "eu"
    assert set(variables["KEY"]) == {"ciphertext"}, "a secret value comes back sealed"
    assert "k-1" not in str(settings)
    assert settings["version"] == 1
    assert [(h["name"], h["hasSecret"], h["stackName"]) for h in hooks] == [("chat", True, "dev")]
    assert "secret" not in hooks[0], "a webhook's secret is never shown"
    assert [(s["scheduleCron"], s["kind"]) for s in schedules["schedules"]] == [
        ("0 6 * * *", "deployment")
    ]
    # The SDK's `SecretValue` (from the API document: `secret` required, `ciphertext` a byte
    # array) cannot read what the service sends, which the pulumiservice provider's
    # `apitype.SecretValue` writes and reads: a plain string, or `{"ciphertext": base64}`.
    # The provider is the client to satisfy; the SDK reads the rest of the settings.
    without_variables = {**settings, "operationContext": {"preRunCommands": ["make"]}}
    default_encoder.deserialize(without_variables, "DeploymentSettings")
    default_encoder.deserialize(hooks[0], "WebhookResponse")
    default_encoder.deserialize(schedules, "ListScheduledActionsResponse")


def test_settings_accept_only_ciphertext_of_their_own_stack(server: EmulatorServer) -> None:
    with client(server) as http:
        settings = http.get(f"{STACK}/deployments/settings").json()
        settings_again = http.put(f"{STACK}/deployments/settings", json=settings)
        elsewhere = http.put("/api/stacks/acme/web/qa/deployments/settings", json=settings)
        qa = http.get("/api/stacks/acme/web/qa/deployments/settings")

    assert settings_again.status_code == 200, "its own ciphertext is accepted as it is"
    assert settings_again.json()["version"] == 2
    assert elsewhere.status_code == 400
    assert elsewhere.json()["message"] == (
        "Bad Request: operationContext.environmentVariables.KEY: the ciphertext was not "
        "encrypted by this stack; send the value as a secret instead"
    )
    assert qa.status_code == 404, "a refused write changes nothing"


def test_settings_webhooks_and_schedules_follow_a_rename_and_a_transfer(
    server: EmulatorServer,
) -> None:
    with client(server) as http:
        before = http.get(f"{STACK}/deployments/settings").json()
        http.post(f"{STACK}/rename", json={"newName": "live", "newProject": ""}).raise_for_status()
        body = {"toOrg": "beta"}
        http.post("/api/stacks/acme/web/live/transfer", json=body).raise_for_status()
        moved = "/api/stacks/beta/web/live"
        after = http.get(f"{moved}/deployments/settings").json()
        hooks = http.get(f"{moved}/hooks").json()
        schedules = http.get(f"{moved}/deployments/schedules").json()["schedules"]

    assert after == before, "the same settings, secret values still open to the stack"
    assert [(h["organizationName"], h["stackName"], h["hasSecret"]) for h in hooks] == [
        ("beta", "live", True)
    ]
    assert [(s["orgID"], s["scheduleCron"]) for s in schedules] == [("beta", "0 6 * * *")]


def test_they_go_away_with_the_stack(server: EmulatorServer) -> None:
    with client(server) as http:
        http.delete(STACK, params={"force": "true"}).raise_for_status()
        http.post("/api/stacks/acme/web", json={"stackName": "dev"}).raise_for_status()
        settings = http.get(f"{STACK}/deployments/settings")
        hooks = http.get(f"{STACK}/hooks").json()
        schedules = http.get(f"{STACK}/deployments/schedules").json()

    assert (settings.status_code, hooks, schedules) == (404, [], {"schedules": []})


def test_webhooks_by_name_and_schedules_by_timing(server: EmulatorServer) -> None:
    hook = {"organizationName": "acme", "displayName": "x", "payloadUrl": "https://h.invalid"}
    with client(server) as http:
        named = http.post(f"{STACK}/hooks", json={**hook, "name": "ops", "active": True})
        again = http.post(f"{STACK}/hooks", json={**hook, "name": "ops", "active": True})
        unnamed = http.post(f"{STACK}/hooks", json={**hook, "active": False})
        no_url = http.post(f"{STACK}/hooks", json={**hook, "payloadUrl": "", "active": True})
        both = http.post(
            f"{STACK}/deployments/schedules",
            json={
                "scheduleCron": "* * * * *",
                "scheduleOnce": "2027-01-01T00:00:00Z",
                "request": {"operation": "update"},
            },
        )
        once = http.post(
            f"{STACK}/deployments/schedules",
            json={"scheduleOnce": "2027-01-01T00:00:00Z", "request": {"operation": "destroy"}},
        )
        one = f"{STACK}/deployments/schedules/{once.json()['id']}"
        paused = [http.post(f"{one}/pause").status_code, http.get(one).json()["paused"]]
        resumed = [http.post(f"{one}/resume").status_code, http.get(one).json()["paused"]]
        deleted = http.delete(one)
        with client(server, "tok-dave") as dave:
            stranger = dave.get(f"{STACK}/hooks")

    assert named.status_code == 201
    assert again.status_code == 409
    assert unnamed.status_code == 201 and unnamed.json()["name"], "the service names it"
    assert no_url.status_code == 400
    assert both.status_code == 400
    assert once.json()["nextExecution"] == "2027-01-01T00:00:00Z"
    assert (paused, resumed) == ([200, True], [200, False])
    assert deleted.status_code == 200
    assert stranger.status_code == 403


def test_the_client_reads_settings_and_none_for_a_stack_without(server: EmulatorServer) -> None:
    async def read() -> tuple[Any, ...]:
        async with CloudClient(server.url, "tok-alice") as cloud:
            without = await cloud.deployment_settings("acme", "web", "qa")
            await cloud.replace_deployment_settings(
                "acme", "web", "qa", {"operationContext": {"preRunCommands": ["ls"]}}
            )
            return (
                without,
                await cloud.deployment_settings("acme", "web", "qa"),
                await cloud.stack_webhooks("acme", "web", "dev"),
                await cloud.deployment_schedules("acme", "web", "dev"),
            )

    without, settings, hooks, schedules = asyncio.run(read())
    assert without is None
    assert settings == {"operationContext": {"preRunCommands": ["ls"]}, "version": 1}
    assert [hook.name for hook in hooks] == ["chat"]
    assert [schedule.schedule_cron for schedule in schedules] == ["0 6 * * *"]
