"""The emulator over real HTTP: the official SDK is the contract oracle for every endpoint,
and the test knobs (page size, latency, faults, request log) do what they say."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError

import httpx
import pytest
from pulumi_cloud_sdk._support import default_encoder
from pulumi_cloud_sdk.api_client import ApiClient
from pulumi_cloud_sdk.apis import (
    AI_AgentsApi,
    EnvironmentsApi,
    InsightsApi,
    RegistryPreviewApi,
    StacksApi,
    UsersApi,
)
from pulumi_cloud_sdk.configuration import Configuration
from pulumi_cloud_sdk.models import AppStackRenameRequest, TransferStackRequest
from waiting import wait_until

from toolkit.emulator.server import EmulatorServer, serve_forever
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import parse_world
from toolkit.errors import InvalidInputError
from toolkit.models import (
    AgentClaimResponse,
    AppListStacksResponse,
    ListEnvironmentsResponse,
    ListInsightsAccountsResponse,
    ListPackagesResponse,
    User,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-7f3k2q"


def sdk_client(server: EmulatorServer, token: str = "tok-alice") -> ApiClient:
    configuration = Configuration()
    configuration.host = server.url
    configuration.access_token = token
    return ApiClient(configuration)


def http(server: EmulatorServer, token: str | None = "tok-alice") -> httpx.Client:
    headers = {"Accept": "application/vnd.pulumi+8"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    return httpx.Client(base_url=server.url, headers=headers)


@pytest.fixture
def alice(demo_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with http(demo_emulator) as client:
        yield client


def big_world(stacks: int, environments: int, accounts: int, packages: int) -> dict[str, Any]:
    return {
        "users": [{"login": "u", "token": "t", "orgs": {"o": "admin", "other": "admin"}}],
        "orgs": {
            "o": {
                "stacks": [{"project": f"p{i % 4}", "stack": f"s{i}"} for i in range(stacks)],
                "environments": [
                    {"project": f"p{i % 3}", "name": f"e{i}"} for i in range(environments)
                ],
                "insightsAccounts": [{"name": f"a{i}"} for i in range(accounts)],
                "registryPackages": [
                    {"source": "private", "publisher": "o", "name": f"n{i}"}
                    for i in range(packages)
                ],
            },
            "other": {"stacks": [{"project": "x", "stack": "y"}]},
        },
    }


# --- every endpoint against the SDK's declared response types ---------------------------


@pytest.mark.parametrize(
    ("path", "params", "response_type", "model"),
    [
        ("/api/user", {}, "User", User),
        (
            "/api/user/stacks",
            {"organization": AGENT},
            "AppListStacksResponse",
            AppListStacksResponse,
        ),
        ("/api/esc/environments/acme", {}, "ListEnvironmentsResponse", ListEnvironmentsResponse),
        (
            "/api/preview/insights/acme/accounts",
            {},
            "ListInsightsAccountsResponse",
            ListInsightsAccountsResponse,
        ),
        (
            "/api/preview/registry/packages",
            {"orgLogin": "acme"},
            "ListPackagesResponse",
            ListPackagesResponse,
        ),
        (
            "/api/agents/signup/validate/claim-7f3k2q",
            {},
            "AgentClaimResponse",
            AgentClaimResponse,
        ),
    ],
)
def test_read_endpoints_answer_in_the_sdk_shape(
    alice: httpx.Client, path: str, params: dict[str, str], response_type: str, model: Any
) -> None:
    response = alice.get(path, params=params)
    assert response.status_code == 200
    body = response.json()
    parsed = default_encoder.deserialize(body, response_type)
    assert_kept(body, default_encoder.sanitize_for_serialization(parsed), response_type)
    assert model.model_validate(body).to_wire() == body


def assert_kept(sent: Any, read_back: Any, where: str) -> None:
    """Everything the emulator sent survives the SDK's parse and re-serialization: no field
    the SDK does not know (it would drop it), no value it reads differently."""
    if isinstance(sent, dict):
        assert isinstance(read_back, dict), where
        for key, value in sent.items():
            assert key in read_back, f"{where}.{key} is unknown to the SDK"
            assert_kept(value, read_back[key], f"{where}.{key}")
    elif isinstance(sent, list):
        assert isinstance(read_back, list) and len(read_back) == len(sent), where
        for index, (item, back) in enumerate(zip(sent, read_back, strict=True)):
            assert_kept(item, back, f"{where}[{index}]")
    elif isinstance(sent, str) and sent != read_back:
        assert as_moment(sent) == as_moment(read_back), where
    else:
        assert sent == read_back, where


def as_moment(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def test_sdk_reads_the_demo_world(demo_emulator: EmulatorServer) -> None:
    client = sdk_client(demo_emulator)
    user = UsersApi(client).get_current_user()
    assert user.github_login == "alice"
    assert {org.name for org in user.organizations} == {"acme", AGENT}

    stacks = UsersApi(client).list_user_stacks(organization=AGENT)
    assert len(stacks.stacks) == 7 and stacks.continuation_token is None
    assert {(s.project_name, s.stack_name) for s in stacks.stacks} >= {
        ("web", "dev"),
        ("api", "prod"),
    }

    stack = StacksApi(client).get_stack("acme", "web", "dev")
    assert (stack.org_name, stack.project_name, stack.stack_name) == ("acme", "web", "dev")

    environments = EnvironmentsApi(client).list_org_environments_esc(AGENT)
    assert [(e.project, e.name) for e in environments.environments] == [
        ("default", "agent-secrets")
    ]
    accounts = InsightsApi(client).list_accounts(AGENT)
    assert [a.name for a in accounts.accounts] == ["aws-sandbox"]
    packages = RegistryPreviewApi(client).list_packages_preview(org_login="acme")
    assert [(p.source, p.publisher, p.name) for p in packages.packages] == [
        ("private", "acme", "vpc")
    ]

    claim = AI_AgentsApi(client).signup_validate("claim-7f3k2q")
    assert claim.agent.login == AGENT
    assert len(claim.entities) == 9 and claim.conflicts == []
    assert [type(f.entity).__name__ for f in claim.failures] == [
        "TransferEntityEnvironment",
        "TransferEntityInsightsAccount",
    ]


def test_sdk_moves_stacks(demo_emulator: EmulatorServer) -> None:
    stacks = StacksApi(sdk_client(demo_emulator))
    renamed = stacks.rename_stack(
        AGENT, "web", "dev", AppStackRenameRequest(new_name="dev-agent", new_project="site")
    )
    assert renamed.update_id
    stacks.transfer_stack(AGENT, "site", "dev-agent", TransferStackRequest(to_org="acme"))
    stacks.delete_stack(AGENT, "api", "canary", force=True)
    assert ("site", "dev-agent") in demo_emulator.state.stack_names("acme")
    assert demo_emulator.state.stack_names(AGENT) == {
        ("web", "staging"),
        ("web", "preview-42"),
        ("web", "prod"),
        ("api", "dev"),
        ("api", "prod"),
    }


def test_transfer_body_must_agree_with_the_path(alice: httpx.Client) -> None:
    answer = alice.post(
        f"/api/stacks/{AGENT}/web/dev/transfer",
        json={"toOrg": "acme", "fromOrg": "acme", "projectName": "web", "stackName": "dev"},
    )
    assert answer.status_code == 400 and "fromOrg" in answer.json()["message"]
    missing = alice.post(f"/api/stacks/{AGENT}/web/dev/transfer", json={})
    assert missing.status_code == 400 and "toOrg" in missing.json()["message"]


@pytest.mark.parametrize(
    ("token", "method", "path", "body", "status"),
    [
        (None, "GET", "/api/user", None, 401),
        ("wrong", "GET", "/api/user/stacks", None, 401),
        ("wrong", "GET", "/api/agents/signup/validate/claim-7f3k2q", None, 401),
        ("tok-alice", "GET", "/api/agents/signup/validate/claim-nope", None, 404),
        ("tok-bob", "GET", f"/api/stacks/{AGENT}/web/dev", None, 403),
        ("tok-alice", "GET", "/api/stacks/acme/web/nope", None, 404),
        ("tok-alice", "POST", f"/api/stacks/{AGENT}/web/dev/transfer", {"toOrg": "acme"}, 409),
        (  # the demo agent signed up on 2026-11-20: its 72-hour token has expired
            "tok-agent-7f3k2q",
            "POST",
            f"/api/stacks/{AGENT}/web/prod/transfer",
            {"toOrg": "acme"},
            401,
        ),
        (
            "tok-alice",
            "POST",
            f"/api/stacks/{AGENT}/web/dev/rename",
            {"newName": "staging", "newProject": ""},
            409,
        ),
        (
            "tok-alice",
            "POST",
            f"/api/stacks/{AGENT}/web/dev/rename",
            {"newName": "no way", "newProject": ""},
            400,
        ),
        ("tok-alice", "DELETE", f"/api/stacks/{AGENT}/web/dev", None, 400),
        ("tok-alice", "GET", "/api/user/stacks?maxResults=-1", None, 400),
        ("tok-alice", "GET", "/api/user/stacks?maxResults=0", None, 400),
        ("tok-alice", "GET", "/api/esc/environments/acme?maxResults=0", None, 400),
        ("tok-alice", "GET", "/api/preview/insights/acme/accounts?count=0", None, 400),
        ("tok-alice", "GET", "/api/preview/registry/packages?limit=0", None, 400),
        ("tok-alice", "GET", "/api/user/stacks?continuationToken=junk", None, 400),
        ("tok-alice", "GET", "/api/no/such/path", None, 404),
    ],
)
def test_errors_carry_the_service_error_body(
    demo_emulator: EmulatorServer,
    token: str | None,
    method: str,
    path: str,
    body: dict[str, str] | None,
    status: int,
) -> None:
    with http(demo_emulator, token) as client:
        response = client.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["code"] == status
    assert response.json()["message"]


def test_sdk_sees_errors_as_http_errors(demo_emulator: EmulatorServer) -> None:
    with pytest.raises(HTTPError) as caught:
        UsersApi(sdk_client(demo_emulator, token="wrong")).get_current_user()
    assert caught.value.code == 401


# --- paging -------------------------------------------------------------------------------


def test_paging_with_page_size_seven_returns_every_item_once(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(big_world(50, 20, 15, 8), page_size=7)
    listings: list[tuple[str, dict[str, str], str, str, str, int]] = [
        ("/api/user/stacks", {"organization": "o"}, "stacks", "continuationToken", "stackName", 50),
        ("/api/esc/environments/o", {}, "environments", "nextToken", "name", 20),
        ("/api/preview/insights/o/accounts", {}, "accounts", "nextToken", "name", 15),
        (
            "/api/preview/registry/packages",
            {"orgLogin": "o"},
            "packages",
            "continuationToken",
            "name",
            8,
        ),
    ]
    with http(server, "t") as client:
        for path, params, items_key, token_key, name_key, total in listings:
            names: list[str] = []
            token: str | None = None
            while True:
                page = client.get(
                    path, params={**params, "continuationToken": token} if token else params
                )
                assert page.status_code == 200
                assert len(page.json()[items_key]) <= 7
                names += [item[name_key] for item in page.json()[items_key]]
                token = page.json().get(token_key)
                if token is None:
                    break
            assert len(names) == len(set(names)) == total
            assert server.requests.count("GET", re.escape(path)) == -(-total // 7)


def test_sdk_pages_through_user_stacks(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(big_world(30, 0, 0, 0), page_size=7)
    users = UsersApi(sdk_client(server, "t"))
    seen: list[tuple[str, str, str]] = []
    token = None
    while True:
        page = users.list_user_stacks(continuation_token=token, max_results=100)
        seen += [(s.org_name, s.project_name, s.stack_name) for s in page.stacks]
        token = page.continuation_token
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 31  # 30 in o, one in other
    assert server.requests.count("GET", "/api/user/stacks") == 5


def test_smaller_requested_pages_are_honoured(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(big_world(10, 0, 0, 0), page_size=7)
    with http(server, "t") as client:
        assert len(client.get("/api/user/stacks", params={"maxResults": 3}).json()["stacks"]) == 3
        assert len(client.get("/api/user/stacks", params={"maxResults": 500}).json()["stacks"]) == 7


def test_a_larger_page_is_served_up_to_the_largest_page(make_emulator: EmulatorFactory) -> None:
    """The default page when none is asked; a larger ask gets at most the largest page, not
    a refusal (the OpenAPI document names no bound for `maxResults`); 0 is refused."""
    server = make_emulator(big_world(30, 0, 0, 0), page_size=7, max_page_size=20)
    with http(server, "t") as client:
        stacks = "/api/user/stacks"
        assert len(client.get(stacks, params={"organization": "o"}).json()["stacks"]) == 7
        page = client.get(stacks, params={"organization": "o", "maxResults": 1000})
        assert len(page.json()["stacks"]) == 20
        assert client.get(stacks, params={"maxResults": 0}).status_code == 400


def test_the_insights_listing_refuses_a_count_the_document_does_not_allow(
    make_emulator: EmulatorFactory,
) -> None:
    """Pulumi's OpenAPI document: `count` must be in the range [1, 1000]."""
    server = make_emulator(big_world(0, 0, 15, 0), page_size=7, max_page_size=1000)
    with http(server, "t") as client:
        path = "/api/preview/insights/o/accounts"
        for count in (0, 1001):
            answer = client.get(path, params={"count": count})
            assert answer.status_code == 400
            assert "count must be in the range [1, 1000]" in answer.text
        assert len(client.get(path, params={"count": 1000}).json()["accounts"]) == 15


def test_the_largest_page_is_at_least_the_default_one() -> None:
    state = ServiceState.from_world(parse_world(big_world(1, 0, 0, 0)))
    try:
        with pytest.raises(ValueError, match="at least the default"):
            EmulatorServer(state, page_size=7, max_page_size=6)
    finally:
        state.close()


def test_an_emulator_page_size_below_one_is_refused() -> None:
    state = ServiceState.from_world(parse_world(big_world(1, 0, 0, 0)))
    try:
        with pytest.raises(ValueError, match="at least 1"):
            EmulatorServer(state, page_size=0)
    finally:
        state.close()


# --- faults and the request log -----------------------------------------------------------


def test_armed_status_faults_fire_the_given_number_of_times(
    demo_emulator: EmulatorServer, alice: httpx.Client
) -> None:
    demo_emulator.faults.fail(429, method="GET", path="/api/user/stacks", times=2, retry_after=1)
    assert alice.get("/api/user").status_code == 200  # another path is not affected
    first = alice.get("/api/user/stacks")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "1")
    assert first.json()["code"] == 429
    assert alice.get("/api/user/stacks").status_code == 429
    assert alice.get("/api/user/stacks").status_code == 200
    statuses = [(e.path, e.status, e.injected) for e in demo_emulator.requests.entries()]
    assert statuses == [
        ("/api/user", 200, False),
        ("/api/user/stacks", 429, True),
        ("/api/user/stacks", 429, True),
        ("/api/user/stacks", 200, False),
    ]


def test_a_refused_request_changes_nothing(
    demo_emulator: EmulatorServer, alice: httpx.Client
) -> None:
    demo_emulator.faults.fail(503, method="POST", path=r"/api/stacks/.*/rename")
    answer = alice.post(
        f"/api/stacks/{AGENT}/web/dev/rename", json={"newName": "dev-agent", "newProject": ""}
    )
    assert answer.status_code == 503
    assert ("web", "dev") in demo_emulator.state.stack_names(AGENT)


def test_fail_after_applies_the_change_then_answers_500(
    demo_emulator: EmulatorServer, alice: httpx.Client
) -> None:
    demo_emulator.faults.fail_after(method="POST", path=r"/api/stacks/.*/rename")
    answer = alice.post(
        f"/api/stacks/{AGENT}/web/dev/rename", json={"newName": "dev-agent", "newProject": ""}
    )
    assert answer.status_code == 500
    names = demo_emulator.state.stack_names(AGENT)
    assert ("web", "dev-agent") in names and ("web", "dev") not in names
    retried = alice.post(
        f"/api/stacks/{AGENT}/web/dev/rename", json={"newName": "dev-agent", "newProject": ""}
    )
    assert retried.status_code == 404  # what a blind retry of a non-idempotent call meets


def test_dropped_connections_get_no_answer(
    demo_emulator: EmulatorServer, alice: httpx.Client
) -> None:
    demo_emulator.faults.drop(method="POST", path=r".*/transfer")
    with pytest.raises(httpx.TransportError):
        alice.post(f"/api/stacks/{AGENT}/web/prod/transfer", json={"toOrg": "acme"})
    assert ("web", "prod") in demo_emulator.state.stack_names(AGENT)
    assert (
        alice.post(f"/api/stacks/{AGENT}/web/prod/transfer", json={"toOrg": "acme"}).status_code
        == 204
    )
    assert [e.status for e in demo_emulator.requests.entries()] == [None, 204]


def test_held_requests_wait_until_released(demo_emulator: EmulatorServer) -> None:
    demo_emulator.faults.hold(method="POST", path=r"/api/stacks/.*/rename")
    with ThreadPoolExecutor(1) as pool, http(demo_emulator) as client:
        answer = pool.submit(
            client.post,
            f"/api/stacks/{AGENT}/web/dev/rename",
            json={"newName": "dev-agent", "newProject": ""},
        )
        wait_until(lambda: demo_emulator.faults.holding == 1, "the rename is held")
        assert not answer.done()
        assert ("web", "dev") in demo_emulator.state.stack_names(AGENT)
        demo_emulator.faults.release()
        assert answer.result().status_code == 200
    assert demo_emulator.faults.holding == 0
    assert ("web", "dev-agent") in demo_emulator.state.stack_names(AGENT)


def test_faults_are_armed_listed_and_cleared_over_http(
    demo_emulator: EmulatorServer, alice: httpx.Client
) -> None:
    rule = {"status": 503, "method": "GET", "path": "/api/user", "times": None, "retryAfter": 0.5}
    armed = alice.post("/_emulator/faults", json=rule)
    assert armed.status_code == 201
    assert alice.post("/_emulator/faults", json={"action": "drop", "path": "/x"}).status_code == 201
    assert alice.post("/_emulator/faults", json={"path": "(unclosed"}).status_code == 400
    assert alice.post("/_emulator/faults", json={"status": 200}).status_code == 400
    listed = alice.get("/_emulator/faults").json()["faults"]
    assert [(f["action"], f["remaining"]) for f in listed] == [("respond", None), ("drop", 1)]
    for _ in range(3):
        failing = alice.get("/api/user")
        assert (failing.status_code, failing.headers["Retry-After"]) == (503, "0.5")
    assert alice.delete("/_emulator/faults").status_code == 204
    assert alice.get("/api/user").status_code == 200
    assert demo_emulator.faults.armed() == []


def test_request_log_over_http_counts_service_calls_only(
    demo_emulator: EmulatorServer, alice: httpx.Client
) -> None:
    alice.get("/api/user")
    alice.get("/api/user/stacks", params={"maxResults": 2})
    log = alice.get("/_emulator/requests").json()
    assert [(r["method"], r["path"], r["query"], r["status"]) for r in log["requests"]] == [
        ("GET", "/api/user", "", 200),
        ("GET", "/api/user/stacks", "maxResults=2", 200),
    ]
    assert alice.delete("/_emulator/requests").status_code == 204
    assert alice.get("/_emulator/requests").json()["requests"] == []


def test_latency_overlaps_across_concurrent_requests(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(big_world(1, 0, 0, 0), latency_ms=300)

    async def four_at_once() -> None:
        headers = {"Authorization": "token t"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
            answers = await asyncio.gather(*(client.get("/api/user") for _ in range(4)))
        assert all(answer.status_code == 200 for answer in answers)

    asyncio.run(four_at_once())
    entries = server.requests.entries()
    assert all(entry.finished - entry.started >= 0.3 for entry in entries)
    assert server.requests.peak_in_flight == 4


def test_a_restarted_emulator_keeps_its_url_and_state(demo_emulator: EmulatorServer) -> None:
    url = demo_emulator.url
    with http(demo_emulator) as client:
        moved = client.post(f"/api/stacks/{AGENT}/web/prod/transfer", json={"toOrg": "acme"})
        assert moved.status_code == 204
        demo_emulator.stop()
        with pytest.raises(httpx.ConnectError):
            client.get("/api/user")
        demo_emulator.start()
        assert demo_emulator.url == url
        assert client.get("/api/stacks/acme/web/prod").json()["orgName"] == "acme"


# --- the foreground server ----------------------------------------------------------------


def run_emulator(world: Path, db: Path) -> tuple[subprocess.Popen[str], str]:
    """Start `serve_forever` in a child process and read the URL from its first line."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from toolkit.emulator.server import serve_forever
        serve_forever(Path({str(world)!r}), port=0, db_path=Path({str(db)!r}), page_size=7)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first_line = child.stdout.readline()
    urls = re.findall(r"http://\S+", first_line)
    assert first_line.startswith("Pulumi Cloud emulator listening on ") and len(urls) == 1
    return child, urls[0]


def stop(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=20) == 0


def test_serve_forever_reports_its_url_and_keeps_state_in_its_db(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text(
        "users: [{login: u, token: t, orgs: {o: admin}}]\n"
        "orgs: {o: {stacks: [{project: p, stack: s}]}}\n"
    )
    db = tmp_path / "state.db"
    child, url = run_emulator(world, db)
    try:
        renamed = httpx.post(
            f"{url}/api/stacks/o/p/s/rename",
            json={"newName": "renamed", "newProject": ""},
            headers={"Authorization": "token t"},
        )
        assert renamed.status_code == 200
    finally:
        stop(child)

    world.unlink()  # a restart with an existing database does not read the world again
    child, url = run_emulator(world, db)
    try:
        listed = httpx.get(f"{url}/api/user/stacks", headers={"Authorization": "token t"})
        assert [s["stackName"] for s in listed.json()["stacks"]] == ["renamed"]
    finally:
        stop(child)


def test_serve_forever_refuses_a_database_it_cannot_use(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("hello, this is not SQLite at all" * 100)
    with pytest.raises(InvalidInputError, match=r"notes\.txt"):
        serve_forever(tmp_path / "unused.yaml", db_path=not_a_database)
