"""Answers and requests shaped as Pulumi's API document (`provider/pkg/cloud/spec.json` of
pulumi/pulumi-pulumiservice) says, where the emulator once drifted from it: the status codes
of `CreatePulumiTeam` (201), `DeleteEnvironment` (200) and `RecordEngineEventBatch` (200); a
clean ESC update whose answer leaves `diagnostics` out (the provider's `Environment` fails on
any list there); `UpdateTeam` with the official SDK's request, which sends the fields it does
not set as `null`; `RenameStack`, whose body requires `newProject` as well as `newName`;
`ImportStack`'s 400 for a deployment sealed for another stack.

Then a walk of every route the emulator serves: each one's normal call answers a success
status the document lists for its operation, with a body the official SDK reads as the
document's model, so the next drift is caught.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pulumi_cloud_sdk._support import default_encoder
from pulumi_cloud_sdk.api_client import ApiClient
from pulumi_cloud_sdk.apis import OrganizationsApi
from pulumi_cloud_sdk.configuration import Configuration
from pulumi_cloud_sdk.models import UpdateTeamRequest

from tests.emulator.test_agents import solve
from toolkit.emulator.app import create_app
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState

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


# --- Every route against the document -----------------------------------------------------

DOCUMENT = json.loads((Path(__file__).parent / "cloud_operations.json").read_text())
"""Each operation of Pulumi's API document: its success statuses and their bodies' shapes
(extracted by scripts/extract-cloud-operations; the file names the document's commit)."""

NOT_THE_SERVICE_S = {
    "/_emulator/": "the emulator's own control API (clock, faults, latency, request log)",
    "/open//{session}": "the esc CLI's spelling of ReadOpenEnvironment with an empty property"
    " path (a double slash); the single-slash route is walked",
}
"""Served paths the walk leaves out, each with the reason."""

AGENT_CREATED = datetime.now(UTC) - timedelta(hours=1)

WALK_WORLD: dict[str, Any] = {
    "service": {"signupDifficulty": 4},
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "labs": "admin"}}],
    "agents": [
        {
            "login": "agent-1",
            "token": "tok-agent",
            "claimToken": "claim-1",
            "createdAt": AGENT_CREATED.isoformat(),
            "claimExpiresAt": (AGENT_CREATED + timedelta(days=30)).isoformat(),
        }
    ],
    "orgs": {
        "acme": {
            "stacks": [
                {
                    "project": "web",
                    "stack": "prod",
                    "resourceCount": 2,
                    "lastUpdate": "2026-11-01T09:30:00Z",
                }
            ],
            "environments": [{"project": "app", "name": "base", "definition": "values: {}\n"}],
            "insightsAccounts": [{"name": "aws-main"}],
            "registryPackages": [{"source": "private", "publisher": "acme", "name": "vpc"}],
            "teams": [{"name": "platform", "description": "Platform", "members": ["alice"]}],
        },
        "labs": {},
        "agent-1": {"stacks": [{"project": "api", "stack": "dev"}]},
    },
}


@dataclass(frozen=True)
class Answered:
    method: str
    path: str
    answer: httpx.Response


def served_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the emulator's app serves."""
    paths = create_app(ServiceState()).openapi()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


def template_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")


def documented(method: str, template: str) -> tuple[str, dict[str, Any]] | None:
    """The document's operation for a served route (its path parameters named differently;
    an update's `{kind}` is each kind the document lists, `update` standing for all)."""
    wanted = re.sub(r"\{[^}]+\}", "{}", template.replace("{kind}", "update"))
    for key, operation in DOCUMENT["operations"].items():
        doc_method, doc_path = key.split(" ", 1)
        if doc_method == method and re.sub(r"\{[^}]+\}", "{}", doc_path) == wanted:
            return key, operation
    return None


def walk(server: EmulatorServer) -> list[Answered]:
    """One normal call of each route, in an order that makes each possible."""
    answered: list[Answered] = []

    def call(method: str, path: str, token: str | None = "tok-alice", **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if token is not None:
            headers.setdefault("Authorization", f"token {token}")
        answer = httpx.request(method, server.url + path, headers=headers, **kw)
        answered.append(Answered(method, path.split("?")[0], answer))
        return answer

    stack, walked = "/api/stacks/acme/web/prod", "/api/stacks/acme/web/walked"
    call("GET", "/api/user")
    call("GET", "/api/user/organizations/default")
    call("GET", "/api/user/stacks")
    call("HEAD", "/api/stacks/acme/web")
    call("POST", "/api/stacks/acme/web", json={"stackName": "walk"})
    call("GET", stack)
    call("POST", "/api/stacks/acme/web/walk/rename", json={"newName": "walked", "newProject": ""})
    call("POST", f"{walked}/tags", json={"name": "a", "value": "1"})
    call("PATCH", f"{walked}/tags/a", json={"name": "a", "value": "2"})
    call("PATCH", f"{walked}/tags", json={"a": "3"})
    call("DELETE", f"{walked}/tags/a")
    settings = {"operationContext": {"preRunCommands": ["make"]}}
    call("PUT", f"{walked}/deployments/settings", json=settings)
    call("POST", f"{walked}/deployments/settings", json={"tag": "v1"})
    call("GET", f"{walked}/deployments/settings")
    call("DELETE", f"{walked}/deployments/settings")
    hook = {
        "organizationName": "acme",
        "name": "walk",
        "displayName": "Walk",
        "payloadUrl": "https://hooks.invalid/walk",
        "active": True,
    }
    call("POST", f"{walked}/hooks", json=hook)
    call("GET", f"{walked}/hooks")
    call("GET", f"{walked}/hooks/walk")
    call("PATCH", f"{walked}/hooks/walk", json={**hook, "active": False})
    call("DELETE", f"{walked}/hooks/walk")
    schedule = {"scheduleCron": "0 6 * * *", "request": {"operation": "refresh"}}
    made = call("POST", f"{walked}/deployments/schedules", json=schedule).json()
    call("GET", f"{walked}/deployments/schedules")
    call("GET", f"{walked}/deployments/schedules/{made['id']}")
    call("POST", f"{walked}/deployments/schedules/{made['id']}/pause")
    call("POST", f"{walked}/deployments/schedules/{made['id']}/resume")
    call("DELETE", f"{walked}/deployments/schedules/{made['id']}")
    sealed = call("POST", f"{stack}/encrypt", json={"plaintext": _b64(b"x")}).json()
    call("POST", f"{stack}/decrypt", json={"ciphertext": sealed["ciphertext"]})
    many = call("POST", f"{stack}/batch-encrypt", json={"plaintexts": [_b64(b"y")]}).json()
    call("POST", f"{stack}/batch-decrypt", json={"ciphertexts": many["ciphertexts"]})
    call("POST", f"{stack}/decrypt/log-decryption", json={})
    call("POST", f"{stack}/decrypt/log-batch-decryption", json={})
    call("GET", "/api/capabilities")
    exported = call("GET", f"{stack}/export").json()
    call("GET", f"{stack}/export/1")
    call("POST", f"{stack}/import", json=exported)
    call("GET", f"{stack}/updates")
    call("GET", f"{stack}/updates/latest")
    program = {"name": "web", "runtime": "go"}
    for kind in ("preview", "refresh", "destroy"):
        created = call("POST", f"{walked}/{kind}", json=program).json()["updateID"]
        call("POST", f"{walked}/{kind}/{created}", json={})
        call("GET", f"{walked}/{kind}/{created}")
        call("POST", f"{walked}/{kind}/{created}/cancel")
    cancelled = call("POST", f"{walked}/refresh", json=program).json()["updateID"]
    call("POST", f"{walked}/update/{cancelled}/cancel")
    update = call("POST", f"{stack}/update", json=program).json()["updateID"]
    lease = call("POST", f"{stack}/update/{update}", json={}).json()["token"]
    leased = {"headers": {"Authorization": f"update-token {lease}"}, "token": None}
    call("POST", f"{stack}/update/{update}/renew_lease", json={"duration": 60}, **leased)
    call("PATCH", f"{stack}/update/{update}/checkpoint", json=exported, **leased)
    events = {"events": [{"sequence": 1, "timestamp": 0}]}
    call("POST", f"{stack}/update/{update}/events/batch", json=events, **leased)
    call("POST", f"{stack}/update/{update}/complete", json={"status": "succeeded"}, **leased)
    call("GET", f"{stack}/update/{update}")
    call("POST", f"{walked}/transfer", json={"toOrg": "labs"})
    call("DELETE", "/api/stacks/labs/web/walked")

    challenge = call("GET", "/api/agents/signup", token=None).json()
    answer = {
        "challengeID": challenge["challengeID"],
        "challengeResult": solve(challenge["challengeData"]),
    }
    call("POST", "/api/agents/signup", token=None, json=answer)
    call("GET", "/api/agents/signup/validate/claim-1", token=None)
    call("POST", "/api/agents/acme/claim?dryRun=true", json={"claimToken": "claim-1"})
    call("GET", "/api/agents/acme/claim/status")
    call("GET", "/api/preview/insights/acme/accounts")
    call("GET", "/api/preview/registry/packages?orgLogin=acme")
    call("GET", "/api/orgs/acme/search/resourcesv2?query=type:pulumi:pulumi:Stack&properties=true")
    call("GET", "/api/orgs/acme/search/resources?query=stack:prod")

    esc, env = "/api/esc/environments", "/api/esc/environments/acme/app/walk"
    yaml = {"headers": {"Content-Type": "application/x-yaml"}}
    call("GET", esc)
    call("GET", f"{esc}/acme")
    call("POST", f"{esc}/acme", json={"project": "app", "name": "walk"})
    call("GET", env)
    call("HEAD", env)
    call("PATCH", env, content="values:\n  a: 1\n", **yaml)
    call("GET", f"{env}/decrypt")
    call("POST", f"{esc}/acme/yaml/check", content="values:\n  b: 2\n", **yaml)
    session = call("POST", f"{env}/open").json()["id"]
    call("POST", f"{env}/versions/2/open")
    call("GET", f"{env}/open/{session}")
    call("POST", f"{env}/tags", json={"name": "team", "value": "a"})
    call("GET", f"{env}/tags")
    call("GET", f"{env}/tags/team")
    call("PATCH", f"{env}/tags/team", json={"currentTag": {"value": "a"}, "newTag": {"value": "b"}})
    call("DELETE", f"{env}/tags/team")
    call("GET", f"{env}/versions")
    call("POST", f"{env}/versions/tags", json={"name": "stable", "revision": 1})
    call("GET", f"{env}/versions/tags")
    call("GET", f"{env}/versions/tags/stable")
    call("PATCH", f"{env}/versions/tags/stable", json={"revision": 2})
    call("DELETE", f"{env}/versions/tags/stable")
    call("GET", f"{env}/versions/1")
    call("GET", f"{env}/versions/1/decrypt")
    call("GET", f"{env}/metadata")
    call("POST", f"{env}/clone", json={"name": "walk-copy", "preserveHistory": True})
    call("DELETE", env)

    call("GET", "/api/orgs/acme/teams")
    call(
        "POST",
        "/api/orgs/acme/teams/pulumi",
        json={"name": "ops", "displayName": "Ops", "description": ""},
    )
    call("GET", "/api/orgs/acme/teams/ops")
    call("PATCH", "/api/orgs/acme/teams/ops", json={"newDisplayName": "Operations"})
    call("DELETE", "/api/orgs/acme/teams/ops")
    call("GET", "/api/orgs/acme/members")
    tokens = "/api/orgs/acme/tokens"
    token = call("POST", tokens, json={"name": "ci", "description": "", "admin": False}).json()
    call("GET", tokens)
    call("DELETE", f"{tokens}/{token['id']}")
    return answered


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def body_problem(shape: dict[str, str] | None, answer: httpx.Response) -> str | None:
    """Why `answer`'s body is not what the document's success `shape` says, or None."""
    if shape is None or answer.request.method == "HEAD":
        return None
    if "media" in shape:
        media = answer.headers.get("content-type", "")
        return None if media.startswith(shape["media"]) else f"answered {media}"
    model = shape.get("model") or f"list[{shape['list_of']}]"
    try:
        default_encoder.deserialize(answer.json(), model)
    except (ValueError, TypeError, KeyError) as error:
        return f"not a {model}: {error}"
    return None


def test_every_route_answers_its_normal_call_as_the_document_says(
    make_emulator: EmulatorFactory,
) -> None:
    routes = [
        (method, template)
        for method, template in served_routes()
        if not any(part in template for part in NOT_THE_SERVICE_S)
    ]
    calls_of: dict[tuple[str, str], list[Answered]] = {route: [] for route in routes}
    for call in walk(make_emulator(WALK_WORLD)):
        # The route that serves a call is the first that matches it, as the app routes it.
        served_by = next(
            (method, template)
            for method, template in routes
            if method == call.method and template_pattern(template).match(call.path)
        )
        calls_of[served_by].append(call)

    problems: list[str] = []
    for (method, template), calls in calls_of.items():
        found = documented(method, template)
        if found is None:
            problems.append(f"{method} {template}: not in the document")
            continue
        if not calls:
            problems.append(f"{method} {template}: not walked")
        _, operation = found
        for call in calls:
            status = str(call.answer.status_code)
            if status not in operation["success"]:
                problems.append(
                    f"{call.method} {call.path}: {status} ({call.answer.text[:120]}), the"
                    f" document's {operation['operationId']} answers {sorted(operation['success'])}"
                )
            elif problem := body_problem(operation["success"][status], call.answer):
                problems.append(f"{call.method} {call.path}: {problem}")
    assert not problems, "\n".join(problems)
