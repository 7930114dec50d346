"""A document a user wrote (a job file): JSON when the text is JSON, else YAML, with every key
given once, since a key given twice would silently drop what it held (a whole claim)."""

from __future__ import annotations

import json
from typing import Any

import yaml


class DocumentError(ValueError):
    """The text is no document: the words say where and why, never quoting its lines (they
    may hold a secret)."""


def parse_document(text: str) -> object:
    """JSON when the text is JSON, else YAML; a key given twice is refused in either."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        # Not str(error): it quotes the lines around the problem, which may hold a secret.
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise DocumentError(f"not valid YAML: {where}{error.problem}") from None
    except yaml.YAMLError as error:
        raise DocumentError(f"not valid YAML or JSON: {error}") from None


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    mapping: dict[str, object] = {}
    for key, value in pairs:
        if key in mapping:
            raise DocumentError(f"the key {key!r} is given twice")
        mapping[key] = value
    return mapping


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            if isinstance(key, str):
                seen.add(key)
        return super().construct_mapping(node, deep)
