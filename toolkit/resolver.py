"""Conflicts with the destination, and how a resolution map renames them away.

Everything here is a pure function over inventories and wire models (ARCHITECTURE.md). A map is
refused with *every* problem listed at once, so a user fixes a large map in one pass instead of
one error per run.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from toolkit.entities import (
    MAX_NAME_LENGTH,
    NAME_CHARACTERS,
    NAME_RULE,
    EntityKey,
    Inventory,
    as_rename,
    describe,
    display_name,
    entity_key,
    invalid_names,
    make_entity,
    target_of,
)
from toolkit.errors import InvalidInputError, ResolutionMapError
from toolkit.models import BaseEntity, RenameEntity
from toolkit.resolution_map import ResolutionMap

MAX_SUFFIX_LENGTH = MAX_NAME_LENGTH - 10
"""A suggested name keeps at least 10 characters of the name it extends."""


def find_conflicts(
    source: Inventory, destination: Inventory, kinds: Collection[str]
) -> list[BaseEntity]:
    """Source entities of `kinds` whose identity is already taken in the destination."""
    taken = destination.by_key
    return [
        entity for key, entity in source.by_key.items() if entity.kind in kinds and key in taken
    ]


@dataclass(frozen=True)
class Resolution:
    """How a valid map applies to today's inventories."""

    renames: dict[EntityKey, BaseEntity]
    """Source key -> the entity it becomes; only entities of the kinds that move, no no-ops."""
    unresolved: list[BaseEntity] = field(default_factory=list)
    """Conflicts that no rename covers: while any remain, nothing may move."""
    notices: list[str] = field(default_factory=list)
    """What the user should know that does not block, such as a rename with no conflict."""


def resolve(
    source: Inventory,
    destination: Inventory,
    resolution_map: ResolutionMap,
    *,
    kinds: Collection[str],
) -> Resolution:
    """Check `resolution_map` against both inventories and apply it to the entities of `kinds`.

    Raises `ResolutionMapError` listing every problem: entries that could not be read, unknown
    entities, invalid names, an entity renamed more than once, and targets that collide with
    the destination or with another entity's final name.
    """
    in_source, in_destination = source.by_key, destination.by_key
    problems = list(resolution_map.problems)
    notices: list[str] = []

    asked: dict[EntityKey, list[RenameEntity]] = defaultdict(list)
    for rename in resolution_map.renames:
        problem = _entry_problem(rename, in_source, source.org)
        if problem:
            problems.append(problem)
        else:
            asked[entity_key(rename)].append(rename)

    renames: dict[EntityKey, BaseEntity] = {}
    for key, entries in asked.items():
        entity = in_source[key]
        if len(entries) > 1:
            targets = ", ".join(display_name(target_of(entry)) for entry in entries)
            problems.append(f"{describe(entity)}: renamed more than once (to {targets})")
            continue
        target = target_of(entries[0])
        change = f"{display_name(entity)} to {display_name(target)}"
        if entity.kind not in kinds:
            notices.append(
                f"{describe(entity)} cannot move with this strategy; its rename is not used"
            )
        elif entity_key(target) in in_destination:
            problems.append(
                f"{describe(entity)}: cannot rename {change}: "
                f"{display_name(target)} already exists in {destination.org}"
            )
        elif entity_key(target) == key:
            notices.append(
                f"{describe(entity)} is renamed to its own name; the entry changes nothing"
            )
        else:
            renames[key] = target
            if key not in in_destination:
                notices.append(
                    f"{describe(entity)} had no conflict; it will be renamed to "
                    f"{display_name(target)} as the map asks"
                )

    problems.extend(_shared_final_names(in_source, renames, kinds, destination.org))
    if problems:
        raise ResolutionMapError(problems)
    unresolved = [
        entity
        for key, entity in in_source.items()
        if entity.kind in kinds and key in in_destination and key not in renames
    ]
    return Resolution(renames=renames, unresolved=unresolved, notices=notices)


def _entry_problem(
    rename: RenameEntity, in_source: Collection[EntityKey], source_org: str
) -> str | None:
    """What makes one map entry unusable on its own, if anything."""
    invalid = invalid_names(rename)
    if invalid:
        return f"{describe(rename)}: {_names(invalid)} {_not_valid(invalid)}"
    if entity_key(rename) not in in_source:
        return f"{describe(rename)}: no such entity in {source_org}"
    target = target_of(rename)
    invalid = invalid_names(target)
    if invalid:
        return (
            f"{describe(rename)}: cannot rename to {display_name(target)}: "
            f"{_names(invalid)} {_not_valid(invalid)}"
        )
    return None


def _names(parts: Sequence[str]) -> str:
    return ", ".join(json.dumps(part) for part in parts)


def _not_valid(parts: Sequence[str]) -> str:
    verb = "is not a valid name" if len(parts) == 1 else "are not valid names"
    return f"{verb} ({NAME_RULE})"


def _shared_final_names(
    in_source: Mapping[EntityKey, BaseEntity],
    renames: dict[EntityKey, BaseEntity],
    kinds: Collection[str],
    org: str,
) -> Iterable[str]:
    """One problem per name that more than one moving entity of the source (by key) would
    end up with."""
    ending: dict[EntityKey, list[BaseEntity]] = defaultdict(list)
    for key, entity in in_source.items():
        if entity.kind in kinds:
            ending[entity_key(renames[key]) if key in renames else key].append(entity)
    for final, entities in ending.items():
        if len(entities) > 1:
            who = " and ".join(
                f"{describe(entity)} ("
                + ("renamed" if entity_key(entity) in renames else "keeps its name")
                + ")"
                for entity in entities
            )
            both = "both" if len(entities) == 2 else "all"
            yield f"{who} would {both} end up as {'/'.join(final[1:])} in {org}"


def suggest_resolution_map(
    conflicts: Sequence[BaseEntity],
    *,
    source: Inventory,
    destination: Inventory,
    suffix: str,
) -> ResolutionMap:
    """A map that `resolve` accepts for today's `conflicts`: each renamed to its name + `suffix`.

    Where that is taken (in the destination, in the source, or by an earlier suggestion) the
    name gets `-2`, `-3`, ... as well; long names are shortened to stay within 100 characters.
    """
    if not NAME_CHARACTERS.fullmatch(suffix) or len(suffix) > MAX_SUFFIX_LENGTH:
        raise InvalidInputError(
            f"the suffix {suffix!r} would make invalid names",
            hint=f"Use at most {MAX_SUFFIX_LENGTH} letters, digits, '_', '.' or '-', "
            "e.g. --suffix -agent.",
        )
    taken = {*source.by_key, *destination.by_key}
    renames: list[RenameEntity] = []
    for entity in conflicts:
        target = _free_name(entity, suffix, taken)
        taken.add(entity_key(target))
        renames.append(as_rename(entity, target))
    return ResolutionMap(renames=tuple(renames))


def _free_name(entity: BaseEntity, suffix: str, taken: Collection[EntityKey]) -> BaseEntity:
    """The first of name+suffix, name+suffix-2, ... (shortened to fit) that is not `taken`."""
    kind, *identity = entity_key(entity)
    for attempt in itertools.count(1):
        ending = suffix if attempt == 1 else f"{suffix}-{attempt}"
        name = identity[-1][: MAX_NAME_LENGTH - len(ending)] + ending
        target = make_entity(kind, [*identity[:-1], name])
        if entity_key(target) not in taken:
            return target
    raise AssertionError("unreachable: itertools.count never ends")
