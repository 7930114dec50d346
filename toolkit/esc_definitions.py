"""ESC environment definitions as a copy needs them, pure: parsed, their imports found and
rewritten, the order imports impose, what the user should know before copying, and the
comparison a copy is verified by.

The copier (`toolkit.strategies.environment_copy`) reads and writes definitions through the
service; everything here is over text and mappings only. The emulator keeps its own reading of
ESC's grammar (`toolkit/emulator/esc_definitions.py`), since it plays the service.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from toolkit.errors import InvalidInputError
from toolkit.models import TransferEntityEnvironment
from toolkit.moves import EnvironmentCopy

EnvironmentName = tuple[str, str]
"""(project, environment) within one org."""

DEFAULT_PROJECT = "default"
"""The project ESC gives an environment created without one, and reads in an import written
without one (`imports: [name]`)."""

_SECRET = "fn::secret"
_DYNAMIC_PREFIXES = ("fn::open", "fn::rotate")
"""Functions whose values come from outside (a provider, a rotator), configured per org."""


class DefinitionError(InvalidInputError):
    """An environment definition this toolkit cannot read."""


def environment_name(environment: TransferEntityEnvironment) -> EnvironmentName:
    return (environment.project_name, environment.environment_name)


# --- Definitions and their imports (pure) ------------------------------------------------


@dataclass(frozen=True)
class ImportRef:
    """One entry of a definition's `imports:` list, as ESC reads it.

    An entry is a string `project/name` or a bare `name` (project `default`), possibly pinned
    with `@revision-or-tag`; or a one-key map `{name: {merge: false}}` whose key is that string.
    """

    project: str
    name: str
    pin: str | None = None
    bare: bool = False
    """Written without a project."""

    @classmethod
    def parse(cls, text: str) -> ImportRef:
        reference, at, pin = text.partition("@")
        parts = reference.split("/")
        if len(parts) == 1 and parts[0]:
            return cls(DEFAULT_PROJECT, parts[0], pin if at else None, bare=True)
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1], pin if at else None)
        raise DefinitionError(
            f"the import {text!r} is not `project/name` or `name`",
            hint="Fix the environment's imports in the source org and run again.",
        )

    @property
    def environment(self) -> EnvironmentName:
        return (self.project, self.name)

    def text(self) -> str:
        reference = self.name if self.bare else f"{self.project}/{self.name}"
        return reference if self.pin is None else f"{reference}@{self.pin}"


@dataclass(frozen=True)
class ReadDefinitions:
    """An org's environment definitions as read (secrets as ciphertext), and why each that
    could not be read was not."""

    read: dict[EnvironmentName, dict[str, Any]]
    unread: dict[EnvironmentName, str]


def parse_definition(text: str) -> dict[str, Any]:
    """An environment's YAML definition as a mapping (an empty definition: `{}`).

    PyYAML is imported here, not with the module: planning imports the module, and a preview
    with no environment to read starts without it."""
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DefinitionError(
            f"an environment definition is not valid YAML ({type(error).__name__})",
            hint="Fix the definition in the source org (esc env edit) and run again.",
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise DefinitionError(
            "an environment definition is not a mapping",
            hint="Fix the definition in the source org (esc env edit) and run again.",
        )
    return loaded


def render_definition(definition: Mapping[str, Any]) -> str:
    """The YAML text written to the destination (keys in their order; characters outside
    ASCII escaped, since YAML readers fold some of them, such as NEL, into spaces)."""
    import yaml

    return yaml.safe_dump(dict(definition), sort_keys=False)


def imports_of(definition: Mapping[str, Any]) -> list[ImportRef]:
    """The environments `definition` imports, in its order."""
    return [ImportRef.parse(_import_text(entry)) for entry in _import_entries(definition)]


def rewrite_imports(
    definition: Mapping[str, Any], renames: Mapping[EnvironmentName, EnvironmentName]
) -> dict[str, Any]:
    """`definition` with each import of a renamed environment naming its new name.

    References to a renamed import (`${imports.<name>...}`) follow it. A pin (`@3`,
    `@stable`) is dropped from a renamed import: revisions and their tags stay
    with the source (`copy_notices` names them). A bare name stays bare while the project
    stays `default`. Other imports are kept as they are written.
    """
    entries = _import_entries(definition)
    if not entries:
        return dict(definition)
    rewritten: list[Any] = []
    renamed: dict[str, str] = {}
    for entry in entries:
        written = _import_text(entry)
        reference = ImportRef.parse(written)
        target = renames.get(reference.environment)
        if target is None:
            rewritten.append(entry)
            continue
        project, name = target
        new = ImportRef(project, name, None, bare=reference.bare and project == DEFAULT_PROJECT)
        renamed[written] = new.text()
        if isinstance(entry, dict):
            ((_, options),) = entry.items()
            rewritten.append({new.text(): options})
        else:
            rewritten.append(new.text())
    copy = {**definition, "imports": rewritten}
    if renamed and "values" in definition:
        copy["values"] = _rewrite_references(definition["values"], renamed)
    return copy


_INTERPOLATION = re.compile(r"(?<!\$)\$\{([^}]*)\}")
_IMPORT_ACCESS = re.compile(r"imports(?:\.([^.\[\]]+)|\[\s*(?:\"([^\"]*)\"|'([^']*)')\s*\])")


def _rewrite_references(value: Any, renamed: Mapping[str, str]) -> Any:
    """`value` with every `${imports.<name>...}` reference (`imports["<name>"]` too) to a
    renamed import naming it as its import now reads: an import is referred to by the name
    written in `imports:`, so a renamed import's references would name nothing."""
    if isinstance(value, dict):
        return {key: _rewrite_references(item, renamed) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite_references(item, renamed) for item in value]
    if not isinstance(value, str):
        return value

    def reference(match: re.Match[str]) -> str:
        access = match.group(1)
        found = _IMPORT_ACCESS.match(access)
        if found is None:
            return match.group(0)
        written = next(group for group in found.groups() if group is not None)
        if written not in renamed:
            return match.group(0)
        rest = access[found.end() :]
        return "${" + f'imports["{renamed[written]}"]' + rest + "}"

    return _INTERPOLATION.sub(reference, value)


STACKS_PROVIDER = "pulumi-stacks"
"""The ESC provider that reads stack outputs, `project/stack` of the environment's own org."""


def stack_reads_of(definition: Mapping[str, Any]) -> list[str]:
    """The stacks `definition` reads outputs of (`fn::open::pulumi-stacks`, or `fn::open`
    with `provider: pulumi-stacks`), as written: `project/stack`, in its order."""
    return [
        entry["stack"]
        for key, argument in _function_calls(definition.get("values"))
        for entry in _stacks_read(key, argument).values()
        if isinstance(entry, dict) and isinstance(entry.get("stack"), str)
    ]


def rewrite_stack_reads(
    definition: Mapping[str, Any], renames: Mapping[str, str]
) -> dict[str, Any]:
    """`definition` with each stack read whose `project/stack` is in `renames` naming the
    stack's new `project/stack`; everything else as written."""
    if "values" not in definition or not renames:
        return dict(definition)
    values = deepcopy(definition["values"])
    for key, argument in _function_calls(values):
        for entry in _stacks_read(key, argument).values():
            if isinstance(entry, dict) and entry.get("stack") in renames:
                entry["stack"] = renames[entry["stack"]]
    return {**definition, "values": values}


def _stacks_read(key: str, argument: Any) -> dict[Any, Any]:
    """The `stacks:` mapping of the call `key: argument` when it is a pulumi-stacks call, in
    the short form `fn::open::pulumi-stacks: {stacks}` or the long `fn::open: {provider,
    inputs}`; else empty."""
    if key == f"fn::open::{STACKS_PROVIDER}":
        inputs = argument
    elif key == "fn::open" and isinstance(argument, dict):
        inputs = argument.get("inputs") if argument.get("provider") == STACKS_PROVIDER else None
    else:
        return {}
    stacks = inputs.get("stacks") if isinstance(inputs, dict) else None
    return stacks if isinstance(stacks, dict) else {}


def dynamic_providers(definition: Mapping[str, Any]) -> list[str]:
    """The `fn::open` providers (and `fn::rotate` rotators) `definition` uses, sorted.

    Their trust policies (an OIDC role's, say) may name the source org; the copy calls them
    as the destination org.
    """
    found: set[str] = set()
    for key, value in _function_calls(definition.get("values")):
        if key in _DYNAMIC_PREFIXES and isinstance(value, dict):
            found.add(f"{key}::{value.get('provider', '?')}")
        elif key.startswith(tuple(f"{prefix}::" for prefix in _DYNAMIC_PREFIXES)):
            found.add(key)
    return sorted(found)


def ciphertexts(definition: Mapping[str, Any]) -> set[str]:
    """The ciphertexts of a definition as the service stores it (`fn::secret: {ciphertext}`)."""
    return {
        value["ciphertext"]
        for key, value in _function_calls(definition.get("values"))
        if key == _SECRET and isinstance(value, dict) and isinstance(value.get("ciphertext"), str)
    }


def plaintext_secrets(definition: Mapping[str, Any]) -> int:
    """How many `fn::secret` values of a stored definition are not ciphertext."""
    return sum(
        1
        for key, value in _function_calls(definition.get("values"))
        if key == _SECRET and not isinstance(value, dict)
    )


def definition_difference(expected: Mapping[str, Any], landed: Mapping[str, Any]) -> str | None:
    """Where `landed` differs from `expected`, by path only (never a value); None if equal."""
    return _difference(dict(expected), dict(landed), "")


def import_order(
    imports: Mapping[EnvironmentName, Collection[EnvironmentName]],
) -> tuple[list[EnvironmentName], list[EnvironmentName]]:
    """The environments of `imports` (each -> what it imports) with every import first, and
    those that cannot be ordered: in an import cycle, or importing one that is.

    Imports of environments outside `imports` do not order anything. Ties keep sorted order.
    """
    waiting = {
        name: {i for i in imported if i in imports and i != name}
        for name, imported in imports.items()
    }
    self_cycles = {name for name, imported in imports.items() if name in imported}
    ordered: list[EnvironmentName] = []
    ready = sorted(name for name, deps in waiting.items() if not deps and name not in self_cycles)
    while ready:
        name = ready.pop(0)
        ordered.append(name)
        freed = []
        for other, deps in waiting.items():
            if name in deps:
                deps.discard(name)
                if not deps and other not in self_cycles:
                    freed.append(other)
        ready = sorted([*ready, *freed])
    placed = set(ordered)
    return ordered, sorted(name for name in imports if name not in placed)


def import_waves(
    order: Sequence[EnvironmentName], imports: Mapping[EnvironmentName, Sequence[EnvironmentName]]
) -> list[list[EnvironmentName]]:
    """`order` cut into waves: each environment after every one it imports (in order)."""
    level: dict[EnvironmentName, int] = {}
    for name in order:
        level[name] = 1 + max((level[i] for i in imports.get(name, ()) if i in level), default=-1)
    waves: list[list[EnvironmentName]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in order:
        waves[level[name]].append(name)
    return waves


def _import_entries(definition: Mapping[str, Any]) -> list[Any]:
    entries = definition.get("imports")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DefinitionError(
            "an environment's `imports` is not a list",
            hint="Fix the definition in the source org (esc env edit) and run again.",
        )
    return entries


def _import_text(entry: Any) -> str:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and len(entry) == 1:
        ((key, _),) = entry.items()
        if isinstance(key, str):
            return key
    raise DefinitionError(
        "an import must be a string or a map with a single key",
        hint="Fix the environment's imports in the source org and run again.",
    )


def _function_calls(value: Any) -> Iterator[tuple[str, Any]]:
    """Every `fn::...` key under `value`, with its argument."""
    if isinstance(value, list):
        for element in value:
            yield from _function_calls(element)
    elif isinstance(value, dict):
        for key, element in value.items():
            if isinstance(key, str) and key.startswith("fn::"):
                yield key, element
            yield from _function_calls(element)


def _difference(expected: Any, landed: Any, path: str) -> str | None:
    where = path or "the definition"
    if isinstance(expected, dict) and isinstance(landed, dict):
        if set(expected) != set(landed):
            return f"{where} has other keys"
        for key in expected:
            found = _difference(expected[key], landed[key], f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(landed, list):
        if len(expected) != len(landed):
            return f"{where} has {len(landed)} entries, not {len(expected)}"
        for index, (left, right) in enumerate(zip(expected, landed, strict=True)):
            found = _difference(left, right, f"{path}[{index}]")
            if found:
                return found
        return None
    same = type(expected) is type(landed) and expected == landed
    return None if same else f"{where} holds another value"


# --- Before copying (pure) -------------------------------------------------------------


def copy_notices(
    copies: Sequence[EnvironmentCopy],
    definitions: Mapping[EnvironmentName, Mapping[str, Any]],
    *,
    source_org: str,
    destination_org: str,
) -> list[str]:
    """What the user should know before the copies are made: dynamic providers whose trust
    may name the source org, pins that cannot carry over, and imports that form a cycle."""
    notices: list[str] = []
    copied = {environment_name(copy.source) for copy in copies}
    graph: dict[EnvironmentName, list[EnvironmentName]] = {}
    for copy in copies:
        name = environment_name(copy.source)
        definition = definitions.get(name)
        if definition is None:
            continue
        label = f"{source_org}/{name[0]}/{name[1]}"
        try:
            references = imports_of(definition)
        except DefinitionError as error:
            notices.append(f"environment {label} cannot be copied: {error.message}")
            continue
        graph[name] = [reference.environment for reference in references]
        if providers := dynamic_providers(definition):
            notices.append(
                f"environment {label} uses {', '.join(providers)}: its trust policy (an OIDC "
                f"role's, say) may name {source_org}; allow {destination_org} there too"
            )
        pinned = [ref.text() for ref in references if ref.pin and ref.environment in copied]
        if pinned:
            notices.append(
                f"environment {label} imports {', '.join(pinned)}: revisions are not copied, "
                "so its copy imports the latest definition"
            )
    _, stuck = import_order(graph)
    if stuck:
        names = ", ".join(f"{source_org}/{project}/{name}" for project, name in stuck)
        notices.append(
            f"environments {names} cannot be copied: their imports form a cycle, or import "
            "one that does"
        )
    return notices
