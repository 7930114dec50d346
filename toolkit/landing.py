"""Landing a claim: leave on record in the destination org what moved, as code.

After the moves, the landing program (`toolkit.landing_program`) runs through the Automation
API as one stack of the destination org, `<destination>/pulumi-claim-landing/<stack>` (the stack
named after the source org unless the `landing:` section names it). It tags every moved stack with
where it came from and which run moved it, plus the user's tags, and grants each team the user
names its permission on every moved stack and every copied ESC environment.

What it manages grows with each run: the stacks and environments an earlier run landed (read
back from the landing stack's `landed` output) stay, with the run that moved them, so a second
claim from the same source org does not take the first one's tags away. Running it again with
nothing new changes nothing.

Preview changes nothing in the destination. When the landing stack exists, its preview is
Pulumi's own (`pulumi preview`: the service records a preview, the stack's state and the
resources stay as they are). When it does not exist yet, creating it would change the
destination, so the program is previewed in a stack of a private local backend instead (a
folder in the workspace, removed afterwards): every resource shows as a create, which is what
the first `up` does. Either way the teams named are looked up first, and an unknown one fails
the preview as it would fail the landing.

The pulumiservice provider plugin is the user's (`scripts/install-pulumiservice-plugin`), found
where the CLI keeps plugins (`toolkit.workspaces.user_plugins_dir`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from toolkit.cloud import CloudClient
from toolkit.credentials import BackendIdentity
from toolkit.entities import base_of, entity_key
from toolkit.errors import LandingError, NotFoundError
from toolkit.landing_program.model import LandedEnvironment, LandedStack, Landing, TeamPermission
from toolkit.models import (
    AgentClaimResponse,
    TransferEntityEnvironment,
    TransferEntityEnvironmentRename,
    TransferEntityStack,
    TransferEntityStackRename,
)

if TYPE_CHECKING:
    from pulumi.automation import CommandError, LocalWorkspace

# The Pulumi SDK is imported where the program runs, not with this module: the map and job
# readers use the `landing:` section's rules without loading it.

LANDING_PROJECT = "pulumi-claim-landing"
"""The project of every landing stack (the top-level Pulumi.yaml's name)."""

PULUMISERVICE_PLUGIN = "resource-pulumiservice-v1.3.0"
"""The provider plugin the landing program needs, as the CLI names its folder; the version of
the `pulumi-pulumiservice` package."""

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


# --- Running the program --------------------------------------------------------------------


@dataclass(frozen=True)
class LandingStep:
    """One resource the landing creates, updates, replaces or deletes."""

    op: str
    type: str
    name: str


@dataclass(frozen=True)
class LandingResult:
    """What a preview or an `up` of the landing stack did (or would do)."""

    stack: str
    """`org/project/stack`."""
    applied: bool
    steps: list[LandingStep]
    local_preview: bool = False
    """The landing stack does not exist yet: previewed in a private local backend."""

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def summary(self) -> str:
        """One line: how many resources each kind of change touches (`3 created` after an
        `up`, `3 to create` in a preview), or that nothing changes."""
        if not self.steps:
            return "no changes" if self.applied else "no changes would be made"
        counts = Counter(step.op for step in self.steps)
        return ", ".join(
            f"{count} {_PAST.get(op, op)}" if self.applied else f"{count} to {op}"
            for op, count in sorted(counts.items())
        )


_PAST = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced"}
_UNCHANGED = {"same", "read", "refresh"}


def check_landing_tools() -> None:
    """What landing runs is at hand, the pulumi CLI and the provider plugin, else the
    PulumiCliError or InvalidInputError saying how to install it: for a commit to refuse
    before it moves anything."""
    from toolkit.workspaces import installed_plugin, pulumi_command

    pulumi_command()
    installed_plugin(PULUMISERVICE_PLUGIN)


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


async def preview_landing(
    identity: BackendIdentity,
    *,
    destination_org: str,
    stack: str,
    build: BuildLanding,
    workspace_root: Path | None = None,
) -> LandingResult:
    """What landing would change in `destination_org`, changing nothing there."""
    return await _run(identity, destination_org, stack, build, workspace_root, apply=False)


def landing_stack(org: str, stack: str) -> str:
    """The landing stack's full name in `org`: `org/project/stack`."""
    return f"{org}/{LANDING_PROJECT}/{stack}"


async def apply_landing(
    identity: BackendIdentity,
    *,
    destination_org: str,
    stack: str,
    build: BuildLanding,
    workspace_root: Path | None = None,
) -> LandingResult:
    """Create or update the landing stack (`pulumi up`) and say what changed."""
    return await _run(identity, destination_org, stack, build, workspace_root, apply=True)


async def _run(
    identity: BackendIdentity,
    org: str,
    stack: str,
    build: BuildLanding,
    workspace_root: Path | None,
    *,
    apply: bool,
) -> LandingResult:
    if not identity.is_cloud or not identity.token:
        raise LandingError(
            f"landing needs a Pulumi Cloud destination with a token, not {identity.url}",
            hint="Skip it with --no-landing, or remove the landing: section.",
        )
    token = identity.token
    name = landing_stack(org, stack)
    previous, exists = await asyncio.to_thread(_previous_landing, identity, name, workspace_root)
    landing = build(previous)
    await _check_teams(identity, org, sorted(landing.teams))

    def program() -> None:
        from toolkit.landing_program.program import landing_program

        landing_program(landing, api_url=identity.url, access_token=token)

    if apply or exists:
        return await asyncio.to_thread(
            _run_stack, identity, name, program, workspace_root, apply=apply
        )
    return await asyncio.to_thread(_preview_locally, identity, name, program, workspace_root)


async def _check_teams(identity: BackendIdentity, org: str, teams: Sequence[str]) -> None:
    """Every team named exists in `org`, else a LandingError naming all that do not."""

    async def exists(client: CloudClient, team: str) -> bool:
        try:
            await client.get_team(org, team)
        except NotFoundError:
            return False
        return True

    async with CloudClient.for_identity(identity) as client:
        found = await asyncio.gather(*(exists(client, team) for team in teams))
    missing = [team for team, there in zip(teams, found, strict=True) if not there]
    if missing:
        raise LandingError(
            f"landing failed: organization {org} has no team {', '.join(missing)}",
            hint="Create the team(s) in the destination or fix the landing: section's teams,"
            " then run the same command again; the moves stay as they are.",
        )


def _previous_landing(
    identity: BackendIdentity, name: str, workspace_root: Path | None
) -> tuple[Landing | None, bool]:
    """What the landing stack landed before, and whether it exists at all."""
    from pulumi.automation import CommandError, Stack, StackNotFoundError

    from toolkit.workspaces import isolated_workspace

    with isolated_workspace(
        identity, project=LANDING_PROJECT, workspace_root=workspace_root
    ) as workspace:
        try:
            outputs = Stack.select(name, workspace).outputs()
        except StackNotFoundError:
            return None, False
        except CommandError as error:
            raise _cli_failure("reading its stack", error) from error
    landed = outputs.get("landed")
    return (None if landed is None else Landing.from_output(landed.value)), True


def _run_stack(
    identity: BackendIdentity,
    name: str,
    program: Callable[[], None],
    workspace_root: Path | None,
    *,
    apply: bool,
) -> LandingResult:
    from toolkit.workspaces import isolated_workspace

    with isolated_workspace(
        identity,
        project=LANDING_PROJECT,
        program=program,
        workspace_root=workspace_root,
        plugins=[PULUMISERVICE_PLUGIN],
    ) as workspace:
        return _preview_or_up(workspace, name, apply=apply)


def _preview_locally(
    identity: BackendIdentity,
    name: str,
    program: Callable[[], None],
    workspace_root: Path | None,
) -> LandingResult:
    """Preview a landing stack that does not exist yet in a stack of a local backend, in a
    private folder removed afterwards; only the provider talks to the destination."""
    from pulumi.automation import Stack

    from toolkit.workspaces import SELF_MANAGED_ORG, isolated_workspace

    with tempfile.TemporaryDirectory(prefix="pulumi-claim-landing-", dir=workspace_root) as folder:
        Path(folder).chmod(0o700)
        local = BackendIdentity(
            url=Path(folder).as_uri(), secrets_passphrase=secrets.token_urlsafe(24)
        )
        with isolated_workspace(
            local,
            project=LANDING_PROJECT,
            program=program,
            workspace_root=workspace_root,
            plugins=[PULUMISERVICE_PLUGIN],
        ) as workspace:
            _, project, stack = name.split("/")
            Stack.create(f"{SELF_MANAGED_ORG}/{project}/{stack}", workspace)
            result = _preview_or_up(workspace, f"{SELF_MANAGED_ORG}/{project}/{stack}", apply=False)
    return LandingResult(stack=name, applied=False, steps=result.steps, local_preview=True)


def _preview_or_up(workspace: LocalWorkspace, name: str, *, apply: bool) -> LandingResult:
    from pulumi.automation import CommandError, EngineEvent, Stack

    steps: list[LandingStep] = []
    errors: list[str] = []

    def on_event(event: EngineEvent) -> None:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            if metadata.op.value not in _UNCHANGED:
                steps.append(
                    LandingStep(
                        op=str(metadata.op.value),
                        type=metadata.type,
                        name=metadata.urn.rsplit("::", 1)[-1],
                    )
                )
        diagnostic = event.diagnostic_event
        if diagnostic is not None and diagnostic.severity == "error":
            errors.append(" ".join(diagnostic.message.split()))

    try:
        stack = (Stack.create_or_select if apply else Stack.select)(name, workspace)
        if apply:
            stack.up(on_event=on_event)
        else:
            stack.preview(on_event=on_event)
    except CommandError as error:
        doing = "in its update" if apply else "in its preview"
        raise _cli_failure(doing, error, errors) from error
    return LandingResult(stack=name, applied=apply, steps=steps)


def _cli_failure(doing: str, error: CommandError, said: Sequence[str] = ()) -> LandingError:
    """A LandingError with what the engine and provider said (their diagnostics), else the
    CLI's own error words."""
    from toolkit.workspaces import cli_error_text

    reasons = [reason for reason in said if reason] or [cli_error_text(error)]
    return LandingError(
        f"landing failed {doing}: " + "; ".join(dict.fromkeys(reasons)),
        hint="The moves stay as they are; fix the cause and run the same command again, "
        "or skip landing with --no-landing.",
    )
