"""Renaming a stack inside its state, the way `pulumi stack rename` does.

A URN names the stack and project a resource belongs to,
`urn:pulumi:<stack>::<project>::<qualified type>::<name>`, and a deployment (the `deployment`
object of `pulumi stack export`) is full of them: every resource's own URN, its parent,
dependencies, provider reference, aliases and more, and resource references inside property
values. State moved to a stack of another name must have every one of them rewritten, or the
CLI refuses it as belonging to a different stack.

`rename_deployment` rewrites the fields the CLI's `RenameStack` rewrites, in the same way
(`pkg/resource/edit/operations.go` in pulumi v3.274.1), and nothing else: the result is what
`pulumi stack rename` would store. Two deliberate differences, both for input the CLI would
mangle or crash on: a URN-bearing field that holds no URN raises `ValueError`, and so does a
provider reference that cannot be parsed (the CLI's behaviour without `--force`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

URN_PREFIX = "urn:pulumi:"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
"""The type of the resource every stack has at its root, named `<project>-<stack>`."""

UNKNOWN_PROVIDER_ID = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The ID the CLI writes into a rewritten provider reference whose ID was empty."""

SIG_KEY = "4dabf18193072939515e22adb298388d"
"""The key that marks a property value as special (a secret, a resource reference...)."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_REFERENCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_VALUE_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"

_URN_LIST_FIELDS = ("dependencies", "replaceWith", "aliases")
_URN_FIELDS = ("parent", "deletedWith", "viewOf")


@dataclass(frozen=True)
class UrnParts:
    """The four components of a URN."""

    stack: str
    project: str
    qualified_type: str
    """The resource's type, prefixed by its parents' types, joined with `$`."""
    name: str

    @property
    def urn(self) -> str:
        return _join_urn(self.stack, self.project, self.qualified_type, self.name)


def parse_urn(urn: str) -> UrnParts:
    """Split `urn` into its components; the name is everything after the third `::`."""
    return UrnParts(*_split_urn(urn))


def _split_urn(urn: str) -> tuple[str, str, str, str]:
    """`parse_urn`'s components as a plain tuple: a rename splits and joins every URN of a
    state, where making objects of them cost a third of the rename's CPU."""
    if not urn.startswith(URN_PREFIX) or urn.count("::") < 3:
        raise ValueError(f"{urn!r} is not a URN")
    stack, project, qualified_type, name = urn[len(URN_PREFIX) :].split("::", 3)
    return stack, project, qualified_type, name


def _join_urn(stack: str, project: str, qualified_type: str, name: str) -> str:
    return f"{URN_PREFIX}{stack}::{project}::{qualified_type}::{name}"


def rename_deployment(
    deployment: Mapping[str, Any],
    *,
    old_project: str,
    old_stack: str,
    new_project: str,
    new_stack: str,
) -> dict[str, Any]:
    """A copy of `deployment` whose URNs of `old_project`/`old_stack` name the new stack
    (`rename_in_place` on a deep copy)."""
    renamed = copy.deepcopy(dict(deployment))
    rename_in_place(
        renamed,
        old_project=old_project,
        old_stack=old_stack,
        new_project=new_project,
        new_stack=new_stack,
    )
    return renamed


def rename_in_place(
    deployment: dict[str, Any],
    *,
    old_project: str,
    old_stack: str,
    new_project: str,
    new_stack: str,
) -> None:
    """Rewrite the URNs of `old_project`/`old_stack` in `deployment` to name the new stack,
    in one pass and without a copy: for a caller that needs the state only renamed.

    URNs of other stacks or projects (a resource reference into another stack, say) are left
    alone, as the CLI leaves them. Secrets are rewritten only where their plaintext is JSON,
    i.e. in a deployment exported with `--show-secrets`; ciphertext stays as it is.
    """
    for value in (old_project, old_stack, new_project, new_stack):
        if not value:
            raise ValueError("project and stack names must not be empty")
    renamer = _Renamer(old_project, old_stack, new_project, new_stack)
    for resource in deployment.get("resources") or []:
        renamer.rewrite_resource(resource)
    for operation in deployment.get("pending_operations") or []:
        renamer.rewrite_resource(operation["resource"])


@dataclass(frozen=True)
class _Renamer:
    old_project: str
    old_stack: str
    new_project: str
    new_stack: str

    def urn(self, urn: str) -> str:
        if urn == "":
            return urn
        stack, project, qualified_type, name = _split_urn(urn)
        if stack != self.old_stack or project != self.old_project:
            return urn
        if qualified_type == ROOT_STACK_TYPE:
            name = f"{self.new_project}-{self.new_stack}"
        return _join_urn(self.new_stack, self.new_project, qualified_type, name)

    def rewrite_resource(self, resource: dict[str, Any]) -> None:
        """Rewrite one resource state in place, field by field as `RenameStack` does."""
        resource["urn"] = self.urn(resource.get("urn", ""))
        for key in _URN_FIELDS:
            if resource.get(key):
                resource[key] = self.urn(resource[key])
        for key in _URN_LIST_FIELDS:
            if resource.get(key):
                resource[key] = [self.urn(urn) for urn in resource[key]]
        property_dependencies = resource.get("propertyDependencies") or {}
        for name, dependencies in property_dependencies.items():
            if dependencies:
                property_dependencies[name] = [self.urn(urn) for urn in dependencies]
        if resource.get("provider"):
            resource["provider"] = self.provider_reference(resource["provider"], resource["urn"])
        for key in ("inputs", "outputs"):
            for name, value in (resource.get(key) or {}).items():
                resource[key][name] = self.value(value)
        if "replacementTrigger" in resource:
            resource["replacementTrigger"] = self.value(resource["replacementTrigger"])

    def provider_reference(self, reference: str, owner: str) -> str:
        """Rewrite `<provider urn>::<provider id>`; byte for byte unchanged when the URN is."""
        urn, separator, provider_id = reference.rpartition("::")
        if not separator or not _is_provider_urn(urn):
            raise ValueError(f"parsing provider reference for {owner!r}: {reference!r}")
        renamed = self.urn(urn)
        if renamed == urn:
            return reference
        return f"{renamed}::{provider_id or UNKNOWN_PROVIDER_ID}"

    def value(self, value: Any) -> Any:
        """Rewrite the URNs of resource references (also inside secrets) in a property value."""
        if isinstance(value, list):
            return [self.value(element) for element in value]
        if not isinstance(value, dict):
            return value
        signature = value.get(SIG_KEY)
        if signature == RESOURCE_REFERENCE_SIG:
            if isinstance(value.get("urn"), str):
                value["urn"] = self.urn(value["urn"])
        elif signature == SECRET_SIG:
            for key in ("plaintext", "ciphertext"):
                if isinstance(value.get(key), str):
                    value[key] = self.secret(value[key])
        elif signature == OUTPUT_VALUE_SIG:
            if "value" in value:
                value["value"] = self.value(value["value"])
            if isinstance(value.get("dependencies"), list):
                value["dependencies"] = [
                    self.urn(urn) if isinstance(urn, str) else urn for urn in value["dependencies"]
                ]
        else:
            for key, element in value.items():
                value[key] = self.value(element)
        return value

    def secret(self, raw: str) -> str:
        """A secret's serialized value, rewritten when it is JSON (plaintext), else as it was.

        The CLI decodes and re-encodes the JSON even when no URN in it changes, so the text
        comes back in Go's encoding; `_go_json` reproduces it.
        """
        if raw == "":
            return raw
        try:
            decoded = json.loads(
                raw,
                parse_int=_finite_float,
                parse_float=_finite_float,
                parse_constant=_reject_constant,
            )
        except ValueError:
            return raw
        return _go_json(self.value(decoded))


def _is_provider_urn(urn: str) -> bool:
    """A URN whose type is `pulumi:providers:<package>`, as the CLI's provider references need."""
    try:
        parts = parse_urn(urn)
    except ValueError:
        return False
    pieces = parts.qualified_type.rsplit("$", 1)[-1].split(":", 2)
    return len(pieces) == 3 and pieces[:2] == ["pulumi", "providers"] and pieces[2] != ""


# --- Go's JSON encoding, for secrets the CLI re-encodes ----------------------------------------


def _finite_float(text: str) -> float:
    """JSON numbers decode to float64 in Go; one out of its range is an error there too."""
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return number


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _go_json(value: Any) -> str:
    """`value` (decoded JSON) encoded as Go's `json.Marshal` encodes an `any`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_go_json(element) for element in value) + "]"
    if isinstance(value, dict):
        members = (f"{_go_string(key)}:{_go_json(value[key])}" for key in sorted(value))
        return "{" + ",".join(members) + "}"
    raise TypeError(f"not decoded JSON: {value!r}")


def _go_float(number: float) -> str:
    """Shortest round-trip digits; exponent form only below 1e-6 or from 1e21 (as ES6 does)."""
    if number != 0 and not 1e-6 <= abs(number) < 1e21:
        return re.sub(r"e-0(\d)$", r"e-\1", repr(number))
    plain = format(Decimal(repr(number)), "f")
    return plain.rstrip("0").rstrip(".") if "." in plain else plain


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_GO_ESCAPED = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _go_string(text: str) -> str:
    """Go escapes control characters, `<`, `>`, `&` and U+2028/9.

    A lone surrogate (a `\\ud800` escape with no pair) decodes to U+FFFD in Go.
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in _GO_ESCAPES:
            return _GO_ESCAPES[char]
        if "\ud800" <= char <= "\udfff":
            return "\ufffd"
        return f"\\u{ord(char):04x}"

    return '"' + _GO_ESCAPED.sub(escape, text) + '"'
