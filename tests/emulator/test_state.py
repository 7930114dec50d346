"""The emulator's service rules, exercised on `ServiceState` directly (no HTTP)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit.emulator.demo_world import demo_world
from toolkit.emulator.state import Caller, Page, ServiceFault, ServiceState
from toolkit.emulator.world import World, load_world, parse_world
from toolkit.errors import InvalidInputError


def two_org_world() -> dict[str, Any]:
    """alice admin of both orgs; bob admin of src only; carol member of both; dave of none."""
    return {
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"src": "admin", "dst": "admin"}},
            {"login": "bob", "token": "tok-bob", "orgs": {"src": "admin", "dst": "member"}},
            {"login": "carol", "token": "tok-carol", "orgs": {"src": "member", "dst": "member"}},
            {"login": "dave", "token": "tok-dave", "orgs": {"elsewhere": "admin"}},
        ],
        "orgs": {
            "src": {
                "stacks": [
                    {"project": "web", "stack": "dev", "resourceCount": 3, "tags": {"team": "a"}},
                    {"project": "web", "stack": "prod", "resourceCount": 5},
                    {"project": "api", "stack": "dev"},
                ],
                "environments": [{"project": "default", "name": "secrets"}],
                "insightsAccounts": [{"name": "aws-main"}],
                "registryPackages": [{"source": "private", "publisher": "src", "name": "vpc"}],
            },
            "dst": {"stacks": [{"project": "web", "stack": "prod"}]},
        },
    }


@pytest.fixture
def state() -> Iterator[ServiceState]:
    service = ServiceState.from_world(parse_world(two_org_world()))
    yield service
    service.close()


def who(service: ServiceState, login: str) -> Caller:
    return service.authenticate(f"tok-{login}")


def fault_of(call: Callable[[], object]) -> ServiceFault:
    with pytest.raises(ServiceFault) as caught:
        call()
    return caught.value


def collect(fetch: Callable[[str | None], Page[Any]]) -> tuple[list[Any], int]:
    """Every item of a paged listing, and how many pages it took."""
    items: list[Any] = []
    token: str | None = None
    pages = 0
    while True:
        page = fetch(token)
        pages += 1
        items.extend(page.items)
        if page.next_token is None:
            return items, pages
        token = page.next_token


# --- world files ------------------------------------------------------------------------


def test_an_agent_is_admin_of_its_individual_org_and_named_orgs_exist() -> None:
    world = demo_world()
    assert world.memberships()["agent-7f3k2q"] == {"agent-7f3k2q": "admin"}
    assert {"acme", "agent-7f3k2q"} <= world.org_names()
    only_roles = parse_world(
        {"users": [{"login": "u", "token": "t", "orgs": {"lonely": "member"}}]}
    )
    assert ServiceState.from_world(only_roles).org_names() == {"lonely"}


def test_demo_world_has_exactly_two_colliding_stacks() -> None:
    world = demo_world()
    agent = {(s.project, s.stack) for s in world.orgs["agent-7f3k2q"].stacks}
    acme = {(s.project, s.stack) for s in world.orgs["acme"].stacks}
    assert len(agent) == 7
    assert agent & acme == {("web", "dev"), ("api", "prod")}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda w: w["orgs"]["src"]["stacks"].append({"project": "a b", "stack": "x"}), "project"),
        (
            lambda w: w["orgs"]["src"]["stacks"].append({"project": "p", "stack": "x" * 101}),
            "stack",
        ),
        (lambda w: w["users"][0]["orgs"].update({"src": "owner"}), "orgs.src"),
        (lambda w: w["orgs"]["src"]["stacks"][0].update({"resourceCont": 3}), "resourceCont"),
        (
            lambda w: w["orgs"]["src"]["stacks"].append({"project": "web", "stack": "dev"}),
            "web/dev",
        ),
        (lambda w: w["users"].append({"login": "alice", "token": "other"}), "alice"),
        (lambda w: w["users"].append({"login": "eve", "token": "tok-alice"}), "token"),
        (lambda w: w["orgs"]["src"]["insightsAccounts"][0].update({"provider": "x"}), "provider"),
    ],
)
def test_invalid_worlds_are_refused_naming_the_problem(
    change: Callable[[dict[str, Any]], None], named: str
) -> None:
    world = two_org_world()
    change(world)
    with pytest.raises(InvalidInputError) as caught:
        parse_world(world)
    assert named in str(caught.value)
    assert "tok-alice" not in str(caught.value)


def test_a_world_with_legacy_names_holds_entities_named_against_the_rule() -> None:
    """As a service holding entities named before its rule (or a hostile one) lists them;
    orgs and logins keep the rule."""
    world = two_org_world()
    world["orgs"]["src"]["stacks"].append({"project": "web", "stack": "qa\x1b[2J"})
    world["orgs"]["src"]["environments"].append({"project": "x y", "name": "e\x9b"})
    with pytest.raises(InvalidInputError, match=r"service\.legacyNames allows"):
        parse_world(world)

    state = ServiceState.from_world(parse_world({**world, "service": {"legacyNames": True}}))

    assert ("web", "qa\x1b[2J") in state.stack_names("src")
    with pytest.raises(InvalidInputError, match="'a b' is not a valid name"):
        parse_world({**world, "service": {"legacyNames": True}, "orgs": {"a b": {}}})


def test_world_files_load_from_yaml_and_json(tmp_path: Path) -> None:
    as_json = tmp_path / "world.json"
    as_json.write_text(json.dumps(two_org_world()))
    as_yaml = tmp_path / "world.yaml"
    as_yaml.write_text("users:\n  - {login: alice, token: tok-alice, orgs: {src: admin}}\n")
    assert load_world(as_json) == parse_world(two_org_world())
    assert load_world(as_yaml).users[0].orgs == {"src": "admin"}


def test_unreadable_world_files_are_reported_with_their_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("users: [\n")
    for path in (broken, tmp_path / "missing.yaml"):
        with pytest.raises(InvalidInputError, match=path.name):
            load_world(path)


# --- identity ---------------------------------------------------------------------------


def test_unknown_or_missing_tokens_are_401(state: ServiceState) -> None:
    assert fault_of(lambda: state.authenticate("nope")).status == 401
    assert fault_of(lambda: state.authenticate(None)).status == 401


def test_user_document_lists_orgs_with_roles(state: ServiceState) -> None:
    user = state.current_user(who(state, "bob"))
    assert user.login == "bob"
    assert user.roles == {"src": "admin", "dst": "member"}
    world = demo_world()
    (demo_agent,) = world.agents
    signed_up = demo_agent.created_at.timestamp()
    agent = ServiceState.from_world(world, clock=lambda: signed_up + 3600)
    assert agent.current_user(agent.authenticate("tok-agent-7f3k2q")).is_agent is True


# --- listing and paging -----------------------------------------------------------------


def test_callers_see_stacks_of_their_orgs_only(state: ServiceState) -> None:
    def names(login: str, **filters: str) -> set[tuple[str, str, str]]:
        page = state.list_stacks(who(state, login), limit=100, **filters)
        return {(s.org, s.project, s.stack) for s in page.items}

    assert names("alice") == {
        ("src", "web", "dev"),
        ("src", "web", "prod"),
        ("src", "api", "dev"),
        ("dst", "web", "prod"),
    }
    assert names("alice", organization="src", project="web") == {
        ("src", "web", "dev"),
        ("src", "web", "prod"),
    }
    assert names("dave") == set()
    assert fault_of(lambda: names("dave", organization="src")).status == 403
    assert fault_of(lambda: names("alice", organization="nowhere")).status == 404


@pytest.mark.parametrize(("count", "limit", "pages"), [(0, 3, 1), (3, 3, 1), (4, 3, 2), (7, 1, 7)])
def test_paging_returns_every_stack_once(count: int, limit: int, pages: int) -> None:
    world = {
        "users": [{"login": "u", "token": "t", "orgs": {"o": "admin"}}],
        "orgs": {"o": {"stacks": [{"project": "p", "stack": f"s{i}"} for i in range(count)]}},
    }
    service = ServiceState.from_world(parse_world(world))
    caller = service.authenticate("t")
    items, taken = collect(
        lambda token: service.list_stacks(caller, limit=limit, continuation_token=token)
    )
    assert sorted(s.stack for s in items) == sorted(f"s{i}" for i in range(count))
    assert taken == pages


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 8])
def test_paging_across_orgs_skips_orgs_without_a_role(limit: int) -> None:
    counts = {"a": 3, "b": 0, "c": 2, "d": 2, "e": 1}
    world = {
        "users": [{"login": "u", "token": "t", "orgs": {o: "member" for o in "abce"}}],
        "orgs": {
            org: {"stacks": [{"project": "p", "stack": f"s{i}"} for i in range(n)]}
            for org, n in counts.items()
        },
    }
    service = ServiceState.from_world(parse_world(world))
    caller = service.authenticate("t")
    items, _ = collect(
        lambda token: service.list_stacks(caller, limit=limit, continuation_token=token)
    )
    expected = [(org, f"s{i}") for org in "abce" for i in range(counts[org])]
    assert [(s.org, s.stack) for s in items] == expected


def test_every_listing_pages_through_all_items() -> None:
    world = {
        "users": [{"login": "u", "token": "t", "orgs": {"o": "admin"}}],
        "orgs": {
            "o": {
                "environments": [{"project": f"p{i % 3}", "name": f"e{i}"} for i in range(10)],
                "insightsAccounts": [{"name": f"a{i}"} for i in range(10)],
                "registryPackages": [
                    {"source": "private", "publisher": "o", "name": f"n{i}"} for i in range(10)
                ],
            }
        },
    }
    service = ServiceState.from_world(parse_world(world))
    caller = service.authenticate("t")
    environments, _ = collect(
        lambda token: service.list_environments(caller, "o", limit=3, continuation_token=token)
    )
    accounts, _ = collect(
        lambda token: service.list_insights_accounts(caller, "o", limit=3, continuation_token=token)
    )
    packages, pages = collect(
        lambda token: service.list_registry_packages(
            caller, limit=3, org_login="o", continuation_token=token
        )
    )
    assert sorted(e.name for e in environments) == sorted(f"e{i}" for i in range(10))
    assert sorted(a.name for a in accounts) == sorted(f"a{i}" for i in range(10))
    assert sorted(p.name for p in packages) == sorted(f"n{i}" for i in range(10))
    assert pages == 4


def test_continuation_tokens_are_checked(state: ServiceState) -> None:
    alice = who(state, "alice")
    first = state.list_stacks(alice, limit=1)
    assert first.next_token is not None
    assert (
        fault_of(lambda: state.list_stacks(alice, limit=1, continuation_token="junk")).status == 400
    )
    from_stacks = first.next_token
    wrong_listing = fault_of(
        lambda: state.list_environments(alice, "src", limit=1, continuation_token=from_stacks)
    )
    assert wrong_listing.status == 400


def test_other_entities_need_a_role_in_their_org(state: ServiceState) -> None:
    dave = who(state, "dave")
    assert fault_of(lambda: state.list_environments(dave, "src", limit=5)).status == 403
    assert fault_of(lambda: state.list_insights_accounts(dave, "src", limit=5)).status == 403
    assert (
        fault_of(lambda: state.list_registry_packages(dave, limit=5, org_login="src")).status == 403
    )
    assert fault_of(lambda: state.list_environments(dave, "nowhere", limit=5)).status == 404
    assert state.list_registry_packages(dave, limit=5).items == []


def test_registry_packages_filter_by_publisher(state: ServiceState) -> None:
    alice = who(state, "alice")
    assert [
        p.name for p in state.list_registry_packages(alice, limit=5, org_login="src").items
    ] == ["vpc"]
    assert state.list_registry_packages(alice, limit=5, org_login="dst").items == []


# --- one stack ----------------------------------------------------------------------------


def test_get_stack(state: ServiceState) -> None:
    stack = state.get_stack(who(state, "carol"), "src", "web", "dev").record
    assert (stack.org, stack.project, stack.stack) == ("src", "web", "dev")
    assert stack.tags == {"team": "a"}
    assert fault_of(lambda: state.get_stack(who(state, "dave"), "src", "web", "dev")).status == 403
    assert fault_of(lambda: state.get_stack(who(state, "alice"), "src", "web", "x")).status == 404


def test_rename_within_the_org(state: ServiceState) -> None:
    carol = who(state, "carol")
    before = state.find_stack("src", "web", "dev")
    update_id = state.rename_stack(carol, "src", "web", "dev", new_project="site", new_name="dev2")
    assert update_id
    after = state.find_stack("src", "site", "dev2")
    assert after is not None and before is not None
    assert (after.id, after.tags, after.resource_count) == (before.id, before.tags, 3)
    state.rename_stack(carol, "src", "site", "dev2", new_project="", new_name="dev3")
    state.rename_stack(carol, "src", "site", "dev3", new_project="web", new_name=None)
    assert state.stack_names("src") == {("web", "dev3"), ("web", "prod"), ("api", "dev")}


def test_rename_refusals(state: ServiceState) -> None:
    alice = who(state, "alice")

    def rename(
        stack: str, new_project: str | None, new_name: str | None, login: str = "alice"
    ) -> int:
        caller = who(state, login)
        return fault_of(
            lambda: state.rename_stack(
                caller, "src", "web", stack, new_project=new_project, new_name=new_name
            )
        ).status

    assert rename("dev", None, "prod") == 409
    assert rename("dev", "api", None) == 409
    assert rename("dev", None, "bad name") == 400
    assert rename("dev", "p" * 101, None) == 400
    assert rename("dev", None, None) == 400
    assert rename("nope", None, "x") == 404
    assert rename("dev", None, "x", login="dave") == 403
    assert state.stack_names("src") == {("web", "dev"), ("web", "prod"), ("api", "dev")}
    assert state.get_stack(alice, "src", "web", "dev").record.stack == "dev"


def test_transfer_moves_the_stack_keeping_its_identity(state: ServiceState) -> None:
    before = state.find_stack("src", "web", "dev")
    state.transfer_stack(who(state, "alice"), "src", "web", "dev", to_org="dst")
    after = state.find_stack("dst", "web", "dev")
    assert before is not None and after is not None
    assert (after.id, after.tags, after.version) == (before.id, before.tags, before.version)
    assert state.stack_names("src") == {("web", "prod"), ("api", "dev")}
    assert state.stack_names("dst") == {("web", "prod"), ("web", "dev")}


def test_transfer_refusals(state: ServiceState) -> None:
    def transfer(login: str, stack: str = "dev", project: str = "web", to_org: str = "dst") -> int:
        caller = who(state, login)
        return fault_of(
            lambda: state.transfer_stack(caller, "src", project, stack, to_org=to_org)
        ).status

    assert transfer("bob") == 403  # admin of the source, only member of the destination
    assert transfer("carol") == 403  # member of both
    assert transfer("dave") == 403  # no role in the source
    assert transfer("alice", to_org="nowhere") == 404
    assert transfer("alice", stack="nope") == 404
    assert transfer("alice", stack="prod") == 409  # dst has web/prod already
    assert transfer("alice", to_org="src") == 400
    assert state.stack_names("src") == {("web", "dev"), ("web", "prod"), ("api", "dev")}
    assert state.stack_names("dst") == {("web", "prod")}


def test_delete_needs_force_while_resources_remain(state: ServiceState) -> None:
    carol = who(state, "carol")
    assert fault_of(lambda: state.delete_stack(carol, "src", "web", "dev")).status == 400
    state.delete_stack(carol, "src", "api", "dev")  # no resources
    state.delete_stack(carol, "src", "web", "dev", force=True)
    assert state.stack_names("src") == {("web", "prod")}
    assert fault_of(lambda: state.delete_stack(carol, "src", "web", "dev")).status == 404


def test_concurrent_moves_of_one_stack_apply_exactly_once(state: ServiceState) -> None:
    alice = who(state, "alice")
    outcomes: list[int] = []
    barrier = threading.Barrier(8)

    def move(index: int) -> None:
        barrier.wait()
        try:
            if index % 2:
                state.transfer_stack(alice, "src", "web", "dev", to_org="dst")
            else:
                state.rename_stack(
                    alice, "src", "web", "dev", new_project=None, new_name=f"d{index}"
                )
            outcomes.append(200)
        except ServiceFault as fault:
            outcomes.append(fault.status)

    threads = [threading.Thread(target=move, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [200] + [404] * 7
    everywhere = {("src", *name) for name in state.stack_names("src")} | {
        ("dst", *name) for name in state.stack_names("dst")
    }
    assert len(everywhere) == 4  # the three source stacks and dst's own, none lost or doubled


# --- persistence --------------------------------------------------------------------------


def test_file_backed_state_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    first = ServiceState.from_world(parse_world(two_org_world()), db)
    first.transfer_stack(first.authenticate("tok-alice"), "src", "web", "dev", to_org="dst")
    first.close()
    again = ServiceState(db)
    assert again.stack_names("dst") == {("web", "prod"), ("web", "dev")}
    with pytest.raises(ValueError, match="already holds a world"):
        ServiceState.from_world(World(), db)
    again.close()


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    with pytest.raises(ValueError, match="something else"):
        ServiceState(str(foreign))
