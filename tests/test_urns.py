"""Renaming a stack inside its state: against the real `pulumi stack rename`, and by properties."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from toolkit.credentials import BackendIdentity
from toolkit.urns import (
    OUTPUT_VALUE_SIG,
    RESOURCE_REFERENCE_SIG,
    SECRET_SIG,
    SIG_KEY,
    UNKNOWN_PROVIDER_ID,
    parse_urn,
    rename_deployment,
    rename_in_place,
)
from toolkit.workspaces import SELF_MANAGED_ORG, isolated_workspace, run_pulumi


def urn(type_: str, name: str, *, project: str = "web", stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def reference(target: str) -> dict[str, Any]:
    return {SIG_KEY: RESOURCE_REFERENCE_SIG, "urn": target, "packageVersion": ""}


def secret(plaintext: str) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "plaintext": plaintext}


ROOT = urn("pulumi:pulumi:Stack", "web-dev")
PROVIDER = urn("pulumi:providers:random", "default_4_0_0")
SERVICE = urn("app:index:Service", "api")
WORKER = urn("app:index:Service$app:index:Worker", "api::worker::0")
FOREIGN_PROJECT = urn("app:index:Service", "shared", project="billing")
FOREIGN_STACK = urn("app:index:Service", "shared", stack="prod")


def deployment_with_every_urn_field() -> dict[str, Any]:
    """One of each field `RenameStack` rewrites, plus URNs of other stacks it must not touch."""
    tricky_plaintext = json.dumps(
        {
            "service": reference(SERVICE),
            "elsewhere": reference(FOREIGN_STACK),
            "numbers": [1, 2.5, 1e21, 1e-7, 123456789012345678901, -0.0],
            "text": "<&>\u2028\u00e9\x01\x7f",
        },
        ensure_ascii=False,
        indent=2,
    )
    return {
        "manifest": {"time": "2026-11-20T10:00:00Z", "magic": "m", "version": "v3.274.1"},
        "resources": [
            {
                "urn": ROOT,
                "custom": False,
                "type": "pulumi:pulumi:Stack",
                "outputs": {
                    "service": reference(SERVICE),
                    "tricky": secret(tricky_plaintext),
                    "text": secret('"just text"'),
                    "encrypted": {SIG_KEY: SECRET_SIG, "ciphertext": "v1:abc"},
                    "output": {
                        SIG_KEY: OUTPUT_VALUE_SIG,
                        "value": reference(SERVICE),
                        "dependencies": [SERVICE, FOREIGN_PROJECT],
                    },
                },
            },
            {
                "urn": PROVIDER,
                "custom": True,
                "id": "provider-id",
                "type": "pulumi:providers:random",
                "parent": ROOT,
            },
            {
                "urn": SERVICE,
                "custom": False,
                "type": "app:index:Service",
                "parent": ROOT,
                "dependencies": [PROVIDER, FOREIGN_STACK],
                "propertyDependencies": {"size": [PROVIDER, SERVICE]},
                "aliases": [urn("app:index:Service", "api-old")],
                "deletedWith": PROVIDER,
                "inputs": {"peers": [reference(SERVICE), "plain", 3]},
            },
            {
                "urn": WORKER,
                "custom": True,
                "id": "worker-id",
                "type": "app:index:Worker",
                "parent": SERVICE,
                "provider": f"{PROVIDER}::provider-id",
                "replaceWith": [SERVICE],
                "replacementTrigger": [reference(SERVICE)],
            },
            {
                "urn": FOREIGN_PROJECT,
                "custom": False,
                "type": "app:index:Service",
                "parent": ROOT,
            },
        ],
        "metadata": {},
    }


def test_rename_matches_pulumi_stack_rename(pulumi_cli: Path, tmp_path: Path) -> None:
    """The CLI renames a self-managed stack's stored deployment with `RenameStack` itself, so
    planting a deployment there and renaming it gives the exact expected result."""
    state = tmp_path / "state"
    state.mkdir()
    deployment = deployment_with_every_urn_field()
    with isolated_workspace(
        BackendIdentity(url=state.as_uri(), secrets_passphrase="pass"), project="web"
    ) as workspace:
        workspace.create_stack(f"{SELF_MANAGED_ORG}/web/dev")
        stack_file = state / ".pulumi" / "stacks" / "web" / "dev.json"
        checkpoint = {"stack": f"{SELF_MANAGED_ORG}/web/dev", "latest": deployment}
        stack_file.write_text(json.dumps({"version": 3, "checkpoint": checkpoint}))
        run_pulumi(workspace, "stack", "rename", f"{SELF_MANAGED_ORG}/shop/prod", "--stack", "dev")
    renamed_file = state / ".pulumi" / "stacks" / "shop" / "prod.json"
    by_the_cli = json.loads(renamed_file.read_text())["checkpoint"]["latest"]

    assert by_the_cli == rename_deployment(
        deployment, old_project="web", old_stack="dev", new_project="shop", new_stack="prod"
    )


def renamed(deployment: dict[str, Any]) -> dict[str, Any]:
    return rename_deployment(
        deployment, old_project="web", old_stack="dev", new_project="shop", new_stack="prod"
    )


def test_the_root_stack_resource_takes_the_new_project_and_stack_name() -> None:
    root = renamed(deployment_with_every_urn_field())["resources"][0]
    assert root["urn"] == "urn:pulumi:prod::shop::pulumi:pulumi:Stack::shop-prod"


def test_urns_of_other_stacks_and_projects_stay_as_they_are() -> None:
    result = renamed(deployment_with_every_urn_field())
    service = result["resources"][2]
    assert service["dependencies"] == [
        urn("pulumi:providers:random", "default_4_0_0", project="shop", stack="prod"),
        FOREIGN_STACK,
    ]
    assert result["resources"][4]["urn"] == FOREIGN_PROJECT
    assert (
        result["resources"][4]["parent"] == "urn:pulumi:prod::shop::pulumi:pulumi:Stack::shop-prod"
    )


def test_ciphertext_and_plaintext_that_is_no_json_stay_as_they_are() -> None:
    deployment = deployment_with_every_urn_field()
    deployment["resources"][0]["outputs"]["text"] = secret("not json")
    outputs = renamed(deployment)["resources"][0]["outputs"]
    assert outputs["encrypted"]["ciphertext"] == "v1:abc"
    assert outputs["text"]["plaintext"] == "not json"


def test_a_provider_reference_without_id_gets_the_unknown_id() -> None:
    deployment = deployment_with_every_urn_field()
    deployment["resources"][3]["provider"] = f"{PROVIDER}::"
    worker = renamed(deployment)["resources"][3]
    assert worker["provider"] == (
        f"urn:pulumi:prod::shop::pulumi:providers:random::default_4_0_0::{UNKNOWN_PROVIDER_ID}"
    )


@pytest.mark.parametrize("provider", ["no-separator", f"{SERVICE}::id", "urn:pulumi:x::id"])
def test_an_unparsable_provider_reference_is_refused(provider: str) -> None:
    deployment = deployment_with_every_urn_field()
    deployment["resources"][3]["provider"] = provider
    with pytest.raises(ValueError, match="provider reference"):
        renamed(deployment)


def test_a_field_that_should_hold_a_urn_but_does_not_is_refused() -> None:
    deployment = deployment_with_every_urn_field()
    deployment["resources"][2]["parent"] = "web/dev/api"
    with pytest.raises(ValueError, match="not a URN"):
        renamed(deployment)


def test_the_name_of_a_resource_may_contain_the_urn_delimiter() -> None:
    parts = parse_urn(WORKER)
    assert (parts.stack, parts.project, parts.qualified_type, parts.name) == (
        "dev",
        "web",
        "app:index:Service$app:index:Worker",
        "api::worker::0",
    )


# --- Properties on generated deployments ------------------------------------------------------

# Names never contain "z", so the foreign stack and project below never collide with them.
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxy0123456789-_.", min_size=1, max_size=8)
RESOURCE_NAME = st.text(alphabet="abcxy0123-_.:", min_size=1, max_size=10)
ELSEWHERE = ("zz-other", "zz-elsewhere")
"""(project, stack) of URNs that belong to another stack and must never change."""


@st.composite
def deployments(draw: st.DrawFn, project: str, stack: str) -> dict[str, Any]:
    """A resource tree under the root stack resource: components, providers, custom resources
    with provider references, dependencies, aliases and resource references (also in secrets)."""

    def own(type_: str, name: str) -> str:
        return urn(type_, name, project=project, stack=stack)

    root = own("pulumi:pulumi:Stack", f"{project}-{stack}")
    foreign = urn("app:index:Thing", "x", project=ELSEWHERE[0], stack=ELSEWHERE[1])
    resources: list[dict[str, Any]] = [
        {"urn": root, "custom": False, "type": "pulumi:pulumi:Stack"}
    ]
    providers: list[str] = []
    for index in range(draw(st.integers(0, 8))):
        parent = draw(st.sampled_from(resources))
        kind = draw(st.sampled_from(["component", "provider", "custom"]))
        base = {"component": "app:index:Comp", "provider": "pulumi:providers:aws"}.get(
            kind, "aws:s3:Bucket"
        )
        qualified = (
            base if parent["urn"] == root or kind == "provider" else f"{parent['type']}${base}"
        )
        resource: dict[str, Any] = {
            "urn": own(qualified, f"{draw(RESOURCE_NAME)}{index}"),
            "custom": kind != "component",
            "type": base,
            "parent": parent["urn"],
        }
        earlier = [r["urn"] for r in resources] + [foreign]
        dependencies = draw(st.lists(st.sampled_from(earlier), max_size=3))
        if dependencies:
            resource["dependencies"] = dependencies
            resource["propertyDependencies"] = {"input": dependencies}
        if draw(st.booleans()):
            resource["aliases"] = [own(qualified, f"old-{index}")]
        if kind == "custom" and providers:
            resource["provider"] = f"{draw(st.sampled_from(providers))}::id-{index}"
        target = draw(st.sampled_from(earlier))
        as_json = json.dumps(reference(target), sort_keys=True, separators=(",", ":"))
        resource["outputs"] = {"peer": reference(target), "secretPeer": secret(as_json)}
        if kind == "provider":
            providers.append(resource["urn"])
        resources.append(resource)
    pending = draw(st.lists(st.sampled_from(resources), max_size=1))
    return {
        "manifest": {"time": "2026-11-20T10:00:00Z", "magic": "m", "version": "v3.274.1"},
        "resources": resources,
        "pending_operations": [{"resource": r, "type": "creating"} for r in pending],
    }


@st.composite
def renames(draw: st.DrawFn) -> tuple[tuple[str, str], tuple[str, str], dict[str, Any]]:
    old = (draw(NAME), draw(NAME))
    new = (draw(NAME), draw(NAME))
    assume(old != new)
    return old, new, draw(deployments(*old))


def rename(
    deployment: dict[str, Any], old: tuple[str, str], new: tuple[str, str]
) -> dict[str, Any]:
    return rename_deployment(
        deployment, old_project=old[0], old_stack=old[1], new_project=new[0], new_stack=new[1]
    )


def urn_prefix(project: str, stack: str) -> str:
    return f"urn:pulumi:{stack}::{project}::"


@settings(max_examples=150, deadline=None)
@given(renames())
def test_renaming_there_and_back_gives_the_original(
    case: tuple[tuple[str, str], tuple[str, str], dict[str, Any]],
) -> None:
    old, new, deployment = case
    assert rename(rename(deployment, old, new), new, old) == deployment


@settings(max_examples=150, deadline=None)
@given(renames())
def test_every_urn_of_the_stack_names_the_new_stack_and_nothing_else_changes(
    case: tuple[tuple[str, str], tuple[str, str], dict[str, Any]],
) -> None:
    old, new, deployment = case
    original = copy.deepcopy(deployment)
    result = rename(deployment, old, new)

    assert deployment == original, "the input must not be modified"
    before, after = json.dumps(deployment), json.dumps(result)
    assert urn_prefix(*old) not in after
    assert after.count(urn_prefix(*new)) == before.count(urn_prefix(*old))
    assert after.count(urn_prefix(*ELSEWHERE)) == before.count(urn_prefix(*ELSEWHERE))
    assert len(result["resources"]) == len(deployment["resources"])
    assert len(result["pending_operations"]) == len(deployment["pending_operations"])
    assert [r["type"] for r in result["resources"]] == [r["type"] for r in deployment["resources"]]


@settings(max_examples=100, deadline=None)
@given(renames())
def test_renaming_in_place_gives_what_a_renamed_copy_holds_without_a_copy(
    case: tuple[tuple[str, str], tuple[str, str], dict[str, Any]],
) -> None:
    """A migration renames the state it read in place: a large state is not copied whole."""
    old, new, deployment = case
    expected = rename(deployment, old, new)
    resources = deployment["resources"]
    rename_in_place(
        deployment, old_project=old[0], old_stack=old[1], new_project=new[0], new_stack=new[1]
    )
    assert deployment == expected
    assert deployment["resources"] is resources, "the same resources, rewritten"
