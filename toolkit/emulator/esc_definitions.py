"""ESC environment definitions as the service handles their text: checking a definition's
shape, and sealing and opening its static secrets, with the rest of the text left as written.

A definition is YAML. Its static secrets are `fn::secret` values: the service stores a
plaintext one as `fn::secret: {ciphertext: ...}`, sealed with the environment's own key
(`toolkit.emulator.secrets`), and hands plaintext back only through `decrypt`. Secrets are
rewritten in place (only the secret's own span of the text changes), so comments, order and
layout survive, as they do on the service.

Imports are written as ESC's parser reads them: a name (`project/name`, or `name` in the
`default` project), or a one-key map from the name to the import's options, of which ESC knows
`merge` (`imports: [{app/base: {merge: false}}]`; options it does not know are ignored).

Problems are ESC diagnostics: a summary and where in the text it is. They are collected, not
raised one by one, so a writer learns every problem of a definition at once.

This is the emulator's own copy of ESC's grammar, kept apart from the toolkit's reading of
definitions (the client's) on purpose: the emulator plays the service, so an environment copy
is checked against a service that reads definitions independently of the client. Shared code
would let one misreading pass on both sides. `esc_evaluation` builds on this module and is kept
apart for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from toolkit.emulator.secrets import Seal, Unseal

SECRET = "fn::secret"
CIPHERTEXT = "ciphertext"
TOP_LEVEL_KEYS = ("imports", "values")
DEFAULT_PROJECT = "default"
"""The project of an environment named without one (in imports, and by older clients)."""


@dataclass(frozen=True)
class Position:
    """1-based line and column, 0-based offset into the text, as ESC's `Pos`."""

    line: int
    column: int
    byte: int


@dataclass(frozen=True)
class Diagnostic:
    summary: str
    begin: Position | None = None
    end: Position | None = None
    path: str | None = None
    severity: str = "error"


@dataclass(frozen=True)
class Import:
    """One entry of a definition's `imports:`. Every import is there for references
    (`${imports.name.key}`); only one that merges has its values merged under the
    environment's own."""

    name: str
    merge: bool
    node: yaml.Node
    """The name as written, for the ranges of diagnostics."""


class DefinitionError(ValueError):
    """A definition the service refuses, with every problem found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.summary for d in diagnostics))
        self.diagnostics = diagnostics


def compose(text: str) -> yaml.MappingNode | None:
    """The definition's YAML node tree (None for an empty definition), its top level checked:
    a mapping of `imports` (a list of imports) and `values`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = _position(mark) if mark is not None else None
        raise DefinitionError(
            [Diagnostic(f"invalid YAML: {exc.problem or exc}", where, where)]
        ) from None
    except yaml.YAMLError as exc:
        raise DefinitionError([Diagnostic(f"invalid YAML: {exc}")]) from None
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value == ""):
        return None
    if not isinstance(root, yaml.MappingNode):
        raise DefinitionError([_at(root, "the environment definition must be a mapping")])
    problems: list[Diagnostic] = []
    for key, value in root.value:
        if not isinstance(key, yaml.ScalarNode) or key.value not in TOP_LEVEL_KEYS:
            continue
        if key.value == "imports":
            problems.extend(_import_problems(value))
        if key.value == "values" and not isinstance(value, yaml.MappingNode):
            problems.append(_at(value, "values must be a mapping"))
    if problems:
        raise DefinitionError(problems)
    return root


def imports_of(root: yaml.MappingNode) -> list[Import]:
    """The imports of a definition `compose` accepted, in their order."""
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "imports":
            return [_import(item) for item in value.value]
    return []


def seal_secrets(text: str, seal: Seal, unseal: Unseal) -> str:
    """`text` with every plaintext `fn::secret` sealed; ciphertext already there must open
    with this environment's key (ciphertext of another environment is refused)."""
    root = compose(text)
    if root is None:
        return text
    edits: list[tuple[yaml.Node, str]] = []
    problems: list[Diagnostic] = []
    for secret in _secrets(root):
        if isinstance(secret, yaml.ScalarNode) and secret.tag.endswith(":str"):
            edits.append((secret, "{" + f"{CIPHERTEXT}: {seal(secret.value)}" + "}"))
            continue
        ciphertext = _ciphertext_of(secret)
        if ciphertext is None:
            problems.append(
                _at(secret, "secret values must be string literals or {ciphertext: ...}")
            )
            continue
        try:
            unseal(ciphertext)
        except ValueError:
            problems.append(_at(secret, "the secret's ciphertext is not this environment's"))
    if problems:
        raise DefinitionError(problems)
    return _replace(text, edits)


def open_secrets(text: str, unseal: Unseal) -> str:
    """`text` with every sealed `fn::secret` opened to its plaintext (a quoted YAML string)."""
    root = compose(text)
    if root is None:
        return text
    edits: list[tuple[yaml.Node, str]] = []
    for secret in _secrets(root):
        ciphertext = _ciphertext_of(secret)
        if ciphertext is not None:
            edits.append((secret, quote(unseal(ciphertext))))
    return _replace(text, edits)


def quote(value: str) -> str:
    """`value` as a double-quoted YAML scalar on one line."""
    return yaml.safe_dump(value, default_style='"', width=2**31, allow_unicode=True).rstrip("\n")


def _secrets(node: yaml.Node) -> Iterator[yaml.Node]:
    """The value node of every `fn::secret` in the tree, outermost first."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == SECRET:
                yield value
            else:
                yield from _secrets(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _secrets(item)


def _ciphertext_of(node: yaml.Node) -> str | None:
    """The ciphertext of a sealed secret's `{ciphertext: ...}` node; None for anything else."""
    if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
        return None
    key, value = node.value[0]
    if (
        isinstance(key, yaml.ScalarNode)
        and key.value == CIPHERTEXT
        and isinstance(value, yaml.ScalarNode)
        and value.tag.endswith(":str")
    ):
        return str(value.value)
    return None


def _replace(text: str, edits: list[tuple[yaml.Node, str]]) -> str:
    """`text` with each node's span replaced (its trailing line breaks kept), last first."""
    for node, replacement in sorted(edits, key=lambda e: e[0].start_mark.index, reverse=True):
        start, end = node.start_mark.index, node.end_mark.index
        span = text[start:end]
        trailing = span[len(span.rstrip()) :]
        text = text[:start] + replacement + trailing + text[end:]
    return text


def _import_problems(node: yaml.Node) -> list[Diagnostic]:
    """What ESC's parser says of an `imports:` section, in ESC's words."""
    if not isinstance(node, yaml.SequenceNode):
        return [_at(node, "imports must be a list")]
    problems: list[Diagnostic] = []
    for item in node.value:
        if _is_string(item):
            continue
        if not isinstance(item, yaml.MappingNode):
            problems.append(_at(item, "import must be a string or an object"))
        elif len(item.value) != 1 or not isinstance(item.value[0][0], yaml.ScalarNode):
            problems.append(_at(item, "import must have a single key"))
        elif not isinstance(options := item.value[0][1], yaml.MappingNode):
            problems.append(_at(options, "import must be an object"))
        else:
            merge = _merge_option(options)
            if merge is not None and not (
                isinstance(merge, yaml.ScalarNode) and merge.tag.endswith(":bool")
            ):
                problems.append(_at(merge, "merge must be a boolean value"))
    return problems


def _import(item: yaml.Node) -> Import:
    """An entry `_import_problems` accepted."""
    if isinstance(item, yaml.MappingNode):
        name, options = item.value[0]
        merge = _merge_option(options)
        merged = merge is None or yaml.SafeLoader("").construct_object(merge) is True
        return Import(name=str(name.value), merge=merged, node=name)
    return Import(name=str(item.value), merge=True, node=item)


def _merge_option(options: yaml.Node) -> yaml.Node | None:
    """The value of an import's `merge` option: ESC matches option names in any case, and the
    last one written wins."""
    found: yaml.Node | None = None
    for key, value in getattr(options, "value", []):
        if isinstance(key, yaml.ScalarNode) and str(key.value).lower() == "merge":
            found = value
    return found


def _is_string(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str")


def _position(mark: yaml.Mark) -> Position:
    return Position(line=mark.line + 1, column=mark.column + 1, byte=mark.index)


def _at(node: yaml.Node, summary: str) -> Diagnostic:
    return Diagnostic(summary, _position(node.start_mark), _position(node.end_mark))
