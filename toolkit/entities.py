"""Entity identity: the one home of the domain's rules about what an org owns and how it is named.

An org owns stacks, ESC environments, Insights accounts and registry packages. Each is known
inside its org by a few name fields (its identity), and travels on the wire as a `TransferEntity*`
model discriminated by `kind`; a rename instruction is the same entity as `TransferEntity*Rename`
with a `renameAs`. Everything here is pure. The emulator imports this module too: the naming
rule is the service's, not the client's planner.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from toolkit.models import (
    BaseEntity,
    RenameEntity,
    TransferEntityEnvironment,
    TransferEntityEnvironmentRename,
    TransferEntityInsightsAccount,
    TransferEntityInsightsAccountRename,
    TransferEntityRegistryPackage,
    TransferEntityRegistryPackageRename,
    TransferEntityStack,
    TransferEntityStackRename,
)

if TYPE_CHECKING:
    from toolkit.esc_definitions import ReadDefinitions

EntityKey = tuple[str, ...]
"""An entity's base kind, then its identity in its org: ("TransferEntityStack", "web", "dev")."""

StackName = tuple[str, str]
"""(project, stack): a stack's identity inside its org."""


# --- Names -----------------------------------------------------------------------------------

MAX_NAME_LENGTH = 100

NAME_PATTERN = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_NAME_LENGTH}}}")
"""What the service accepts as a project, stack, environment or account name (use fullmatch)."""

NAME_RULE = f"1-{MAX_NAME_LENGTH} letters, digits, '_', '.', '-'"
"""The rule in words, for error messages."""

NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]*")
"""Text made only of name characters (possibly empty): what may be added to a name."""


def is_valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def name_problem(what: str, name: str) -> str | None:
    """Why `name` cannot name a `what` (project, stack, ...), or None when it can."""
    if is_valid_name(name):
        return None
    return f"invalid {what} name {name!r}: use {NAME_RULE}"


# --- Kinds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityKind:
    """One kind of entity an org owns, as the wire and the reports name it."""

    wire_kind: str
    """The `kind` discriminator of the base entity, e.g. `TransferEntityStack`."""
    label: str
    """How a person calls it: `stack`, `ESC environment`."""
    identity_fields: tuple[str, ...]
    """The model attributes that identify an entity of this kind in its org, in key order."""
    shape: str
    """How its identity is written: `project/stack`."""

    @property
    def rename_kind(self) -> str:
        return f"{self.wire_kind}Rename"


KINDS: tuple[EntityKind, ...] = (
    EntityKind("TransferEntityStack", "stack", ("project_name", "stack_name"), "project/stack"),
    EntityKind(
        "TransferEntityEnvironment",
        "ESC environment",
        ("project_name", "environment_name"),
        "project/environment",
    ),
    EntityKind("TransferEntityInsightsAccount", "Insights account", ("name",), "name"),
    EntityKind(
        "TransferEntityRegistryPackage",
        "registry package",
        ("source", "publisher", "name"),
        "source/publisher/name",
    ),
)
"""Every kind, in the order reports and plans list them."""

KIND_BY_WIRE: dict[str, EntityKind] = {
    **{kind.wire_kind: kind for kind in KINDS},
    **{kind.rename_kind: kind for kind in KINDS},
}
"""Wire kind (base or rename) -> its kind."""


def kind_of(entity: BaseEntity | RenameEntity) -> EntityKind:
    return KIND_BY_WIRE[entity.kind]


_KIND_ORDER = {wire: KINDS.index(kind) for wire, kind in KIND_BY_WIRE.items()}


def kind_order(wire_kind: str) -> int:
    """Where entities of `wire_kind` (base or rename) stand among the kinds."""
    return _KIND_ORDER[wire_kind]


# --- Identity --------------------------------------------------------------------------------


def identity(entity: BaseEntity | RenameEntity) -> tuple[str, ...]:
    """The name fields that identify `entity` in its org (a rename: what it renames)."""
    return _IDENTITY_BY_WIRE[entity.kind](entity)


def entity_key(entity: BaseEntity | RenameEntity) -> EntityKey:
    """The kind of the base entity plus its identity; a rename has the key of what it renames."""
    return (KIND_BY_WIRE[entity.kind].wire_kind, *_IDENTITY_BY_WIRE[entity.kind](entity))


def _identity_reader(kind: EntityKind) -> Callable[[object], tuple[str, ...]]:
    """Reads the identity fields of an entity of `kind` at once (planning keys every entity
    many times over)."""
    read: Callable[[object], Any] = operator.attrgetter(*kind.identity_fields)
    if len(kind.identity_fields) == 1:
        return lambda entity: (read(entity),)
    return cast(Callable[[object], tuple[str, ...]], read)  # several names: read as a tuple


_IDENTITY_BY_WIRE = {wire: _identity_reader(kind) for wire, kind in KIND_BY_WIRE.items()}


def stack_name(stack: TransferEntityStack) -> StackName:
    return (stack.project_name, stack.stack_name)


def display_name(entity: BaseEntity | RenameEntity) -> str:
    """The entity's identity as a user writes it: `web/dev`, `aws-main`, `private/acme/vpc`."""
    return "/".join(identity(entity))


def qualified_name(org: str, entity: BaseEntity | RenameEntity) -> str:
    """The entity's name across orgs, as progress and messages say it: `acme/web/dev`."""
    return f"{org}/{display_name(entity)}"


def describe(entity: BaseEntity | RenameEntity) -> str:
    """Human text for an entity (a rename is described as the entity it renames)."""
    return f"{kind_of(entity).label} {display_name(entity)}"


def invalid_names(entity: BaseEntity | RenameEntity) -> list[str]:
    """The parts of the entity's identity that the naming rule refuses."""
    return [part for part in identity(entity) if not is_valid_name(part)]


def naming_warnings(entities: Iterable[BaseEntity | RenameEntity]) -> list[str]:
    """A warning for each entity the service lists under a name its naming rule refuses: such
    a name can hide control characters, which every output shows escaped."""
    return [
        f"warning: {describe(entity)} has a name that breaks the naming rule ({NAME_RULE}); "
        "it is shown with any control characters escaped: check that it is the entity you mean"
        for entity in entities
        if invalid_names(entity)
    ]


def target_of(rename: RenameEntity) -> BaseEntity:
    """The entity a rename asks for (its `renameAs`)."""
    return rename.rename_as


def make_entity(wire_kind: str, parts: Sequence[str]) -> BaseEntity:
    """A base entity of `wire_kind` with the given identity parts (in `entity_key` order)."""
    match wire_kind, *parts:
        case "TransferEntityStack", project, stack:
            return TransferEntityStack(project_name=project, stack_name=stack)
        case "TransferEntityEnvironment", project, environment:
            return TransferEntityEnvironment(project_name=project, environment_name=environment)
        case "TransferEntityInsightsAccount", name:
            return TransferEntityInsightsAccount(name=name)
        case "TransferEntityRegistryPackage", source, publisher, name:
            return TransferEntityRegistryPackage(source=source, publisher=publisher, name=name)
    raise ValueError(f"no entity of kind {wire_kind} has identity {tuple(parts)!r}")


def as_rename(entity: BaseEntity, target: BaseEntity) -> RenameEntity:
    """`entity` in its `*Rename` form, asking to become `target` (an entity of the same kind)."""
    if isinstance(entity, TransferEntityStack) and isinstance(target, TransferEntityStack):
        return TransferEntityStackRename(
            project_name=entity.project_name,
            stack_name=entity.stack_name,
            resource_count=entity.resource_count,
            last_update=entity.last_update,
            rename_as=target,
        )
    if isinstance(entity, TransferEntityEnvironment) and isinstance(
        target, TransferEntityEnvironment
    ):
        return TransferEntityEnvironmentRename(
            project_name=entity.project_name,
            environment_name=entity.environment_name,
            rename_as=target,
        )
    if isinstance(entity, TransferEntityInsightsAccount) and isinstance(
        target, TransferEntityInsightsAccount
    ):
        return TransferEntityInsightsAccountRename(name=entity.name, rename_as=target)
    if isinstance(entity, TransferEntityRegistryPackage) and isinstance(
        target, TransferEntityRegistryPackage
    ):
        return TransferEntityRegistryPackageRename(
            source=entity.source, publisher=entity.publisher, name=entity.name, rename_as=target
        )
    raise TypeError(f"cannot rename {entity.kind} as {target.kind}")


def base_of(entity: BaseEntity | RenameEntity) -> BaseEntity:
    """The entity as it exists in its org: a rename form without its `renameAs`."""
    if isinstance(entity, TransferEntityStackRename):
        return TransferEntityStack.model_validate(entity.model_dump(exclude={"kind", "rename_as"}))
    if isinstance(entity, RenameEntity):
        return make_entity(kind_of(entity).wire_kind, identity(entity))
    return entity


def stable_order(entity: BaseEntity | RenameEntity) -> tuple[int, EntityKey]:
    """Sort key: by kind as `KINDS` lists them, then by identity."""
    return key_order(entity_key(entity))


def key_order(key: EntityKey) -> tuple[int, EntityKey]:
    """`stable_order` of the entity whose key is `key`."""
    return (kind_order(key[0]), key[1:])


# --- Inventory -------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Inventory:
    """Everything one org owns, each entity in its wire form (its identity plus facts), and
    each by its key (`by_key`), which planning looks entities up by.

    `keys`: the entities by key as a collector keyed them while its pages arrived, so that
    nothing is keyed again once the last one is in; without it they are keyed here. Its repr
    counts the entities rather than listing them (see `ClaimPlan`).
    """

    org: str
    stacks: list[TransferEntityStack] = field(default_factory=list)
    environments: list[TransferEntityEnvironment] = field(default_factory=list)
    insights_accounts: list[TransferEntityInsightsAccount] = field(default_factory=list)
    registry_packages: list[TransferEntityRegistryPackage] = field(default_factory=list)
    definitions: ReadDefinitions | None = field(default=None, compare=False)
    """The environments' definitions, where the collector was asked to read them (the
    source's: what names a moved stack or environment)."""
    keys: InitVar[dict[EntityKey, BaseEntity] | None] = None
    by_key: dict[EntityKey, BaseEntity] = field(init=False, compare=False)
    """Each entity by its key, in the order of `entities` (`keys` itself when given: handed
    over, not copied, since at 100,000 entities each copy is tens of megabytes)."""

    def __post_init__(self, keys: dict[EntityKey, BaseEntity] | None) -> None:
        by_key = keys if keys is not None else {entity_key(e): e for e in self.entities}
        object.__setattr__(self, "by_key", by_key)

    @classmethod
    def from_entities(cls, org: str, entities: Iterable[BaseEntity | RenameEntity]) -> Inventory:
        """What a claim document lists as an org's entities, by kind, each in stable order.

        A rename form stands for the entity it renames, as it exists in the org now.
        """
        owned = sorted((base_of(entity) for entity in entities), key=stable_order)
        return cls(
            org=org,
            stacks=[e for e in owned if isinstance(e, TransferEntityStack)],
            environments=[e for e in owned if isinstance(e, TransferEntityEnvironment)],
            insights_accounts=[e for e in owned if isinstance(e, TransferEntityInsightsAccount)],
            registry_packages=[e for e in owned if isinstance(e, TransferEntityRegistryPackage)],
        )

    def __repr__(self) -> str:
        return (
            f"Inventory(org={self.org!r}, stacks={len(self.stacks)}, "
            f"environments={len(self.environments)}, "
            f"insights_accounts={len(self.insights_accounts)}, "
            f"registry_packages={len(self.registry_packages)})"
        )

    @property
    def entities(self) -> list[BaseEntity]:
        return [
            *self.stacks,
            *self.environments,
            *self.insights_accounts,
            *self.registry_packages,
        ]
