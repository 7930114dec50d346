"""A deployment's secrets, comparisons and integrity: pure functions, by examples and properties.

`integrity_problem` follows `Snapshot.VerifyIntegrity` (pkg/resource/deploy/snapshot.go in
pulumi v3.274.1) rule by rule; the cases below are the ones that code tells apart, and one test
hands them all to the real `pulumi` CLI, which must load exactly those that pass.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.automation import LocalWorkspace
from pulumi.automation.errors import CommandError

from toolkit.credentials import BackendIdentity
from toolkit.stack_state import (
    ciphertexts,
    difference,
    integrity_problem,
    opened,
    plaintexts,
    sealed,
    secrets,
    service_secrets_provider,
    stored_secrets,
)
from toolkit.urns import SECRET_SIG, SIG_KEY, UNKNOWN_PROVIDER_ID
from toolkit.workspaces import SELF_MANAGED_ORG, isolated_workspace, run_pulumi


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:dev::web::{type_}::{name}"


def secret(value: Any) -> dict[str, Any]:
    """An open secret, as `pulumi stack export --show-secrets` writes it: the value's JSON."""
    return {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}


def sealed_secret(ciphertext: str) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "ciphertext": ciphertext}


ROOT = urn("pulumi:pulumi:Stack", "web-dev")
DEFAULT_PROVIDER = urn("pulumi:providers:random", "default_4_16_7")
DEFAULT_PROVIDER_ID = "5b0d7a0e-2f8e-4b8f-9c47-6f3d0a8e1c21"
SERVICE = urn("app:index:Service", "api")
SERVICE_PROVIDER = urn("app:index:Service$pulumi:providers:random", "api-random")
SERVICE_PROVIDER_ID = "c3a1f1d4-8a57-4f55-b3a4-0e6c2b9d7f10"
PASSWORD = urn("app:index:Service$random:index/randomPassword:RandomPassword", "api-password")
SUFFIX = urn("app:index:Service$random:index/randomId:RandomId", "api-suffix")
PET = urn("random:index/randomPet:RandomPet", "pet")


def realistic_deployment() -> dict[str, Any]:
    """A deployment as the CLI exports it: the root stack, a default provider and an explicit
    one, a component with custom children, every kind of reference between them, and a
    replaced resource whose old copy is still being deleted (the CLI loads it: see
    `test_the_cli_loads_what_holds_together_and_refuses_the_rest`)."""
    moment = "2026-11-20T10:00:00.000000Z"

    def resource(urn_: str, type_: str, **fields: Any) -> dict[str, Any]:
        return {"urn": urn_, "type": type_, "created": moment, "modified": moment, **fields}

    return {
        "manifest": {
            "time": moment,
            "magic": "294a449188e3da4517a05ae33e5c1307bbafa419a82735db7986e01d5ec6b1c0",
            "version": "v3.274.1",
        },
        "secrets_providers": service_secrets_provider(
            "https://api.pulumi.com", "acme", "web", "dev"
        ),
        "resources": [
            resource(
                ROOT,
                "pulumi:pulumi:Stack",
                custom=False,
                outputs={"password": secret("hunter2-but-longer"), "petName": "pet-wombat"},
            ),
            resource(
                DEFAULT_PROVIDER,
                "pulumi:providers:random",
                custom=True,
                id=DEFAULT_PROVIDER_ID,
                inputs={"__internal": {}, "version": "4.16.7"},
                outputs={"version": "4.16.7"},
            ),
            resource(SERVICE, "app:index:Service", custom=False, parent=ROOT),
            resource(
                SERVICE_PROVIDER,
                "pulumi:providers:random",
                custom=True,
                id=SERVICE_PROVIDER_ID,
                parent=SERVICE,
                inputs={"version": "4.16.7"},
                outputs={"version": "4.16.7"},
            ),
            resource(
                PASSWORD,
                "random:index/randomPassword:RandomPassword",
                custom=True,
                id="none",
                parent=SERVICE,
                provider=f"{SERVICE_PROVIDER}::{SERVICE_PROVIDER_ID}",
                inputs={"length": 18, "special": False},
                outputs={
                    "length": 18,
                    "result": secret("hunter2-but-longer"),
                    "bcryptHash": secret("$2a$10$abcdefghijklmnopqrstuv"),
                },
                propertyDependencies={"length": [], "special": []},
                additionalSecretOutputs=["bcryptHash", "result"],
                deletedWith=SERVICE,
            ),
            resource(
                SUFFIX,
                "random:index/randomId:RandomId",
                custom=True,
                id="3q2-7w",
                parent=SERVICE,
                provider=f"{SERVICE_PROVIDER}::{SERVICE_PROVIDER_ID}",
                inputs={"byteLength": 4, "keepers": {"password": secret("hunter2-but-longer")}},
                outputs={"byteLength": 4, "hex": "deadbeef"},
                dependencies=[PASSWORD],
                propertyDependencies={"keepers": [PASSWORD], "byteLength": []},
                replaceWith=[PASSWORD],
            ),
            resource(
                PET,
                "random:index/randomPet:RandomPet",
                custom=True,
                id="pet-wombat",
                parent=ROOT,
                provider=f"{DEFAULT_PROVIDER}::{DEFAULT_PROVIDER_ID}",
                inputs={"length": 2, "prefix": "pet"},
                outputs={"id": "pet-wombat", "length": 2, "prefix": "pet"},
                dependencies=[SERVICE, SUFFIX],
            ),
            resource(
                PET,
                "random:index/randomPet:RandomPet",
                custom=True,
                id="pet-koala",
                parent=ROOT,
                provider=f"{DEFAULT_PROVIDER}::{DEFAULT_PROVIDER_ID}",
                inputs={"length": 1, "prefix": "pet"},
                outputs={"id": "pet-koala", "length": 1, "prefix": "pet"},
                delete=True,
            ),
        ],
        "metadata": {},
    }


# --- Secrets: finding, sealing, opening -----------------------------------------------------

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
_KEYS = st.text(max_size=6)
"""Short keys: none can be `SIG_KEY`, nor the 9 letters of `plaintext` or `ciphertext`."""
JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=8,
)
PROPERTY_VALUES = st.recursive(
    _JSON_LEAVES | JSON_VALUES.map(secret),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=12,
)
"""Property values with open secrets anywhere among them (often equal ones: `null`, `0`...)."""
PROPERTIES = st.dictionaries(_KEYS, PROPERTY_VALUES, max_size=4)


@st.composite
def open_deployments(draw: st.DrawFn) -> dict[str, Any]:
    """A deployment whose resources hold open secrets anywhere in their inputs and outputs."""
    resources = []
    for index in range(draw(st.integers(0, 4))):
        resource: dict[str, Any] = {
            "urn": urn("app:index:Thing", f"thing-{index}"),
            "type": "app:index:Thing",
            "custom": False,
        }
        for field in ("inputs", "outputs"):
            if draw(st.booleans()):
                resource[field] = draw(PROPERTIES)
        resources.append(resource)
    return {"manifest": {"time": "2026-11-20T10:00:00Z"}, "resources": resources}


def count_of(key: str, deployment: dict[str, Any]) -> int:
    """How many objects of `deployment` have the key `key`, read from its JSON text rather
    than by walking it as the code under test does."""
    return json.dumps(deployment).count(f'"{key}":')


@settings(max_examples=200, deadline=None)
@given(open_deployments())
def test_sealing_then_opening_gives_back_the_deployment(deployment: dict[str, Any]) -> None:
    before = copy.deepcopy(deployment)
    texts = plaintexts(deployment)
    assert len(texts) == count_of("plaintext", deployment)
    assert stored_secrets(deployment).any_open == bool(texts)

    minted = [f"v1:sealed-{index}" for index in range(len(texts))]
    closed = sealed(deployment, minted)
    assert count_of("plaintext", closed) == 0
    assert count_of("ciphertext", closed) == len(texts)
    assert not stored_secrets(closed).any_open
    assert stored_secrets(closed).ciphertexts == minted
    assert ciphertexts(closed) == minted, "each secret gets its own ciphertext, in order"

    assert opened(closed, dict(zip(minted, texts, strict=True))) == deployment
    assert deployment == before, "neither function changes what it is given"


def test_sealing_and_opening_share_what_holds_no_secret() -> None:
    """A state of 20,000 resources is not copied whole to seal or open its secrets: only the
    objects and lists on the way to a secret are new."""
    plain = {"urn": PET, "inputs": {"length": 2}, "dependencies": [ROOT]}
    deployment = {
        "manifest": {"time": "2026-11-20T10:00:00Z"},
        "resources": [{"urn": ROOT, "outputs": {"a": secret(1), "b": {"c": 2}}}, plain],
    }

    closed = sealed(deployment, ["c1"])
    reopened = opened(closed, {"c1": "1"})

    for copy_ in (closed, reopened):
        first, second = copy_["resources"]
        assert second is plain
        assert first["outputs"]["b"] is deployment["resources"][0]["outputs"]["b"]
        assert first is not deployment["resources"][0]
    assert reopened == deployment
    assert closed["resources"][0]["outputs"]["a"] == sealed_secret("c1")


def test_equal_plaintexts_each_get_their_own_ciphertext_in_order() -> None:
    deployment = {
        "resources": [
            {"urn": ROOT, "outputs": {"a": secret("same"), "b": [secret("same")]}},
            {"urn": PET, "inputs": {"c": {"d": secret("same")}, "e": secret("other")}},
        ]
    }
    assert plaintexts(deployment) == ['"same"', '"same"', '"same"', '"other"']
    closed = sealed(deployment, ["c1", "c2", "c3", "c4"])
    first, second = closed["resources"]
    assert first["outputs"] == {"a": sealed_secret("c1"), "b": [sealed_secret("c2")]}
    assert second["inputs"] == {"c": {"d": sealed_secret("c3")}, "e": sealed_secret("c4")}


def test_sealing_with_more_ciphertexts_than_secrets_is_refused() -> None:
    deployment = {"resources": [{"urn": ROOT, "outputs": {"a": secret(1)}}]}
    with pytest.raises(ValueError, match="more ciphertexts than secrets"):
        sealed(deployment, ["c1", "c2"])


def test_sealing_with_fewer_ciphertexts_than_secrets_is_refused_even_in_a_coroutine() -> None:
    deployment = {"resources": [{"urn": ROOT, "outputs": {"a": secret(1), "b": secret(2)}}]}
    with pytest.raises(ValueError, match="fewer ciphertexts than secrets"):
        sealed(deployment, ["c1"])

    async def sealing() -> dict[str, Any]:
        return sealed(deployment, ["c1"])

    with pytest.raises(ValueError, match="fewer ciphertexts than secrets"):
        asyncio.run(sealing())


def test_secrets_outside_the_resources_are_left_alone() -> None:
    """Pending operations, the manifest and the secrets provider's state are not resources:
    nothing there is sealed, opened or counted."""
    outside = {
        "pending_operations": [
            {
                "resource": {"urn": PET, "outputs": {"a": secret("pending")}},
                "type": "creating",
            },
            {"resource": {"urn": PET, "outputs": {"b": sealed_secret("old")}}, "type": "updating"},
        ],
        "manifest": {"time": "2026-11-20T10:00:00Z", "note": secret("manifest")},
    }
    deployment = {**outside, "resources": [{"urn": ROOT, "outputs": {"a": secret("inside")}}]}

    assert plaintexts(deployment) == ['"inside"']
    assert not stored_secrets(outside).any_open
    closed = sealed(deployment, ["c1"])
    assert {key: closed[key] for key in outside} == outside
    assert ciphertexts(closed) == ["c1"]
    reopened = opened(closed, {"c1": '"inside"'})
    assert {key: reopened[key] for key in outside} == outside
    assert reopened["resources"] == deployment["resources"]


def test_secrets_are_found_in_document_order() -> None:
    value = {"a": [secret(1), {"b": secret(2)}], "c": sealed_secret("c3"), "d": [[secret(4)]]}
    assert list(secrets(value)) == [secret(1), secret(2), sealed_secret("c3"), secret(4)]


# --- Comparing two deployments --------------------------------------------------------------


def two_resources() -> dict[str, Any]:
    return {
        "resources": [
            {"urn": ROOT, "type": "pulumi:pulumi:Stack", "outputs": {"key": secret({"n": 1})}},
            {"urn": PET, "type": "random:index/randomPet:RandomPet", "inputs": {"length": 2}},
        ]
    }


def test_equal_deployments_have_no_difference() -> None:
    landed = two_resources()
    landed["resources"][0]["modified"] = "2026-12-01T00:00:00Z"
    landed["resources"][1]["outputs"] = {}
    assert difference(two_resources(), landed) is None


def test_a_different_count_of_resources_is_named() -> None:
    landed = two_resources()
    del landed["resources"][1]
    assert difference(two_resources(), landed) == "has 1 resources, the source 2"
    assert difference(two_resources(), {}) == "has 0 resources, the source 2"


def test_a_different_urn_is_named() -> None:
    landed = two_resources()
    landed["resources"][1]["urn"] = SERVICE
    assert difference(two_resources(), landed) == f"has {SERVICE} where the source has {PET}"


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [
        (1, "inputs", {"length": 3}),
        (0, "outputs", {"key": secret({"n": 2})}),
        (0, "outputs", {"key": {"n": 1}}),
        (1, "outputs", {"length": 2}),
    ],
    ids=["other input", "other secret", "secret landed as plain value", "outputs added"],
)
def test_other_values_are_named_by_the_resource(index: int, field: str, value: Any) -> None:
    landed = two_resources()
    landed["resources"][index][field] = value
    urn_ = two_resources()["resources"][index]["urn"]
    assert difference(two_resources(), landed) == f"holds other values for {urn_} than the source"


def test_secrets_are_compared_by_their_values_not_their_json_text() -> None:
    landed = two_resources()
    landed["resources"][0]["outputs"]["key"] = {SIG_KEY: SECRET_SIG, "plaintext": '{ "n" : 1 }'}
    assert difference(two_resources(), landed) is None


# --- Integrity ------------------------------------------------------------------------------

BUCKET = urn("random:index/randomId:RandomId", "bucket")
OBJECT = urn("random:index/randomId:RandomId", "object")


def stack_with(*resources: dict[str, Any]) -> dict[str, Any]:
    """The root stack resource and the default provider, then `resources`."""
    return {
        "resources": [
            {"urn": ROOT, "type": "pulumi:pulumi:Stack", "custom": False},
            {
                "urn": DEFAULT_PROVIDER,
                "type": "pulumi:providers:random",
                "custom": True,
                "id": DEFAULT_PROVIDER_ID,
            },
            *resources,
        ]
    }


def custom(urn_: str, **fields: Any) -> dict[str, Any]:
    """A custom resource under the root, through the default provider."""
    return {
        "urn": urn_,
        "type": "random:index/randomId:RandomId",
        "custom": True,
        "id": urn_.rsplit("::", 1)[-1],
        "parent": ROOT,
        "provider": f"{DEFAULT_PROVIDER}::{DEFAULT_PROVIDER_ID}",
        **fields,
    }


def test_a_deployment_as_the_cli_writes_it_holds_together() -> None:
    assert integrity_problem(realistic_deployment()) is None
    assert (
        integrity_problem(stack_with(custom(BUCKET), custom(OBJECT, dependencies=[BUCKET]))) is None
    )
    assert integrity_problem({}) is None
    assert integrity_problem({"resources": []}) is None


def test_every_resource_needs_a_urn_and_a_type() -> None:
    assert integrity_problem(stack_with({"type": "x:y:Z"})) == (
        "the resource at index 2 has no URN"
    )
    assert integrity_problem(stack_with({"urn": BUCKET, "custom": True})) == (
        f"{BUCKET} has no type"
    )


def test_only_a_custom_resource_has_an_id() -> None:
    component = {"urn": SERVICE, "type": "app:index:Service", "parent": ROOT}
    assert integrity_problem(stack_with(component)) is None
    assert integrity_problem(stack_with({**component, "id": "svc"})) == (
        f"{SERVICE} is not a custom resource but has an ID"
    )
    assert integrity_problem(stack_with({**component, "custom": False, "id": ""})) is None


@pytest.mark.parametrize(
    "provider",
    [
        f"{DEFAULT_PROVIDER}::another-id",
        f"{SERVICE_PROVIDER}::{DEFAULT_PROVIDER_ID}",
        "no-separator",
    ],
    ids=["other id", "other provider", "no reference at all"],
)
def test_a_reference_to_an_unknown_provider_is_refused(provider: str) -> None:
    assert integrity_problem(stack_with(custom(BUCKET, provider=provider))) == (
        f"{BUCKET} refers to the unknown provider {provider}"
    )


def test_a_provider_must_come_before_the_resources_it_serves() -> None:
    late_provider = {
        "urn": SERVICE_PROVIDER,
        "type": "pulumi:providers:random",
        "custom": True,
        "id": SERVICE_PROVIDER_ID,
    }
    served = custom(BUCKET, provider=f"{SERVICE_PROVIDER}::{SERVICE_PROVIDER_ID}")
    assert integrity_problem(stack_with(late_provider, served)) is None
    assert integrity_problem(stack_with(served, late_provider)) == (
        f"{BUCKET} refers to the unknown provider {SERVICE_PROVIDER}::{SERVICE_PROVIDER_ID}"
    )


def without_provider_id(served_as: str) -> dict[str, Any]:
    """A provider stored without an ID, and a resource it serves, referred to as `served_as`."""
    deployment = stack_with(custom(BUCKET, provider=served_as))
    del deployment["resources"][1]["id"]
    return deployment


def test_a_provider_without_an_id_is_referred_to_by_the_unknown_id() -> None:
    """As the CLI's `providers.NewReference` names such a provider."""
    assert (
        integrity_problem(without_provider_id(f"{DEFAULT_PROVIDER}::{UNKNOWN_PROVIDER_ID}")) is None
    )
    assert integrity_problem(without_provider_id(f"{DEFAULT_PROVIDER}::")) == (
        f"{BUCKET} refers to the unknown provider {DEFAULT_PROVIDER}::"
    )


def test_a_resource_pending_replacement_may_name_an_unknown_provider() -> None:
    waiting = custom(BUCKET, provider=f"{DEFAULT_PROVIDER}::gone", pendingReplacement=True)
    assert integrity_problem(stack_with(waiting)) is None


REFERENCES = [
    ("parent", OBJECT, "parent"),
    ("dependencies", [OBJECT], "dependency"),
    ("propertyDependencies", {"keepers": [OBJECT]}, "property dependency (from keepers)"),
    ("deletedWith", OBJECT, "deleted-with resource"),
    ("replaceWith", [OBJECT], "replace-with resource"),
]


@pytest.mark.parametrize(("field", "value", "what"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_a_referred_resource_that_is_missing_is_named(field: str, value: Any, what: str) -> None:
    assert integrity_problem(stack_with(custom(BUCKET, **{field: value}))) == (
        f"{BUCKET}'s {what} {OBJECT} is missing"
    )


@pytest.mark.parametrize(("field", "value", "what"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_a_referred_resource_that_comes_later_is_named(field: str, value: Any, what: str) -> None:
    assert integrity_problem(stack_with(custom(BUCKET, **{field: value}), custom(OBJECT))) == (
        f"{BUCKET}'s {what} {OBJECT} comes after it"
    )
    assert integrity_problem(stack_with(custom(OBJECT), custom(BUCKET, **{field: value}))) is None


def test_empty_references_are_no_references() -> None:
    empty = custom(
        BUCKET, dependencies=[""], propertyDependencies={"a": [""], "b": None}, replaceWith=[""]
    )
    assert integrity_problem(stack_with(empty)) is None


def test_a_resource_cannot_depend_on_itself() -> None:
    assert integrity_problem(stack_with(custom(BUCKET, dependencies=[BUCKET]))) == (
        f"{BUCKET}'s dependency {BUCKET} is missing"
    )


@pytest.mark.parametrize(
    ("deleting", "problem"),
    [
        ([False, False], True),
        ([False, True], False),
        ([True, False], False),
        ([True, True], False),
        ([False, True, False], True),
        ([True, False, True], False),
        ([True, True, True], False),
    ],
)
def test_a_urn_appears_twice_only_while_all_copies_but_one_are_deleted(
    deleting: list[bool], problem: bool
) -> None:
    copies = [custom(BUCKET, delete=True) if flag else custom(BUCKET) for flag in deleting]
    found = integrity_problem(stack_with(*copies))
    if problem:
        assert found == f"{BUCKET} appears twice, neither copy being deleted"
    else:
        assert found is None


def test_a_later_copy_of_a_urn_may_refer_to_an_earlier_one() -> None:
    """A replacement created before its old copy is deleted may depend on what the old copy
    depended on, and on the old copy's URN itself: it is in the state already."""
    old, new = custom(BUCKET, delete=True), custom(BUCKET, dependencies=[BUCKET])
    assert integrity_problem(stack_with(old, new)) is None


CLI_CASES: dict[str, dict[str, Any]] = {
    "realistic": realistic_deployment(),
    "no urn": stack_with({"type": "x:y:Z"}),
    "no type": stack_with({"urn": BUCKET, "custom": True}),
    "component with an id": stack_with({"urn": SERVICE, "type": "app:index:Service", "id": "s"}),
    "unknown provider": stack_with(custom(BUCKET, provider=f"{DEFAULT_PROVIDER}::another-id")),
    "provider after": {"resources": [custom(BUCKET), *stack_with()["resources"]]},
    "provider without id, unknown id": without_provider_id(
        f"{DEFAULT_PROVIDER}::{UNKNOWN_PROVIDER_ID}"
    ),
    "provider without id, empty id": without_provider_id(f"{DEFAULT_PROVIDER}::"),
    "unknown provider, pending replacement": stack_with(
        custom(BUCKET, provider=f"{DEFAULT_PROVIDER}::gone", pendingReplacement=True)
    ),
    **{
        f"{field} missing": stack_with(custom(BUCKET, **{field: value}))
        for field, value, _ in REFERENCES
    },
    **{
        f"{field} after": stack_with(custom(BUCKET, **{field: value}), custom(OBJECT))
        for field, value, _ in REFERENCES
    },
    **{
        f"{field} before": stack_with(custom(OBJECT), custom(BUCKET, **{field: value}))
        for field, value, _ in REFERENCES
    },
    "empty references": stack_with(custom(BUCKET, dependencies=[""], replaceWith=[""])),
    "depends on itself": stack_with(custom(BUCKET, dependencies=[BUCKET])),
    "two live copies": stack_with(custom(BUCKET), custom(BUCKET)),
    "a live copy and a deleted one": stack_with(custom(BUCKET, delete=True), custom(BUCKET)),
    "two deleted copies": stack_with(custom(BUCKET, delete=True), custom(BUCKET, delete=True)),
    "two live copies and a deleted one": stack_with(
        custom(BUCKET), custom(BUCKET, delete=True), custom(BUCKET)
    ),
}
"""Deployments of stack `dev` of project `web`, each good or bad by one rule."""


@pytest.fixture(scope="module")
def file_backend_stack(
    pulumi_cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalWorkspace, Path]]:
    """A workspace of project `web` and the stored state file of its stack `dev`, in a
    file:// backend."""
    state = tmp_path_factory.mktemp("integrity") / "state"
    state.mkdir()
    identity = BackendIdentity(url=state.as_uri(), secrets_passphrase="integrity")
    with isolated_workspace(identity, project="web") as workspace:
        workspace.create_stack(f"{SELF_MANAGED_ORG}/web/dev")
        yield workspace, state / ".pulumi" / "stacks" / "web" / "dev.json"


def cli_loads(workspace: LocalWorkspace, state_file: Path, deployment: dict[str, Any]) -> bool:
    """Whether `pulumi stack` loads the stack once its state is `deployment` (under the
    stack's own secrets provider); the CLI checks a state's integrity whenever it loads it."""
    stored = json.loads(state_file.read_text())
    provider = stored["checkpoint"]["latest"]["secrets_providers"]
    stored["checkpoint"]["latest"] = {**deployment, "secrets_providers": provider}
    state_file.write_text(json.dumps(stored))
    try:
        run_pulumi(workspace, "stack", "--show-urns", "--stack", "dev")
    except CommandError:
        return False
    return True


def test_the_cli_loads_what_holds_together_and_refuses_the_rest(
    file_backend_stack: tuple[LocalWorkspace, Path],
) -> None:
    workspace, state_file = file_backend_stack
    verdicts = {
        name: (cli_loads(workspace, state_file, deployment), integrity_problem(deployment))
        for name, deployment in CLI_CASES.items()
    }
    disagreements = {
        name: problem for name, (loads, problem) in verdicts.items() if loads != (problem is None)
    }
    assert disagreements == {}
    assert verdicts["realistic"] == (True, None)


def test_the_secrets_provider_of_a_service_stack_names_the_stack() -> None:
    assert service_secrets_provider("https://api.example", "acme", "web", "dev") == {
        "type": "service",
        "state": {"url": "https://api.example", "owner": "acme", "project": "web", "stack": "dev"},
    }
