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

Providers: `fn::open::pulumi-stacks` (or `fn::open` with `provider: pulumi-stacks`) is
opened as the service opens it (`esc_providers`), on `open` only: as ESC's `CheckEnvironment`
does, a check (and the check of a definition being written) leaves every provider's value
unknown, and since a provider's outputs are typed by its schema and the emulator knows no
schema, a reference into an unknown value is unknown too, not an error.

What it does not do: the other providers and builtins (`fn::open::aws-login`, `fn::rotate`,
`fn::join`, `fn::toJSON` and the rest) are left unevaluated, their value unknown, each with a
warning diagnostic that says so; `context` references, schemas and the execution context are
not modelled.

Like `esc_definitions`, this is the service's side, kept apart from the toolkit's reading of
ESC on purpose: the client is tested against a service that understands ESC on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from toolkit.emulator.checkpoints import SecretOutput
from toolkit.emulator.esc_definitions import (
    CIPHERTEXT,
    SECRET,
    DefinitionError,
    Diagnostic,
    Import,
    Position,
    compose,
    imports_of,
)
from toolkit.emulator.esc_paths import child_path, parse_path, render_path, template_parts
from toolkit.emulator.esc_providers import (
    PULUMI_STACKS,
    ProviderError,
    ReadStack,
    open_pulumi_stacks,
)
from toolkit.emulator.secrets import Unseal

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
    opens: Opening | None = None
    """The provider this value is the output of, until it is opened."""

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
class Opening:
    """A provider call (`fn::open::pulumi-stacks`): its inputs, and the property path of the
    value it gives (`values.stacks`), which the provider's errors name."""

    inputs: Value
    path: str


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


def evaluate(
    definition: ImportedDefinition, load_import: LoadImport, read_stack: ReadStack | None = None
) -> Evaluation:
    """The environment `definition` describes, its imports found through `load_import`; its
    providers opened, with the stacks `read_stack` reads, only when that is given (an open),
    else left unknown (a check)."""
    return _Evaluator(load_import, read_stack).environment(definition, ())


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


class _Evaluator:
    def __init__(self, load_import: LoadImport, read_stack: ReadStack | None) -> None:
        self._load_import = load_import
        self._read_stack = read_stack

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
            own = builder.object(values_node, "values")
            result.exprs = builder.expr(values_node)["object"]
            for key, _ in values_node.value:
                if key.value in RESERVED_KEYS:
                    reserved = f"{key.value!r} is a reserved key"
                    result.diagnostics.append(_diagnostic(reserved, _span(definition.name, key)))
                    own.value.pop(key.value, None)
            merged = _merge(merged, own.value)
        _Resolver(merged, imported, result.diagnostics, self._read_stack).resolve_all()
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

    def value(self, node: yaml.Node, path: str) -> Value:
        span = _span(self._definition.name, node)
        if isinstance(node, yaml.MappingNode):
            builtin = _builtin_of(node)
            if builtin is not None:
                return self._builtin(builtin, node.value[0][1], span, path)
            return self.object(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = [self.value(item, f"{path}[{n}]") for n, item in enumerate(node.value)]
            return Value(value=items, span=span)
        scalar = _scalar(node)
        if isinstance(scalar, str):
            template = template_parts(scalar)
            if any(not isinstance(part, str) for part in template):
                return Value(value=None, span=span, template=template)
            scalar = "".join(str(part) for part in template)
        return Value(value=scalar, span=span)

    def object(self, node: yaml.MappingNode, path: str) -> Value:
        entries: dict[str, Value] = {}
        for key, item in node.value:
            name = str(_scalar(key))
            entries[name] = self.value(item, child_path(path, name))
        return Value(value=entries, span=_span(self._definition.name, node))

    def _builtin(self, name: str, argument: yaml.Node, span: Span, path: str) -> Value:
        if name == SECRET:
            return self._secret(argument, span)
        inputs = _pulumi_stacks_inputs(name, argument)
        if inputs is not None:
            opening = Opening(inputs=self.value(inputs, f"{path}.inputs"), path=path)
            return Value(value=None, span=span, unknown=True, opens=opening)
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
    """Resolves interpolations in merged values, each once, in any order, and opens the
    providers they reach (with `read_stack`; without it their values stay unknown); a path
    that starts with `imports` reads the values of an import (merged or not) by its name as
    written."""

    def __init__(
        self,
        root: dict[str, Value],
        imports: dict[str, Value],
        diagnostics: list[Diagnostic],
        read_stack: ReadStack | None,
    ) -> None:
        self._root = root
        self._imports = imports
        self._diagnostics = diagnostics
        self._read_stack = read_stack
        self._resolving: set[int] = set()

    def resolve_all(self) -> None:
        for value in _walk(self._root):
            self.resolve(value)

    def resolve(self, value: Value) -> None:
        if value.opens is not None:
            self._open(value)
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
                self._fail(value, f"unknown property {render_path(part)!r}")
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

    def _open(self, value: Value) -> None:
        """Open the provider whose output `value` is, once its inputs are resolved; it stays
        unknown in a check, and with the provider's error if the provider refuses."""
        opening = value.opens
        assert opening is not None
        if id(value) in self._resolving:
            value.opens = None
            self._fail(value, "a reference cycle")
            return
        self._resolving.add(id(value))
        self.resolve(opening.inputs)
        for part in _walk(opening.inputs.value) if _is_tree(opening.inputs) else ():
            self.resolve(part)
        self._resolving.discard(id(value))
        value.opens = None
        if self._read_stack is None or _has_unknowns(opening.inputs):
            return
        try:
            outputs = open_pulumi_stacks(_plain(opening.inputs), self._read_stack)
        except ProviderError as exc:
            self._diagnostics.append(
                Diagnostic(str(exc), value.span.begin, value.span.end, path=opening.path)
            )
            return
        value.value = {key: _output(found, value.span) for key, found in outputs.items()}
        value.unknown = False

    def _lookup(self, path: list[str | int]) -> Value | None:
        found: Any = Value(value=self._root, span=_NOWHERE)
        if path[0] == "imports":
            found, path = Value(value=self._imports, span=_NOWHERE), path[1:]
        for part in path:
            if isinstance(found, Value):
                self.resolve(found)
                if found.unknown and not _is_tree(found):
                    # Unknown, with no schema to check against: so is everything in it.
                    return Value(value=None, span=found.span, unknown=True, secret=found.secret)
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


def _is_tree(value: Value) -> bool:
    return isinstance(value.value, dict | list)


def _has_unknowns(value: Value) -> bool:
    if value.unknown:
        return True
    return _is_tree(value) and any(found.unknown for found in _walk(value.value))


def _plain(value: Value) -> Any:
    """A resolved value as plain data, for a provider's inputs."""
    if isinstance(value.value, dict):
        return {key: _plain(child) for key, child in value.value.items()}
    if isinstance(value.value, list):
        return [_plain(child) for child in value.value]
    return value.value


def _output(found: Any, span: Span, *, secret: bool = False) -> Value:
    """A provider's output as a value defined at its `fn::open`; everything inside a secret
    output is secret."""
    if isinstance(found, SecretOutput):
        return _output(found.value, span, secret=True)
    if isinstance(found, dict):
        entries = {key: _output(child, span, secret=secret) for key, child in found.items()}
        return Value(value=entries, span=span, secret=secret)
    if isinstance(found, list):
        items = [_output(child, span, secret=secret) for child in found]
        return Value(value=items, span=span, secret=secret)
    return Value(value=found, span=span, secret=secret)


def _step(found: Value, part: str | int) -> Value | None:
    if isinstance(part, int) and isinstance(found.value, list):
        return found.value[part] if 0 <= part < len(found.value) else None
    if isinstance(part, str) and isinstance(found.value, dict):
        child = found.value.get(part)
        return child if isinstance(child, Value) else None
    return None


def _text_of(value: Value) -> str:
    if isinstance(value.value, bool):
        return "true" if value.value else "false"
    if value.value is None:
        return ""
    if isinstance(value.value, dict | list):
        return str(value.to_wire(show_secrets=True)["value"])
    return str(value.value)


def _builtin_of(node: yaml.MappingNode) -> str | None:
    if len(node.value) == 1:
        key = node.value[0][0]
        if isinstance(key, yaml.ScalarNode) and str(key.value).startswith("fn::"):
            return str(key.value)
    return None


def _pulumi_stacks_inputs(name: str, argument: yaml.Node) -> yaml.Node | None:
    """The inputs of a `pulumi-stacks` open, written `fn::open::pulumi-stacks: inputs` or
    `fn::open: {provider: pulumi-stacks, inputs: ...}`; None for any other builtin."""
    if name == f"fn::open::{PULUMI_STACKS}":
        return argument
    if name != "fn::open" or not isinstance(argument, yaml.MappingNode):
        return None
    fields: dict[str, yaml.Node] = {
        key.value: found for key, found in argument.value if isinstance(key, yaml.ScalarNode)
    }
    provider = fields.get("provider")
    if isinstance(provider, yaml.ScalarNode) and provider.value == PULUMI_STACKS:
        return fields.get("inputs", yaml.MappingNode("tag:yaml.org,2002:map", []))
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
