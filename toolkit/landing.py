"""Landing a claim: leave on record in the destination org what moved, as code.

After the moves, the landing program (`toolkit.landing_program`) runs through the Automation
API as one stack of the destination org, `<destination>/pulumi-claim-landing/<stack>` (the stack
named after the source org unless the `landing:` section names it). It tags every moved stack with
where it came from and which run moved it, plus the user's tags, and grants each team the user
names its permission on every moved stack and every copied ESC environment.

What it manages grows with each run: the stacks and environments an earlier run landed (read
back from the landing stack's `landed` output) stay, with the run that moved them, so a second
claim from the same source org does not take the first one's tags away. Running it again with
nothing new changes nothing. Those rules are pure and apart (`toolkit.landing_spec`); this
module runs the program.

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
import secrets
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.cloud import CloudClient
from toolkit.credentials import BackendIdentity
from toolkit.errors import LandingError, NotFoundError
from toolkit.landing_program.model import Landing
from toolkit.landing_spec import LANDING_PROJECT, BuildLanding, landing_stack

if TYPE_CHECKING:
    from pulumi.automation import CommandError, LocalWorkspace

PULUMISERVICE_PLUGIN = "resource-pulumiservice-v1.3.0"
"""The provider plugin the landing program needs, as the CLI names its folder; the version of
the `pulumi-pulumiservice` package."""


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
