"""Agent accounts in the emulated service: sign-up with a proof of work, the write and claim
windows on the service's clock, validating a claim token, and claims (preview, commit,
blocked commits, refusals, status), in the state and over real HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from test_state_updates import run_update, workload_deployment

from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceFault, ServiceState
from toolkit.emulator.world import parse_world
from toolkit.errors import InvalidInputError
from toolkit.models import (
    TransferEntityEnvironment,
    TransferEntityEnvironmentRename,
    TransferEntityInsightsAccount,
    TransferEntityInsightsAccountRename,
    TransferEntityRegistryPackage,
    TransferEntityRegistryPackageRename,
    TransferEntityStack,
    TransferEntityStackRename,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-1"
CREATED = datetime.now(UTC) - timedelta(hours=1)
"""The world's agent signed up an hour ago: it still writes, and its claim window is open."""
HOUR = 3600
PACE = 60
"""Seconds a claim takes per stack in these worlds: far more than a test takes."""
OWNER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]{1,38}[a-zA-Z0-9]")
"""What the CLI accepts as the owner part of a stack name."""


def world(
    *,
    claim_moves: str = "launch",
    environments: list[dict[str, str]] | None = None,
    insights_accounts: list[dict[str, str]] | None = None,
    registry_packages: list[dict[str, str]] | None = None,
    claim_expires_at: datetime = CREATED + timedelta(days=30),
) -> dict[str, Any]:
    """alice admins acme, bob is a member, eve has no role there; agent-1 has three stacks,
    one of which (web/dev) acme has too. A claim moves a stack every `PACE` seconds of the
    service's clock, which the tests move."""
    return {
        "service": {
            "signupDifficulty": 4,
            "claimMoves": claim_moves,
            "claimSecondsPerStack": PACE,
        },
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}},
            {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
            {"login": "eve", "token": "tok-eve", "orgs": {"elsewhere": "admin"}},
        ],
        "agents": [
            {
                "login": AGENT,
                "token": "tok-agent",
                "claimToken": "claim-1",
                "createdAt": CREATED.isoformat(),
                "claimExpiresAt": claim_expires_at.isoformat(),
            }
        ],
        "orgs": {
            AGENT: {
                "stacks": [
                    {"project": "api", "stack": "dev", "resourceCount": 2},
                    {"project": "web", "stack": "dev", "tags": {"team": "agents"}},
                    {"project": "web", "stack": "prod", "resourceCount": 5},
                ],
                "environments": environments or [],
                "insightsAccounts": insights_accounts or [],
                "registryPackages": registry_packages or [],
            },
            "acme": {
                "stacks": [{"project": "web", "stack": "dev"}, {"project": "web", "stack": "qa"}],
                "environments": [{"project": "default", "name": "secrets"}],
            },
        },
    }


@pytest.fixture
def state() -> Iterator[ServiceState]:
    service = ServiceState.from_world(parse_world(world()))
    yield service
    service.close()


def fault_of(call: Callable[[], object]) -> ServiceFault:
    with pytest.raises(ServiceFault) as caught:
        call()
    return caught.value


def http(server: EmulatorServer, token: str | None = "tok-alice") -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"token {token}"}
    return httpx.Client(base_url=server.url, headers=headers)


def solve(challenge_data: str) -> str:
    """The CLI's search for the nonce, written out here as the test's own oracle."""
    difficulty = int(challenge_data.split(":")[2])
    nonce = 0
    while True:
        digest = hashlib.sha256(f"{challenge_data}:{nonce}".encode()).digest()
        if int.from_bytes(digest, "big") >> (256 - difficulty) == 0:
            return str(nonce)
        nonce += 1


def wrong_answer(challenge_data: str) -> str:
    difficulty = int(challenge_data.split(":")[2])
    nonce = 0
    while True:
        digest = hashlib.sha256(f"{challenge_data}:{nonce}".encode()).digest()
        if int.from_bytes(digest, "big") >> (256 - difficulty) != 0:
            return str(nonce)
        nonce += 1


def sign_up(server: EmulatorServer) -> dict[str, Any]:
    """Sign up as the pulumi CLI does: unauthenticated, with the CLI's extra fields."""
    with http(server, None) as client:
        challenge = client.get("/api/agents/signup").json()
        answer = client.post(
            "/api/agents/signup",
            json={
                "challengeID": challenge["challengeID"],
                "challengeResult": solve(challenge["challengeData"]),
                "agentName": "claude",
                "agentModel": "some-model",
                "challengeSolveDurationMs": 3,
            },
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def advance(server: EmulatorServer, seconds: float) -> None:
    with httpx.Client(base_url=server.url) as client:
        client.post("/_emulator/clock", json={"advanceSeconds": seconds}).raise_for_status()


def rename(project: str, stack: str, new_project: str, new_stack: str) -> TransferEntityStackRename:
    return TransferEntityStackRename(
        project_name=project,
        stack_name=stack,
        rename_as=TransferEntityStack(project_name=new_project, stack_name=new_stack),
    )


def claim_body(*renames: Any, token: str = "claim-1") -> dict[str, Any]:
    return {"claimToken": token, "conflictsResolution": [r.to_wire() for r in renames]}


def agent_accounts(state: ServiceState) -> set[str]:
    return {org for org in state.org_names() if org.startswith("agent-")}


# --- Sign-up -------------------------------------------------------------------------------


def test_sign_up_makes_an_agent_that_works_in_its_own_org(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    with http(server, None) as client:
        challenge = client.get("/api/agents/signup").json()
    assert re.fullmatch(r"v1:[0-9a-f]+:4", challenge["challengeData"])

    account = sign_up(server)
    login = account["userInfo"]["githubLogin"]
    assert re.fullmatch(r"agent-[a-z0-9]+", login) and OWNER_NAME.fullmatch(login)
    now = datetime.now(UTC)
    valid_until = datetime.fromisoformat(account["accessTokenValidUntil"])
    claimable_until = datetime.fromisoformat(account["claimTokenValidUntil"])
    assert abs(valid_until - (now + timedelta(hours=72))) < timedelta(minutes=1)
    assert abs(claimable_until - (now + timedelta(days=30))) < timedelta(minutes=1)
    assert account["userInfo"]["isAgent"] is True

    with http(server, account["accessToken"]) as agent:
        user = agent.get("/api/user").json()
        default = agent.get("/api/user/organizations/default").json()
        created = agent.post(f"/api/stacks/{login}/web", json={"stackName": "dev"})
    assert user["githubLogin"] == login
    assert [(o["githubLogin"], o["role"]) for o in user["organizations"]] == [(login, "admin")]
    assert default == {"GitHubLogin": login, "Messages": []}
    assert created.status_code == 200
    assert server.state.stack_names(login) == {("web", "dev")}
    with http(server, None) as client:
        claim = client.get(f"/api/agents/signup/validate/{account['claimToken']}").json()
    assert (claim["agent"]["login"], claim["agent"]["orgName"]) == (login, login)
    assert [e["stackName"] for e in claim["entities"]] == ["dev"]


def test_sign_up_refuses_a_wrong_reused_expired_or_unknown_answer(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    before = agent_accounts(server.state)
    with http(server, None) as client:

        def answer(challenge_id: str, result: str) -> httpx.Response:
            return client.post(
                "/api/agents/signup",
                json={"challengeID": challenge_id, "challengeResult": result},
            )

        challenge = client.get("/api/agents/signup").json()
        wrong = answer(challenge["challengeID"], wrong_answer(challenge["challengeData"]))
        not_a_number = answer(challenge["challengeID"], "0x1f")
        unknown = answer("no-such-challenge", "1")
        missing = client.post("/api/agents/signup", json={"challengeID": challenge["challengeID"]})
        assert answer(challenge["challengeID"], solve(challenge["challengeData"])).is_success
        reused = answer(challenge["challengeID"], solve(challenge["challengeData"]))

        late = client.get("/api/agents/signup").json()
        advance(server, 5 * 60)
        expired = answer(late["challengeID"], solve(late["challengeData"]))

    for refused, words in [
        (wrong, "proof-of-work verification failed"),
        (not_a_number, "proof-of-work verification failed"),
        (unknown, "unknown challengeID"),
        (missing, "challengeResult"),
        (reused, "already been used"),
        (expired, "expired"),
    ]:
        assert refused.status_code == 400
        assert refused.json()["code"] == 400 and words in refused.json()["message"]
    assert len(agent_accounts(server.state) - before) == 1  # only the one good answer


def test_the_difficulty_comes_from_the_world_and_can_be_changed(state: ServiceState) -> None:
    assert state.signup_challenge().data.endswith(":4")
    state.set_signup_difficulty(9)
    challenge = state.signup_challenge()
    assert challenge.data.endswith(":9")
    account = state.sign_up_agent(challenge.id, solve(challenge.data))
    assert state.authenticate(account.token).is_agent
    with pytest.raises(ValueError, match="1 to 256"):
        state.set_signup_difficulty(0)


# --- Lifetimes -----------------------------------------------------------------------------


def test_an_agent_token_works_for_72_hours_then_gets_401_while_the_claim_token_claims(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    account = sign_up(server)
    login = account["userInfo"]["githubLogin"]
    valid_until = datetime.fromisoformat(account["accessTokenValidUntil"])
    world_agent_valid_until = CREATED + timedelta(hours=72)
    with http(server, account["accessToken"]) as agent, http(server, "tok-agent") as old_agent:
        assert agent.post(f"/api/stacks/{login}/web", json={"stackName": "a"}).is_success
        # Times from the service's clock now, whenever this test runs after the world's creation.
        advance(server, (world_agent_valid_until - server.state.now()).total_seconds() - 60)
        assert old_agent.post(f"/api/stacks/{AGENT}/web", json={"stackName": "b"}).is_success
        assert old_agent.get("/api/user").is_success
        advance(server, 120)
        expired = [
            old_agent.post(f"/api/stacks/{AGENT}/web", json={"stackName": "c"}),
            old_agent.get("/api/user/stacks", params={"organization": AGENT}),
        ]
        advance(server, (valid_until - server.state.now()).total_seconds())
        expired += [
            agent.post(f"/api/stacks/{login}/web", json={"stackName": "d"}),
            agent.post(
                f"/api/stacks/{login}/web/a/rename", json={"newName": "e", "newProject": "web"}
            ),
            agent.get("/api/user/stacks", params={"organization": login}),
            agent.get("/api/user"),
        ]
    with http(server) as alice:
        claimed = alice.post("/api/agents/acme/claim", json={"claimToken": account["claimToken"]})
        advance(server, PACE)

    for answer in expired:
        assert answer.status_code == 401
        assert answer.json() == {
            "code": 401,
            "message": answer.json()["message"],
        }
        assert answer.json()["message"].startswith("Unauthorized: the access token expired at ")
    assert claimed.status_code == 200 and claimed.json()["transferToken"]
    assert ("web", "a") in server.state.stack_names("acme")
    assert ("web", "b") in server.state.stack_names(AGENT)


def test_the_claim_window_closes_30_days_after_sign_up(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world())
    account = sign_up(server)
    path = f"/api/agents/signup/validate/{account['claimToken']}"
    with http(server, None) as client, http(server) as alice:
        assert client.get(path).status_code == 200
        advance(server, 30 * 24 * HOUR)
        expired = client.get(path)
        claimed = alice.post("/api/agents/acme/claim", json={"claimToken": account["claimToken"]})
    assert expired.status_code == claimed.status_code == 404
    assert expired.json()["code"] == 404


def test_the_clock_control_reads_and_moves_the_service_time(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/_emulator/clock").json()["offsetSeconds"] == 0
        moved = client.post("/_emulator/clock", json={"advanceSeconds": 90}).json()
        backwards = client.post("/_emulator/clock", json={"advanceSeconds": -1})
    assert moved["offsetSeconds"] == 90
    shown = datetime.fromisoformat(moved["now"])
    assert abs(shown - (datetime.now(UTC) + timedelta(seconds=90))) < timedelta(seconds=5)
    assert backwards.status_code == 400
    assert server.state.now() - datetime.now(UTC) > timedelta(seconds=80)


def test_the_clock_offset_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    first = ServiceState.from_world(parse_world(world()), db)
    first.advance_clock(40 * HOUR)
    first.close()
    again = ServiceState(db)
    assert again.clock_offset() == 40 * HOUR
    again.close()


# --- Validating a claim token --------------------------------------------------------------


def test_validate_shows_the_inventory_and_what_the_service_cannot_move(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(
        world(
            environments=[{"project": "default", "name": "agent-env"}],
            insights_accounts=[{"name": "aws-main"}],
        )
    )
    with http(server, None) as client:
        claim = client.get("/api/agents/signup/validate/claim-1")
        unknown = client.get("/api/agents/signup/validate/claim-nope")
    assert claim.status_code == 200
    document = claim.json()
    assert document["agent"]["login"] == AGENT
    assert [e["kind"] for e in document["entities"]] == [
        "TransferEntityStack",
        "TransferEntityStack",
        "TransferEntityStack",
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    ]
    assert document["conflicts"] == []
    assert [f["entity"]["kind"] for f in document["failures"]] == [
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    ]
    assert "transferToken" not in document
    assert unknown.status_code == 404
    assert unknown.json() == {"code": 404, "message": unknown.json()["message"]}


def test_validate_is_404_for_an_expired_or_used_token(make_emulator: EmulatorFactory) -> None:
    expired = make_emulator(world(claim_expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    used = make_emulator(world())
    with http(used) as alice:
        alice.post(
            "/api/agents/acme/claim", json=claim_body(rename("web", "dev", "web", "dev-agent"))
        ).raise_for_status()
    for server in (expired, used):
        with http(server, None) as client:
            answer = client.get("/api/agents/signup/validate/claim-1")
        assert answer.status_code == 404 and answer.json()["code"] == 404


# --- Claims --------------------------------------------------------------------------------


def test_a_preview_shows_the_document_a_commit_returns_and_changes_nothing(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    resolution = claim_body(rename("web", "dev", "web", "dev-agent"))
    with http(server) as alice:
        conflicted = alice.post("/api/agents/acme/claim?dryRun=true", json=claim_body()).json()
        preview = alice.post("/api/agents/acme/claim?dryRun=true", json=resolution).json()
        assert server.state.stack_names(AGENT) == {("api", "dev"), ("web", "dev"), ("web", "prod")}
        commit = alice.post("/api/agents/acme/claim", json=resolution).json()

    assert conflicted["conflicts"] == [
        {
            "kind": "TransferEntityStack",
            "projectName": "web",
            "stackName": "dev",
            "resourceCount": 0,
        }
    ]
    assert preview["conflicts"] == preview["failures"] == []
    assert "transferToken" not in preview
    assert re.fullmatch(r"[0-9a-f]{32}", commit.pop("transferToken"))
    assert commit == preview
    assert preview["entities"][1] == {
        "kind": "TransferEntityStackRename",
        "projectName": "web",
        "stackName": "dev",
        "resourceCount": 0,
        "renameAs": {
            "kind": "TransferEntityStack",
            "projectName": "web",
            "stackName": "dev-agent",
            "resourceCount": 0,
        },
    }


def test_a_commit_moves_stacks_with_history_tags_and_secrets_and_retires_the_agent(
    state: ServiceState,
) -> None:
    agent = state.authenticate("tok-agent")
    alice = state.authenticate("tok-alice")
    (sealed,) = state.encrypt_values(agent, AGENT, "web", "prod", [b"s3cr3t"])
    update = run_update(
        state,
        agent,
        AGENT,
        "web",
        "prod",
        workload_deployment(AGENT, "web", "prod", ciphertext="eA=="),
    )
    renames = [rename("web", "dev", "web", "dev-agent"), rename("web", "prod", "shop", "prod")]

    claimed = state.claim(alice, "acme", "claim-1", renames, dry_run=False)
    state.advance_clock(3 * PACE)

    assert claimed.claim_id is not None and not claimed.blocked
    assert state.stack_names(AGENT) == set()
    assert state.stack_names("acme") >= {("api", "dev"), ("web", "dev-agent"), ("shop", "prod")}
    assert state.decrypt_values(alice, "acme", "shop", "prod", [sealed]) == [b"s3cr3t"]
    history = state.update_history(alice, "acme", "shop", "prod", page_size=10, page=1)
    assert [u.id for u in history] == [update]
    assert state.get_stack(alice, "acme", "web", "dev-agent").record.tags == {"team": "agents"}
    body = state.export_deployment(alice, "acme", "shop", "prod")["deployment"]
    assert body["resources"][0]["urn"] == "urn:pulumi:prod::shop::pulumi:pulumi:Stack::shop-prod"
    assert body["secrets_providers"]["state"]["owner"] == "acme"

    assert fault_of(lambda: state.authenticate("tok-agent")).status == 401
    assert fault_of(lambda: state.list_stacks(alice, limit=10, organization=AGENT)).status == 404
    assert AGENT not in state.current_user(agent).roles
    assert fault_of(lambda: state.validate_claim("claim-1")).status == 404
    again = fault_of(lambda: state.claim(alice, "acme", "claim-1", renames, dry_run=False))
    assert again.status == 404
    assert len(state.claims_status(alice, "acme")) == 1


def test_a_commit_with_a_conflict_changes_nothing(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world())
    before = {org: server.state.stack_names(org) for org in (AGENT, "acme")}
    with http(server) as alice:
        plain = alice.post("/api/agents/acme/claim", json=claim_body()).json()
        still_taken = alice.post(
            "/api/agents/acme/claim", json=claim_body(rename("web", "dev", "web", "qa"))
        ).json()
        onto_each_other = alice.post(
            "/api/agents/acme/claim",
            json=claim_body(
                rename("web", "dev", "web", "prod"), rename("api", "dev", "web", "prod")
            ),
        ).json()
        status = alice.get("/api/agents/acme/claim/status").json()

    assert [(c["kind"], c["stackName"]) for c in plain["conflicts"]] == [
        ("TransferEntityStack", "dev")
    ]
    assert [(c["kind"], c["renameAs"]["stackName"]) for c in still_taken["conflicts"]] == [
        ("TransferEntityStackRename", "qa")
    ]
    # Both renamed onto web/prod, and the agent's own web/prod lands there too.
    assert [(c["projectName"], c["stackName"]) for c in onto_each_other["conflicts"]] == [
        ("api", "dev"),
        ("web", "dev"),
        ("web", "prod"),
    ]
    for document in (plain, still_taken, onto_each_other):
        assert "transferToken" not in document
    assert {org: server.state.stack_names(org) for org in (AGENT, "acme")} == before
    assert server.state.authenticate("tok-agent").login == AGENT
    assert server.state.validate_claim("claim-1").login == AGENT
    assert status == {"claims": {}}


def test_a_commit_with_a_failure_changes_nothing(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world(insights_accounts=[{"name": "aws-main"}]))
    with http(server) as alice:
        document = alice.post(
            "/api/agents/acme/claim", json=claim_body(rename("web", "dev", "web", "dev-agent"))
        ).json()
    assert document["conflicts"] == [] and "transferToken" not in document
    (failure,) = document["failures"]
    assert failure["entity"] == {"kind": "TransferEntityInsightsAccount", "name": "aws-main"}
    assert "Insights account aws-main cannot be transferred" in failure["failureDetails"]
    assert len(server.state.stack_names(AGENT)) == 3
    assert server.state.validate_claim("claim-1").login == AGENT


def test_claiming_needs_a_role_in_the_destination_and_someone_other_than_the_agent(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    body = claim_body(rename("web", "dev", "web", "dev-agent"))
    answers = {}
    for token, destination in [
        ("tok-eve", "acme"),
        ("tok-eve", "no-such-org"),
        ("tok-agent", "acme"),
        ("tok-agent", AGENT),
        ("tok-bob", "acme"),
    ]:
        with http(server, token) as client:
            answered = client.post(f"/api/agents/{destination}/claim?dryRun=true", json=body)
            answers[(token, destination)] = answered.status_code
    with http(server) as alice:
        unauthenticated = http(server, None).post("/api/agents/acme/claim", json=body)
        missing = alice.post("/api/agents/acme/claim", json={"conflictsResolution": None})
        empty = alice.post("/api/agents/acme/claim", json={"claimToken": ""})
        bad_token = alice.post("/api/agents/acme/claim", json=claim_body(token="claim-nope"))
        eve_status = http(server, "tok-eve").get("/api/agents/acme/claim/status")
    assert answers == {
        ("tok-eve", "acme"): 403,
        ("tok-eve", "no-such-org"): 403,
        ("tok-agent", "acme"): 403,
        ("tok-agent", AGENT): 403,
        ("tok-bob", "acme"): 200,  # any role in the destination will do
    }
    assert unauthenticated.status_code == 401
    assert missing.status_code == empty.status_code == 400
    assert bad_token.status_code == 404
    assert eve_status.status_code == 403
    assert len(server.state.stack_names(AGENT)) == 3


@pytest.mark.parametrize(
    "resolution",
    [
        rename("web", "nope", "web", "nope-agent"),
        rename("web", "dev", "web", "not a name"),
        TransferEntityStack(project_name="web", stack_name="dev"),
        TransferEntityInsightsAccountRename(
            name="aws-main", rename_as=TransferEntityInsightsAccount(name="aws-2")
        ),
        TransferEntityEnvironmentRename(
            project_name="default",
            environment_name="agent-env",
            rename_as=TransferEntityEnvironment(project_name="default", environment_name="e2"),
        ),
    ],
    ids=["unknown-stack", "invalid-name", "not-a-rename", "insights-account", "environment"],
)
def test_resolutions_the_service_cannot_apply_are_refused(
    make_emulator: EmulatorFactory, resolution: Any
) -> None:
    server = make_emulator(
        world(
            environments=[{"project": "default", "name": "agent-env"}],
            insights_accounts=[{"name": "aws-main"}],
        )
    )
    with http(server) as alice:
        answer = alice.post("/api/agents/acme/claim?dryRun=true", json=claim_body(resolution))
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == 400


def test_renaming_one_entity_twice_is_refused(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    twice = [rename("web", "dev", "web", "a"), rename("web", "dev", "web", "b")]
    refused = fault_of(lambda: state.claim(alice, "acme", "claim-1", twice, dry_run=True))
    assert refused.status == 400 and "twice" in refused.message


def test_environments_and_packages_fail_at_launch(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(
        world(
            environments=[{"project": "default", "name": "agent-env"}],
            registry_packages=[{"source": "private", "publisher": AGENT, "name": "vpc"}],
        )
    )
    with http(server) as alice:
        document = alice.post(
            "/api/agents/acme/claim?dryRun=true",
            json=claim_body(rename("web", "dev", "web", "dev-agent")),
        ).json()
    assert [f["entity"] for f in document["failures"]] == [
        TransferEntityEnvironment(project_name="default", environment_name="agent-env").to_wire(),
        TransferEntityRegistryPackage(source="private", publisher=AGENT, name="vpc").to_wire(),
    ]
    assert all(f["failureDetails"].endswith(".") for f in document["failures"])


def test_environments_move_with_the_claim_where_the_service_moves_them(
    make_emulator: EmulatorFactory,
) -> None:
    environments = [{"project": "default", "name": "secrets"}, {"project": "app", "name": "cfg"}]
    server = make_emulator(world(claim_moves="current", environments=environments))
    environment_rename = TransferEntityEnvironmentRename(
        project_name="default",
        environment_name="secrets",
        rename_as=TransferEntityEnvironment(project_name="default", environment_name="agent"),
    )
    stack_rename = rename("web", "dev", "web", "dev-agent")
    with http(server) as alice:
        conflicted = alice.post(
            "/api/agents/acme/claim?dryRun=true", json=claim_body(stack_rename)
        ).json()
        committed = alice.post(
            "/api/agents/acme/claim", json=claim_body(stack_rename, environment_rename)
        ).json()
    server.state.advance_clock(3 * PACE)
    assert [c["kind"] for c in conflicted["conflicts"]] == ["TransferEntityEnvironment"]
    assert committed["failures"] == [] and committed["transferToken"]
    assert server.state.environment_names("acme") == {
        ("default", "secrets"),
        ("default", "agent"),
        ("app", "cfg"),
    }
    assert server.state.environment_names(AGENT) == set()


def test_by_default_environments_and_packages_move_and_collide_as_stacks_do(
    make_emulator: EmulatorFactory,
) -> None:
    """Today's service (Pulumi's API document of 2026-07, the default world): only Insights
    accounts fail; an environment or package whose name is taken in the destination is a
    conflict, resolved by its rename entity, and the claim moves them under their new names."""
    spec = world(
        environments=[{"project": "default", "name": "secrets"}],
        registry_packages=[
            {"source": "private", "publisher": AGENT, "name": "vpc"},
            {"source": "private", "publisher": AGENT, "name": "net"},
        ],
    )
    del spec["service"]["claimMoves"]
    spec["orgs"]["acme"]["registryPackages"] = [
        {"source": "private", "publisher": AGENT, "name": "vpc"}
    ]
    server = make_emulator(spec)
    environment_rename = TransferEntityEnvironmentRename(
        project_name="default",
        environment_name="secrets",
        rename_as=TransferEntityEnvironment(project_name="default", environment_name="agent"),
    )
    package_rename = TransferEntityRegistryPackageRename(
        source="private",
        publisher=AGENT,
        name="vpc",
        rename_as=TransferEntityRegistryPackage(source="private", publisher=AGENT, name="vpc2"),
    )
    stack_rename = rename("web", "dev", "web", "dev-agent")
    with http(server) as alice:
        conflicted = alice.post(
            "/api/agents/acme/claim?dryRun=true", json=claim_body(stack_rename)
        ).json()
        committed = alice.post(
            "/api/agents/acme/claim",
            json=claim_body(stack_rename, environment_rename, package_rename),
        ).json()
        server.state.advance_clock(3 * PACE)
        packages = alice.get("/api/preview/registry/packages").json()["packages"]
    assert conflicted["failures"] == []
    assert conflicted["conflicts"] == [
        TransferEntityEnvironment(project_name="default", environment_name="secrets").to_wire(),
        TransferEntityRegistryPackage(source="private", publisher=AGENT, name="vpc").to_wire(),
    ]
    assert committed["failures"] == [] and committed["conflicts"] == []
    assert server.state.environment_names("acme") == {("default", "secrets"), ("default", "agent")}
    assert sorted(p["name"] for p in packages) == ["net", "vpc", "vpc2"]
    assert server.state.environment_names(AGENT) == set()


def test_a_claimed_package_is_listed_under_its_new_owner_with_its_publisher_kept(
    make_emulator: EmulatorFactory,
) -> None:
    """`orgLogin` filters the registry listing by owning organization (Pulumi's API document):
    once claimed, the agent's package is acme's, still published under the agent's name."""
    spec = world(registry_packages=[{"source": "private", "publisher": AGENT, "name": "vpc"}])
    del spec["service"]["claimMoves"]
    server = make_emulator(spec)
    with http(server) as alice:
        committed = alice.post(
            "/api/agents/acme/claim",
            json=claim_body(rename("web", "dev", "web", "dev-agent")),
        ).json()
        server.state.advance_clock(3 * PACE)
        owned = alice.get("/api/preview/registry/packages", params={"orgLogin": "acme"}).json()
    assert committed["failures"] == [] and committed["conflicts"] == []
    assert [(p["source"], p["publisher"], p["name"]) for p in owned["packages"]] == [
        ("private", AGENT, "vpc")
    ]


def test_at_launch_environments_and_packages_are_failures_their_renames_refused(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(
        world(
            claim_moves="launch",
            environments=[{"project": "default", "name": "secrets"}],
            registry_packages=[{"source": "private", "publisher": AGENT, "name": "vpc"}],
        )
    )
    package_rename = TransferEntityRegistryPackageRename(
        source="private",
        publisher=AGENT,
        name="vpc",
        rename_as=TransferEntityRegistryPackage(source="private", publisher=AGENT, name="vpc2"),
    )
    with http(server) as alice:
        validated = alice.get("/api/agents/signup/validate/claim-1").json()
        refused = alice.post("/api/agents/acme/claim?dryRun=true", json=claim_body(package_rename))
    assert [f["entity"]["kind"] for f in validated["failures"]] == [
        "TransferEntityEnvironment",
        "TransferEntityRegistryPackage",
    ]
    assert refused.status_code == 400
    assert "a claim does not move registry packages" in refused.json()["message"]


def test_a_world_with_the_replaced_switch_is_refused_naming_its_successor() -> None:
    spec = world()
    spec["service"] = {"claimMovesEnvironments": True}
    with pytest.raises(InvalidInputError) as refused:
        parse_world(spec)
    assert (
        "  - service: claimMovesEnvironments is replaced by claimMoves: write claimMoves: current"
        " (environments and registry packages move with a claim) or claimMoves: launch (they"
        " are claim failures)"
    ) in refused.value.message


def test_claim_status_lists_the_claims_into_an_org(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world())
    with http(server, "tok-bob") as bob:
        committed = bob.post(
            "/api/agents/acme/claim", json=claim_body(rename("web", "dev", "web", "dev-agent"))
        ).json()
        status = bob.get("/api/agents/acme/claim/status").json()
    token = committed["transferToken"]
    assert status == {"claims": {token: committed}}


def test_writes_to_the_agent_org_wait_for_a_running_claim(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    agent = state.authenticate("tok-agent")
    started = state.start_claim(alice, "acme", "claim-1", [rename("web", "dev", "web", "x")])
    assert started.claim_id is not None

    for write in (
        lambda: state.create_stack(agent, AGENT, "web", "new", tags={}),
        lambda: state.rename_stack(agent, AGENT, "web", "prod", new_project=None, new_name="p2"),
        lambda: state.set_stack_tag(agent, AGENT, "web", "prod", name="a", value="b"),
    ):
        refused = fault_of(write)
        assert refused.status == 409 and "being claimed" in refused.message
    assert len(state.stack_names(AGENT)) == 3  # reads still work

    finished = state.complete_claim(started.claim_id)
    assert finished.claim_id == started.claim_id
    assert ("web", "x") in state.stack_names("acme")


def test_a_commit_starts_the_claim_and_its_stacks_move_one_per_pace(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    with http(server, "tok-bob") as bob, http(server, "tok-agent") as agent:
        committed = bob.post(
            "/api/agents/acme/claim", json=claim_body(rename("web", "dev", "web", "dev-agent"))
        ).json()
        token = committed["transferToken"]
        seen: list[set[tuple[str, str]]] = []
        refusals: list[int] = []
        for _ in range(4):
            seen.append(server.state.stack_names(AGENT))
            made = agent.post(f"/api/stacks/{AGENT}/web", json={"stackName": "new"})
            refusals.append(made.status_code)
            assert bob.get("/api/agents/acme/claim/status").json() == {"claims": {token: committed}}
            server.state.advance_clock(PACE)
        whoami = agent.get("/api/user")

    assert seen == [
        {("api", "dev"), ("web", "dev"), ("web", "prod")},
        {("web", "dev"), ("web", "prod")},
        {("web", "prod")},
        set(),
    ]
    assert refusals[:3] == [409, 409, 409], "the agent's org is held while the claim runs"
    assert whoami.status_code == 401, "the claim has ended: the agent's token is retired"
    assert {("api", "dev"), ("web", "dev-agent"), ("web", "prod")} <= server.state.stack_names(
        "acme"
    )


def test_a_claim_undone_half_way_moves_its_stacks_back(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    started = state.start_claim(alice, "acme", "claim-1", [rename("web", "dev", "web", "x")])
    state.advance_clock(PACE)
    assert state.stack_names(AGENT) == {("web", "dev"), ("web", "prod")}
    state.create_stack(alice, "acme", "web", "prod", tags={})
    state.advance_clock(PACE)

    assert state.stack_names(AGENT) == {("api", "dev"), ("web", "dev"), ("web", "prod")}
    assert state.claims_status(alice, "acme") == []
    assert state.validate_claim("claim-1").login == AGENT
    assert started.claim_id is not None
    assert fault_of(lambda: state.complete_claim(started.claim_id or "")).status == 404


def test_a_claim_whose_names_were_taken_meanwhile_is_undone(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    started = state.start_claim(alice, "acme", "claim-1", [rename("web", "dev", "web", "x")])
    assert started.claim_id is not None
    state.create_stack(alice, "acme", "web", "prod", tags={})

    undone = state.complete_claim(started.claim_id)

    assert undone.claim_id is None
    assert [(c.project_name, c.stack_name) for c in undone.conflicts] == [("web", "prod")]
    assert len(state.stack_names(AGENT)) == 3
    assert state.validate_claim("claim-1").login == AGENT
    agent = state.authenticate("tok-agent")
    state.create_stack(agent, AGENT, "web", "again", tags={})  # the org is released
    assert state.claims_status(alice, "acme") == []


# --- Stacks while an update runs -----------------------------------------------------------


def test_a_stack_is_neither_renamed_transferred_nor_claimed_while_an_update_runs(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(
        {
            **world(),
            "users": [
                {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}
            ],
        }
    )
    state = server.state
    agent = state.authenticate("tok-agent")
    update = state.create_update(
        agent, AGENT, "web", "prod", kind="update", dry_run=False, program={"name": "web"}
    )
    lease = state.start_update(agent, AGENT, "web", "prod", update, tags=None)
    with http(server) as alice:
        renamed = alice.post(
            f"/api/stacks/{AGENT}/web/prod/rename", json={"newName": "p2", "newProject": ""}
        )
        moved = alice.post(f"/api/stacks/{AGENT}/web/prod/transfer", json={"toOrg": "acme"})
        listed = alice.get("/api/user/stacks", params={"organization": AGENT}).json()
        preview = alice.post(
            "/api/agents/acme/claim?dryRun=true",
            json=claim_body(rename("web", "dev", "web", "dev-agent")),
        ).json()
        state.complete_update(lease.token, update, "succeeded")
        renamed_after = alice.post(
            f"/api/stacks/{AGENT}/web/prod/rename", json={"newName": "p2", "newProject": ""}
        )

    for refused in (renamed, moved):
        assert refused.status_code == 409
        assert "update is in progress" in refused.json()["message"]
    by_name = {s["stackName"]: s for s in listed["stacks"]}
    assert by_name["prod"]["lastUpdate"] == 0  # the CLI shows "in progress"
    (failure,) = preview["failures"]
    assert failure["entity"]["stackName"] == "prod"
    assert "update in progress" in failure["failureDetails"]
    assert renamed_after.status_code == 200


def test_a_stack_never_updated_is_listed_without_last_update(
    make_emulator: EmulatorFactory,
) -> None:
    updated = (CREATED + timedelta(minutes=5)).replace(microsecond=0)
    document = world()
    document["orgs"]["acme"]["stacks"][1]["lastUpdate"] = updated.isoformat()
    server = make_emulator(document)
    with http(server) as alice:
        raw = alice.get("/api/user/stacks", params={"organization": "acme"}).text
    stacks = {s["stackName"]: s for s in json.loads(raw)["stacks"]}
    assert "lastUpdate" not in stacks["dev"]
    assert stacks["qa"]["lastUpdate"] == int(updated.timestamp())


def test_the_default_org_is_the_individual_org_else_one_the_user_admins(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(
        {**world(), "users": [*world()["users"], {"login": "nobody", "token": "tok-nobody"}]}
    )
    answers = {}
    for token in ("tok-agent", "tok-alice", "tok-bob", "tok-nobody"):
        with http(server, token) as client:
            answer = client.get("/api/user/organizations/default")
            answers[token] = answer.json().get("GitHubLogin", answer.status_code)
    assert answers == {
        "tok-agent": AGENT,
        "tok-alice": "acme",
        "tok-bob": "acme",
        "tok-nobody": 404,
    }


# --- The unmodified pulumi CLI signing up by itself -----------------------------------------


def test_the_pulumi_cli_signs_up_an_agent_and_creates_its_stack_there(
    make_emulator: EmulatorFactory, pulumi_cli: Path, tmp_path: Path
) -> None:
    """An AI agent runs `pulumi stack init` with no credentials: the CLI signs up against the
    emulator, stores the agent's credentials and claim file, and creates the stack in the
    agent's own org, with nothing set but what the CLI documents for this."""
    server = make_emulator(world())
    project = tmp_path / "web"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: web\nruntime: yaml\n", encoding="utf-8")
    agent_dir = tmp_path / "agent"
    env = {
        "PATH": f"{pulumi_cli}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_ENABLE_AUTOMATIC_AGENT_SIGNUP": "true",
        "AI_AGENT": "claude",
        "PULUMI_CONSOLE_DOMAIN": "app.example.com",
        "PULUMI_TEST_AGENT_PULUMI_DIR": str(agent_dir),
        "PULUMI_CREDENTIAL_HELPER": "none",
        "PULUMI_CREDENTIAL_STORE": "plaintext",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }
    done = subprocess.run(
        [str(pulumi_cli / "pulumi"), "stack", "init", "dev", "--non-interactive"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    claim_file = json.loads((agent_dir / "agent-claim.json").read_text(encoding="utf-8"))
    claim = server.state.validate_claim(claim_file["claimToken"])
    assert claim_file["claimUrl"].endswith(f"/claim/{claim_file['claimToken']}")
    assert server.state.stack_names(claim.login) == {("web", "dev")}
    assert "PULUMI_EPHEMERAL_AGENT_ACCOUNT" in done.stderr
    assert server.requests.count("POST", "/api/agents/signup") == 1
