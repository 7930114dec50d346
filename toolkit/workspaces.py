"""The `pulumi` CLI and isolated Automation API workspaces, one per identity.

A claim acts as two identities at once (the agent's and the platform team's), often on two
backends. Each gets its own `LocalWorkspace` in a fresh private folder (its `PULUMI_HOME` and
work dir), with its URL and token passed only in the environment of the CLI processes it starts,
so the two never see each other's login and the user's own `~/.pulumi` (login, current stack,
plugins) is neither read nor written. Nothing here edits `os.environ`.

What a workspace leaves behind, and for how long:
- No file ever holds a token: the CLI gets it from a credentials helper and keeps it in
  memory, where a token in `PULUMI_ACCESS_TOKEN` would be written to `credentials.json` by
  every command (see `_environment`).
- The folder lives under a root the caller names (the system temp folder by default) and is
  removed when the workspace is left, by an exception or KeyboardInterrupt too. A process killed
  outright cannot clean up; each folder records its owner's pid, and the first workspace a
  process opens under a root removes the folders there whose owner is dead
  (`sweep_stale_workspaces`).
- On Linux every `pulumi` process is started through `toolkit/pulumi_launcher.py`, which has
  the kernel kill it (SIGKILL) when the toolkit process dies. Strictly, the signal comes when
  the *thread* that started it ends; the Automation API starts each CLI process from the thread
  that then waits for it, so no CLI process outlives that thread while the toolkit lives. For
  the commands the toolkit runs, the CLI starts no process of its own but its credentials
  helper (`/bin/sh`), which ends as soon as it has answered. Elsewhere CLI processes are
  started directly: a toolkit killed outright leaves those that are running to finish their
  command.

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

import errno
import functools
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

from toolkit import pulumi_launcher
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


WORKSPACE_PREFIX = "pulumi-claim-workspace-"
"""How the folder of every isolated workspace is named, in whatever root it is made."""

_OWNER_FILE = "owner.json"
"""In each workspace folder: `{"pid": ..., "started": ...}` of the process it belongs to."""

_BUSY_ATTEMPTS = 10
"""Tries to start a CLI process whose launcher the kernel says is busy (see `run`)."""

_LAUNCHER_FILE = "pulumi-launcher"
"""In each workspace folder (Linux): the command its CLI processes are started with."""


class IsolatedWorkspace(LocalWorkspace):
    """A `LocalWorkspace` whose repr hides its environment, which holds an access token."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(work_dir={self.work_dir!r}, "
            f"pulumi_home={self.pulumi_home!r}, env_vars=<{len(self.env_vars)} hidden>)"
        )


@contextmanager
def isolated_workspace(
    identity: BackendIdentity,
    *,
    project: str,
    program: PulumiFn | None = None,
    workspace_root: Path | None = None,
    plugins: Sequence[str] = (),
) -> Iterator[LocalWorkspace]:
    """A workspace of project `project` acting as `identity`, its identity checked.

    Its `PULUMI_HOME` and work dir are in a fresh private folder under `workspace_root` (made,
    private, if missing; default: the system temp folder), removed on exit. `program`, if
    given, is the inline program `Stack.up` and friends run. The CLI is found by
    `pulumi_command()`. `plugins` names installed plugins the program needs, as the CLI names
    their folders (`resource-pulumiservice-v1.3.0`): each is linked, read-only in use, from the
    user's plugin folder (`user_plugins_dir`) into the workspace's own `PULUMI_HOME`.

    Raises `InvalidInputError` for a cloud identity without a token (the CLI would otherwise
    fall back to the user's own login, or even sign up a new agent account), and `PulumiCliError`
    when the backend refuses the identity (or a self-managed backend's folder is missing).
    """
    if identity.is_cloud and not identity.token:
        raise InvalidInputError(
            f"no access token for {identity.url}",
            hint="Every Pulumi Cloud identity the toolkit acts as needs its own token.",
        )
    command = pulumi_command()
    root = _workspace_root(workspace_root)
    with tempfile.TemporaryDirectory(prefix=WORKSPACE_PREFIX, dir=root) as name:
        folder = Path(name)
        folder.chmod(0o700)
        _write_owner(folder)
        home = _private_folder(folder / "home")
        work_dir = _private_folder(folder / "work")
        _link_plugins(plugins, home)
        workspace = IsolatedWorkspace(
            work_dir=str(work_dir),
            pulumi_home=str(home),
            program=program,
            env_vars=_environment(identity, home),
            project_settings=ProjectSettings(name=project, runtime="python"),
            pulumi_command=_tied_to_toolkit(command, folder),
        )
        _check_identity(workspace, identity.url)
        yield workspace


def user_plugins_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the pulumi CLI keeps the user's plugins: `$PULUMI_HOME/plugins`, else
    `~/.pulumi/plugins`."""
    environ = os.environ if environ is None else environ
    home = environ.get("PULUMI_HOME")
    return (Path(home) if home else Path.home() / ".pulumi") / "plugins"


def installed_plugin(plugin: str) -> Path:
    """The folder of an installed plugin of the user's (`resource-pulumiservice-v1.3.0`); one
    that is not installed (or whose install was cut short) is an InvalidInputError."""
    installed = user_plugins_dir()
    source = installed / plugin
    if not source.is_dir() or (installed / f"{plugin}.partial").exists():
        raise InvalidInputError(
            f"the pulumi plugin {plugin} is not installed in {installed}",
            hint=_plugin_install_hint(plugin),
        )
    return source


def _plugin_install_hint(plugin: str) -> str:
    """How to install `plugin` (named as its folder): with the pulumi CLI, which is all an
    installed pulumi-claim has, or with the checkout's script, which also takes a local
    tarball."""
    kind, name_and_version = plugin.split("-", 1)
    name, version = name_and_version.rsplit("-", 1)
    return (
        f"Install it with `pulumi plugin install {kind} {name} {version}`, or with "
        "scripts/install-pulumiservice-plugin from a checkout of pulumi-claim."
    )


def _link_plugins(plugins: Sequence[str], home: Path) -> None:
    """Give `home/plugins` a folder for each installed plugin of the user's, holding links to
    its files (the CLI skips a plugin folder that is itself a link)."""
    if not plugins:
        return
    linked = _private_folder(home / "plugins")
    for plugin in plugins:
        source = installed_plugin(plugin)
        folder = _private_folder(linked / plugin)
        for item in source.iterdir():
            (folder / item.name).symlink_to(item)


def sweep_stale_workspaces(root: Path) -> list[Path]:
    """Remove the workspace folders under `root` whose owning process is dead; return them.

    For the leftovers of a toolkit process killed outright (SIGKILL, a crash of the
    interpreter), which cannot clean up after itself. A folder is kept when its owner lives,
    when it belongs to another user, and when it has no readable owner file (one being made
    this instant, or not made by this code).
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in sorted(root.glob(f"{WORKSPACE_PREFIX}*")):
        if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.geteuid():
            continue
        try:
            owner = json.loads((folder / _OWNER_FILE).read_text(encoding="utf-8"))
            pid, started = int(owner["pid"]), owner.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _is_running(pid, started):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_swept_roots: set[Path] = set()
_swept_roots_lock = threading.Lock()


def _workspace_root(requested: Path | None) -> Path:
    """`requested` (made private if missing) or the system temp folder; swept of dead owners'
    workspaces the first time this process uses it."""
    root = Path(tempfile.gettempdir()) if requested is None else requested
    if requested is not None and not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
    root = root.resolve()
    with _swept_roots_lock:
        first_use = root not in _swept_roots
        _swept_roots.add(root)
    if first_use:
        sweep_stale_workspaces(root)
    return root


def _private_folder(path: Path) -> Path:
    """`path`, made as a folder only its owner can enter, whatever the umask."""
    path.mkdir()
    path.chmod(0o700)
    return path


def _write_owner(folder: Path) -> None:
    """Record in `folder` which process it belongs to, for `sweep_stale_workspaces`."""
    owner = {"pid": os.getpid(), "started": _start_time(os.getpid())}
    descriptor = os.open(folder / _OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(owner, file)


def _start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux; None elsewhere or when it
    is gone). With the pid, it tells a live owner from a new process that got its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold any character.
    return int(stat.rpartition(")")[2].split()[19])


def _is_running(pid: int, started: object) -> bool:
    """Whether the process that wrote an owner file (`pid`, started at `started`) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # Alive, as another user.
    return started is None or _start_time(pid) in (None, started)


def _tied_to_toolkit(command: PulumiCommand, folder: Path) -> PulumiCommand:
    """`command`, started (on Linux) through a launcher in `folder` that has each CLI process
    killed when this process dies; elsewhere `command` itself."""
    if not sys.platform.startswith("linux"):
        return command
    cli = shutil.which(command.command) or command.command
    launcher = folder / _LAUNCHER_FILE
    words = [sys.executable, "-I", "-S", pulumi_launcher.__file__, str(os.getpid()), cli]
    launcher.write_text(f'#!/bin/sh\nexec {shlex.join(words)} "$@"\n', encoding="utf-8")
    launcher.chmod(0o700)
    return _LaunchedPulumiCommand(command, launcher)


class _LaunchedPulumiCommand(PulumiCommand):
    """The CLI of `cli`, each of its processes started by `launcher` (`_tied_to_toolkit`)."""

    def __init__(self, cli: PulumiCommand, launcher: Path) -> None:
        # Not PulumiCommand.__init__, which runs the CLI to check its version: `cli` did.
        self.command = str(launcher)
        self.version = cli.version
        self._cli_folder = os.path.dirname(cli.command) if os.path.isabs(cli.command) else None

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Callable[[str], Any] | None = None,
        on_error: Callable[[str], Any] | None = None,
    ) -> CommandResult:
        """`PulumiCommand.run`, with the CLI's own folder first on PATH as it puts it for an
        absolute command (so the language hosts built beside the CLI are the ones found)."""
        env = dict(additional_env)
        if self._cli_folder is not None:
            inherited = env.get("PATH", os.environ.get("PATH", ""))
            env["PATH"] = os.pathsep.join([self._cli_folder, inherited])
        for attempt in range(1, _BUSY_ATTEMPTS + 1):
            try:
                return super().run(args, cwd, env, on_output, on_error)
            except OSError as error:
                # A child another thread forked while a launcher was being written holds the
                # file open for writing until that child execs: the kernel refuses to run it
                # for those few moments (ETXTBSY). Nothing was started; try again.
                if error.errno != errno.ETXTBSY or attempt == _BUSY_ATTEMPTS:
                    raise
                time.sleep(0.02 * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")


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


_CREDENTIALS_VARIABLE = "PULUMI_CLAIM_CREDENTIALS"
"""Where a workspace's CLI processes find the credentials helper's answer, token and all."""

_CREDENTIALS_HELPER = f"""request=$(cat)
case $request in
*'"selectedBackendUrl":"'"$PULUMI_BACKEND_URL"'"'*) printf '%s\\n' "${_CREDENTIALS_VARIABLE}" ;;
*) echo '{{}}' ;;
esac
"""
"""The credentials helper of a cloud identity's workspace, a `/bin/sh -c` script.

The CLI writes one JSON request on its stdin, as Go writes JSON (no spaces:
`{"version":1,"reason":...,"selectedBackendUrl":...}`), and reads one JSON answer from its
stdout. The script hands the answer the workspace made (`_CREDENTIALS_VARIABLE`) to the
workspace's own backend only and declines (`{}`) any other request. A shell, not Python: it
runs before every command, and Python's start-up would add tens of milliseconds to each.
"""


def _environment(identity: BackendIdentity, home: Path) -> dict[str, str]:
    """The variables every CLI process of the workspace gets, over the inherited environment.

    Each one that could point the CLI at another login or backend is set, so the user's own
    settings (a `PULUMI_ACCESS_TOKEN`, `PULUMI_CREDENTIALS_PATH`, `PULUMI_BACKEND_URL` or
    credentials helper of the shell) cannot leak into this identity's commands.

    A cloud identity's token reaches the CLI through the credentials helper
    (`_CREDENTIALS_HELPER`), whose credentials the CLI keeps in memory. Given a token in
    `PULUMI_ACCESS_TOKEN` instead, every command that opens a Pulumi Cloud backend, not only
    `pulumi login`, stores it in `credentials.json` (`httpstate`'s `Current` in v3.274.1). The
    price: the CLI checks helper credentials with the service (`GET /api/user`) in every
    command, where it trusts a stored login for an hour. (Helpers are marked experimental in
    v3.274.1; a CLI without them would find no token and fail to sign in, never store one.)
    """
    env = {
        "PULUMI_HOME": str(home),
        "PULUMI_CREDENTIALS_PATH": str(home),
        "PULUMI_BACKEND_URL": identity.url,
        "PULUMI_ACCESS_TOKEN": "",
        "PULUMI_CREDENTIAL_HELPER": "none",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # Run from an AI agent's shell, the CLI would sign up a new agent account by itself
        # whenever a token is refused; the toolkit's identities are always explicit.
        "PULUMI_ENABLE_AUTOMATIC_AGENT_SIGNUP": "false",
    }
    if identity.is_cloud and identity.token:
        env[_CREDENTIALS_VARIABLE] = json.dumps({"version": 1, "accessToken": identity.token})
        env["PULUMI_CREDENTIAL_HELPER"] = "/bin/sh"
        env["PULUMI_CREDENTIAL_HELPER_ARGS"] = json.dumps(["-c", _CREDENTIALS_HELPER])
    if identity.secrets_passphrase is not None:
        env["PULUMI_CONFIG_PASSPHRASE"] = identity.secrets_passphrase
    return env


def _check_identity(workspace: LocalWorkspace, url: str) -> None:
    """`pulumi whoami`: checks the token (or that the folder of a file:// backend exists) before
    any real work starts, without storing a login (`pulumi login` would)."""
    try:
        run_pulumi(workspace, "whoami")
    except CommandError as exc:
        raise PulumiCliError(
            f"signing in to {url} failed: {cli_error_text(exc)}",
            hint="Check the backend URL and the identity's token (or that the folder exists).",
        ) from exc


def cli_error_text(exc: Exception) -> str:
    """The CLI's own `error: ...` words from its stderr (never stdout, which may hold state)."""
    _, _, stderr = str(exc).partition("\n stderr: ")
    _, found, said = stderr.partition("error:")
    return (
        " ".join(f"error:{said}".split()) if found else "the pulumi CLI failed without saying why"
    )
