"""One side of a migration through the pulumi CLI (the Automation API): any backend.

Each session is an isolated workspace of the side's identity (`toolkit.workspaces`); every CLI
command runs in a worker thread, since the Automation API blocks while the CLI runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.automation import CommandResult, LocalWorkspace
from pulumi.automation.errors import CommandError, StackAlreadyExistsError

from toolkit.cloud import CloudClient
from toolkit.credentials import BackendIdentity
from toolkit.errors import ClaimError, PulumiCliError
from toolkit.progress import Step
from toolkit.stack_state import service_secrets_provider, stored_secrets
from toolkit.strategies import Revision
from toolkit.strategies._migration import LONGEST_REASON, StackState, StepFailed
from toolkit.workspaces import (
    SELF_MANAGED_ORG,
    cli_error_text,
    isolated_workspace,
    list_all_stacks,
    run_pulumi,
)


@dataclass(frozen=True)
class CliBackend:
    """`identity`'s side of a migration, through the CLI, in workspaces under
    `workspace_root`."""

    identity: BackendIdentity
    org: str
    workspace_root: Path | None
    settings_client: CloudClient | None
    """The REST client of a Pulumi Cloud side, for what the CLI does not copy (deployment
    settings, webhooks, schedules); None on a self-managed backend."""
    creates_system_tags: bool = True

    @classmethod
    def of(
        cls,
        identity: BackendIdentity,
        org: str,
        workspace_root: Path | None,
        settings_client: CloudClient | None,
    ) -> CliBackend:
        """The side of `org`; on a self-managed backend, its only org."""
        return cls(
            identity,
            org if identity.is_cloud else SELF_MANAGED_ORG,
            workspace_root,
            settings_client,
        )

    async def stack_names(self) -> set[str]:
        def listed() -> set[str]:
            with isolated_workspace(
                self.identity, project="any", workspace_root=self.workspace_root
            ) as workspace:
                try:
                    return {stack.name for stack in list_all_stacks(workspace, org=self.org)}
                except CommandError as error:
                    raise PulumiCliError(cli_reason(error)) from error

        return await asyncio.to_thread(listed)

    @asynccontextmanager
    async def session(self, project: str) -> AsyncIterator[CliSession]:
        opened = isolated_workspace(
            self.identity, project=project, workspace_root=self.workspace_root
        )
        workspace = await asyncio.to_thread(opened.__enter__)
        try:
            yield CliSession(self.identity, workspace)
        finally:
            await asyncio.to_thread(opened.__exit__, None, None, None)


@dataclass(frozen=True)
class CliSession:
    identity: BackendIdentity
    workspace: LocalWorkspace

    async def read(self, name: str, step: Step, *, tags: bool = True) -> StackState:
        def read() -> StackState:
            try:
                exported = self.workspace.export_stack(name)
                found = self.workspace.list_tags(name) if tags else {}
            except CommandError as error:
                raise StepFailed(step, f"reading {name} failed: {cli_reason(error)}") from error
            except ValueError as error:
                raise _unreadable(step, error) from error
            encrypted = self._export(name, step, f"reading {name}")["deployment"]
            stored = stored_secrets(encrypted)
            return StackState(
                version=exported.version,
                plaintext=dict(exported.deployment or {}),
                ciphertexts=frozenset(stored.ciphertexts),
                stores_open_secrets=stored.any_open,
                tags=dict(found),
                revision=_checkpoint_revision(encrypted),
            )

        return await asyncio.to_thread(read)

    async def revision(self, name: str, step: Step) -> Revision | None:
        """A digest of the stack's checkpoint: no backend the CLI reaches numbers them all."""

        def revision() -> Revision | None:
            try:
                exported = self._export(name, step, f"looking up {name}")
                return _checkpoint_revision(exported["deployment"])
            except StepFailed:
                org = name.split("/", 1)[0]
                if name not in {stack.name for stack in list_all_stacks(self.workspace, org=org)}:
                    return None
                raise

        return await asyncio.to_thread(revision)

    async def whereabouts(self, revision: Revision) -> str | None:
        """None: the CLI shows no stack ids, so a stack is looked up by its name only."""
        return None

    async def create(self, name: str) -> None:
        def create() -> None:
            try:
                self.workspace.create_stack(name)
            except StackAlreadyExistsError as error:
                raise StepFailed("create", f"{name} already exists; nothing was changed") from error
            except CommandError as error:
                # The backend may have created the stack before a later part of `stack init`
                # failed; an empty stack of that name is this run's leftover (removing it
                # without --force cannot remove a stack that has resources).
                with contextlib.suppress(CommandError):
                    self.workspace.remove_stack(name)
                raise StepFailed(
                    "create", f"creating {name} failed: {cli_reason(error)}"
                ) from error

        await asyncio.to_thread(create)

    async def remove(self, name: str, step: Step, doing: str) -> bool:
        # `--force`: the stack may still have resources; only its state goes. A stack that is
        # not there fails `stack rm`, never taken for removed.
        await self._run(step, doing, "stack", "rm", "--yes", "--force", name)
        return True

    async def secrets_provider(self, name: str, project: str, stack: str) -> dict[str, Any]:
        """A Pulumi Cloud stack's is the service, keyed per stack (the import hands any
        `service` provider over to the stack it imports into; this one names the new stack
        anyway). A self-managed stack's is in its (empty) state, key material and all."""
        if self.identity.is_cloud:
            org = name.split("/", 1)[0]
            return service_secrets_provider(self.identity.url, org, project, stack)
        exported = await asyncio.to_thread(self._export, name, "create", "reading the new stack")
        provider = exported["deployment"].get("secrets_providers")
        if not isinstance(provider, dict):
            raise StepFailed("create", f"{name} was created without a secrets provider")
        return provider

    async def import_state(self, name: str, version: int | None, deployment: Any) -> None:
        """`pulumi stack import` from a file only the current user can read, inside the
        workspace, removed at once. (The Automation API's `import_stack` writes its file to
        the system temp folder and leaves it there when the import fails, secrets and all.)"""

        def import_state() -> None:
            path = Path(self.workspace.work_dir) / "deployment.json"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(descriptor, "w") as file:
                    json.dump({"version": version, "deployment": deployment}, file)
                self._run_blocking(
                    "import",
                    "importing the state",
                    *("stack", "import", "--file", str(path), "--stack", name),
                )
            finally:
                path.unlink()

        await asyncio.to_thread(import_state)

    async def check_loads(self, name: str) -> None:
        # `pulumi stack` loads the state the way every update does: integrity, decryption.
        await self._run("verify", "verification: loading the state", "stack", "--stack", name)

    async def set_tags(self, name: str, tags: dict[str, str]) -> None:
        def set_tags() -> None:
            try:
                for key, value in sorted(tags.items()):
                    self.workspace.set_tag(name, key, value)
            except CommandError as error:
                raise StepFailed(
                    "tags", f"copying the tags to {name} failed: {cli_reason(error)}"
                ) from error

        await asyncio.to_thread(set_tags)

    def _export(self, name: str, step: Step, doing: str) -> dict[str, Any]:
        """`pulumi stack export` with secrets sealed (the Automation API's opens them)."""
        stdout = self._run_blocking(step, doing, "stack", "export", "--stack", name).stdout
        try:
            exported: dict[str, Any] = json.loads(stdout)
        except ValueError as error:
            raise _unreadable(step, error) from error
        return exported

    async def _run(self, step: Step, doing: str, *args: str) -> None:
        await asyncio.to_thread(self._run_blocking, step, doing, *args)

    def _run_blocking(self, step: Step, doing: str, *args: str) -> CommandResult:
        """`pulumi ARGS`; a failure fails `step`, with the CLI's words after what it was
        `doing`."""
        try:
            return run_pulumi(self.workspace, *args)
        except CommandError as error:
            raise StepFailed(step, f"{doing} failed: {cli_reason(error)}") from error


def _checkpoint_revision(encrypted: Any) -> Revision:
    """The revision of a stack whose checkpoint (secrets sealed) is `encrypted`."""
    canonical = json.dumps(encrypted, sort_keys=True, separators=(",", ":"))
    return Revision("sha256:" + hashlib.sha256(canonical.encode()).hexdigest())


def _unreadable(step: Step, error: ValueError) -> StepFailed:
    return StepFailed(step, f"the pulumi CLI gave an answer that could not be read: {error}")


def cli_reason(error: Exception) -> str:
    """What the CLI said on stderr from its first `error:` on, on one line; never its stdout,
    which may hold state and secrets."""
    said = error.message if isinstance(error, ClaimError) else cli_error_text(error)
    return said if len(said) <= LONGEST_REASON else said[: LONGEST_REASON - 3] + "..."
