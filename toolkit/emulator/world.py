"""The world file: who exists in the emulated Pulumi Cloud and what each org owns.

A world is the starting state of the emulator (users, agent accounts, orgs and their
stacks, ESC environments, Insights accounts, registry packages and teams) and how the emulated
service behaves where Pulumi Cloud has changed over time (`service`). It is validated as a
whole before anything is loaded, so a typo in a world file is reported with the path of
the offending field instead of surfacing later as a puzzling service answer.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from toolkit.emulator.esc_definitions import compose
from toolkit.emulator.stack_extras import schedule_problem, webhook_problem
from toolkit.entities import NAME_RULE, is_valid_name
from toolkit.errors import InvalidInputError, did_you_mean

Role = Literal["admin", "member"]


def _check_name(value: str) -> str:
    """Project, stack, environment, org and login names follow the service's one naming rule."""
    if not is_valid_name(value):
        raise ValueError(f"{value!r} is not a valid name: use {NAME_RULE}")
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def _check_entity_name(value: str, info: ValidationInfo) -> str:
    """An entity's name follows the naming rule too, unless the world holds legacy names."""
    if isinstance(info.context, dict) and info.context.get(_LEGACY_NAMES):
        return value
    try:
        return _check_name(value)
    except ValueError as error:
        raise ValueError(
            f"{error} (service.legacyNames allows names from before the rule)"
        ) from None


EntityName = Annotated[str, Field(min_length=1), AfterValidator(_check_entity_name)]
"""A name of an org's stack, environment, Insights account or registry package."""

_LEGACY_NAMES = "legacyNames"
"""The validation context's switch: `service.legacyNames` of the world being read."""


class _WorldModel(BaseModel):
    """Base of the world file's sections: camelCase keys, unknown keys refused (typos)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class WorldUser(_WorldModel):
    login: Name
    token: str = Field(min_length=1)
    orgs: dict[Name, Role] = Field(default_factory=dict)


class WorldAgent(_WorldModel):
    """An ephemeral agent account: a user who is admin of the org named after its login."""

    login: Name
    token: str = Field(min_length=1)
    claim_token: str = Field(min_length=1)
    created_at: datetime
    claim_expires_at: datetime


ClaimMoves = Literal["current", "launch"]
"""What the emulated service's claim moves besides stacks (`WorldService.claim_moves`)."""

DEFAULT_SIGNUP_DIFFICULTY = 12
"""Leading zero bits of agent sign-up's proof of work: the CLI solves it in milliseconds."""


DEFAULT_CLAIM_SECONDS_PER_STACK = 0.02
"""How long a started claim takes to move each stack: above zero, so every claim is followed
while it runs, and short, so a test's claim ends within a few polls."""


ResourceSearch = Literal["available", "withoutProperties", "unreachable", "absent"]
"""How the emulated service answers its resource search (`WorldService.resource_search`)."""


class WorldService(_WorldModel):
    """How the emulated service behaves where Pulumi Cloud's own behaviour has changed."""

    @model_validator(mode="before")
    @classmethod
    def _replaced_switches(cls, fields: Any) -> Any:
        """A switch this file no longer has gets the one that replaced it named."""
        if isinstance(fields, dict) and "claimMovesEnvironments" in fields:
            raise ValueError(
                "claimMovesEnvironments is replaced by claimMoves: write claimMoves: current"
                " (environments and registry packages move with a claim) or claimMoves: launch"
                " (they are claim failures)"
            )
        return fields

    claim_moves: ClaimMoves = "current"
    """What a claim moves besides stacks. `current`, as Pulumi's API document has it today:
    ESC environments and registry packages move (renamable through `conflictsResolution`),
    Insights accounts are failures. `launch`, as at the claim API's launch: environments,
    Insights accounts and registry packages are all failures."""
    claim_seconds_per_stack: float = Field(default=DEFAULT_CLAIM_SECONDS_PER_STACK, ge=0)
    """A claim's commit answers at once and starts the claim; the service then moves its
    stacks one every this many seconds (0: all by the next call), the agent's org held
    against writes meanwhile."""
    rate_limit: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Requests a second the service answers each caller (each token; a call without one,
    each address), bursts of as many included; beyond it, 429 with `Retry-After`. None: no
    limit."""
    signup_difficulty: int = Field(default=DEFAULT_SIGNUP_DIFFICULTY, ge=1, le=256)
    """Leading zero bits the agent sign-up proof of work must reach."""
    resource_search: ResourceSearch = "available"
    """What `GET /api/orgs/{org}/search/resourcesv2` (and its deprecated v1,
    `/search/resources`) answers. `available`: the search, with resource properties on
    request. `withoutProperties`: 402 for `properties=true`, as an org without the
    subscription that includes them. `unreachable`: 422 "search cluster is unreachable".
    `absent`: 404, as a service without the search (an older self-hosted one)."""
    legacy_names: bool = False
    """True: the orgs' stacks, environments, Insights accounts and registry packages may have
    names that break today's naming rule (control characters included), as a service that
    holds entities named before the rule, or one that misbehaves, lists them. Calls that
    create or rename an entity keep the rule either way."""


MAX_RESOURCE_COUNT = 100_000
"""Resources a world stack may declare: its export holds a placeholder for each."""


class WorldWebhook(_WorldModel):
    """A stack's webhook; `secret` signs its deliveries and is never shown again."""

    name: str = Field(min_length=1)
    payload_url: str
    display_name: str | None = None
    secret: str | None = None
    active: bool = True
    format: str | None = None
    filters: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)

    def wire_body(self) -> dict[str, Any]:
        """The webhook as a client creates it (`Webhook`), its secret left out."""
        body = self.model_dump(by_alias=True, exclude_none=True, exclude={"secret"})
        body.setdefault("displayName", self.name)
        return body


class WorldStack(_WorldModel):
    project: EntityName
    stack: EntityName
    resource_count: int = Field(default=0, ge=0, le=MAX_RESOURCE_COUNT)
    last_update: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    stack_references: list[str] = Field(default_factory=list)
    """Stacks its program reads, each name as written (`org/project/stack`, `org/stack` or
    `stack`): a `pulumi:pulumi:StackReference` resource for each in its latest state."""

    @field_validator("stack_references")
    @classmethod
    def _references_are_names(cls, names: list[str]) -> list[str]:
        for name in names:
            parts = name.split("/")
            if len(parts) > 3 or not all(parts):
                raise ValueError(
                    f"{name!r} is not a stack reference: write org/project/stack, org/stack"
                    " or stack"
                )
        _refuse_duplicates("stack reference", names)
        return names

    deployment_settings: dict[str, Any] | None = None
    """As a client sends it (`DeploymentSettings`); secret values as `{secret: plaintext}`."""
    webhooks: list[WorldWebhook] = Field(default_factory=list)
    schedules: list[dict[str, Any]] = Field(default_factory=list)
    """Deployment schedules as a client creates them (`CreateScheduledDeploymentRequest`)."""

    @model_validator(mode="after")
    def _service_accepts_webhooks_and_schedules(self) -> WorldStack:
        """Its webhooks and schedules are ones the service would accept from a client."""
        found = [
            *(
                (f"webhooks[{i}]", webhook_problem(h.wire_body()))
                for i, h in enumerate(self.webhooks)
            ),
            *((f"schedules[{i}]", schedule_problem(s)) for i, s in enumerate(self.schedules)),
        ]
        for where, problem in found:
            if problem is not None:
                raise ValueError(f"stack {self.project}/{self.stack}: {where}: {problem}")
        return self


class WorldEnvironment(_WorldModel):
    project: EntityName
    name: EntityName
    definition: str | None = None
    """The environment's YAML definition; `fn::secret` plaintext in it is sealed with the
    environment's own key as the world loads, as the service would on an update."""
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("definition")
    @classmethod
    def _definition_is_valid(cls, definition: str | None) -> str | None:
        if definition is not None:
            compose(definition)
        return definition


class WorldInsightsAccount(_WorldModel):
    name: EntityName
    provider: Literal["aws", "gcp", "azure-native", "oci", "kubernetes"] = "aws"


class WorldRegistryPackage(_WorldModel):
    source: EntityName
    publisher: EntityName
    name: EntityName


class WorldTeam(_WorldModel):
    """A Pulumi team of the org; its members must belong to the org."""

    name: Name
    display_name: str = ""
    description: str = ""
    members: list[Name] = Field(default_factory=list)


class WorldOrg(_WorldModel):
    stacks: list[WorldStack] = Field(default_factory=list)
    environments: list[WorldEnvironment] = Field(default_factory=list)
    insights_accounts: list[WorldInsightsAccount] = Field(default_factory=list)
    registry_packages: list[WorldRegistryPackage] = Field(default_factory=list)
    teams: list[WorldTeam] = Field(default_factory=list)

    @model_validator(mode="after")
    def _identities_are_unique(self) -> WorldOrg:
        _refuse_duplicates("stack", [f"{s.project}/{s.stack}" for s in self.stacks])
        _refuse_duplicates("environment", [f"{e.project}/{e.name}" for e in self.environments])
        _refuse_duplicates("Insights account", [a.name for a in self.insights_accounts])
        _refuse_duplicates(
            "registry package",
            [f"{p.source}/{p.publisher}/{p.name}" for p in self.registry_packages],
        )
        _refuse_duplicates("team", [t.name for t in self.teams])
        return self


class World(_WorldModel):
    service: WorldService = Field(default_factory=WorldService)
    users: list[WorldUser] = Field(default_factory=list)
    agents: list[WorldAgent] = Field(default_factory=list)
    orgs: dict[Name, WorldOrg] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _accounts_are_unique(self) -> World:
        accounts: list[WorldUser | WorldAgent] = [*self.users, *self.agents]
        _refuse_duplicates("login", [a.login for a in accounts])
        _refuse_duplicates("token", [a.token for a in accounts], show=False)
        _refuse_duplicates("claim token", [a.claim_token for a in self.agents], show=False)
        roles = self.memberships()
        for org, content in self.orgs.items():
            for team in content.teams:
                outsiders = [login for login in team.members if org not in roles.get(login, {})]
                if outsiders:
                    raise ValueError(
                        f"team {org}/{team.name}: {', '.join(outsiders)} not members of {org}"
                    )
        return self

    def memberships(self) -> dict[str, dict[str, Role]]:
        """login -> {org: role}; every agent is admin of its individual org."""
        roles: dict[str, dict[str, Role]] = {user.login: dict(user.orgs) for user in self.users}
        for agent in self.agents:
            roles[agent.login] = {agent.login: "admin"}
        return roles

    def org_names(self) -> set[str]:
        """Orgs that exist: those with content and those anyone has a role in."""
        names = set(self.orgs)
        for orgs in self.memberships().values():
            names.update(orgs)
        return names


def _refuse_duplicates(what: str, values: list[str], *, show: bool = True) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            shown = f" {value!r}" if show else ""
            raise ValueError(f"duplicate {what}{shown}")
        seen.add(value)


def parse_world(document: Any, *, origin: str = "world") -> World:
    """A World from already-parsed YAML/JSON, with errors that name the bad field."""
    if not isinstance(document, dict):
        raise InvalidInputError(f"{origin}: expected a mapping with users, agents and orgs")
    service = document.get("service")
    legacy_names = isinstance(service, dict) and service.get(_LEGACY_NAMES) is True
    try:
        return World.model_validate(document, context={_LEGACY_NAMES: legacy_names})
    except ValidationError as exc:
        problems = [f"  - {_location(error['loc'])}: {_message(error)}" for error in exc.errors()]
        raise InvalidInputError(
            f"{origin} is invalid ({len(problems)} problem(s)):\n" + "\n".join(problems),
            hint="The built-in demo world (toolkit/emulator/demo_world.yaml) shows the format.",
        ) from None


def load_world(path: Path) -> World:
    """Read a world file (YAML or JSON) and validate it.

    A JSON document (by suffix, or starting with `{`) is read by the JSON parser, which is
    several times faster than YAML's on the large worlds benchmarks generate.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read world file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"world file {path} is not UTF-8 text (byte {exc.start} is not), "
            "so it is neither YAML nor JSON",
            hint="Pass a world file in YAML or JSON (the format: docs/emulator.md).",
        ) from None
    try:
        if path.suffix == ".json" or text.lstrip().startswith("{"):
            document = json.loads(text)
        else:
            document = yaml.load(text, Loader=_YAML_LOADER)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"world file {path} is not valid YAML/JSON: {exc}") from None
    return parse_world(document, origin=f"world file {path}")


_YAML_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
"""libyaml's safe loader when PyYAML was built with it (about 4x faster), else the pure one."""


def _message(error: ErrorDetails) -> str:
    """What is wrong at one place; an unknown key says the key it is closest to."""
    if error["type"] == "extra_forbidden":
        return f"unknown key{did_you_mean(error['loc'][-1], _KEYS)}"
    return error["msg"].removeprefix("Value error, ")


_KEYS = {
    field.alias or name
    for model in _WorldModel.__subclasses__()
    for name, field in model.model_fields.items()
}
"""Every key a world file may hold, to suggest the one meant by an unknown key."""


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (the key)"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"
