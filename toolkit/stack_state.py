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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
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


def secrets(value: Any) -> list[Mapping[str, Any]]:
    """Every secret object inside `value`, in document order.

    A state of 20,000 resources holds millions of values: only objects and lists are
    descended into, and the secrets are gathered in one list (a generator per level would
    cost more than the values themselves).
    """
    found: list[Mapping[str, Any]] = []

    def gather(container: dict[str, Any] | list[Any]) -> None:
        if isinstance(container, dict):
            if container.get(SIG_KEY) == SECRET_SIG:
                found.append(container)
                return
            elements: Iterable[Any] = container.values()
        else:
            elements = container
        for element in elements:
            if isinstance(element, dict | list):
                gather(element)

    if isinstance(value, dict | list):
        gather(value)
    return found


@dataclass(frozen=True)
class StoredSecrets:
    """The secrets of a deployment as a service stores it, found in one pass over it."""

    ciphertexts: list[str]
    """The ciphertext of every sealed secret of the deployment's resources, in order."""
    any_open: bool
    """Whether any secret is stored open (plaintext)."""


def stored_secrets(deployment: Mapping[str, Any]) -> StoredSecrets:
    found = secrets(deployment.get("resources"))
    return StoredSecrets(
        ciphertexts=[
            secret["ciphertext"] for secret in found if isinstance(secret.get("ciphertext"), str)
        ],
        any_open=any("plaintext" in secret for secret in found),
    )


def ciphertexts(deployment: Mapping[str, Any]) -> list[str]:
    """The ciphertext of every sealed secret of the deployment's resources, in order."""
    return stored_secrets(deployment).ciphertexts


def plaintexts(deployment: Mapping[str, Any]) -> list[str]:
    """The plaintext of every open secret of the deployment's resources, in order."""
    return [
        secret["plaintext"]
        for secret in secrets(deployment.get("resources"))
        if isinstance(secret.get("plaintext"), str)
    ]


def opened(deployment: Mapping[str, Any], plaintext_of: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `deployment` with each sealed secret replaced by its plaintext, as
    `--show-secrets` shows it; `plaintext_of` maps each ciphertext to its plaintext. What
    holds no secret is shared with `deployment`, not copied."""

    def open_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(secret.get("ciphertext"), str):
            return dict(secret)
        return {SIG_KEY: SECRET_SIG, "plaintext": plaintext_of[secret["ciphertext"]]}

    return _with_secrets(deployment, open_secret)


def sealed(deployment: Mapping[str, Any], sealed_texts: list[str]) -> dict[str, Any]:
    """A copy of `deployment` whose open secrets take, in order, the ciphertexts `sealed_texts`
    (one for each of `plaintexts(deployment)`: even equal plaintexts get ciphertexts of their
    own, as the CLI seals them). What holds no secret is shared with `deployment`."""
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
    """A copy of `deployment` whose secrets are `replace`d. Only the objects and lists on the
    way to a secret are new; everything else is shared with `deployment` (most of a large
    state holds no secret, and copying it would double the memory a migration needs)."""

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            copied: list[Any] | None = None
            for index, element in enumerate(value):
                if isinstance(element, dict | list) and (new := walk(element)) is not element:
                    copied = copied if copied is not None else list(value)
                    copied[index] = new
            return value if copied is None else copied
        if value.get(SIG_KEY) == SECRET_SIG:
            return replace(value)
        changed: dict[str, Any] | None = None
        for key, element in value.items():
            if isinstance(element, dict | list) and (new := walk(element)) is not element:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return value if changed is None else changed

    copied = dict(deployment)
    if isinstance(copied.get("resources"), dict | list):
        copied["resources"] = walk(copied["resources"])
    return copied


# --- Comparing two deployments ----------------------------------------------------------------


def difference(expected: Mapping[str, Any], landed: Mapping[str, Any]) -> str | None:
    """How the resources of `landed` differ from those of `expected`, in words (completing
    "the new stack ..."); None when they do not. Both have their secrets open.

    One resource at a time: two states of 20,000 resources are compared without a third
    copy of either.
    """
    want, got = expected.get("resources") or [], landed.get("resources") or []
    if len(want) != len(got):
        return f"has {len(got)} resources, the source {len(want)}"
    for wanted, found in zip(want, got, strict=True):
        urn, landed_urn = wanted.get("urn", ""), found.get("urn", "")
        if urn != landed_urn:
            return f"has {landed_urn} where the source has {urn}"
        for key in ("inputs", "outputs"):
            if not _same_values(wanted.get(key) or {}, found.get(key) or {}):
                return f"holds other values for {urn} than the source"
    return None


def _same_values(wanted: Any, found: Any) -> bool:
    """Equal once every plaintext secret is decoded: the same text is the same value
    (the usual case, compared at once), and so is the same JSON written another way."""
    return bool(wanted == found or _revealed(wanted) == _revealed(found))


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
