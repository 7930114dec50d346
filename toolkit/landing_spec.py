"""What a claim's landing manages, pure: the `landing:` section of a resolution map or a job
file's claim, what moved by a claim document, and the resources the landing program declares
for it (each moved stack's tags, each team's permissions), merged with what it landed before.

The landing program runs in `toolkit.landing`; the map and job readers use these rules without
loading the Pulumi SDK or a client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

from toolkit.entities import base_of, entity_key
from toolkit.landing_program.model import LandedEnvironment, LandedStack, Landing, TeamPermission
from toolkit.models import (
    AgentClaimResponse,
    TransferEntityEnvironment,
    TransferEntityEnvironmentRename,
    TransferEntityStack,
    TransferEntityStackRename,
)

LANDING_PROJECT = "pulumi-claim-landing"
"""The project of every landing stack (the top-level Pulumi.yaml's name)."""

SOURCE_TAG = "pulumi-claim:source"
"""Tag on every moved stack: `org/project/stack` it had in the source org."""
RUN_TAG = "pulumi-claim:run"
"""Tag on every moved stack: the id of the run that moved it."""
_OWN_TAG_PREFIX = "pulumi-claim:"

_TAG_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
"""Stack tag names the service accepts: letters, digits, `-`, `_`, `.` and `:`, 1-40 long."""
MAX_TAG_VALUE = 256
_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_SECTION_KEYS = ("stack", "tags", "teams")
TEAM_PERMISSIONS: tuple[TeamPermission, ...] = get_args(TeamPermission)


# --- The landing: section -------------------------------------------------------------------


@dataclass(frozen=True)
class LandingSpec:
    """The `landing:` section of a resolution map or of a job file's claim."""

    stack: str | None = None
    """The landing stack's name; None: named after the source org."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Added to every moved stack."""
    teams: Mapping[str, TeamPermission] = field(default_factory=dict)
    """Team -> the permission it gets on every moved stack and copied environment."""

    def stack_name(self, source_org: str) -> str:
        return self.stack or source_org

    def identity(self) -> dict[str, object]:
        """What identifies the spec in a run key."""
        return {"stack": self.stack, "tags": dict(self.tags), "teams": dict(self.teams)}


def parse_landing(value: object, *, origin: str = "") -> tuple[LandingSpec | None, list[str]]:
    """The spec a `landing:` section (already parsed YAML, mappings as dicts or lists of
    pairs) asks for, or every problem with it (then no spec); None and no problems for an
    empty section. Problems start with `origin` (the file) when given."""
    if value is None:
        return None, []
    where = f"{origin}: landing" if origin else "landing"
    section = _mapping(value)
    if section is None:
        return None, [f"{where}: expected a mapping with {', '.join(_SECTION_KEYS)}"]
    problems: list[str] = []
    problems += [f"{where}: {name!r} is given more than once" for name in _repeated(section)]
    given = dict(section)
    problems += [
        f"{where}: unknown key {key!r}; expected {', '.join(_SECTION_KEYS)}"
        for key in given
        if key not in _SECTION_KEYS
    ]
    stack = given.get("stack")
    if stack is not None and not (isinstance(stack, str) and _STACK_NAME.fullmatch(stack)):
        problems.append(
            f"{where}.stack: {stack!r} is not a stack name (letters, digits, -, _ and ., "
            "at most 100)"
        )
    tags = _text_mapping(given.get("tags"), f"{where}.tags", "tag name", problems)
    for name, tag_value in tags.items():
        if not _TAG_NAME.fullmatch(name):
            problems.append(
                f"{where}.tags: {name!r} is not a tag name (letters, digits, -, _, . and :, "
                "at most 40)"
            )
        elif name.startswith(("pulumi:", _OWN_TAG_PREFIX)):
            problems.append(f"{where}.tags: {name!r}: the prefix {name.split(':')[0]}: is reserved")
        if len(tag_value) > MAX_TAG_VALUE:
            problems.append(f"{where}.tags: the value of {name!r} is over {MAX_TAG_VALUE} long")
    teams = _text_mapping(given.get("teams"), f"{where}.teams", "team name", problems)
    granted: dict[str, TeamPermission] = {}
    for team, permission in teams.items():
        if permission in TEAM_PERMISSIONS:
            granted[team] = permission
        else:
            problems.append(
                f"{where}.teams: {team!r}: {permission!r} is not one of "
                f"{', '.join(TEAM_PERMISSIONS)}"
            )
    if problems:
        return None, problems
    return LandingSpec(
        stack=stack if isinstance(stack, str) else None, tags=tags, teams=granted
    ), []


def _mapping(value: object) -> list[tuple[object, object]] | None:
    """A mapping as its pairs (a dict, or a list of pairs as the map reader keeps them)."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return list(value)
    return None


def _repeated(pairs: list[tuple[object, object]]) -> list[object]:
    seen: set[object] = set()
    repeated = []
    for key, _ in pairs:
        if key in seen:
            repeated.append(key)
        seen.add(key)
    return repeated


def _text_mapping(value: object, where: str, what: str, problems: list[str]) -> dict[str, str]:
    """A mapping of text to text; each entry that is not is one of `problems`."""
    if value is None:
        return {}
    pairs = _mapping(value)
    if pairs is None:
        problems.append(f"{where}: expected a mapping of {what} to text, got {value!r}")
        return {}
    problems += [f"{where}: {key!r} is given more than once" for key in _repeated(pairs)]
    read: dict[str, str] = {}
    for key, item in pairs:
        if not isinstance(key, str) or not key:
            problems.append(f"{where}: {key!r} is not a {what}")
        elif not isinstance(item, str):
            problems.append(f"{where}: {key!r}: {item!r} is not text (quote it)")
        else:
            read[key] = item
    return read


# --- What moved, and what the landing manages (pure) ----------------------------------------


@dataclass(frozen=True)
class MovedStack:
    source: str
    """`project/stack` in the source org."""
    destination: str
    """`project/stack` in the destination org."""


@dataclass(frozen=True)
class Landed:
    """What a claim document says moved: stacks and environments not among its failures."""

    stacks: list[MovedStack]
    environments: list[str]
    """`project/name` in the destination org."""


def landed_entities(document: AgentClaimResponse) -> Landed:
    """The stacks and environments that moved, by the claim document of a commit."""
    failed = {entity_key(failure.entity) for failure in document.failures}
    stacks: list[MovedStack] = []
    environments: list[str] = []
    for entity in document.entities:
        if entity_key(entity) in failed:
            continue
        if isinstance(entity, TransferEntityStack | TransferEntityStackRename):
            target = entity.rename_as if isinstance(entity, TransferEntityStackRename) else entity
            stacks.append(
                MovedStack(
                    source=f"{entity.project_name}/{entity.stack_name}",
                    destination=f"{target.project_name}/{target.stack_name}",
                )
            )
        elif isinstance(entity, TransferEntityEnvironment | TransferEntityEnvironmentRename):
            moved = (
                entity.rename_as
                if isinstance(entity, TransferEntityEnvironmentRename)
                else base_of(entity)
            )
            assert isinstance(moved, TransferEntityEnvironment)
            environments.append(f"{moved.project_name}/{moved.environment_name}")
    return Landed(stacks=stacks, environments=environments)


def landing_resources(
    spec: LandingSpec,
    stacks: Sequence[MovedStack],
    environments: Sequence[str],
    *,
    source_org: str,
    destination_org: str,
    run_id: str,
    previous: Landing | None = None,
) -> Landing:
    """What the landing program manages after this run: the stacks and environments of
    `previous` (an earlier run's landing, with the provenance tags it gave) and those moved
    now, each stack with its provenance tags and the spec's tags; the spec's teams on all."""
    provenance: dict[str, dict[str, str]] = {}
    if previous is not None:
        for stack in previous.stacks:
            provenance[f"{stack.project}/{stack.stack}"] = {
                name: value
                for name, value in stack.tags.items()
                if name.startswith(_OWN_TAG_PREFIX)
            }
    for moved in stacks:
        provenance[moved.destination] = {
            SOURCE_TAG: f"{source_org}/{moved.source}",
            RUN_TAG: run_id,
        }
    landed_environments = {
        f"{env.project}/{env.name}" for env in (previous.environments if previous else [])
    } | set(environments)
    return Landing(
        organization=destination_org,
        stacks=[
            LandedStack(
                project=name.split("/")[0],
                stack=name.split("/")[1],
                tags={**spec.tags, **own},
            )
            for name, own in sorted(provenance.items())
        ],
        environments=[
            LandedEnvironment(project=name.split("/")[0], name=name.split("/")[1])
            for name in sorted(landed_environments)
        ],
        teams=dict(spec.teams),
    )


def landing_stack(org: str, stack: str) -> str:
    """The landing stack's full name in `org`: `org/project/stack`."""
    return f"{org}/{LANDING_PROJECT}/{stack}"


BuildLanding = Callable[[Landing | None], Landing]
"""Given what the landing stack landed before (None for a new stack), what it lands now."""


def landing_of(
    spec: LandingSpec,
    document: AgentClaimResponse,
    *,
    source_org: str,
    destination_org: str,
    run_id: str,
) -> BuildLanding:
    """How to build the landing of what `document` (a claim's) says moved, given what the
    landing stack landed before."""
    landed = landed_entities(document)
    return lambda previous: landing_resources(
        spec,
        landed.stacks,
        landed.environments,
        source_org=source_org,
        destination_org=destination_org,
        run_id=run_id,
        previous=previous,
    )
