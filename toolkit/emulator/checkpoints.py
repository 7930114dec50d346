"""Stack checkpoints as the service stores them: untyped deployments, `{"version", "deployment"}`.

The emulator keeps checkpoints as the CLI sends them and only reads or rewrites the few parts
the service itself cares about: how many resources there are, which stack the `service`
secrets manager recorded in them (it names the stack whose key decrypts them), and, on a
rename, the URNs that embed the stack's project and name.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from toolkit.stack_references import STACK_REFERENCE_TYPE
from toolkit.urns import SECRET_SIG, SIG_KEY, rename_deployment

SUPPORTED_VERSIONS = range(1, 5)
"""Deployment schema versions the CLI reads (1 and 2 are migrated up, 3 and 4 read as is)."""

PLACEHOLDER_TYPE = "pulumi-claim:emulator:Placeholder"
"""Type of the component resources that stand in for a world stack's declared resources."""

_ROOT_TYPE = "pulumi:pulumi:Stack"
_PROVIDER_TYPE = "pulumi:providers:pulumi"

PLACEHOLDER_TYPES = frozenset({_ROOT_TYPE, PLACEHOLDER_TYPE})
"""The types of a checkpoint made from a resource count alone (`placeholder_deployment`)."""

UntypedDeployment = dict[str, Any]


def checked_deployment(document: Any) -> UntypedDeployment:
    """`document` if it is an untyped deployment the CLI can read; ValueError saying why not."""
    if not isinstance(document, dict):
        raise ValueError("a deployment must be an object with `version` and `deployment`")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("the deployment's `version` must be an integer")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"deployment schema version {version} is not supported")
    if not isinstance(document.get("deployment"), dict):
        raise ValueError("the deployment's `deployment` must be an object")
    resources = document["deployment"].get("resources")
    if resources is not None and not isinstance(resources, list):
        raise ValueError("the deployment's `resources` must be a list")
    return document


def empty_deployment(at: datetime) -> UntypedDeployment:
    """What a stack that was never updated exports: a manifest and no resources."""
    return {
        "version": 3,
        "deployment": {"manifest": {"time": at.isoformat(), "magic": "", "version": ""}},
    }


def placeholder_deployment(
    project: str,
    stack: str,
    count: int,
    at: datetime,
    *,
    stack_references: Sequence[str] = (),
) -> UntypedDeployment:
    """A checkpoint for a stack a world file declares with `count` resources: the root stack
    resource and `count - 1` placeholder components under it, none of which needs a provider;
    then, for its `stack_references`, the default `pulumi` provider and a StackReference
    read for each name (with no root declared, the root comes with them)."""
    root = f"urn:pulumi:{stack}::{project}::{_ROOT_TYPE}::{project}-{stack}"
    moment = at.isoformat()
    resources = [{"urn": root, "custom": False, "type": _ROOT_TYPE, "outputs": {}}]
    resources += [
        {
            "urn": f"urn:pulumi:{stack}::{project}::{_ROOT_TYPE}${PLACEHOLDER_TYPE}::resource-{n}",
            "custom": False,
            "type": PLACEHOLDER_TYPE,
            "parent": root,
        }
        for n in range(1, count)
    ]
    if stack_references:
        resources += _stack_reference_resources(project, stack, root, stack_references)
    for resource in resources:
        resource.update(created=moment, modified=moment)
    deployment = empty_deployment(at)
    deployment["deployment"]["resources"] = resources if count or stack_references else []
    return deployment


def _stack_reference_resources(
    project: str, stack: str, root: str, names: Sequence[str]
) -> list[dict[str, Any]]:
    """What the pulumi CLI writes for a program's `StackReference(name)`s: the default
    `pulumi:providers:pulumi` provider, and for each name an external resource read through
    it, whose ID, `name` input and `name` output are the name as written (the outputs
    read, here none)."""
    provider_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{project}/{stack}"))
    provider = f"urn:pulumi:{stack}::{project}::{_PROVIDER_TYPE}::default"
    resources: list[dict[str, Any]] = [
        {"urn": provider, "custom": True, "id": provider_id, "type": _PROVIDER_TYPE}
    ]
    resources += [
        {
            "urn": f"urn:pulumi:{stack}::{project}::{STACK_REFERENCE_TYPE}::{name}",
            "custom": True,
            "id": name,
            "type": STACK_REFERENCE_TYPE,
            "inputs": {"name": name},
            "outputs": {"name": name, "outputs": {}, "secretOutputNames": []},
            "parent": root,
            "external": True,
            "provider": f"{provider}::{provider_id}",
        }
        for name in names
    ]
    return resources


def sealed_for(deployment: UntypedDeployment) -> tuple[str, str, str] | None:
    """The stack (org, project, stack) whose key the deployment's secrets are sealed with,
    as its `service` secrets manager state names it; None for any other secrets manager."""
    providers = deployment["deployment"].get("secrets_providers")
    if not isinstance(providers, dict) or providers.get("type") != "service":
        return None
    state = providers.get("state")
    if not isinstance(state, dict):
        return None
    return (str(state.get("owner")), str(state.get("project")), str(state.get("stack")))


@dataclass(frozen=True)
class SecretOutput:
    """A stack output (or a part of one) the program marked secret, opened."""

    value: Any


Unseal = Callable[[bytes], bytes]
"""Ciphertext -> plaintext with the stack's own key; raises `ValueError` for another's."""


def stack_outputs(deployment: UntypedDeployment, unseal: Unseal) -> dict[str, Any]:
    """The outputs of a stack's root resource (`pulumi:pulumi:Stack`), as plain values with
    each secret opened into a `SecretOutput`; {} for a state without a root.

    A secret is stored as the CLI writes it with the `service` secrets manager: an object
    with the secret signature and the base64 of the ciphertext the stack's key sealed,
    whose plaintext is the value's JSON (or, in an export with secrets shown, that JSON as
    `plaintext`). ValueError for one that does not open.
    """
    for resource in deployment["deployment"].get("resources") or []:
        if isinstance(resource, dict) and resource.get("type") == _ROOT_TYPE:
            outputs = resource.get("outputs")
            if isinstance(outputs, dict):
                return {key: _opened(value, unseal) for key, value in outputs.items()}
    return {}


def _opened(value: Any, unseal: Unseal) -> Any:
    if isinstance(value, list):
        return [_opened(item, unseal) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get(SIG_KEY) != SECRET_SIG:
        return {key: _opened(item, unseal) for key, item in value.items()}
    if isinstance(value.get("plaintext"), str):
        return SecretOutput(_opened(json.loads(value["plaintext"]), unseal))
    try:
        sealed = base64.b64decode(str(value.get("ciphertext")), validate=True)
        return SecretOutput(_opened(json.loads(unseal(sealed)), unseal))
    except (binascii.Error, json.JSONDecodeError) as exc:
        raise ValueError(f"a secret output does not open: {exc}") from None


def resource_count(deployment: UntypedDeployment) -> int:
    return len(deployment["deployment"].get("resources") or [])


def moved(
    deployment: UntypedDeployment,
    *,
    old: tuple[str, str, str],
    new: tuple[str, str, str],
) -> UntypedDeployment:
    """The checkpoint of a stack that moved from `old` to `new` (org, project, stack).

    A rename rewrites every URN as `pulumi stack rename` does. Both a rename and a transfer
    point the `service` secrets manager state at the stack's new identity, since the CLI
    decrypts through the stack that state names; the stack keeps its key, so the
    ciphertext itself stays as it is.
    """
    (_, old_project, old_stack), (org, project, stack) = old, new
    body = copy.deepcopy(deployment["deployment"])
    if (old_project, old_stack) != (project, stack):
        body = rename_deployment(
            body,
            old_project=old_project,
            old_stack=old_stack,
            new_project=project,
            new_stack=stack,
        )
    providers = body.get("secrets_providers")
    if isinstance(providers, dict) and providers.get("type") == "service":
        state = providers.get("state")
        if isinstance(state, dict):
            providers["state"] = {**state, "owner": org, "project": project, "stack": stack}
    return {**deployment, "deployment": body}
