"""The pulumiservice provider's `Environment` and `OrgAccessToken` resources, unchanged (the real
plugin v1.3.0, `scripts/install-pulumiservice-plugin`), run by the real pulumi CLI through the
Automation API against the emulator, which holds the stack too: `up` makes the environment and
the token (which then acts as its org; the environment's id read from its metadata), `refresh`
finds nothing changed, a changed definition is one update of the environment, `destroy` deletes
the environment and revokes the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pulumi
import pulumi_pulumiservice as pulumiservice
import pytest
import yaml
from pulumi.automation import Stack

from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.landing import PULUMISERVICE_PLUGIN
from toolkit.workspaces import isolated_workspace

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
    "orgs": {"acme": {"stacks": [{"project": "web", "stack": "prod"}]}},
}
PROJECT = "provider-check"
ENVIRONMENT = "/api/esc/environments/acme/app/settings"
FIRST = "values:\n  region: eu-west-1\n  replicas: 2"
SECOND = "values:\n  region: eu-west-1\n  replicas: 3"


@pytest.fixture
def emulator(
    make_emulator: EmulatorFactory, pulumi_cli: Path, pulumiservice_plugin: Path
) -> EmulatorServer:
    return make_emulator(WORLD)


@pytest.fixture
def alice(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": "token tok-alice"}
    ) as client:
        yield client


def test_environment_and_org_token_through_up_refresh_update_and_destroy(
    emulator: EmulatorServer, alice: httpx.Client, tmp_path: Path
) -> None:
    definition = {"yaml": FIRST}

    def program() -> None:
        provider = pulumiservice.Provider(
            "emulator", api_url=emulator.url, access_token=pulumi.Output.secret("tok-alice")
        )
        through = pulumi.ResourceOptions(provider=provider)
        pulumiservice.Environment(
            "settings",
            organization="acme",
            project="app",
            name="settings",
            yaml=pulumi.StringAsset(definition["yaml"]),
            opts=through,
        )
        token = pulumiservice.OrgAccessToken(
            "ci",
            name="ci",
            organization_name="acme",
            description="CI deploys",
            admin=False,
            opts=through,
        )
        pulumi.export("token", token.value)

    identity = BackendIdentity(url=emulator.url, token="tok-alice")
    with isolated_workspace(
        identity,
        project=PROJECT,
        program=program,
        workspace_root=tmp_path,
        plugins=[PULUMISERVICE_PLUGIN],
    ) as workspace:
        stack = Stack.create(f"acme/{PROJECT}/dev", workspace)

        made = stack.up()
        assert made.summary.resource_changes == {"create": 4}
        settings = alice.get(ENVIRONMENT)
        assert settings.status_code == 200
        assert yaml.safe_load(settings.text) == yaml.safe_load(FIRST)
        first_revision = int(settings.headers["Pulumi-ESC-Revision"])
        alice_caller = emulator.state.authenticate("tok-alice")
        stored = emulator.state.get_environment(alice_caller, "acme", "app", "settings")
        (environment,) = [
            r
            for r in stack.export_stack().deployment["resources"]
            if r["type"] == "pulumiservice:index:Environment"
        ]
        assert environment["outputs"]["environmentId"] == stored.id
        tokens = alice.get("/api/orgs/acme/tokens").json()["tokens"]
        assert [(t["name"], t["description"], t["admin"]) for t in tokens] == [
            ("ci", "CI deploys", False)
        ]
        value = made.outputs["token"]
        assert value.secret
        with httpx.Client(
            base_url=emulator.url, headers={"Authorization": f"token {value.value}"}
        ) as ci:
            assert ci.get("/api/user").json()["githubLogin"] == "acme"
            assert ci.get("/api/stacks/acme/web/prod").status_code == 200

            refreshed = stack.refresh()
            assert refreshed.summary.resource_changes == {"same": 4}
            assert stack.preview().change_summary == {"same": 4}
            assert stack.outputs()["token"].value == value.value

            definition["yaml"] = SECOND
            updated = stack.up()
            assert updated.summary.resource_changes == {"same": 3, "update": 1}
            settings = alice.get(ENVIRONMENT)
            assert yaml.safe_load(settings.text) == yaml.safe_load(SECOND)
            assert int(settings.headers["Pulumi-ESC-Revision"]) == first_revision + 1
            assert ci.get("/api/user").status_code == 200

            destroyed = stack.destroy()
            assert destroyed.summary.resource_changes == {"delete": 4}
            assert alice.get(ENVIRONMENT).status_code == 404
            assert alice.get("/api/orgs/acme/tokens").json()["tokens"] == []
            assert ci.get("/api/user").status_code == 401
        stack.workspace.remove_stack(f"acme/{PROJECT}/dev")
