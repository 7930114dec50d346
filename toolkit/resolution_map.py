"""The resolution map file: the renames a user asks for, in a friendly or the wire form.

A map is read in full before anything is checked against inventories: an entry that cannot be
read becomes one of the map's `problems`, so that `toolkit.resolver.resolve` reports it together
with every other problem and a user fixes a large map in one pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from toolkit.entities import (
    KINDS,
    EntityKey,
    as_rename,
    display_name,
    entity_key,
    make_entity,
    target_of,
)
from toolkit.errors import InvalidInputError, ResolutionMapError, did_you_mean
from toolkit.landing_spec import LandingSpec, parse_landing
from toolkit.models import RenameEntity

# Friendly-form section -> (the kind it renames, how its names are written).
_SECTIONS = {
    section: (kind.wire_kind, kind.shape)
    for section, kind in zip(
        ("stacks", "environments", "insightsAccounts", "registryPackages"), KINDS, strict=True
    )
}

LANDING_SECTION = "landing"
"""The friendly form's section that is not renames: what the landing program records
(`toolkit.landing.LandingSpec`)."""

ACCEPT_SECTION = "accept"
"""The friendly form's section of known failures a user acknowledges, by the same sections
and names as the renames (`accept: {insightsAccounts: [gcp-sandbox]}`): reported as accepted,
they do not fail the run (`toolkit.outcomes.exit_code`)."""

_FRIENDLY_SECTIONS = (*_SECTIONS, LANDING_SECTION, ACCEPT_SECTION)
"""Every section the friendly form may hold."""

MAX_MAP_BYTES = 10_000_000
"""A map file larger than this (10 MB) is refused unread: 100,000 renames in the friendly form
take some 7 MB and 10 seconds to parse; much more would take minutes and gigabytes."""
MAX_MAP_ENTRIES = 100_000
"""More renames than this in one map are refused before any entry is checked."""

_RENAME_ADAPTER: TypeAdapter[RenameEntity] = TypeAdapter(
    Annotated[RenameEntity, Field(discriminator="kind")]
)


@dataclass(frozen=True)
class ResolutionMap:
    """The renames a user asked for, plus entries that could not even be read.

    Unreadable entries are kept as `problems` rather than raised, so that `resolve` reports
    them together with every semantic problem of the map.
    """

    renames: tuple[RenameEntity, ...]
    problems: tuple[str, ...] = ()
    landing: LandingSpec | None = None
    """The map's `landing:` section, if it has one."""
    accepted: frozenset[EntityKey] = frozenset()
    """The entities of the map's `accept:` section, by key: failures the user knows of."""

    @classmethod
    def empty(cls) -> ResolutionMap:
        return cls(renames=())


class Pairs(list[tuple[object, object]]):
    """A mapping read as its list of pairs, so that a key given twice is seen, not dropped."""


def parse_resolution_map(text: str, *, origin: str = "resolution map") -> ResolutionMap:
    """Read a map in the friendly form (sections of old: new) or the wire form (a list of renames).

    Raises `ResolutionMapError` when the document as a whole cannot be read; a malformed single
    entry becomes one of the map's `problems` instead.
    """
    try:
        return _parse_document(text, origin)
    except RecursionError:
        raise ResolutionMapError([f"{origin}: nested too deeply to be a resolution map"]) from None


def _parse_document(text: str, origin: str) -> ResolutionMap:
    document = _load_document(text, origin)
    if document is None:
        return ResolutionMap.empty()
    entries = _entry_count(document)
    if entries > MAX_MAP_ENTRIES:
        raise ResolutionMapError(
            [f"{origin}: {entries:,} entries, more than the {MAX_MAP_ENTRIES:,} a map may hold"]
        )
    if isinstance(document, Pairs):
        return _parse_friendly(document, origin)
    if isinstance(document, list):
        return _parse_wire(document, origin)
    raise ResolutionMapError(
        [
            f"{origin}: expected sections ({', '.join(_SECTIONS)}) or a list of "
            f"TransferEntity*Rename objects, got {_shown(document)}"
        ]
    )


def load_resolution_map(path: Path) -> ResolutionMap:
    """Read and parse the map file at `path`."""
    return read_resolution_map(path)[0]


def read_resolution_map(path: Path) -> tuple[ResolutionMap, str]:
    """The map file at `path`, parsed, and the text it holds (which identifies a run); one over
    `MAX_MAP_BYTES`, or not UTF-8 text, is refused before it is parsed (and only that much of
    it is ever read)."""
    try:
        with path.open("rb") as file:
            content = file.read(MAX_MAP_BYTES + 1)
    except OSError as error:
        raise InvalidInputError(
            f"cannot read the resolution map {path}: {error.strerror or error}",
            hint="Check the path given to --resolutions.",
        ) from None
    if len(content) > MAX_MAP_BYTES:
        raise ResolutionMapError(
            [f"{path}: larger than {MAX_MAP_BYTES // 1_000_000} MB, more than any claim needs"]
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ResolutionMapError(
            [
                f"{path}: not UTF-8 text (byte 0x{content[error.start]:02x} at offset "
                f"{error.start}); a resolution map is a YAML or JSON file"
            ]
        ) from None
    return parse_resolution_map(text, origin=str(path)), text


def format_resolution_map(renames: Sequence[RenameEntity]) -> str:
    """The friendly YAML form of `renames`, grouped by kind; `parse_resolution_map` reads it."""
    lines = [
        "# pulumi-claim resolution map: each entry renames one entity of the source org so that",
        "# it no longer collides with a name in the destination org. Edit the new names as you",
        "# like, then pass this file with --resolutions.",
    ]
    from toolkit.resolution_map_yaml import yaml_scalar

    for section, (kind, shape) in _SECTIONS.items():
        entries = [rename for rename in renames if entity_key(rename)[0] == kind]
        if entries:
            lines.append(f"{section}:  # {shape}: new {shape}")
            lines.extend(
                f"  {yaml_scalar(display_name(rename))}: "
                f"{yaml_scalar(display_name(target_of(rename)))}"
                for rename in entries
            )
    return "\n".join(lines) + "\n"


def _load_document(text: str, origin: str) -> object:
    """JSON when the text is JSON (YAML parsers choke on JSON's tabs), else YAML."""
    try:
        return json.loads(text, object_pairs_hook=Pairs)
    except json.JSONDecodeError:
        pass
    from toolkit.resolution_map_yaml import load_yaml

    return load_yaml(text, origin)


def _entry_count(document: object) -> int:
    """How many renames a document asks for: the wire form's items, or the friendly form's
    entries over every section."""
    if isinstance(document, Pairs):  # a list too: tested first
        return sum(
            len(entries)
            for section, entries in document
            if section not in (LANDING_SECTION, ACCEPT_SECTION) and isinstance(entries, Pairs)
        )
    if isinstance(document, list):
        return len(document)
    return 0


def _parse_friendly(document: Pairs, origin: str) -> ResolutionMap:
    unreadable: list[str] = []
    renames: list[RenameEntity] = []
    problems: list[str] = []
    landing: LandingSpec | None = None
    accepted: frozenset[EntityKey] = frozenset()
    sections = [section for section, _ in document]
    for once in (LANDING_SECTION, ACCEPT_SECTION):
        if sections.count(once) > 1:
            unreadable.append(f"{origin}: section {once} is given more than once")
    for section, entries in document:
        if section == LANDING_SECTION:
            landing, landing_problems = parse_landing(entries, origin=origin)
            unreadable += landing_problems
        elif section == ACCEPT_SECTION:
            accepted, accept_problems = parse_accept(entries, origin=origin)
            unreadable += accept_problems
        elif not isinstance(section, str) or section not in _SECTIONS:
            unreadable.append(
                f"{origin}: unknown section {_shown(section)}"
                f"{did_you_mean(section, _FRIENDLY_SECTIONS)}; expected "
                f"{', '.join(_FRIENDLY_SECTIONS)}"
            )
        elif entries is not None and not isinstance(entries, Pairs):
            shape = _SECTIONS[section][1]
            unreadable.append(
                f"{origin}: section {section} must map {shape} to a new {shape}, "
                f"got {_shown(entries)}"
            )
        else:
            for old, new in entries or ():
                rename = _friendly_entry(section, old, new)
                if isinstance(rename, str):
                    problems.append(f"{origin}: {rename}")
                else:
                    renames.append(rename)
    if unreadable:
        raise ResolutionMapError(unreadable)
    return ResolutionMap(
        renames=tuple(renames), problems=tuple(problems), landing=landing, accepted=accepted
    )


def parse_accept(
    entries: object, *, origin: str | None = None
) -> tuple[frozenset[EntityKey], list[str]]:
    """The keys of an `accept:` section (sections of names, as the renames are written), and
    what is wrong with it, each problem after `origin` (the map file) when given; a job file's
    claim may carry the same section."""
    where = f"{origin}: accept" if origin else "accept"
    if entries is None:
        return frozenset(), []
    if not isinstance(entries, Pairs | dict):
        return frozenset(), [
            f"{where} must map sections ({', '.join(_SECTIONS)}) to lists of "
            f"names, got {_shown(entries)}"
        ]
    accepted: set[EntityKey] = set()
    problems: list[str] = []
    for section, names in entries.items() if isinstance(entries, dict) else entries:
        if not isinstance(section, str) or section not in _SECTIONS:
            problems.append(
                f"{where}: unknown section {_shown(section)}"
                f"{did_you_mean(section, _SECTIONS)}; expected {', '.join(_SECTIONS)}"
            )
            continue
        kind, shape = _SECTIONS[section]
        if not isinstance(names, list):
            problems.append(
                f"{where}: {section} must list names of the form {shape}, got {_shown(names)}"
            )
            continue
        for name in names:
            parts = name.split("/") if isinstance(name, str) else []
            if len(parts) != shape.count("/") + 1 or not all(parts):
                problems.append(f"{where}: {section}: {_shown(name)} is not of the form {shape}")
            else:
                accepted.add(entity_key(make_entity(kind, parts)))
    return frozenset(accepted), problems


def _friendly_entry(section: str, old: object, new: object) -> RenameEntity | str:
    """The rename one friendly entry asks for, or why it cannot be read."""
    kind, shape = _SECTIONS[section]
    entry = f"{section}: {_shown(old)}: {_shown(new)}"
    if not isinstance(old, str) or not isinstance(new, str):
        return (
            f"{entry}: both sides must be text of the form {shape} "
            "(quote names YAML would read as numbers, booleans, dates or null)"
        )
    old_parts, new_parts = old.split("/"), new.split("/")
    for name, split in ((old, old_parts), (new, new_parts)):
        if len(split) != shape.count("/") + 1 or not all(split):
            return f"{entry}: {_shown(name)} is not of the form {shape}"
    return as_rename(make_entity(kind, old_parts), make_entity(kind, new_parts))


def _parse_wire(document: list[object], origin: str) -> ResolutionMap:
    renames: list[RenameEntity] = []
    problems: list[str] = []
    for number, item in enumerate(document, start=1):
        plain = _plain(item)
        entry = f"{origin}: entry {number}"
        if not isinstance(plain, dict):
            problems.append(f"{entry}: expected a TransferEntity*Rename object, got {_shown(item)}")
            continue
        kind = plain.get("kind")
        if not isinstance(kind, str):
            expected = ", ".join(known.rename_kind for known in KINDS)
            problems.append(f"{entry}: no kind; expected one of {expected}")
            continue
        if kind in {known.wire_kind for known in KINDS}:
            problems.append(
                f"{entry}: a {kind} is not a rename; use {kind}Rename with a renameAs field"
            )
            continue
        try:
            renames.append(_RENAME_ADAPTER.validate_python(plain))
        except ValidationError as error:
            details = "; ".join(
                f"{_location(detail['loc'], kind)}: {detail['msg']}"
                for detail in error.errors(include_url=False)
            )
            problems.append(f"{entry} ({kind}): {details}")
    return ResolutionMap(renames=tuple(renames), problems=tuple(problems))


def _location(loc: tuple[int | str, ...], kind: object) -> str:
    """Where in an entry pydantic found a problem, without the union's tag in front."""
    parts = loc[1:] if loc[:1] == (kind,) else loc
    return ".".join(str(part) for part in parts) or "entry"


def _plain(value: object) -> object:
    """`value` with every `Pairs` turned back into a dict, as pydantic expects."""
    if isinstance(value, Pairs):
        return {str(key): _plain(item) for key, item in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _shown(value: object) -> str:
    """A value from a user's file, shortened for an error message."""
    shown = json.dumps(value) if isinstance(value, str) else repr(_plain(value))
    return shown if len(shown) <= 80 else shown[:77] + "..."
