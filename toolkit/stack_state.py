"""A stack's state: its deployment (the `deployment` object of `pulumi stack export`), its
secrets, how two deployments compare, and whether one holds together. (Nothing here is about
Pulumi Deployments, the service's remote runs.)

A secret in a deployment is an object marked with `SECRET_SIG`, holding either `ciphertext`
(base64, sealed by the stack's secrets manager: `pulumi stack export`) or `plaintext` (the
value's JSON: `--show-secrets`). Migrating a stack between Pulumi Clouds over REST opens every
ciphertext with the source stack's key and seals every plaintext with the destination's,
in memory only; these functions find, swap and compare them, and run the checks the CLI runs
on a state it loads, since no CLI loads it on that path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from toolkit.urns import SECRET_SIG, SIG_KEY, UNKNOWN_PROVIDER_ID

PROVIDER_TYPE_PREFIX = "pulumi:providers:"
"""The type of every provider resource: `pulumi:providers:<package>`."""


def service_secrets_provider(url: str, org: str, project: str, stack: str) -> dict[str, Any]:
    """The `secrets_providers` of a Pulumi Cloud stack: the service, keyed per stack."""
    return {
        "type": "service",
        "state": {"url": url, "owner": org, "project": project, "stack": stack},
    }


# --- Secrets ----------------------------------------------------------------------------------


def secrets(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every secret object inside `value`, in document order."""
    if isinstance(value, list):
        for element in value:
            yield from secrets(element)
    elif isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            yield value
        else:
            for element in value.values():
                yield from secrets(element)


def ciphertexts(deployment: Mapping[str, Any]) -> list[str]:
    """The ciphertext of every sealed secret of the deployment's resources, in order."""
    return [
        secret["ciphertext"]
        for secret in secrets(deployment.get("resources"))
        if isinstance(secret.get("ciphertext"), str)
    ]


def plaintexts(deployment: Mapping[str, Any]) -> list[str]:
    """The plaintext of every open secret of the deployment's resources, in order."""
    return [
        secret["plaintext"]
        for secret in secrets(deployment.get("resources"))
        if isinstance(secret.get("plaintext"), str)
    ]


def has_plaintext_secrets(deployment: Mapping[str, Any]) -> bool:
    return any("plaintext" in secret for secret in secrets(deployment.get("resources")))


def opened(deployment: Mapping[str, Any], plaintext_of: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `deployment` with each sealed secret replaced by its plaintext, as
    `--show-secrets` shows it; `plaintext_of` maps each ciphertext to its plaintext."""

    def open_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(secret.get("ciphertext"), str):
            return dict(secret)
        return {SIG_KEY: SECRET_SIG, "plaintext": plaintext_of[secret["ciphertext"]]}

    return _with_secrets(deployment, open_secret)


def sealed(deployment: Mapping[str, Any], sealed_texts: list[str]) -> dict[str, Any]:
    """A copy of `deployment` whose open secrets take, in order, the ciphertexts `sealed_texts`
    (one for each of `plaintexts(deployment)`: even equal plaintexts get ciphertexts of their
    own, as the CLI seals them)."""
    remaining = iter(sealed_texts)

    def seal(secret: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(secret.get("plaintext"), str):
            return dict(secret)
        ciphertext = next(remaining, None)
        if ciphertext is None:
            # Not a StopIteration, which a coroutine calling this would turn into a RuntimeError.
            raise ValueError("fewer ciphertexts than secrets")
        return {SIG_KEY: SECRET_SIG, "ciphertext": ciphertext}

    result = _with_secrets(deployment, seal)
    if next(remaining, None) is not None:
        raise ValueError("more ciphertexts than secrets")
    return result


def _with_secrets(
    deployment: Mapping[str, Any], replace: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(element) for element in value]
        if not isinstance(value, dict):
            return value
        if value.get(SIG_KEY) == SECRET_SIG:
            return replace(value)
        return {key: walk(element) for key, element in value.items()}

    copied = dict(deployment)
    if "resources" in copied:
        copied["resources"] = walk(copied["resources"])
    return copied


# --- Comparing two deployments ----------------------------------------------------------------

_Resource = tuple[str, Any, Any]
"""(urn, inputs, outputs), each secret replaced by its decoded plaintext."""


def difference(expected: Mapping[str, Any], landed: Mapping[str, Any]) -> str | None:
    """How the resources of `landed` differ from those of `expected`, in words (completing
    "the new stack ..."); None when they do not. Both have their secrets open."""
    want, got = _comparable(expected), _comparable(landed)
    if len(want) != len(got):
        return f"has {len(got)} resources, the source {len(want)}"
    for (urn, inputs, outputs), (landed_urn, landed_inputs, landed_outputs) in zip(
        want, got, strict=True
    ):
        if urn != landed_urn:
            return f"has {landed_urn} where the source has {urn}"
        if inputs != landed_inputs or outputs != landed_outputs:
            return f"holds other values for {urn} than the source"
    return None


def _comparable(deployment: Mapping[str, Any]) -> list[_Resource]:
    return [
        (
            resource.get("urn", ""),
            _revealed(resource.get("inputs") or {}),
            _revealed(resource.get("outputs") or {}),
        )
        for resource in deployment.get("resources") or []
    ]


def _revealed(value: Any) -> Any:
    """`value` with each plaintext secret replaced by ("secret", its decoded value)."""
    if isinstance(value, list):
        return [_revealed(element) for element in value]
    if not isinstance(value, dict):
        return value
    if value.get(SIG_KEY) == SECRET_SIG and isinstance(value.get("plaintext"), str):
        return ("secret", _revealed(json.loads(value["plaintext"])))
    return {key: _revealed(element) for key, element in value.items()}


# --- Integrity --------------------------------------------------------------------------------


def integrity_problem(deployment: Mapping[str, Any]) -> str | None:
    """What makes the deployment's resources fail the checks the CLI makes on every state it
    loads (`Snapshot.VerifyIntegrity` in pulumi v3.274.1), in words; None when they pass.

    Every resource has a URN and a type; what it refers to (its provider, parent,
    dependencies, property dependencies, deleted-with and replace-with resources) comes
    before it; a URN appears twice only when all its copies but at most one are being deleted.
    """
    seen: set[str] = set()
    providers: set[str] = set()
    live: dict[str, int] = {}
    resources = deployment.get("resources") or []
    for index, resource in enumerate(resources):
        urn, kind = resource.get("urn"), resource.get("type")
        if not urn:
            return f"the resource at index {index} has no URN"
        if not kind:
            return f"{urn} has no type"
        if not resource.get("custom") and resource.get("id"):
            return f"{urn} is not a custom resource but has an ID"
        if str(kind).startswith(PROVIDER_TYPE_PREFIX):
            # A provider without an ID is referred to by the unknown ID (`NewReference`).
            providers.add(f"{urn}::{resource.get('id') or UNKNOWN_PROVIDER_ID}")
        provider = resource.get("provider")
        if provider and provider not in providers and not resource.get("pendingReplacement"):
            return f"{urn} refers to the unknown provider {provider}"
        for what, reference in _references(resource):
            if reference not in seen:
                later = any(other.get("urn") == reference for other in resources[index + 1 :])
                where = "comes after it" if later else "is missing"
                return f"{urn}'s {what} {reference} {where}"
        seen.add(urn)
        if not resource.get("delete"):
            live[urn] = live.get(urn, 0) + 1
            if live[urn] > 1:
                return f"{urn} appears twice, neither copy being deleted"
    return None


def _references(resource: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(what it is, URN) of each resource `resource` refers to, besides its provider."""
    if resource.get("parent"):
        yield "parent", resource["parent"]
    for urn in resource.get("dependencies") or []:
        if urn:
            yield "dependency", urn
    for key, urns in (resource.get("propertyDependencies") or {}).items():
        for urn in urns or []:
            if urn:
                yield f"property dependency (from {key})", urn
    if resource.get("deletedWith"):
        yield "deleted-with resource", resource["deletedWith"]
    for urn in resource.get("replaceWith") or []:
        if urn:
            yield "replace-with resource", urn
