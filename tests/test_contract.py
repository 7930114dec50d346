"""The official `pulumi-cloud-sdk` as the contract oracle.

Two kinds of evidence that the toolkit speaks the service's language:
- every wire model in `toolkit.models` writes JSON the SDK reads into its model of the same
  name, reads the JSON the SDK writes, and both sides agree on every value;
- the same operations sent through the SDK's API classes and through `CloudClient` to two
  emulators started from the same world leave both in the same state, and the same listings
  read through either return the same entities.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin
from urllib.error import HTTPError

import pytest
from contract_samples import (
    DISCRIMINATOR,
    always_written,
    corresponds,
    differences,
    enum_values,
    sdk_discriminator,
    sdk_fields,
    sdk_instances,
    sdk_model,
    toolkit_fields,
    toolkit_instances,
    unwrap,
    wire_models,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulumi_cloud_sdk import models as sdk_models
from pulumi_cloud_sdk._support import default_encoder
from pulumi_cloud_sdk.api_client import ApiClient
from pulumi_cloud_sdk.apis import (
    AI_AgentsApi,
    EnvironmentsApi,
    InsightsApi,
    OrganizationsApi,
    RegistryPreviewApi,
    StacksApi,
    UsersApi,
)
from pulumi_cloud_sdk.configuration import Configuration
from wire_recorder import WireRecorder

from toolkit.agent_signup import solve_signup_challenge
from toolkit.cloud import CloudClient
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.models import (
    AgentAccountSummary,
    AgentClaimRequest,
    AgentClaimResponse,
    AgentClaimsStatus,
    AgentSignupChallenge,
    AgentSignupResponse,
    AppStack,
    BaseEntity,
    RenameEntity,
    ResourceResult,
    TransferEntityEnvironment,
    TransferEntityEnvironmentRename,
    TransferEntityFailure,
    TransferEntityInsightsAccount,
    TransferEntityInsightsAccountRename,
    TransferEntityRegistryPackage,
    TransferEntityRegistryPackageRename,
    TransferEntityStack,
    TransferEntityStackRename,
    User,
    WireModel,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

WITHOUT_SDK_COUNTERPART = {
    "ErrorResponse": "the SDK declares no model for the `{code, message}` error body",
}
"""Wire models the SDK has no same-named model for, each with the reason."""

LENIENT_FIELDS = {
    ("TokenInfo", "organization"): (
        "only read, never written: a token without an organization must not make"
        " GET /api/user unreadable"
    ),
    ("TokenInfo", "team"): (
        "only read, never written: a token without a team must not make GET /api/user unreadable"
    ),
    ("User", "identities"): (
        "the SDK's enum of identity providers is read as plain text, so a provider the"
        " service adds later does not make GET /api/user unreadable"
    ),
}
"""Fields the toolkit reads more leniently than the SDK declares them (optional where the
SDK requires them, or any text where the SDK has an enum), each with the reason."""

PAIRED_MODELS = [model for model in wire_models() if model.__name__ not in WITHOUT_SDK_COUNTERPART]
SAMPLES = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def through_json(document: Any) -> Any:
    """`document` as a JSON text would carry it: what a peer really receives."""
    return json.loads(json.dumps(document))


def sdk_reads(model: type[WireModel], instance: WireModel) -> Any:
    """The toolkit's JSON for `instance`, read by the SDK into its model of the same name."""
    return default_encoder.deserialize(through_json(instance.to_wire()), model.__name__)


def toolkit_reads(model: type[WireModel], sdk_object: Any) -> WireModel:
    """The SDK's JSON for `sdk_object`, read by the toolkit's `model`."""
    written = default_encoder.sanitize_for_serialization(sdk_object)
    return model.model_validate(through_json(written))


# --- Which models and fields the two sides declare ----------------------------------------


@pytest.mark.parametrize("model", wire_models(), ids=lambda model: model.__name__)
def test_every_wire_model_has_an_sdk_counterpart_or_a_stated_reason(
    model: type[WireModel],
) -> None:
    name = model.__name__
    if name in WITHOUT_SDK_COUNTERPART:
        assert sdk_model(name) is None, f"the SDK now has {name}: drop it from the allow-list"
    else:
        assert sdk_model(name) is not None, (
            f"pulumi_cloud_sdk.models has no {name}: name the model as the SDK does, or list"
            " it in WITHOUT_SDK_COUNTERPART with the reason"
        )


@pytest.mark.parametrize("model", PAIRED_MODELS, ids=lambda model: model.__name__)
def test_fields_have_the_sdk_names_types_and_requiredness(model: type[WireModel]) -> None:
    sdk_cls = sdk_model(model.__name__)
    declared = sdk_fields(sdk_cls)
    ours = toolkit_fields(model)
    problems = []
    for key, field in ours.items():
        lenient = (model.__name__, key) in LENIENT_FIELDS
        if key == DISCRIMINATOR and sdk_discriminator(sdk_cls) is not None:
            if get_args(unwrap(field.annotation)) != (sdk_discriminator(sdk_cls),):
                problems.append(f"{key}: not the SDK's {sdk_discriminator(sdk_cls)!r}")
        elif key not in declared:
            problems.append(f"{key}: the SDK has no such field")
        elif not lenient and not corresponds(field.annotation, declared[key].type_name):
            problems.append(f"{key}: {field.annotation} is not the SDK's {declared[key].type_name}")
        elif field.is_required() and not declared[key].required:
            problems.append(f"{key}: required here, optional in the SDK")
    for key, sdk_field in declared.items():
        if not sdk_field.required or (model.__name__, key) in LENIENT_FIELDS:
            continue
        if key not in ours:
            problems.append(f"{key}: the SDK requires it, the toolkit does not know it")
        elif not always_written(ours[key]):
            problems.append(f"{key}: the SDK requires it, the toolkit may leave it out")
    assert problems == []


def test_lenient_fields_are_still_lenient() -> None:
    """The reasons in LENIENT_FIELDS name real fields that differ from the SDK."""
    for name, key in LENIENT_FIELDS:
        model = next(model for model in PAIRED_MODELS if model.__name__ == name)
        field = toolkit_fields(model)[key]
        declared = sdk_fields(sdk_model(name))[key]
        differs = not corresponds(field.annotation, declared.type_name) or (
            declared.required and not field.is_required()
        )
        assert differs, f"{name}.{key} now matches the SDK: drop it from LENIENT_FIELDS"


def test_literal_fields_list_exactly_the_sdk_enum_values() -> None:
    """A value the service may send is never refused, and nothing the SDK lacks is sent."""
    checked = []
    for model in PAIRED_MODELS:
        declared = sdk_fields(sdk_model(model.__name__))
        for key, field in toolkit_fields(model).items():
            annotation = unwrap(field.annotation)
            if key in declared and get_origin(annotation) is Literal:
                assert set(get_args(annotation)) == enum_values(declared[key].type_name), key
                checked.append(f"{model.__name__}.{key}")
    assert len(checked) >= 3, checked  # role, packageStatus, visibility


# --- Round trips through the SDK ---------------------------------------------------------


@pytest.mark.parametrize("minimal", [False, True], ids=["every-field", "required-only"])
@pytest.mark.parametrize("model", PAIRED_MODELS, ids=lambda model: model.__name__)
@SAMPLES
@given(data=st.data())
def test_toolkit_json_survives_the_sdk(
    model: type[WireModel], minimal: bool, data: st.DataObject
) -> None:
    """toolkit JSON -> SDK object -> SDK JSON -> toolkit: the same instance, and the SDK
    read every value as the toolkit meant it."""
    instance = data.draw(toolkit_instances(model, minimal=minimal))
    sdk_object = sdk_reads(model, instance)
    assert differences(instance, sdk_object) == []
    assert toolkit_reads(model, sdk_object) == instance


@pytest.mark.parametrize("minimal", [False, True], ids=["every-field", "required-only"])
@pytest.mark.parametrize("model", PAIRED_MODELS, ids=lambda model: model.__name__)
@SAMPLES
@given(data=st.data())
def test_sdk_json_reads_into_the_toolkit_model(
    model: type[WireModel], minimal: bool, data: st.DataObject
) -> None:
    """SDK objects built with the SDK's constructors, written by the SDK, read by the toolkit:
    every field the toolkit knows holds the SDK object's value."""
    sdk_object = data.draw(sdk_instances(sdk_model(model.__name__), minimal=minimal))
    read = toolkit_reads(model, sdk_object)
    assert differences(read, sdk_object) == []
    assert differences(read, sdk_reads(model, read)) == []


# --- The kind-discriminated union, every kind in every place it appears -------------------

MOMENT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
BASE_KINDS: list[BaseEntity] = [
    TransferEntityStack(
        project_name="web", stack_name="dev", resource_count=12, last_update=MOMENT
    ),
    TransferEntityEnvironment(project_name="default", environment_name="secrets"),
    TransferEntityInsightsAccount(name="aws-main"),
    TransferEntityRegistryPackage(source="private", publisher="acme", name="vpc"),
]
RENAME_KINDS: list[RenameEntity] = [
    TransferEntityStackRename(
        project_name="web",
        stack_name="dev",
        resource_count=12,
        last_update=MOMENT,
        rename_as=TransferEntityStack(project_name="web", stack_name="dev-agent"),
    ),
    TransferEntityEnvironmentRename(
        project_name="default",
        environment_name="secrets",
        rename_as=TransferEntityEnvironment(project_name="default", environment_name="s2"),
    ),
    TransferEntityInsightsAccountRename(
        name="aws-main", rename_as=TransferEntityInsightsAccount(name="aws-main-agent")
    ),
    TransferEntityRegistryPackageRename(
        source="private",
        publisher="acme",
        name="vpc",
        rename_as=TransferEntityRegistryPackage(source="private", publisher="acme", name="vpc2"),
    ),
]
EVERY_KIND: list[BaseEntity | RenameEntity] = [*BASE_KINDS, *RENAME_KINDS]


def claim_with_every_kind() -> AgentClaimResponse:
    return AgentClaimResponse(
        agent=AgentAccountSummary(login="agent-abc", org_name="agent-abc", created_at=MOMENT),
        entities=EVERY_KIND,
        conflicts=EVERY_KIND,
        failures=[TransferEntityFailure(entity=e, failure_details="no move") for e in EVERY_KIND],
        claim_expires_at=MOMENT,
        transfer_token="transfer-1",
    )


def sdk_kinds(entities: Sequence[Any]) -> list[str]:
    return [type(entity).__name__ for entity in entities]


def test_every_entity_kind_survives_the_sdk_inside_a_claim_document() -> None:
    claim = claim_with_every_kind()
    every_sdk_kind = sdk_models.TransferEntity.get_concrete_subtypes()
    assert sorted(e.kind for e in EVERY_KIND) == sorted(cls.__name__ for cls in every_sdk_kind)
    sdk_claim = sdk_reads(AgentClaimResponse, claim)
    kinds = [e.kind for e in EVERY_KIND]
    assert sdk_kinds(sdk_claim.entities) == kinds
    assert sdk_kinds(sdk_claim.conflicts) == kinds
    assert sdk_kinds([failure.entity for failure in sdk_claim.failures]) == kinds
    assert differences(claim, sdk_claim) == []
    assert toolkit_reads(AgentClaimResponse, sdk_claim) == claim


def test_every_entity_kind_survives_the_sdk_as_a_conflicts_resolution() -> None:
    request = AgentClaimRequest(claim_token="claim-abc", conflicts_resolution=EVERY_KIND)
    sdk_request = sdk_reads(AgentClaimRequest, request)
    assert sdk_kinds(sdk_request.conflicts_resolution) == [e.kind for e in EVERY_KIND]
    assert differences(request, sdk_request) == []
    assert toolkit_reads(AgentClaimRequest, sdk_request) == request


def test_claim_document_built_with_the_sdk_reads_into_the_toolkit() -> None:
    stack = sdk_models.TransferEntityStack(project_name="web", stack_name="dev", last_update=MOMENT)
    renamed = sdk_models.TransferEntityInsightsAccountRename(
        name="aws-main", rename_as=sdk_models.TransferEntityInsightsAccount(name="aws-2")
    )
    sdk_claim = sdk_models.AgentClaimResponse(
        agent=sdk_models.AgentAccountSummary(login="a", org_name="a", created_at=MOMENT),
        entities=[stack, renamed],
        conflicts=[renamed],
        failures=[sdk_models.TransferEntityFailure(entity=stack, failure_details="busy")],
        claim_expires_at=MOMENT,
    )
    claim = toolkit_reads(AgentClaimResponse, sdk_claim)
    assert isinstance(claim, AgentClaimResponse)
    assert [e.kind for e in claim.entities] == [
        "TransferEntityStack",
        "TransferEntityInsightsAccountRename",
    ]
    assert claim.failures[0].entity == TransferEntityStack(
        project_name="web", stack_name="dev", last_update=MOMENT
    )
    assert differences(claim, sdk_claim) == []


# --- Timestamps ---------------------------------------------------------------------------


def test_rfc3339_z_timestamps_read_as_the_same_instant_by_both() -> None:
    document = {
        "agent": {"login": "a", "orgName": "a", "createdAt": "2026-11-20T09:00:00Z"},
        "entities": [
            {
                "kind": "TransferEntityStack",
                "projectName": "web",
                "stackName": "dev",
                "resourceCount": 3,
                "lastUpdate": "2026-11-21T10:15:30.250Z",
            }
        ],
        "conflicts": [],
        "failures": [],
        "claimExpiresAt": "2027-01-31T09:00:00Z",
    }
    ours = AgentClaimResponse.model_validate(document)
    sdk = default_encoder.deserialize(through_json(document), "AgentClaimResponse")
    assert differences(ours, sdk) == []
    assert ours.agent.created_at == datetime(2026, 11, 20, 9, tzinfo=UTC)
    entity = ours.entities[0]
    assert isinstance(entity, TransferEntityStack)
    assert entity.last_update == datetime(2026, 11, 21, 10, 15, 30, 250000, tzinfo=UTC)


def test_toolkit_writes_utc_instants_with_z_and_reads_the_sdk_offsets() -> None:
    summary = AgentAccountSummary(login="a", org_name="a", created_at=MOMENT)
    assert summary.to_wire()["createdAt"] == "2026-11-20T09:30:00Z"
    sdk_written = default_encoder.sanitize_for_serialization(
        sdk_reads(AgentAccountSummary, summary)
    )
    assert sdk_written["createdAt"] in {"2026-11-20T09:30:00Z", "2026-11-20T09:30:00+00:00"}
    assert AgentAccountSummary.model_validate(sdk_written) == summary


def test_timestamps_without_an_offset_are_refused() -> None:
    """A timestamp with no offset is not RFC 3339 and names no single instant."""
    with pytest.raises(ValueError, match="timezone"):
        AgentAccountSummary(login="a", org_name="a", created_at=datetime(2026, 11, 20, 9))


# --- Same operations through the SDK and through CloudClient -------------------------------

AGENT = "agent-abc"
DESTINATION = "acme"
AGENT_CREATED = datetime.now(UTC) - timedelta(hours=1)
"""The agent signed up an hour ago: it may still write, and its claim window is open."""

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {DESTINATION: "admin", AGENT: "admin"}}
    ],
    "agents": [
        {
            "login": AGENT,
            "token": "tok-agent",
            "claimToken": "claim-abc",
            "createdAt": AGENT_CREATED.isoformat(),
            "claimExpiresAt": (AGENT_CREATED + timedelta(days=30)).isoformat(),
        }
    ],
    "orgs": {
        AGENT: {
            "stacks": [
                {
                    "project": project,
                    "stack": stack,
                    "resourceCount": index,
                    "lastUpdate": f"2026-11-{10 + index:02d}T08:00:00Z",
                    "tags": {"owner": "agent"} if index % 2 else {},
                }
                for index, (project, stack) in enumerate(
                    [
                        ("web", "dev"),
                        ("web", "prod"),
                        ("web", "staging"),
                        ("api", "dev"),
                        ("api", "staging"),
                        ("api", "canary"),
                        ("jobs", "nightly"),
                    ]
                )
            ],
            "environments": [{"project": f"p{i % 2}", "name": f"env{i}"} for i in range(5)],
            "insightsAccounts": [{"name": f"account-{i}", "provider": "aws"} for i in range(4)],
            "registryPackages": [
                {"source": "private", "publisher": AGENT, "name": f"pkg{i}"} for i in range(4)
            ],
        },
        DESTINATION: {
            "stacks": [{"project": "api", "stack": "dev"}, {"project": "web", "stack": "qa"}],
            "registryPackages": [{"source": "private", "publisher": DESTINATION, "name": "vpc"}],
        },
    },
}
PAGE_SIZE = 2
"""Smaller than every listing in WORLD, so each takes several pages."""


@dataclass(frozen=True)
class Rename:
    org: str
    project: str
    stack: str
    new_project: str
    new_name: str


@dataclass(frozen=True)
class Transfer:
    org: str
    project: str
    stack: str
    to_org: str


MOVES: list[Rename | Transfer] = [
    Rename(AGENT, "web", "dev", new_project="web", new_name="dev-old"),
    Rename(AGENT, "api", "staging", new_project="backend", new_name="staging"),
    Transfer(AGENT, "web", "prod", to_org=DESTINATION),
    Rename(AGENT, "api", "dev", new_project="api", new_name="dev-agent"),
    Transfer(AGENT, "api", "dev-agent", to_org=DESTINATION),
]
"""A rename, a rename that changes project, a transfer, and a rename then transfer (the
destination already has api/dev)."""

StackName = tuple[str, str, str]


def sdk_api_client(server: EmulatorServer, token: str = "tok-alice") -> ApiClient:
    configuration = Configuration()
    configuration.host = server.url
    configuration.access_token = token
    return ApiClient(configuration)


def move_with_sdk(server: EmulatorServer, moves: Sequence[Rename | Transfer]) -> None:
    stacks = StacksApi(sdk_api_client(server))
    for move in moves:
        if isinstance(move, Rename):
            request = sdk_models.AppStackRenameRequest(
                new_name=move.new_name, new_project=move.new_project
            )
            assert stacks.rename_stack(move.org, move.project, move.stack, request).update_id
        else:
            request = sdk_models.TransferStackRequest(to_org=move.to_org)
            stacks.transfer_stack(move.org, move.project, move.stack, request)


async def move_with_toolkit(server: EmulatorServer, moves: Sequence[Rename | Transfer]) -> None:
    async with CloudClient(server.url, "tok-alice") as client:
        for move in moves:
            if isinstance(move, Rename):
                await client.rename_stack(
                    move.org,
                    move.project,
                    move.stack,
                    new_project=move.new_project,
                    new_name=move.new_name,
                )
            else:
                await client.transfer_stack(move.org, move.project, move.stack, to_org=move.to_org)


def stack_ids(state: ServiceState) -> dict[str, StackName]:
    """Each stack's id -> where it is now, read from the emulator's state without HTTP."""
    found = {}
    for org in state.org_names():
        for project, stack in state.stack_names(org):
            record = state.find_stack(org, project, stack)
            assert record is not None
            found[record.id] = (org, project, stack)
    return found


def every_stack(state: ServiceState, started_as: dict[str, StackName]) -> dict[StackName, Any]:
    """Every stack of every org, by name: which stack of the starting world it is, and what it
    holds. Ids are random per emulator, so a stack is known by its starting name instead."""
    found = {}
    for record_id, (org, project, stack) in stack_ids(state).items():
        record = state.find_stack(org, project, stack)
        assert record is not None
        found[(org, project, stack)] = (
            started_as[record_id],
            record.resource_count,
            record.last_update,
            record.tags,
            record.version,
        )
    return found


def test_renames_and_transfers_have_the_same_effect_through_the_sdk_and_the_toolkit(
    make_emulator: EmulatorFactory,
) -> None:
    via_sdk = make_emulator(WORLD)
    via_toolkit = make_emulator(WORLD)
    sdk_started = stack_ids(via_sdk.state)
    toolkit_started = stack_ids(via_toolkit.state)

    move_with_sdk(via_sdk, MOVES)
    asyncio.run(move_with_toolkit(via_toolkit, MOVES))

    after_sdk = every_stack(via_sdk.state, sdk_started)
    assert after_sdk == every_stack(via_toolkit.state, toolkit_started)
    moved = {name: started for name, (started, *_) in after_sdk.items() if name != started}
    assert moved == {
        (AGENT, "web", "dev-old"): (AGENT, "web", "dev"),
        (AGENT, "backend", "staging"): (AGENT, "api", "staging"),
        (DESTINATION, "web", "prod"): (AGENT, "web", "prod"),
        (DESTINATION, "api", "dev-agent"): (AGENT, "api", "dev"),
    }
    assert len(after_sdk) == len(sdk_started)


@dataclass(frozen=True)
class Listing:
    """One listing read both ways: through the SDK (page by page) and through CloudClient."""

    name: str
    expected: int
    """How many items WORLD holds for it."""
    sdk_page: Callable[[ApiClient, str | None], Any]
    sdk_items: Callable[[Any], list[Any]]
    sdk_next: Callable[[Any], str | None]
    toolkit: Callable[[CloudClient], Awaitable[Sequence[WireModel]]]


async def every_stack_root(client: CloudClient) -> list[ResourceResult]:
    """The root resource of each stack of the agent's org, through the resource search."""
    found = client.search_resources(AGENT, "type:pulumi:pulumi:Stack", properties=True)
    return [resource async for resource in found]


LISTINGS = [
    Listing(
        "stacks",
        7,
        lambda api, token: UsersApi(api).list_user_stacks(
            organization=AGENT, continuation_token=token
        ),
        lambda page: page.stacks,
        lambda page: page.continuation_token,
        lambda client: client.list_stacks(AGENT),
    ),
    Listing(
        "stacks-of-a-project",
        3,
        lambda api, token: UsersApi(api).list_user_stacks(
            organization=AGENT, project="web", continuation_token=token
        ),
        lambda page: page.stacks,
        lambda page: page.continuation_token,
        lambda client: client.list_stacks(AGENT, project="web"),
    ),
    Listing(
        "environments",
        5,
        lambda api, token: EnvironmentsApi(api).list_org_environments_esc(
            AGENT, continuation_token=token
        ),
        lambda page: page.environments,
        lambda page: page.next_token,
        lambda client: client.list_environments(AGENT),
    ),
    Listing(
        "insights-accounts",
        4,
        lambda api, token: InsightsApi(api).list_accounts(AGENT, continuation_token=token),
        lambda page: page.accounts or [],
        lambda page: page.next_token,
        lambda client: client.list_insights_accounts(AGENT),
    ),
    Listing(
        "registry-packages",
        4,
        lambda api, token: RegistryPreviewApi(api).list_packages_preview(
            org_login=AGENT, continuation_token=token
        ),
        lambda page: [p for p in page.packages if p.publisher == AGENT],
        lambda page: page.continuation_token,
        lambda client: client.list_registry_packages(AGENT),
    ),
    Listing(
        "resource-search",
        6,  # a root for each stack with resources (the first has none)
        lambda api, token: OrganizationsApi(api).get_org_resource_search_v2_query(
            AGENT, query="type:pulumi:pulumi:Stack", properties=True, cursor=token
        ),
        lambda page: page.resources,
        lambda page: page.pagination.cursor if page.pagination else None,
        every_stack_root,
    ),
]


def read_every_page(listing: Listing, api: ApiClient) -> tuple[list[Any], int]:
    """Every item of a listing through the SDK, following its page tokens; and the pages."""
    items: list[Any] = []
    token: str | None = None
    pages = 0
    while True:
        page = listing.sdk_page(api, token)
        pages += 1
        items += listing.sdk_items(page)
        token = listing.sdk_next(page)
        if not token:
            return items, pages


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda listing: listing.name)
def test_listings_read_the_same_through_the_sdk_and_the_toolkit(
    make_emulator: EmulatorFactory, listing: Listing
) -> None:
    server = make_emulator(WORLD, page_size=PAGE_SIZE)
    sdk_items, pages = read_every_page(listing, sdk_api_client(server))

    async def read_with_toolkit() -> Sequence[WireModel]:
        async with CloudClient(server.url, "tok-alice") as client:
            return await listing.toolkit(client)

    from_toolkit = asyncio.run(read_with_toolkit())
    assert pages > 1
    assert len(from_toolkit) == len(sdk_items) == listing.expected
    for ours, sdk in zip(from_toolkit, sdk_items, strict=True):
        assert differences(ours, sdk) == []


def test_single_reads_are_the_same_through_the_sdk_and_the_toolkit(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(WORLD)
    api = sdk_api_client(server)
    sdk_user = UsersApi(api).get_current_user()
    sdk_stack = StacksApi(api).get_stack(AGENT, "web", "dev")
    sdk_claim = AI_AgentsApi(api).signup_validate("claim-abc")

    async def read_with_toolkit() -> tuple[User, AppStack, AgentClaimResponse]:
        async with CloudClient(server.url, "tok-alice") as client:
            return (
                await client.get_current_user(),
                await client.get_stack(AGENT, "web", "dev"),
                await client.validate_claim_token("claim-abc"),
            )

    user, stack, claim = asyncio.run(read_with_toolkit())
    assert differences(user, sdk_user) == []
    assert differences(stack, sdk_stack) == []
    assert differences(claim, sdk_claim) == []
    assert len(claim.entities) == 7 + 5 + 4 + 4


# --- The agent API: the SDK's own calls, and what the toolkit sends and receives ----------


AGENT_ANSWERS = {
    ("GET", "/api/agents/signup"): AgentSignupChallenge,
    ("POST", "/api/agents/signup"): AgentSignupResponse,
    ("POST", f"/api/agents/{DESTINATION}/claim"): AgentClaimResponse,
    ("GET", f"/api/agents/{DESTINATION}/claim/status"): AgentClaimsStatus,
}
"""What each agent call the toolkit makes answers with."""


def agent_world() -> dict[str, Any]:
    return {**WORLD, "service": {"signupDifficulty": 6, "claimMoves": "launch"}}


def test_the_sdk_signs_up_validates_claims_and_reads_the_status_from_the_emulator(
    make_emulator: EmulatorFactory,
) -> None:
    server = make_emulator(agent_world())
    anonymous = AI_AgentsApi(sdk_api_client(server, token=""))
    challenge = anonymous.signup_challenge()
    answer = solve_signup_challenge(challenge.challenge_data)
    account = anonymous.signup(
        sdk_models.AgentSignupRequest(challenge_id=challenge.challenge_id, challenge_result=answer)
    )
    login = account.user_info.github_login
    assert account.user_info.is_agent is True
    assert UsersApi(sdk_api_client(server, account.access_token)).get_current_user().is_agent

    claim = anonymous.signup_validate("claim-abc")
    assert len(claim.entities) == 7 + 5 + 4 + 4
    renames = [
        sdk_models.TransferEntityStackRename(
            project_name="api",
            stack_name="dev",
            rename_as=sdk_models.TransferEntityStack(project_name="api", stack_name="dev-agent"),
        )
    ]
    alice = AI_AgentsApi(sdk_api_client(server))
    request = sdk_models.AgentClaimRequest(claim_token="claim-abc", conflicts_resolution=renames)
    preview = alice.claim(DESTINATION, request, dry_run=True)
    blocked = alice.claim(DESTINATION, request)  # no dryRun: a commit, blocked by failures
    assert preview.conflicts == [] and len(preview.failures) == 5 + 4 + 4
    assert blocked.transfer_token is None
    assert alice.claim_status(DESTINATION).claims == {}

    fresh = anonymous.signup_validate(account.claim_token)
    assert fresh.agent.login == login and fresh.entities == []
    committed = alice.claim(
        DESTINATION, sdk_models.AgentClaimRequest(claim_token=account.claim_token)
    )
    assert committed.transfer_token
    assert list(alice.claim_status(DESTINATION).claims) == [committed.transfer_token]
    with pytest.raises(HTTPError) as refused:
        UsersApi(sdk_api_client(server, account.access_token)).get_current_user()
    assert refused.value.code == 401  # a claim soft-deletes the agent's token


def test_the_toolkit_s_agent_calls_speak_the_sdk_s_shapes(make_emulator: EmulatorFactory) -> None:
    """What CloudClient sends reads into the SDK's request models; what the emulator answers
    reads into the SDK's response models, as the toolkit reads it."""
    server = make_emulator(agent_world())
    recorder = WireRecorder()
    renames = [
        TransferEntityStackRename(
            project_name="api",
            stack_name="dev",
            rename_as=TransferEntityStack(project_name="api", stack_name="dev-agent"),
        )
    ]

    async def run() -> str:
        async with CloudClient(server.url, "", trace_configs=[recorder.trace]) as anonymous:
            challenge = await anonymous.agent_signup_challenge()
            account = await anonymous.sign_up_agent(
                challenge.challenge_id, solve_signup_challenge(challenge.challenge_data)
            )
        async with CloudClient(server.url, "tok-alice", trace_configs=[recorder.trace]) as alice:
            await alice.claim_agent(DESTINATION, "claim-abc", renames, dry_run=True)
            await alice.claim_agent(DESTINATION, account.claim_token, [], dry_run=False)
            await alice.agent_claims_status(DESTINATION)
        return account.claim_token

    claim_token = asyncio.run(run())

    (signup,) = recorder.sent("POST", "/api/agents/signup")
    assert default_encoder.deserialize(signup, "AgentSignupRequest").challenge_result
    claims = recorder.sent("POST", f"/api/agents/{DESTINATION}/claim")
    sdk_claims = [default_encoder.deserialize(sent, "AgentClaimRequest") for sent in claims]
    assert [c.claim_token for c in sdk_claims] == ["claim-abc", claim_token]
    assert sdk_kinds(sdk_claims[0].conflicts_resolution) == ["TransferEntityStackRename"]
    requests = recorder.exchanges
    assert [r.headers.get("Authorization") for r in requests[:2]] == [None, None]
    assert [r.url.query.get("dryRun") for r in requests[2:4]] == ["true", "false"]

    assert len(recorder.exchanges) == len(AGENT_ANSWERS) + 1
    for request in recorder.exchanges:
        answer = request.answer_json()
        model = AGENT_ANSWERS[(request.method, request.url.path)]
        sdk_answer = default_encoder.deserialize(answer, model.__name__)
        assert differences(model.model_validate(answer), sdk_answer) == []
