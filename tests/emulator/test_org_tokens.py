"""Organization access tokens in the emulator, over real HTTP, with the bodies the
pulumiservice provider's `OrgAccessToken` sends (`provider/pkg/pulumiapi/orgtokens.go` of
v1.3.0) and read through `pulumi-cloud-sdk`'s models: a token authenticates as its org with the
rights it was made with, and nowhere else; its value is never listed; deleting it revokes it,
and its name is never used again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pulumi_cloud_sdk.api_client import ApiClient
from pulumi_cloud_sdk.apis import OrganizationsApi
from pulumi_cloud_sdk.configuration import Configuration
from pulumi_cloud_sdk.models import CreateOrgAccessTokenRequest

from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "labs": "admin"}},
        {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
    ],
    "orgs": {
        "acme": {"stacks": [{"project": "web", "stack": "prod"}]},
        "labs": {"stacks": [{"project": "lab", "stack": "dev"}]},
    },
}
TOKENS = "/api/orgs/acme/tokens"


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


@pytest.fixture
def alice(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": "token tok-alice"}
    ) as client:
        yield client


def as_token(emulator: EmulatorServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=emulator.url, headers={"Authorization": f"token {token}"})


def create(alice: httpx.Client, name: str, *, admin: bool) -> dict[str, Any]:
    """As the provider creates one: name, description and admin, nothing else."""
    made = alice.post(TOKENS, json={"description": f"{name} token", "name": name, "admin": admin})
    assert made.status_code == 200, made.text
    body: dict[str, Any] = made.json()
    return body


def test_a_member_token_acts_as_the_org_with_member_rights_there_only(
    emulator: EmulatorServer, alice: httpx.Client
) -> None:
    made = create(alice, "ci", admin=False)
    assert made["tokenValue"].startswith("pul-")
    with as_token(emulator, made["tokenValue"]) as ci:
        user = ci.get("/api/user").json()
        assert user["githubLogin"] == "acme"
        assert user["tokenInfo"] == {"name": "ci", "organization": "acme"}
        assert [(o["githubLogin"], o["role"]) for o in user["organizations"]] == [
            ("acme", "member")
        ]
        assert ci.get("/api/stacks/acme/web/prod").status_code == 200
        assert ci.post("/api/stacks/acme/web", json={"stackName": "ci"}).status_code == 200
        assert ci.get("/api/stacks/labs/lab/dev").status_code == 403
        assert ci.get(TOKENS).status_code == 403
        assert ci.post(TOKENS, json={"name": "more", "admin": True}).status_code == 403


def test_an_admin_token_manages_the_org_s_tokens(
    emulator: EmulatorServer, alice: httpx.Client
) -> None:
    made = create(alice, "deployer", admin=True)
    with as_token(emulator, made["tokenValue"]) as deployer:
        roles = [o["role"] for o in deployer.get("/api/user").json()["organizations"]]
        assert roles == ["admin"]
        other = deployer.post(TOKENS, json={"name": "other", "admin": False, "description": ""})
        assert other.status_code == 200, other.text
        assert deployer.get("/api/orgs/labs/tokens").status_code == 403


def test_the_list_shows_each_token_without_its_value(
    emulator: EmulatorServer, alice: httpx.Client
) -> None:
    made = create(alice, "ci", admin=False)
    create(alice, "admin-ci", admin=True)
    listed = alice.get(TOKENS)
    assert listed.status_code == 200
    assert made["tokenValue"] not in listed.text
    tokens = {t["name"]: t for t in listed.json()["tokens"]}
    assert sorted(tokens) == ["admin-ci", "ci"]
    assert tokens["ci"]["id"] == made["id"]
    assert (tokens["ci"]["description"], tokens["ci"]["admin"]) == ("ci token", False)
    assert tokens["admin-ci"]["admin"] is True
    assert tokens["ci"]["createdBy"] == "alice"
    assert (tokens["ci"]["expires"], tokens["ci"]["lastUsed"]) == (0, 0)
    with as_token(emulator, made["tokenValue"]) as ci:
        assert ci.get("/api/user").status_code == 200
    used = {t["name"]: t["lastUsed"] for t in alice.get(TOKENS).json()["tokens"]}
    assert used["ci"] > 0
    assert used["admin-ci"] == 0


def test_deleting_a_token_revokes_it(emulator: EmulatorServer, alice: httpx.Client) -> None:
    made = create(alice, "ci", admin=False)
    with as_token(emulator, made["tokenValue"]) as ci:
        assert ci.get("/api/user").status_code == 200
        deleted = alice.delete(f"{TOKENS}/{made['id']}")
        assert deleted.status_code == 204, deleted.text
        assert ci.get("/api/user").status_code == 401
        assert ci.get("/api/stacks/acme/web/prod").status_code == 401
    assert alice.get(TOKENS).json()["tokens"] == []
    assert alice.delete(f"{TOKENS}/{made['id']}").status_code == 404
    again = alice.post(TOKENS, json={"name": "ci", "admin": False, "description": ""})
    assert again.status_code == 409
    assert "never reused" in again.json()["message"]


def test_an_expired_token_gets_401(emulator: EmulatorServer, alice: httpx.Client) -> None:
    expires = int(emulator.state.now().timestamp()) + 3600
    made = alice.post(
        TOKENS, json={"name": "brief", "admin": False, "description": "", "expires": expires}
    ).json()
    with as_token(emulator, made["tokenValue"]) as brief:
        assert brief.get("/api/user").status_code == 200
        emulator.state.advance_clock(3601)
        assert brief.get("/api/user").status_code == 401


@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        ("tok-bob", {"name": "mine", "admin": False, "description": ""}, 403),
        ("tok-alice", {"name": "ci", "admin": False, "description": ""}, 409),
        ("tok-alice", {"name": " ", "admin": False, "description": ""}, 400),
        ("tok-alice", {"description": "no name", "admin": False}, 400),
        ("tok-alice", {"name": "past", "admin": False, "description": "", "expires": 1}, 400),
        ("tok-alice", {"name": "role", "admin": False, "description": "", "roleID": "r1"}, 400),
    ],
)
def test_a_token_the_service_refuses_is_not_made(
    emulator: EmulatorServer,
    alice: httpx.Client,
    token: str,
    body: dict[str, Any],
    status: int,
) -> None:
    create(alice, "ci", admin=False)
    with as_token(emulator, token) as caller:
        assert caller.post(TOKENS, json=body).status_code == status
    assert [t["name"] for t in alice.get(TOKENS).json()["tokens"]] == ["ci"]


def test_the_official_sdk_creates_lists_and_deletes_tokens(emulator: EmulatorServer) -> None:
    configuration = Configuration()
    configuration.host = emulator.url
    configuration.access_token = "tok-alice"
    orgs = OrganizationsApi(ApiClient(configuration))
    made = orgs.create_org_token(
        "acme", CreateOrgAccessTokenRequest(description="sdk", expires=0, name="sdk", admin=False)
    )
    assert made.token_value and made.id
    listed = orgs.list_org_tokens("acme")
    assert [(t.id, t.name, t.admin) for t in listed.tokens] == [(made.id, "sdk", False)]
    orgs.delete_org_token("acme", made.id)
    assert orgs.list_org_tokens("acme").tokens == []
