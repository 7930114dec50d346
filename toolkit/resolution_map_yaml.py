"""The resolution map's YAML: read with every mapping as its pairs and no alias, and names
written back as YAML reads them.

`toolkit.resolution_map` imports this module only where a map is read or written, so that a
command given no map does not import PyYAML (about 9 ms of a start-up).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import yaml
from yaml.constructor import SafeConstructor

from toolkit.errors import ResolutionMapError
from toolkit.resolution_map import Pairs


class _PairsLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (libyaml's when present), except that mappings come back as `Pairs`
    and aliases are refused."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        """A node met a second time is an alias (`*name`, or a `<<` merge of one): no map
        needs one, and a few hundred bytes of aliases of aliases expand to millions of values."""
        if node in self.constructed_objects:
            raise yaml.constructor.ConstructorError(
                None, None, "anchors and aliases (& and *) are not allowed", node.start_mark
            )
        return super().construct_object(node, deep)


def _construct_pairs(loader: SafeConstructor, node: yaml.MappingNode) -> Pairs:
    loader.flatten_mapping(node)
    return Pairs(
        (loader.construct_object(key, deep=True), loader.construct_object(value, deep=True))
        for key, value in node.value
    )


_PairsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_pairs)


def load_yaml(text: str, origin: str) -> object:
    """The YAML document `text`, its mappings as `Pairs`; a map that is no YAML is an error
    naming `origin`."""
    try:
        return yaml.load(text, Loader=_PairsLoader)
    except (yaml.YAMLError, ValueError) as error:  # ValueError: a date like 2026-13-45
        raise ResolutionMapError([f"{origin}: not valid YAML or JSON: {error}"]) from error


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_implicit_tag: Callable[[type[yaml.Node], str, tuple[bool, bool]], str] = (
    yaml.resolver.Resolver().resolve
)
"""The tag YAML gives an unquoted scalar, e.g. bool for `true`: the test for quoting a name."""


def yaml_scalar(text: str) -> str:
    """`text` as a YAML scalar: plain when YAML reads it back as this same text, else quoted.

    Names like `1.0`, `true` or `null` are quoted, so that any YAML reader sees text.
    """
    plain = _PLAIN_TEXT.fullmatch(text) and (
        _implicit_tag(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"
    )
    return text if plain else json.dumps(text)
