"""ESC property paths (`a.b[0]["c"]`) and the `${...}` interpolations that hold them, as
ESC's parser reads them; the emulator's own copy, apart from the toolkit's (the client's)."""

from __future__ import annotations

import json
import re

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


def template_parts(text: str) -> list[str | list[str | int]]:
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


def render_path(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def child_path(path: str, key: str) -> str:
    """The property path of `key` under `path`, as ESC writes it (`a.b`, `a["b.c"]`)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"
