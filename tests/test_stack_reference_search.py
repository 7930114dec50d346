"""Every StackReference of an org, found over real HTTP against the emulator: by the service's
resource search when it answers, else by exporting each stack's state (each way the search
can be missing), the two finding the same; a stack whose state cannot be read is reported,
and the exports stay within the client's concurrency."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

from toolkit.checks_first import CurrentUsers
from toolkit.cloud import DEFAULT_MAX_CONCURRENCY, CloudClient
from toolkit.collectors.stack_references import StackReferenceSearch, find_stack_references
from toolkit.credentials import Credentials
from toolkit.emulator.faults import FaultRule
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import ServiceError
from toolkit.plan import ClaimTarget
from toolkit.reference_finding import OrgSearched, search_stack_references
from toolkit.sides import Sides
from toolkit.stack_references import StackReferenceFound, references_in_state

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

SEARCH = "/api/orgs/acme/search/resourcesv2"
EXPORTS = r".*/export"


def world(resource_search: str = "available") -> dict[str, Any]:
    return {
        "service": {"resourceSearch": resource_search},
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "member"}}],
        "orgs": {
            "acme": {
                "stacks": [
                    {"project": "web", "stack": "dev", "resourceCount": 4},
                    {
                        "project": "api",
                        "stack": "prod",
                        "resourceCount": 2,
                        "stackReferences": ["acme/web/dev", "agent-abc/web/dev"],
                    },
                    {"project": "api", "stack": "dev", "stackReferences": ["web-dev", "acme/dev"]},
                    {"project": "db", "stack": "prod", "resourceCount": 1},
                ]
            },
            "agent-abc": {"stacks": [{"project": "web", "stack": "dev"}]},
        },
    }


EXPECTED = (
    StackReferenceFound("acme", "api", "dev", "acme/dev"),
    StackReferenceFound("acme", "api", "dev", "web-dev"),
    StackReferenceFound("acme", "api", "prod", "acme/web/dev"),
    StackReferenceFound("acme", "api", "prod", "agent-abc/web/dev"),
)


def find(server: EmulatorServer, **client_options: Any) -> StackReferenceSearch:
    async def scenario() -> StackReferenceSearch:
        async with CloudClient(server.url, "tok-alice", **client_options) as client:
            return await find_stack_references(client, "acme")

    return asyncio.run(scenario())


def test_the_service_s_search_finds_every_reference_without_an_export(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())

    found = find(server)

    assert found.references == EXPECTED
    assert (found.exported, found.search_refused, found.unreadable) == (None, None, ())
    assert found.found_by == "found by the service's search"
    assert server.requests.count(path=EXPORTS) == 0
    searched = [parse_qs(e.query) for e in server.requests.entries() if e.path == SEARCH]
    assert searched == [
        {"query": ["type:pulumi:pulumi:StackReference"], "properties": ["true"], "size": ["1000"]}
    ]


def test_the_search_is_followed_page_by_page_by_its_cursor(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world(), page_size=1)

    found = find(server)

    assert found.references == EXPECTED
    searched = [parse_qs(e.query) for e in server.requests.entries() if e.path == SEARCH]
    assert len(searched) == 4
    assert "cursor" not in searched[0]
    assert all("cursor" in query for query in searched[1:])


@pytest.mark.parametrize(
    ("setting", "refused"),
    [
        ("unreachable", "422: search cluster is unreachable"),
        ("absent", "404: Not Found"),
    ],
)
def test_without_the_search_each_state_is_exported_and_the_same_references_found(
    make_emulator: EmulatorFactory, setting: str, refused: str
) -> None:
    server = make_emulator(world(setting))

    found = find(server)

    assert found.references == EXPECTED
    assert found.exported == 4
    assert found.found_by == "by exporting 4 states"
    assert found.search_refused is not None and found.search_refused.startswith(refused)
    assert server.requests.count(path=EXPORTS) == 4


def test_a_search_without_properties_reads_each_name_from_its_resource_s_id(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world("withoutProperties"))

    found = find(server)

    assert found.references == EXPECTED
    assert (found.exported, found.search_refused, found.by_ids) == (None, None, True)
    assert found.found_by == "found by the service's search, each name read from its resource's ID"
    assert server.requests.count(path=EXPORTS) == 0
    asked = [parse_qs(e.query) for e in server.requests.entries() if e.path == SEARCH]
    assert [query["properties"] for query in asked] == [["true"], ["false"]]


def test_a_search_refused_with_and_without_properties_is_exported(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    server.faults.arm(FaultRule(method="GET", path=SEARCH, status=402, message="no properties"))
    server.faults.arm(FaultRule(method="GET", path=SEARCH, status=404, message="Not Found"))

    found = find(server)

    assert found.references == EXPECTED
    assert found.found_by == "by exporting 4 states"
    assert found.search_refused == "404: Not Found"


def test_a_service_that_does_not_implement_the_search_is_exported_too(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world())
    server.faults.arm(
        FaultRule(method="GET", path=SEARCH, status=501, message="Not Implemented", times=None)
    )

    found = find(server)

    assert found.references == EXPECTED
    assert found.found_by == "by exporting 4 states"


def test_another_refusal_of_the_search_is_an_error(make_emulator: EmulatorFactory) -> None:
    server = make_emulator(world())
    server.faults.arm(FaultRule(method="GET", path=SEARCH, status=400, message="bad query"))

    with pytest.raises(ServiceError, match="400: bad query"):
        find(server)
    assert server.requests.count(path=EXPORTS) == 0


def test_a_stack_that_cannot_be_exported_is_reported_and_the_others_still_read(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(world("absent"))
    server.faults.arm(
        FaultRule(
            method="GET",
            path="/api/stacks/acme/api/dev/export",
            status=403,
            message="no access",
            times=None,
        )
    )

    found = find(server)

    assert found.references == EXPECTED[2:]
    assert found.exported == 3
    assert [(s.project, s.stack) for s in found.unreadable] == [("api", "dev")]
    assert "403: no access" in found.unreadable[0].reason


def test_the_exports_stay_within_the_client_s_concurrency(
    make_emulator: EmulatorFactory,
) -> None:
    document = world("absent")
    document["orgs"]["acme"]["stacks"] += [
        {"project": "many", "stack": f"s{n}", "stackReferences": [f"acme/web/dev{n}"]}
        for n in range(20)
    ]
    server = make_emulator(document, latency_ms=5)

    found = find(server, max_concurrency=3)

    assert found.exported == 24
    assert len(found.references) == 4 + 20
    assert 1 <= server.requests.peak_in_flight <= 3


def test_orgs_searched_as_one_identity_share_its_call_slots(
    make_emulator: EmulatorFactory,
) -> None:
    """The source, the destination and a reference org all read as alice: their exports go
    through her one client, so no more are in flight than that client allows, however many
    orgs are searched."""
    orgs, each = ("agent-abc", "acme", "partners"), 2 * DEFAULT_MAX_CONCURRENCY
    document = world("absent")
    document["users"][0]["orgs"] = dict.fromkeys(orgs, "admin")
    for org in orgs:
        document["orgs"][org] = {
            "stacks": [{"project": "p", "stack": f"s{n}"} for n in range(each)]
        }
    server = make_emulator(document, latency_ms=20)
    target = ClaimTarget(source_org="agent-abc", destination_org="acme")
    sides = Sides.of(target, Credentials(server.url, "tok-alice", "tok-alice"))

    async def search() -> list[OrgSearched]:
        async with CurrentUsers() as users:
            return await search_stack_references(sides, users, ["partners"])

    searched = asyncio.run(search())

    assert [(org.org, org.search and org.search.exported) for org in searched] == [
        (org, each) for org in orgs
    ]
    exports = [entry for entry in server.requests.entries() if entry.path.endswith("/export")]
    most = max(
        sum(other.started <= entry.started < other.finished for other in exports)
        for entry in exports
    )
    assert DEFAULT_MAX_CONCURRENCY // 2 <= most <= DEFAULT_MAX_CONCURRENCY


def test_the_name_read_is_the_input_else_the_output_else_the_id() -> None:
    """`StackReference("ref", stack_name="acme/web/dev")` names its resource `ref`; what it
    reads is its `name` input. States written otherwise still give the name."""
    reference = "pulumi:pulumi:StackReference"
    deployment = {
        "resources": [
            {"type": "pulumi:pulumi:Stack", "inputs": {"name": "not a reference"}},
            {"type": reference, "id": "ref", "inputs": {"name": "acme/web/dev"}},
            {"type": reference, "id": "ignored", "outputs": {"name": "acme/api/prod"}},
            {"type": reference, "id": "db/prod", "inputs": {}},
            {"type": reference, "inputs": {"name": 7}},
            "not a resource",
        ]
    }

    found = references_in_state("acme", "api", "dev", deployment)

    assert [reference.name for reference in found] == ["acme/web/dev", "acme/api/prod", "db/prod"]
    assert references_in_state("acme", "api", "dev", {"resources": None}) == []
