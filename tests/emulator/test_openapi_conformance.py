"""Answers and requests shaped as Pulumi's API document (`provider/pkg/cloud/spec.json` of
pulumi/pulumi-pulumiservice) says, where the emulator once drifted from it: the status codes
of `CreatePulumiTeam` (201), `DeleteEnvironment` (200) and `RecordEngineEventBatch` (200); a
clean ESC update whose answer leaves `diagnostics` out (the provider's `Environment` fails on
any list there); `UpdateTeam` with the official SDK's request, which sends the fields it does
not set as `null`; `RenameStack`, whose body requires `newProject` as well as `newName`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pulumi_cloud_sdk.api_client import ApiClient
from pulumi_cloud_sdk.apis import OrganizationsApi
from pulumi_cloud_sdk.configuration import Configuration
from pulumi_cloud_sdk.models import UpdateTeamRequest

from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
    "orgs": {
        "acme": {
            "stacks": [{"project": "web", "stack": "prod", "resourceCount": 1}],
            "environments": [{"project": "app", "name": "base", "definition": "values: {}\n"}],
            "teams": [{"name": "platform", "description": "Platform", "members": ["alice"]}],
        }
    },
}


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


@pytest.fixture
def alice(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": "token tok-alice"}
    ) as client:
        yield client


def test_creating_a_team_answers_201_created(alice: httpx.Client) -> None:
    made = alice.post(
        "/api/orgs/acme/teams/pulumi", json={"name": "ops", "displayName": "", "description": ""}
    )
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "ops"


def test_deleting_an_environment_answers_200(alice: httpx.Client) -> None:
    deleted = alice.delete("/api/esc/environments/acme/app/base")
    assert deleted.status_code == 200, deleted.text
    assert alice.get("/api/esc/environments/acme/app/base").status_code == 404


def test_a_clean_environment_update_answers_without_diagnostics(alice: httpx.Client) -> None:
    updated = alice.patch(
        "/api/esc/environments/acme/app/base",
        content="values:\n  region: eu-west-1\n",
        headers={"Content-Type": "application/x-yaml"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {}


def test_an_engine_event_batch_answers_200(alice: httpx.Client) -> None:
    fqsn = "acme/web/prod"
    created = alice.post(f"/api/stacks/{fqsn}/update", json={"name": "web", "runtime": "go"})
    update_id = created.json()["updateID"]
    lease = alice.post(f"/api/stacks/{fqsn}/update/{update_id}", json={}).json()["token"]
    recorded = alice.post(
        f"/api/stacks/{fqsn}/update/{update_id}/events/batch",
        json={"events": [{"sequence": 1, "timestamp": 0}]},
        headers={"Authorization": f"update-token {lease}"},
    )
    assert recorded.status_code == 200, recorded.text


def test_the_sdk_s_update_team_request_makes_its_one_change(emulator: EmulatorServer) -> None:
    configuration = Configuration()
    configuration.host = emulator.url
    configuration.access_token = "tok-alice"
    teams = OrganizationsApi(ApiClient(configuration))
    teams.update_team("acme", "platform", UpdateTeamRequest(new_display_name="The platform"))
    assert teams.get_team("acme", "platform").display_name == "The platform"


def test_a_team_update_with_only_nulls_asks_for_nothing(alice: httpx.Client) -> None:
    refused = alice.patch(
        "/api/orgs/acme/teams/platform", json={"newDisplayName": None, "member": None}
    )
    assert refused.status_code == 400


@pytest.mark.parametrize("body", [{"newName": "live"}, {"newProject": "site"}])
def test_a_rename_needs_both_new_name_and_new_project(
    alice: httpx.Client, body: dict[str, str]
) -> None:
    refused = alice.post("/api/stacks/acme/web/prod/rename", json=body)
    assert refused.status_code == 400
    assert alice.get("/api/stacks/acme/web/prod").status_code == 200
    kept = alice.post(
        "/api/stacks/acme/web/prod/rename", json={"newName": "live", "newProject": ""}
    )
    assert kept.status_code == 200, kept.text
    assert alice.get("/api/stacks/acme/web/live").status_code == 200


def test_an_import_sealed_for_another_stack_answers_the_document_s_400(
    alice: httpx.Client,
) -> None:
    exported = alice.get("/api/stacks/acme/web/prod/export").json()
    exported["deployment"]["secrets_providers"] = {
        "type": "service",
        "state": {"url": "http://x", "owner": "acme", "project": "web", "stack": "staging"},
    }
    refused = alice.post("/api/stacks/acme/web/prod/import", json=exported)
    assert refused.status_code == 400
    assert refused.json() == {
        "code": 400,
        "message": "Bad Request: cannot import deployment with encrypted secrets from a different"
        " stack",
    }
    exported["deployment"]["secrets_providers"]["state"]["stack"] = "prod"
    assert alice.post("/api/stacks/acme/web/prod/import", json=exported).status_code == 200
