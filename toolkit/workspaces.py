"""The `pulumi` CLI and isolated Automation API workspaces, one per identity.

A claim acts as two identities at once (the agent's and the platform team's), often on two
backends. Each gets its own `LocalWorkspace` in a fresh temporary `PULUMI_HOME`, with its URL and
token passed only in the environment of the CLI processes it starts, so the two never see each
other's login and the user's own `~/.pulumi` (login, current stack, plugins) is neither read nor
written. Nothing here edits `os.environ`.

What the Automation API already does, and how stacks are named (the caller needs this):
- `workspace.export_stack(name)` runs `pulumi stack export --show-secrets`: secrets come out as
  plaintext. `workspace.import_stack(name, deployment)` encrypts them with the secrets manager
  the deployment's `secrets_providers` names: a Pulumi Cloud one is switched to the importing
  stack's, any other (a passphrase and its salt) is kept as it is, so state moved between
  backends needs the destination stack's own `secrets_providers` put in first.
- `create_stack`, `select_stack`, `remove_stack(name, force=)`, `set_tag`, `list_tags`,
  `stack_outputs` and `who_am_i` take a stack name as the CLI does; pass fully qualified
  names, `org/project/stack` on Pulumi Cloud and `organization/project/stack`
  (`SELF_MANAGED_ORG`) on a self-managed backend. Commands that only read or remove a stack
  accept any project; `create_stack` (`pulumi stack init`) only the workspace's own project.
- `workspace.list_stacks()` names the stacks of the workspace's project by their short name
  and lists one project only; `list_all_stacks` here lists every project, fully qualified.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pulumi.automation import (
    CommandResult,
    LocalWorkspace,
    ProjectSettings,
    PulumiCommand,
    PulumiFn,
    StackSummary,
)
from pulumi.automation.errors import CommandError, InvalidVersionError
from semver import VersionInfo

from toolkit.credentials import BackendIdentity
from toolkit.errors import InvalidInputError, PulumiCliError

PULUMI_CLI_VERSION = "3.274.1"
"""The CLI version the toolkit is tested with; `scripts/install-pulumi-cli` builds this one."""

SELF_MANAGED_ORG = "organization"
"""The only org a self-managed (`file://`, `s3://`, ...) backend knows."""

INSTALL_HINT = (
    'Run `export PATH="$(scripts/install-pulumi-cli | tail -1):$PATH"` from a checkout of '
    "pulumi-claim, or install the pulumi CLI from https://www.pulumi.com/docs/install/."
)

_CLI_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"
"""`pulumi stack ls --json` times: RFC 3339 with milliseconds, e.g. 2026-11-20T10:00:00.000Z."""


def cached_cli_dir() -> Path:
    """Where `scripts/install-pulumi-cli` puts the pinned CLI: a versioned folder of the user's
    cache, shared by every checkout."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "pulumi-claim" / "pulumi-cli" / PULUMI_CLI_VERSION


def pulumi_command() -> PulumiCommand:
    """The `pulumi` CLI to drive: the one on PATH if it is at least `PULUMI_CLI_VERSION`, else
    the one `scripts/install-pulumi-cli` built (the same rule the script follows).

    Raises `PulumiCliError` with the way to install it when neither is there. The answer is
    remembered for the PATH and cache folder it was found with: checking a CLI's version
    runs it, which costs about a second per workspace otherwise.
    """
    return _find_pulumi(os.environ.get("PATH", ""), cached_cli_dir())


@functools.cache
def _find_pulumi(path: str, cached: Path) -> PulumiCommand:
    minimum = VersionInfo.parse(PULUMI_CLI_VERSION)
    older_on_path: str | None = None
    if shutil.which("pulumi", path=path):
        try:
            return PulumiCommand(version=minimum)
        except InvalidVersionError as exc:
            older_on_path = str(exc)
    if (cached / "bin" / "pulumi").is_file():
        # An absolute command also puts its folder first on the CLI's PATH, so the language
        # hosts built beside it are the ones found.
        return PulumiCommand(root=str(cached), version=minimum)
    found = f" (the one on PATH does not do: {older_on_path})" if older_on_path else ""
    raise PulumiCliError(
        f"the pulumi CLI v{PULUMI_CLI_VERSION} or newer was not found{found}", hint=INSTALL_HINT
    )


class IsolatedWorkspace(LocalWorkspace):
    """A `LocalWorkspace` whose repr hides its environment, which holds an access token."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(work_dir={self.work_dir!r}, "
            f"pulumi_home={self.pulumi_home!r}, env_vars=<{len(self.env_vars)} hidden>)"
        )


@contextmanager
def isolated_workspace(
    identity: BackendIdentity, *, project: str, program: PulumiFn | None = None
) -> Iterator[LocalWorkspace]:
    """A workspace of project `project` acting as `identity`, logged in to `identity.url`.

    Its `PULUMI_HOME` and work dir are fresh temporary folders, removed on exit along with the
    login stored there. `program`, if given, is the inline program `Stack.up` and friends run.
    The CLI is found by `pulumi_command()`.

    Raises `InvalidInputError` for a cloud identity without a token (the CLI would otherwise
    fall back to the user's own login, or even sign up a new agent account), and `PulumiCliError`
    when the login fails.
    """
    if identity.is_cloud and not identity.token:
        raise InvalidInputError(
            f"no access token for {identity.url}",
            hint="Every Pulumi Cloud identity the toolkit acts as needs its own token.",
        )
    command = pulumi_command()
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-workspace-") as root:
        home = Path(root) / "home"
        work_dir = Path(root) / "work"
        home.mkdir()
        work_dir.mkdir()
        workspace = IsolatedWorkspace(
            work_dir=str(work_dir),
            pulumi_home=str(home),
            program=program,
            env_vars=_environment(identity, home),
            project_settings=ProjectSettings(name=project, runtime="python"),
            pulumi_command=command,
        )
        _log_in(workspace, identity.url)
        yield workspace


def run_pulumi(workspace: LocalWorkspace, *args: str) -> CommandResult:
    """Run `pulumi ARGS` as the Automation API runs its own commands in `workspace`: same CLI,
    work dir and environment, non-interactive. Raises the Automation API's `CommandError`
    when the command fails.
    """
    env = dict(workspace.env_vars)
    if workspace.pulumi_home:
        env.setdefault("PULUMI_HOME", workspace.pulumi_home)
    return workspace.pulumi_command.run(list(args), workspace.work_dir, env)


def list_all_stacks(workspace: LocalWorkspace, *, org: str | None = None) -> list[StackSummary]:
    """Every stack the workspace's identity sees, in all projects (of `org` only, if given),
    named `org/project/stack`; `last_update` is timezone-aware, and `None` while an update
    runs. One `pulumi stack ls` call, which pages through the service itself.
    """
    args = ["stack", "ls", "--all", "--json", "--fully-qualify-stack-names"]
    if org is not None:
        args += ["--organization", org]
    listed = json.loads(run_pulumi(workspace, *args).stdout)
    summaries = [
        StackSummary(
            name=entry["name"],
            current=entry.get("current", False),
            update_in_progress=entry.get("updateInProgress"),
            last_update=(
                datetime.strptime(entry["lastUpdate"], _CLI_TIME_FORMAT).astimezone(UTC)
                if entry.get("lastUpdate")
                else None
            ),
            resource_count=entry.get("resourceCount"),
            url=entry.get("url"),
        )
        for entry in listed
    ]
    # Self-managed backends ignore --organization; their stacks all belong to one org anyway.
    return [s for s in summaries if org is None or s.name.split("/", 1)[0] == org]


def _environment(identity: BackendIdentity, home: Path) -> dict[str, str]:
    """The variables every CLI process of the workspace gets, over the inherited environment.

    Each one that could point the CLI at another login or backend is set, so the user's own
    settings (a `PULUMI_ACCESS_TOKEN`, `PULUMI_CREDENTIALS_PATH` or `PULUMI_BACKEND_URL` of the
    shell) cannot leak into this identity's commands.
    """
    env = {
        "PULUMI_HOME": str(home),
        "PULUMI_CREDENTIALS_PATH": str(home),
        "PULUMI_BACKEND_URL": identity.url,
        "PULUMI_ACCESS_TOKEN": identity.token or "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # Run from an AI agent's shell, the CLI would sign up a new agent account by itself
        # whenever a token is refused; the toolkit's identities are always explicit.
        "PULUMI_ENABLE_AUTOMATIC_AGENT_SIGNUP": "false",
    }
    if identity.secrets_passphrase is not None:
        env["PULUMI_CONFIG_PASSPHRASE"] = identity.secrets_passphrase
    return env


def _log_in(workspace: LocalWorkspace, url: str) -> None:
    """`pulumi login URL` in the workspace's home: checks the token (or that the folder of a
    file:// backend exists) before any real work starts."""
    try:
        run_pulumi(workspace, "login", url)
    except CommandError as exc:
        raise PulumiCliError(
            f"`pulumi login {url}` failed: {cli_error_text(exc)}",
            hint="Check the backend URL and the identity's token (or that the folder exists).",
        ) from exc


def cli_error_text(exc: Exception) -> str:
    """The CLI's own `error: ...` words from its stderr (never stdout, which may hold state)."""
    _, _, stderr = str(exc).partition("\n stderr: ")
    _, found, said = stderr.partition("error:")
    return (
        " ".join(f"error:{said}".split()) if found else "the pulumi CLI failed without saying why"
    )
