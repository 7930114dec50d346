"""Evaluating an ESC environment, as far as the emulator goes: what `open` and `yaml/check`
answer with.

What it does, as ESC does it: imports (environments of the same org) are evaluated first, in
order, each on its own, and their values merged (objects key by key, a later value over an
earlier one, the environment's own values over all imports; the value it overrides is kept
as its trace's `base`), except an import written with `merge: false`; every import's values
are there for references as `imports` (`${imports.name.key}`, `${imports["project/name"].key}`),
so `imports`, like `context` and `environments`, is not a key of `values`. Static secrets
(`fn::secret`) open to secret values; `${path}` interpolations (`${a.b[0]["c"]}`, and `$${` for
a literal `${`) resolve against the merged values, a whole-string reference keeping the
referenced value's type, and anything built from a secret is secret. An unknown import, an
import cycle, a reference to nothing or a reference cycle is an error diagnostic.

What it does not do: providers and the other builtins (`fn::open` and its `fn::open::*`
forms, `fn::rotate`, `fn::join`, `fn::toJSON` and the rest) are left unevaluated, their value
unknown, each with a warning diagnostic that says so; `context` references, schemas and the
execution context are not modelled.

Like `esc_definitions`, this is the service's side, kept apart from the toolkit's reading of
ESC on purpose: the client is tested against a service that understands ESC on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from toolkit.emulator.esc_definitions import (
    CIPHERTEXT,
    SECRET,
    DefinitionError,
    Diagnostic,
    Import,
    Position,
    Unseal,
    compose,
    imports_of,
)

CHECKED = "<yaml>"
"""The name ranges carry in a definition checked without being stored."""
REDACTED = "[secret]"
"""What a secret shows as when secrets are not to be shown."""
RESERVED_KEYS = ("imports", "context", "environments")
"""Names ESC keeps for its own references, refused as keys of `values`."""


@dataclass(frozen=True)
class Span:
    environment: str
    begin: Position
    end: Position

    def to_wire(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "begin": _pos(self.begin),
            "end": _pos(self.end),
        }


@dataclass
class Value:
    """An evaluated value: scalars as they are, objects as dicts and lists of `Value`s;
    `template` holds an interpolated string's parts until references are resolved."""

    value: Any
    span: Span
    secret: bool = False
    unknown: bool = False
    base: Value | None = None
    template: list[str | list[str | int]] | None = None

    def to_wire(self, *, show_secrets: bool) -> dict[str, Any]:
        if isinstance(self.value, dict):
            shown: Any = {k: v.to_wire(show_secrets=show_secrets) for k, v in self.value.items()}
        elif isinstance(self.value, list):
            shown = [v.to_wire(show_secrets=show_secrets) for v in self.value]
        elif self.secret and not show_secrets:
            shown = REDACTED
        else:
            shown = self.value
        trace: dict[str, Any] = {"def": self.span.to_wire()}
        if self.base is not None:
            trace["base"] = self.base.to_wire(show_secrets=show_secrets)
        wire: dict[str, Any] = {"value": shown, "trace": trace}
        if self.secret:
            wire["secret"] = True
        if self.unknown:
            wire["unknown"] = True
        return wire


@dataclass(frozen=True)
class ImportedDefinition:
    """What evaluating an import needs: its text, how to open its secrets (None: they stay
    sealed, shown as redacted secrets) and the name its ranges carry."""

    text: str
    unseal: Unseal | None
    name: str


LoadImport = Callable[[str], ImportedDefinition | None]
"""An import's name -> its definition, or None when the org has no such environment."""


@dataclass
class Evaluation:
    """An evaluated environment: its values, the expressions of its own definition, and the
    diagnostics (errors make an open or a check fail)."""

    values: dict[str, Value] = field(default_factory=dict)
    exprs: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors())

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def builtin_counts(self) -> dict[str, int]:
        """How often each builtin (`fn::...`) appears in the definition's own values."""
        counts: dict[str, int] = {}
        pending: list[Any] = list(self.exprs.values())
        while pending:
            expr = pending.pop()
            if "builtin" in expr:
                name = expr["builtin"]["name"]
                counts[name] = counts.get(name, 0) + 1
                pending.append(expr["builtin"]["arg"])
            pending.extend(expr.get("object", {}).values())
            pending.extend(expr.get("list", []))
        return counts

    def properties(self, *, show_secrets: bool) -> dict[str, Any]:
        return {k: v.to_wire(show_secrets=show_secrets) for k, v in self.values.items()}


def evaluate(definition: ImportedDefinition, load_import: LoadImport) -> Evaluation:
    """The environment `definition` describes, its imports found through `load_import`."""
    return _Evaluator(load_import).environment(definition, ())


def property_at(values: dict[str, Value], path: str) -> Value | None:
    """The value at a property path (`a.b[0]["c"]`) of evaluated values; None if none."""
    try:
        parts = parse_path(path)
    except ValueError:
        return None
    found: Any = Value(value=values, span=_NOWHERE)
    for part in parts:
        found = _step(found, part)
        if found is None:
            return None
    return found if isinstance(found, Value) else None


_PATH_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
_INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}")


def parse_path(path: str) -> list[str | int]:
    """A property path's parts; ValueError if it is not one."""
    parts: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if match is None or (position == 0 and path.startswith(".")):
            raise ValueError(f"invalid property path {path!r}")
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted.encode().decode("unicode_escape"))
        position = match.end()
    if not parts:
        raise ValueError("empty property path")
    return parts


class _Evaluator:
    def __init__(self, load_import: LoadImport) -> None:
        self._load_import = load_import

    def environment(self, definition: ImportedDefinition, importing: tuple[str, ...]) -> Evaluation:
        result = Evaluation()
        try:
            root = compose(definition.text)
        except DefinitionError as exc:
            result.diagnostics.extend(exc.diagnostics)
            return result
        if root is None:
            return result
        sections = {key.value: node for key, node in root.value if isinstance(key, yaml.ScalarNode)}
        merged: dict[str, Value] = {}
        imported: dict[str, Value] = {}
        for entry in imports_of(root):
            values = self._imported(entry, definition, importing, result)
            if values is None:
                continue
            imported[entry.name] = Value(value=values, span=_span(definition.name, entry.node))
            if entry.merge:
                merged = _merge(merged, values)
        values_node = sections.get("values")
        if isinstance(values_node, yaml.MappingNode):
            builder = _Builder(definition, result.diagnostics)
            own = builder.object(values_node)
            result.exprs = builder.expr(values_node)["object"]
            for key, _ in values_node.value:
                if key.value in RESERVED_KEYS:
                    reserved = f"{key.value!r} is a reserved key"
                    result.diagnostics.append(_diagnostic(reserved, _span(definition.name, key)))
                    own.value.pop(key.value, None)
            merged = _merge(merged, own.value)
        _Resolver(merged, imported, result.diagnostics).resolve_all()
        result.values = merged
        return result

    def _imported(
        self,
        entry: Import,
        definition: ImportedDefinition,
        importing: tuple[str, ...],
        result: Evaluation,
    ) -> dict[str, Value] | None:
        """An import's values; None, with the error, when it cannot be evaluated."""
        name = entry.name
        where = _span(definition.name, entry.node)
        imported = self._load_import(name)
        if imported is None:
            result.diagnostics.append(_diagnostic(f"unknown environment {name!r}", where))
            return None
        # By the name the environment gives itself: `a` and `default/a` are one environment.
        if imported.name in importing or imported.name == definition.name:
            result.diagnostics.append(_diagnostic(f"cyclic import of {name!r}", where))
            return None
        evaluation = self.environment(imported, (*importing, definition.name))
        for found in evaluation.diagnostics:
            if found.severity == "error":
                summary = f"{name}: {found.summary}"
                result.diagnostics.append(_diagnostic(summary, where, found.severity))
        return evaluation.values


class _Builder:
    """Values and expressions of one definition's `values`, before references resolve."""

    def __init__(self, definition: ImportedDefinition, diagnostics: list[Diagnostic]) -> None:
        self._definition = definition
        self._diagnostics = diagnostics

    def value(self, node: yaml.Node) -> Value:
        span = _span(self._definition.name, node)
        if isinstance(node, yaml.MappingNode):
            builtin = _builtin_of(node)
            if builtin is not None:
                return self._builtin(builtin, node.value[0][1], span)
            return self.object(node)
        if isinstance(node, yaml.SequenceNode):
            return Value(value=[self.value(item) for item in node.value], span=span)
        scalar = _scalar(node)
        if isinstance(scalar, str):
            template = _template(scalar)
            if any(not isinstance(part, str) for part in template):
                return Value(value=None, span=span, template=template)
            scalar = "".join(str(part) for part in template)
        return Value(value=scalar, span=span)

    def object(self, node: yaml.MappingNode) -> Value:
        entries: dict[str, Value] = {}
        for key, item in node.value:
            entries[str(_scalar(key))] = self.value(item)
        return Value(value=entries, span=_span(self._definition.name, node))

    def _builtin(self, name: str, argument: yaml.Node, span: Span) -> Value:
        if name == SECRET:
            return self._secret(argument, span)
        self._diagnostics.append(
            _diagnostic(
                f"{name} is not evaluated by the emulator: its value is unknown", span, "warning"
            )
        )
        return Value(value=None, span=span, unknown=True)

    def _secret(self, argument: yaml.Node, span: Span) -> Value:
        if isinstance(argument, yaml.ScalarNode):
            return Value(value=str(argument.value), span=span, secret=True)
        ciphertext = _single(argument, CIPHERTEXT)
        unseal = self._definition.unseal
        if ciphertext is None or unseal is None:
            return Value(value=REDACTED, span=span, secret=True)
        try:
            return Value(value=unseal(ciphertext), span=span, secret=True)
        except ValueError:
            self._diagnostics.append(_diagnostic("the secret's ciphertext does not open", span))
            return Value(value=None, span=span, secret=True, unknown=True)

    def expr(self, node: yaml.Node) -> dict[str, Any]:
        span = _span(self._definition.name, node).to_wire()
        if isinstance(node, yaml.MappingNode):
            builtin = _builtin_of(node)
            if builtin is not None:
                key, argument = node.value[0]
                return {
                    "range": span,
                    "builtin": {
                        "name": builtin,
                        "nameRange": _span(self._definition.name, key).to_wire(),
                        "arg": self.expr(argument),
                    },
                }
            return {
                "range": span,
                "keyRanges": {
                    str(_scalar(k)): _span(self._definition.name, k).to_wire()
                    for k, _ in node.value
                },
                "object": {str(_scalar(k)): self.expr(v) for k, v in node.value},
            }
        if isinstance(node, yaml.SequenceNode):
            return {"range": span, "list": [self.expr(item) for item in node.value]}
        return {"range": span, "literal": _scalar(node)}


class _Resolver:
    """Resolves interpolations in merged values, each once, in any order; a path that starts
    with `imports` reads the values of an import (merged or not) by its name as written."""

    def __init__(
        self, root: dict[str, Value], imports: dict[str, Value], diagnostics: list[Diagnostic]
    ) -> None:
        self._root = root
        self._imports = imports
        self._diagnostics = diagnostics
        self._resolving: set[int] = set()

    def resolve_all(self) -> None:
        for value in _walk(self._root):
            self.resolve(value)

    def resolve(self, value: Value) -> None:
        if value.template is None:
            return
        if id(value) in self._resolving:
            self._fail(value, "a reference cycle")
            return
        self._resolving.add(id(value))
        parts = value.template
        pieces: list[Value] = []
        for part in parts:
            if isinstance(part, str):
                continue
            target = self._lookup(part)
            if target is None:
                self._fail(value, f"unknown property {_render(part)!r}")
                self._resolving.discard(id(value))
                return
            self.resolve(target)
            pieces.append(target)
        self._resolving.discard(id(value))
        value.template = None
        value.secret = any(piece.secret for piece in pieces)
        value.unknown = any(piece.unknown for piece in pieces)
        if len(parts) == 1 and not isinstance(parts[0], str):
            value.value = pieces[0].value
            return
        text: list[str] = []
        references = iter(pieces)
        for part in parts:
            text.append(part if isinstance(part, str) else _text_of(next(references)))
        value.value = "".join(text)

    def _lookup(self, path: list[str | int]) -> Value | None:
        found: Any = Value(value=self._root, span=_NOWHERE)
        if path[0] == "imports":
            found, path = Value(value=self._imports, span=_NOWHERE), path[1:]
        for part in path:
            if isinstance(found, Value):
                self.resolve(found)
            found = _step(found, part)
            if found is None:
                return None
        return found if isinstance(found, Value) else None

    def _fail(self, value: Value, problem: str) -> None:
        self._diagnostics.append(_diagnostic(f"cannot interpolate: {problem}", value.span))
        value.template = None
        value.unknown = True


def _merge(base: dict[str, Value], over: dict[str, Value]) -> dict[str, Value]:
    merged = dict(base)
    for key, value in over.items():
        earlier = merged.get(key)
        if (
            earlier is not None
            and isinstance(earlier.value, dict)
            and isinstance(value.value, dict)
            and value.template is None
        ):
            merged[key] = replace(value, value=_merge(earlier.value, value.value), base=earlier)
        else:
            merged[key] = replace(value, base=earlier) if earlier is not None else value
    return merged


def _walk(values: dict[str, Value] | list[Value]) -> Iterator[Value]:
    for value in values.values() if isinstance(values, dict) else values:
        yield value
        if isinstance(value.value, dict | list):
            yield from _walk(value.value)


def _step(found: Value, part: str | int) -> Value | None:
    if isinstance(part, int) and isinstance(found.value, list):
        return found.value[part] if 0 <= part < len(found.value) else None
    if isinstance(part, str) and isinstance(found.value, dict):
        child = found.value.get(part)
        return child if isinstance(child, Value) else None
    return None


def _template(text: str) -> list[str | list[str | int]]:
    """A string's parts: text (`$${` unescaped) and the paths of its references."""
    parts: list[str | list[str | int]] = []
    position = 0
    for match in _INTERPOLATION.finditer(text):
        parts.append(text[position : match.start()])
        if match.group(0) == "$${":
            parts.append("${")
        else:
            try:
                parts.append(parse_path(match.group(1).strip()))
            except ValueError:
                parts.append(match.group(0))
        position = match.end()
    parts.append(text[position:])
    return [part for part in parts if part != ""]


def _text_of(value: Value) -> str:
    if isinstance(value.value, bool):
        return "true" if value.value else "false"
    if value.value is None:
        return ""
    if isinstance(value.value, dict | list):
        return str(value.to_wire(show_secrets=True)["value"])
    return str(value.value)


def _render(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _builtin_of(node: yaml.MappingNode) -> str | None:
    if len(node.value) == 1:
        key = node.value[0][0]
        if isinstance(key, yaml.ScalarNode) and str(key.value).startswith("fn::"):
            return str(key.value)
    return None


def _single(node: yaml.Node, key: str) -> str | None:
    if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        found_key, found = node.value[0]
        if found_key.value == key and isinstance(found, yaml.ScalarNode):
            return str(found.value)
    return None


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node)


def _span(environment: str, node: yaml.Node) -> Span:
    return Span(
        environment=environment,
        begin=Position(node.start_mark.line + 1, node.start_mark.column + 1, node.start_mark.index),
        end=Position(node.end_mark.line + 1, node.end_mark.column + 1, node.end_mark.index),
    )


def _diagnostic(summary: str, span: Span, severity: str = "error") -> Diagnostic:
    return Diagnostic(summary, span.begin, span.end, severity=severity)


def _pos(position: Position) -> dict[str, int]:
    return {"line": position.line, "column": position.column, "byte": position.byte}


_NOWHERE = Span("", Position(0, 0, 0), Position(0, 0, 0))
