"""Stack state on `ServiceState` directly: creation, checkpoints, updates and their leases,
secret keys, and what renames and transfers do to a stack's state (no HTTP, no CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from toolkit.emulator.checkpoints import PLACEHOLDER_TYPE
from toolkit.emulator.state import LEASE_SECONDS, Caller, ServiceFault, ServiceState
from toolkit.emulator.world import parse_world

START = 1_800_000_000.0


class Clock:
    """A clock the test moves by hand, so leases expire without waiting."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


AGENT_CREATED = datetime.fromtimestamp(START, UTC) - timedelta(hours=1)
"""The agent signed up an hour before the test clock starts: it may still write."""

WORLD = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"agent-1": "admin", "acme": "admin"}},
        {"login": "bob", "token": "tok-bob", "orgs": {"acme": "member"}},
    ],
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
        "agent-1": {"stacks": [{"project": "web", "stack": "dev", "resourceCount": 4}]},
        "acme": {"stacks": [{"project": "web", "stack": "prod", "tags": {"team": "a"}}]},
    },
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> Iterator[ServiceState]:
    service = ServiceState.from_world(parse_world(WORLD), clock=clock)
    yield service
    service.close()


@pytest.fixture
def agent(state: ServiceState) -> Caller:
    return state.authenticate("tok-agent")


def resource(urn: str, **fields: Any) -> dict[str, Any]:
    return {"urn": urn, "custom": False, "type": urn.split("::")[2].split("$")[-1], **fields}


def workload_deployment(org: str, project: str, stack: str, *, ciphertext: str) -> dict[str, Any]:
    """A checkpoint as the CLI writes it: a root stack, a component under it, a secret output,
    and the `service` secrets manager naming the stack."""
    root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    child = f"urn:pulumi:{stack}::{project}::workload:index:Service::svc"
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2026-11-29T10:00:00Z", "magic": "", "version": "v3.274.1"},
            "secrets_providers": {
                "type": "service",
                "state": {"url": "http://x", "owner": org, "project": project, "stack": stack},
            },
            "resources": [
                resource(root, outputs={"apiKey": {**secret, "ciphertext": ciphertext}}),
                resource(child, parent=root, dependencies=[root]),
            ],
        },
    }


def run_update(
    state: ServiceState, who: Caller, org: str, project: str, stack: str, deployment: Any
) -> str:
    """A whole `pulumi up` as the CLI drives it: create, start, checkpoint, events, complete."""
    update = state.create_update(
        who, org, project, stack, kind="update", dry_run=False, program={"name": project}
    )
    lease = state.start_update(who, org, project, stack, update, tags=None)
    state.save_checkpoint(lease.token, update, deployment)
    state.record_events(lease.token, update, [{"sequence": 0, "timestamp": 1}])
    state.complete_update(lease.token, update, "succeeded")
    return update


# --- Creating stacks -----------------------------------------------------------------------


def test_a_new_stack_is_empty_and_listed(state: ServiceState, agent: Caller) -> None:
    state.create_stack(agent, "agent-1", "api", "dev", tags={"pulumi:project": "api"})

    exported = state.export_deployment(agent, "agent-1", "api", "dev")
    assert exported["version"] == 3
    assert exported["deployment"].get("resources") is None
    page = state.list_stacks(agent, limit=10, project="api")
    assert [(s.stack, s.resource_count) for s in page.items] == [("dev", 0)]
    assert state.get_stack(agent, "agent-1", "api", "dev").record.tags == {"pulumi:project": "api"}
    assert state.project_exists(agent, "agent-1", "api")
    assert not state.project_exists(agent, "agent-1", "billing")


def test_creating_a_stack_needs_a_role_and_a_free_name(state: ServiceState, agent: Caller) -> None:
    bob = state.authenticate("tok-bob")
    state.create_stack(bob, "acme", "web", "qa", tags={})  # a member may create stacks

    with pytest.raises(ServiceFault) as taken:
        state.create_stack(agent, "agent-1", "web", "dev", tags={})
    assert taken.value.status == 409
    assert "already exists" in taken.value.message  # what the CLI looks for
    with pytest.raises(ServiceFault) as stranger:
        state.create_stack(bob, "agent-1", "web", "other", tags={})
    assert stranger.value.status == 403


def test_a_world_stack_exports_as_many_resources_as_it_declares(
    state: ServiceState, agent: Caller
) -> None:
    resources = state.export_deployment(agent, "agent-1", "web", "dev")["deployment"]["resources"]

    assert len(resources) == 4
    root = resources[0]["urn"]
    assert root == "urn:pulumi:dev::web::pulumi:pulumi:Stack::web-dev"
    assert all(r["type"] == PLACEHOLDER_TYPE and r["parent"] == root for r in resources[1:])


# --- The update lifecycle ------------------------------------------------------------------


def test_an_update_writes_the_checkpoint_the_listing_counts(
    state: ServiceState, agent: Caller, clock: Clock
) -> None:
    deployment = workload_deployment("agent-1", "web", "dev", ciphertext="c2VjcmV0")
    clock.now += 60
    update = run_update(state, agent, "agent-1", "web", "dev", deployment)

    assert state.export_deployment(agent, "agent-1", "web", "dev") == deployment
    (summary,) = state.list_stacks(agent, limit=10, project="web").items
    assert (summary.resource_count, summary.last_update) == (2, int(START + 60))
    stack = state.get_stack(agent, "agent-1", "web", "dev")
    assert (stack.record.version, stack.latest_update) == (1, update)
    assert state.events_of(update) == [{"sequence": 0, "timestamp": 1}]
    (history,) = state.update_history(agent, "agent-1", "web", "dev", page_size=10, page=1)
    assert (history.kind, history.status, history.version) == ("update", "succeeded", 1)


def test_a_preview_neither_writes_state_nor_waits_for_a_running_update(
    state: ServiceState, agent: Caller
) -> None:
    running = state.create_update(
        agent, "agent-1", "web", "dev", kind="update", dry_run=False, program={}
    )
    state.start_update(agent, "agent-1", "web", "dev", running, tags=None)
    preview = state.create_update(
        agent, "agent-1", "web", "dev", kind="preview", dry_run=True, program={}
    )

    lease = state.start_update(agent, "agent-1", "web", "dev", preview, tags=None)

    assert lease.version == 1  # the running update's version; a preview takes none
    with pytest.raises(ServiceFault) as refused:
        state.save_checkpoint(
            lease.token, preview, workload_deployment("a", "b", "c", ciphertext="")
        )
    assert refused.value.status == 400
    state.complete_update(lease.token, preview, "succeeded")
    assert state.update_history(agent, "agent-1", "web", "dev", page_size=10, page=1)[0].id == (
        running
    )


def test_only_one_update_runs_until_it_is_cancelled(state: ServiceState, agent: Caller) -> None:
    first = state.create_update(
        agent, "agent-1", "web", "dev", kind="update", dry_run=False, program={}
    )
    lease = state.start_update(agent, "agent-1", "web", "dev", first, tags=None)
    second = state.create_update(
        agent, "agent-1", "web", "dev", kind="destroy", dry_run=False, program={}
    )

    with pytest.raises(ServiceFault) as busy:
        state.start_update(agent, "agent-1", "web", "dev", second, tags=None)
    assert busy.value.status == 409
    state.cancel_update(agent, "agent-1", "web", "dev", first)

    assert state.get_update(agent, "agent-1", "web", "dev", first).status == "cancelled"
    with pytest.raises(ServiceFault) as stale:
        state.save_checkpoint(lease.token, first, workload_deployment("a", "b", "c", ciphertext=""))
    assert stale.value.status == 403
    assert state.start_update(agent, "agent-1", "web", "dev", second, tags=None).version == 2
    with pytest.raises(ServiceFault) as finished:
        state.cancel_update(agent, "agent-1", "web", "dev", first)
    assert finished.value.status == 409


def test_a_lease_expires_unless_renewed(state: ServiceState, agent: Caller, clock: Clock) -> None:
    update = state.create_update(
        agent, "agent-1", "web", "dev", kind="update", dry_run=False, program={}
    )
    lease = state.start_update(agent, "agent-1", "web", "dev", update, tags=None)
    assert lease.expires == int(START + LEASE_SECONDS)

    clock.now += LEASE_SECONDS - 1
    renewed = state.renew_lease(lease.token, update, duration=LEASE_SECONDS)
    clock.now += LEASE_SECONDS - 1
    state.record_events(lease.token, update, [{"sequence": 1}])  # still within the renewal

    assert renewed.expires == int(clock.now + 1)
    clock.now += 1
    for expired_call in (
        lambda: state.renew_lease(lease.token, update, duration=60),
        lambda: state.complete_update(lease.token, update, "succeeded"),
    ):
        with pytest.raises(ServiceFault) as expired:
            expired_call()
        assert (expired.value.status, expired.value.message) == (
            403,
            "Forbidden: the update's lease has expired",
        )
    with pytest.raises(ServiceFault) as running:  # the stack stays locked until cancelled
        other = state.create_update(
            agent, "agent-1", "web", "dev", kind="update", dry_run=False, program={}
        )
        state.start_update(agent, "agent-1", "web", "dev", other, tags=None)
    assert running.value.status == 409


def test_update_calls_need_that_update_s_lease_token(state: ServiceState, agent: Caller) -> None:
    update = state.create_update(
        agent, "agent-1", "web", "dev", kind="update", dry_run=False, program={}
    )
    state.start_update(agent, "agent-1", "web", "dev", update, tags=None)

    for token in (None, "", "tok-agent", "not-the-lease"):
        with pytest.raises(ServiceFault) as refused:
            state.record_events(token, update, [])
        assert refused.value.status == 401


def test_starting_an_update_replaces_the_stack_tags(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    update = state.create_update(
        alice, "acme", "web", "prod", kind="update", dry_run=False, program={}
    )

    state.start_update(alice, "acme", "web", "prod", update, tags={"pulumi:project": "web"})

    assert state.get_stack(alice, "acme", "web", "prod").record.tags == {"pulumi:project": "web"}


# --- Import, export ------------------------------------------------------------------------


def test_an_import_is_an_update_that_has_already_succeeded(
    state: ServiceState, agent: Caller
) -> None:
    deployment = workload_deployment("agent-1", "web", "dev", ciphertext="eA==")

    update = state.import_deployment(agent, "agent-1", "web", "dev", deployment)

    record = state.get_update(agent, "agent-1", "web", "dev", update)
    assert (record.kind, record.status, record.version) == ("import", "succeeded", 1)
    assert state.export_deployment(agent, "agent-1", "web", "dev", version=1) == deployment
    assert state.find_stack("agent-1", "web", "dev").resource_count == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "sealed_for",
    [("agent-1", "web", "prod"), ("agent-1", "shop", "dev"), ("acme", "web", "dev")],
)
def test_an_import_of_another_stack_s_sealed_deployment_is_refused(
    state: ServiceState, agent: Caller, sealed_for: tuple[str, str, str]
) -> None:
    deployment = workload_deployment(*sealed_for, ciphertext="eA==")
    with pytest.raises(ServiceFault) as refused:
        state.import_deployment(agent, "agent-1", "web", "dev", deployment)
    assert (refused.value.status, refused.value.message) == (
        400,
        "Bad Request: cannot import deployment with encrypted secrets from a different stack",
    )
    assert state.checkpoint_of("agent-1", "web", "dev") is None
    assert state.update_history(agent, "agent-1", "web", "dev", page_size=10, page=1) == []


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"version": 3},
        {"version": "3", "deployment": {}},
        {"version": 9, "deployment": {}},
        {"version": 3, "deployment": {"resources": {}}},
    ],
)
def test_a_deployment_the_cli_could_not_read_is_refused(
    state: ServiceState, agent: Caller, document: Any
) -> None:
    with pytest.raises(ServiceFault) as refused:
        state.import_deployment(agent, "agent-1", "web", "dev", document)
    assert refused.value.status == 400
    assert state.checkpoint_of("agent-1", "web", "dev") is None


# --- Secrets -------------------------------------------------------------------------------


def test_secrets_open_only_in_the_stack_that_sealed_them(
    state: ServiceState, agent: Caller
) -> None:
    state.create_stack(agent, "agent-1", "web", "staging", tags={})
    sealed = state.encrypt_values(agent, "agent-1", "web", "dev", [b"s3cr3t", b""])

    assert state.decrypt_values(agent, "agent-1", "web", "dev", sealed) == [b"s3cr3t", b""]
    assert sealed[0] != state.encrypt_values(agent, "agent-1", "web", "dev", [b"s3cr3t"])[0]
    for ciphertext in (sealed[0], sealed[0][:-1], b"short"):
        with pytest.raises(ServiceFault) as refused:
            state.decrypt_values(agent, "agent-1", "web", "staging", [ciphertext])
        assert refused.value.status == 400


def test_a_renamed_and_transferred_stack_keeps_its_key_and_state(
    state: ServiceState, agent: Caller
) -> None:
    alice = state.authenticate("tok-alice")
    (sealed,) = state.encrypt_values(agent, "agent-1", "web", "dev", [b"s3cr3t"])
    run_update(
        state,
        agent,
        "agent-1",
        "web",
        "dev",
        workload_deployment("agent-1", "web", "dev", ciphertext="eA=="),
    )

    state.rename_stack(alice, "agent-1", "web", "dev", new_project="shop", new_name="agent-dev")
    state.transfer_stack(alice, "agent-1", "shop", "agent-dev", to_org="acme")

    assert state.decrypt_values(alice, "acme", "shop", "agent-dev", [sealed]) == [b"s3cr3t"]
    body = state.export_deployment(alice, "acme", "shop", "agent-dev")["deployment"]
    assert body["secrets_providers"]["state"] == {
        "url": "http://x",
        "owner": "acme",
        "project": "shop",
        "stack": "agent-dev",
    }
    root, child = body["resources"]
    assert root["urn"] == "urn:pulumi:agent-dev::shop::pulumi:pulumi:Stack::shop-agent-dev"
    assert child["urn"] == "urn:pulumi:agent-dev::shop::workload:index:Service::svc"
    assert (child["parent"], child["dependencies"]) == (root["urn"], [root["urn"]])
    assert root["outputs"]["apiKey"]["ciphertext"] == "eA=="  # the ciphertext stays as it is
    assert "dev::web" not in json.dumps(body)


# --- Tags and removal ----------------------------------------------------------------------


def test_tags_are_set_replaced_removed_and_filtered_on(state: ServiceState) -> None:
    alice = state.authenticate("tok-alice")
    state.set_stack_tag(alice, "acme", "web", "prod", name="owner", value="ops")
    state.replace_stack_tags(alice, "agent-1", "web", "dev", {"team": "b"})
    state.delete_stack_tag(alice, "acme", "web", "prod", name="team")

    assert state.get_stack(alice, "acme", "web", "prod").record.tags == {"owner": "ops"}
    tagged = state.list_stacks(alice, limit=10, tag_name="team")
    assert [(s.org, s.stack) for s in tagged.items] == [("agent-1", "dev")]
    assert state.list_stacks(alice, limit=10, tag_name="team", tag_value="a").items == []
    with pytest.raises(ServiceFault) as missing:
        state.delete_stack_tag(alice, "acme", "web", "prod", name="team")
    assert missing.value.status == 404


def test_a_stack_with_resources_is_removed_only_with_force(
    state: ServiceState, agent: Caller
) -> None:
    update = run_update(
        state,
        agent,
        "agent-1",
        "web",
        "dev",
        workload_deployment("agent-1", "web", "dev", ciphertext=""),
    )

    with pytest.raises(ServiceFault) as refused:
        state.delete_stack(agent, "agent-1", "web", "dev")
    assert refused.value.message == "Bad Request: Stack still contains resources."
    state.delete_stack(agent, "agent-1", "web", "dev", force=True)

    assert state.checkpoint_of("agent-1", "web", "dev") is None
    assert state.events_of(update) == []
