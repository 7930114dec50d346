"""The emulated resource search over real HTTP, as Pulumi's API document shapes it
(`GetOrgResourceSearchV2Query`, read with `pulumi-cloud-sdk`'s `ResourceSearchResult`): the
query, the properties, paging by page and by cursor, who may search, and the world's and the
control route's `resourceSearch` answers. And a world stack's `stackReferences`, seeded as
the pulumi CLI writes a StackReference."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pulumi
import pytest
from pulumi import automation as auto
from pulumi_cloud_sdk._support import default_encoder
from pulumi_cloud_sdk.models import ResourceSearchResult

from tests.emulator.test_cli_protocol import PulumiCli
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.world import parse_world
from toolkit.errors import InvalidInputError

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

SEARCH = "/api/orgs/acme/search/resourcesv2"
REFERENCES = "type:pulumi:pulumi:StackReference"


def world(resource_search: str = "available") -> dict[str, Any]:
    return {
        "service": {"resourceSearch": resource_search},
        "users": [
            {"login": "alice", "token": "tok-alice", "orgs": {"acme": "member"}},
            {"login": "eve", "token": "tok-eve", "orgs": {"labs": "admin"}},
        ],
        "orgs": {
            "acme": {
                "stacks": [
                    {"project": "web", "stack": "dev", "resourceCount": 3},
                    {
                        "project": "api",
                        "stack": "prod",
                        "resourceCount": 2,
                        "lastUpdate": "2026-11-01T09:30:00Z",
                        "stackReferences": ["acme/web/dev", "labs/db/prod"],
                    },
                    {"project": "api", "stack": "dev", "stackReferences": ["dev"]},
                ]
            },
            "labs": {"stacks": [{"project": "db", "stack": "prod", "stackReferences": ["x"]}]},
        },
    }


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(world())


@pytest.fixture
def alice(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": "token tok-alice"}
    ) as client:
        yield client


def read(answer: httpx.Response) -> dict[str, Any]:
    """The body of a successful search, checked against the SDK's model first."""
    assert answer.status_code == 200, answer.text
    default_encoder.deserialize(answer.json(), "ResourceSearchResult")
    body: dict[str, Any] = answer.json()
    return body


def test_a_type_query_finds_each_stack_reference_with_its_properties(alice: httpx.Client) -> None:
    body = read(alice.get(SEARCH, params={"query": REFERENCES, "properties": "true"}))

    assert body["total"] == 3
    assert body["pagination"] == {}
    found = [
        (r["project"], r["stack"], r["name"], r["properties"]["name"]) for r in body["resources"]
    ]
    assert found == [
        ("api", "dev", "dev", "dev"),
        ("api", "prod", "acme/web/dev", "acme/web/dev"),
        ("api", "prod", "labs/db/prod", "labs/db/prod"),
    ]
    reference = body["resources"][1]
    assert reference["type"] == "pulumi:pulumi:StackReference"
    assert (reference["package"], reference["module"]) == ("pulumi", "pulumi")
    assert reference["id"] == "acme/web/dev"
    assert reference["urn"] == "urn:pulumi:prod::api::pulumi:pulumi:StackReference::acme/web/dev"
    assert reference["parent_urn"] == "urn:pulumi:prod::api::pulumi:pulumi:Stack::api-prod"
    assert reference["provider_urn"].startswith(
        "urn:pulumi:prod::api::pulumi:providers:pulumi::default::"
    )
    assert reference["external"] is True
    assert reference["properties"] == {
        "name": "acme/web/dev",
        "outputs": {},
        "secretOutputNames": [],
    }


def test_properties_come_only_when_asked(alice: httpx.Client) -> None:
    body = read(alice.get(SEARCH, params={"query": REFERENCES}))

    assert body["total"] == 3
    assert all("properties" not in resource for resource in body["resources"])


def test_terms_all_match_and_a_bare_term_matches_names_stacks_and_projects(
    alice: httpx.Client,
) -> None:
    def urns(query: str) -> list[str]:
        return [r["urn"] for r in read(alice.get(SEARCH, params={"query": query}))["resources"]]

    assert urns(f"{REFERENCES} project:api stack:prod name:labs") == [
        "urn:pulumi:prod::api::pulumi:pulumi:StackReference::labs/db/prod"
    ]
    assert urns("type:pulumi:pulumi:Stack stack:dev") == [
        "urn:pulumi:dev::api::pulumi:pulumi:Stack::api-dev",
        "urn:pulumi:dev::web::pulumi:pulumi:Stack::web-dev",
    ]
    assert len(urns("web")) == 3 + 1  # web/dev's resources, and the reference named acme/web/dev
    assert urns("package:pulumi module:providers") == [
        "urn:pulumi:dev::api::pulumi:providers:pulumi::default",
        "urn:pulumi:prod::api::pulumi:providers:pulumi::default",
    ]


def test_an_unknown_field_is_refused(alice: httpx.Client) -> None:
    answer = alice.get(SEARCH, params={"query": "colour:blue"})

    assert answer.status_code == 400
    assert "unknown field 'colour'" in answer.json()["message"]


@pytest.mark.parametrize("parameter", ["size", "page"])
def test_a_size_or_page_below_one_is_refused_naming_it(alice: httpx.Client, parameter: str) -> None:
    answer = alice.get(SEARCH, params={parameter: "0"})

    assert answer.status_code == 400
    assert answer.json() == {
        "code": 400,
        "message": f"Bad Request: query.{parameter}: Input should be greater than or equal to 1",
    }


def test_cursor_pages_go_through_every_result_once(alice: httpx.Client) -> None:
    everything = read(alice.get(SEARCH, params={"size": "100"}))
    seen: list[str] = []
    params = {"size": "3"}
    for _ in range(10):
        body = read(alice.get(SEARCH, params=params))
        assert body["total"] == everything["total"] == 11
        seen += [r["urn"] for r in body["resources"]]
        cursor = body["pagination"].get("cursor")
        if cursor is None:
            break
        params = {"size": "3", "cursor": cursor}
    assert seen == [r["urn"] for r in everything["resources"]]


def test_page_numbers_link_to_the_pages_around_them(alice: httpx.Client) -> None:
    body = read(alice.get(SEARCH, params={"query": REFERENCES, "size": "1", "page": "2"}))

    assert [r["id"] for r in body["resources"]] == ["acme/web/dev"]
    pagination = body["pagination"]
    assert (
        pagination["previous"]
        == f"{SEARCH}?query=type%3Apulumi%3Apulumi%3AStackReference&size=1&page=1"
    )
    assert (
        pagination["next"]
        == f"{SEARCH}?query=type%3Apulumi%3Apulumi%3AStackReference&size=1&page=3"
    )
    following = read(alice.get(pagination["next"]))
    assert [r["id"] for r in following["resources"]] == ["labs/db/prod"]
    assert "next" not in following["pagination"]


def test_page_numbers_stop_at_ten_thousand_results(alice: httpx.Client) -> None:
    answer = alice.get(SEARCH, params={"size": "100", "page": "101"})

    assert answer.status_code == 400
    assert "use the cursor" in answer.json()["message"]


def test_the_deprecated_v1_path_answers_the_same(alice: httpx.Client) -> None:
    params = {"query": REFERENCES, "properties": "true"}
    v1 = read(alice.get("/api/orgs/acme/search/resources", params=params))

    assert v1["resources"] == read(alice.get(SEARCH, params=params))["resources"]


@pytest.mark.parametrize(
    ("token", "org", "status"),
    [("tok-eve", "acme", 403), ("tok-alice", "nowhere", 404), ("nobody", "acme", 401)],
)
def test_only_members_of_an_existing_org_may_search(
    emulator: EmulatorServer, token: str, org: str, status: int
) -> None:
    answer = httpx.get(
        f"{emulator.url}/api/orgs/{org}/search/resourcesv2",
        headers={"Authorization": f"token {token}"},
    )

    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    ("setting", "properties", "status", "message"),
    [
        ("withoutProperties", "true", 402, "resource properties need a supported subscription"),
        ("withoutProperties", "false", 200, None),
        ("unreachable", "false", 422, "search cluster is unreachable"),
        ("absent", "false", 404, "Not Found"),
    ],
)
def test_the_world_says_how_the_search_answers(
    make_emulator: EmulatorFactory,
    setting: str,
    properties: str,
    status: int,
    message: str | None,
) -> None:
    emulator = make_emulator(world(setting))

    answer = httpx.get(
        emulator.url + SEARCH,
        params={"query": REFERENCES, "properties": properties},
        headers={"Authorization": "token tok-alice"},
    )

    assert answer.status_code == status, answer.text
    if message is not None:
        assert message in answer.json()["message"]


def test_the_control_route_changes_the_search_s_answer(alice: httpx.Client) -> None:
    assert alice.get("/_emulator/resource-search").json() == {"answer": "available"}

    changed = alice.put("/_emulator/resource-search", json={"answer": "unreachable"})

    assert changed.json() == {"answer": "unreachable"}
    assert alice.get(SEARCH).status_code == 422
    refused = alice.put("/_emulator/resource-search", json={"answer": "sometimes"})
    assert refused.status_code == 400
    assert alice.get("/_emulator/resource-search").json() == {"answer": "unreachable"}


def test_a_seeded_stack_reference_exports_as_the_cli_writes_one(alice: httpx.Client) -> None:
    """The shape `pulumi up` wrote for `pulumi.StackReference("organization/web/dev")`
    (pulumi CLI v3.274.1, file backend), timestamps and source positions aside."""
    exported = alice.get("/api/stacks/acme/api/dev/export")
    assert exported.status_code == 200, exported.text
    resources = exported.json()["deployment"]["resources"]

    assert [r["type"] for r in resources] == [
        "pulumi:pulumi:Stack",
        "pulumi:providers:pulumi",
        "pulumi:pulumi:StackReference",
    ]
    provider, reference = resources[1], resources[2]
    for resource in resources:
        del resource["created"], resource["modified"]
    provider_id = provider.pop("id")
    assert str(uuid.UUID(provider_id)) == provider_id, "a provider's ID is a UUID, as the CLI's"
    assert provider == {
        "urn": "urn:pulumi:dev::api::pulumi:providers:pulumi::default",
        "custom": True,
        "type": "pulumi:providers:pulumi",
    }
    assert reference == {
        "urn": "urn:pulumi:dev::api::pulumi:pulumi:StackReference::dev",
        "custom": True,
        "id": "dev",
        "type": "pulumi:pulumi:StackReference",
        "inputs": {"name": "dev"},
        "outputs": {"name": "dev", "outputs": {}, "secretOutputNames": []},
        "parent": "urn:pulumi:dev::api::pulumi:pulumi:Stack::api-dev",
        "external": True,
        "provider": f"urn:pulumi:dev::api::pulumi:providers:pulumi::default::{provider_id}",
    }


def test_a_seeded_stack_reference_is_the_one_the_real_cli_writes(
    make_emulator: EmulatorFactory, pulumi_cli: Path, tmp_path: Path
) -> None:
    """A program's `StackReference("acme/web/base")`, run by the real pulumi CLI in acme's
    web/reader, and the same reference seeded in labs' web/reader: the same resources, but
    for their times, the CLI's source positions and the provider's random ID."""
    emulator = make_emulator(
        {
            "users": [
                {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "labs": "admin"}}
            ],
            "orgs": {
                "acme": {"stacks": [{"project": "web", "stack": "base", "resourceCount": 1}]},
                "labs": {
                    "stacks": [
                        {"project": "web", "stack": "reader", "stackReferences": ["acme/web/base"]}
                    ]
                },
            },
        }
    )
    cli = PulumiCli(bin_dir=pulumi_cli, home=tmp_path, url=emulator.url, token="tok-alice")

    def program() -> None:
        pulumi.StackReference("acme/web/base")

    stack = auto.create_or_select_stack(
        stack_name="acme/web/reader",
        project_name="web",
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(tmp_path),
            env_vars=cli.env(),
            pulumi_command=auto.PulumiCommand(root=str(pulumi_cli.parent), skip_version_check=True),
        ),
    )
    stack.up()

    def comparable(org: str) -> list[dict[str, Any]]:
        exported = httpx.get(
            f"{emulator.url}/api/stacks/{org}/web/reader/export",
            headers={"Authorization": "token tok-alice"},
        ).json()
        resources = exported["deployment"]["resources"]
        provider_id = resources[1]["id"]
        shown = json.loads(json.dumps(resources[1:]).replace(provider_id, "PROVIDER-ID"))
        for resource in shown:
            for key in ("created", "modified", "sourcePosition", "stackTrace"):
                resource.pop(key, None)
        return cast(list[dict[str, Any]], shown)

    written = comparable("acme")
    assert [r["type"] for r in written] == [
        "pulumi:providers:pulumi",
        "pulumi:pulumi:StackReference",
    ]
    assert comparable("labs") == written


def test_a_seeded_stack_counts_its_references_among_its_resources(alice: httpx.Client) -> None:
    listed = alice.get("/api/user/stacks", params={"organization": "acme", "project": "api"})

    counts = {s["stackName"]: s["resourceCount"] for s in listed.json()["stacks"]}
    assert counts == {"prod": 2 + 1 + 2, "dev": 1 + 1 + 1}  # root and declared, provider, refs


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["a/b/c/d"], "'a/b/c/d' is not a stack reference"),
        (["acme//dev"], "'acme//dev' is not a stack reference"),
        (["dev", "dev"], "duplicate stack reference 'dev'"),
    ],
)
def test_a_world_s_stack_references_are_checked(names: list[str], problem: str) -> None:
    document = world()
    document["orgs"]["labs"]["stacks"][0]["stackReferences"] = names

    with pytest.raises(InvalidInputError, match=problem):
        parse_world(document)


def test_an_unknown_search_answer_in_a_world_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"resourceSearch.*'withoutProperties'"):
        parse_world(world("sometimes"))


def as_sent(read_back: Any, sent: Any) -> Any:
    """`read_back` with only the keys `sent` has, at every depth: the SDK's model fills the
    fields it knows and the sender left out, and drops the ones it does not know."""
    if isinstance(read_back, dict) and isinstance(sent, dict):
        return {key: as_sent(read_back[key], sent[key]) for key in sent if key in read_back}
    if isinstance(read_back, list) and isinstance(sent, list):
        return [as_sent(back, given) for back, given in zip(read_back, sent, strict=True)]
    return read_back


def test_a_search_result_holds_only_what_the_sdk_model_knows(alice: httpx.Client) -> None:
    """`read` checks that the SDK's model accepts a result; the model also drops a field it
    does not know and converts one of another type, so written back from the model the
    result must be what was sent: every field under the API document's name and type."""
    body = read(alice.get(SEARCH, params={"query": REFERENCES, "properties": "true"}))
    result = default_encoder.deserialize(body, "ResourceSearchResult")

    assert isinstance(result, ResourceSearchResult)
    assert as_sent(default_encoder.sanitize_for_serialization(result), body) == body
