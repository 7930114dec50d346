"""One side of a migration through the Pulumi Cloud REST API: the calls the pulumi CLI itself
makes for `stack export`, `stack import` and `stack tag`, without a CLI process.

Secrets are opened with the source stack's key (`batch-decrypt`) and sealed with the new
stack's (`batch-encrypt`) in memory; nothing is written to disk. The checks the CLI makes on a
state it imports or loads run here on the state itself (`toolkit.stack_state`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from toolkit.cloud import CloudClient
from toolkit.errors import ClaimError, ConflictError, NotFoundError
from toolkit.models import AppUntypedDeployment
from toolkit.progress import Step
from toolkit.stack_state import (
    integrity_problem,
    opened,
    plaintexts,
    sealed,
    service_secrets_provider,
    stored_secrets,
)
from toolkit.strategies import Revision
from toolkit.strategies._migration import StackState, StepFailed

DEPLOYMENT_VERSION = 3
"""The deployment schema version the CLI writes, for a state read without one."""


@dataclass(frozen=True)
class RestBackend:
    """The side of `org` as `client`'s identity sees it."""

    client: CloudClient
    org: str
    creates_system_tags: bool = False

    @property
    def settings_client(self) -> CloudClient:
        return self.client

    async def stack_names(self) -> set[str]:
        return {
            f"{self.org}/{stack.project_name}/{stack.stack_name}"
            async for stack in self.client.iter_stacks(self.org)
        }

    @asynccontextmanager
    async def session(self, project: str) -> AsyncIterator[RestSession]:
        yield RestSession(self.client)


@dataclass(frozen=True)
class RestSession:
    client: CloudClient

    async def read(self, name: str, step: Step, *, tags: bool = True) -> StackState:
        org, project, stack = _parts(name)
        try:
            # The stack before its state: an update in between makes the state newer than
            # the revision, never older, so a later check errs on the side of "changed".
            record = await self.client.get_stack(org, project, stack)
            exported = await self.client.export_stack(org, project, stack)
            encrypted = dict(exported.deployment or {})
            stored = stored_secrets(encrypted)
            plaintext_of = await self.client.decrypt_values(org, project, stack, stored.ciphertexts)
        except ClaimError as error:
            raise StepFailed(step, f"reading {name} failed: {error.message}") from error
        return StackState(
            version=exported.version,
            # Shares all but its secrets with the sealed deployment, which is not kept.
            plaintext=opened(encrypted, plaintext_of),
            ciphertexts=frozenset(stored.ciphertexts),
            stores_open_secrets=stored.any_open,
            tags=dict(record.tags or {}) if tags else {},
            revision=Revision(str(record.version), record.id),
        )

    async def revision(self, name: str, step: Step) -> Revision | None:
        try:
            record = await self.client.get_stack(*_parts(name))
        except NotFoundError:
            return None
        except ClaimError as error:
            raise StepFailed(step, f"looking up {name} failed: {error.message}") from error
        return Revision(str(record.version), record.id)

    async def whereabouts(self, revision: Revision) -> str | None:
        if revision.identity is None:
            return None
        async for stack in self.client.iter_stacks(None):
            if stack.id == revision.identity:
                return f"{stack.org_name}/{stack.project_name}/{stack.stack_name}"
        return None

    async def create(self, name: str) -> None:
        org, project, stack = _parts(name)
        try:
            await self.client.create_stack(org, project, stack)
        except ConflictError as error:
            raise StepFailed("create", f"{name} already exists; nothing was changed") from error
        except ClaimError as error:
            raise StepFailed("create", f"creating {name} failed: {error.message}") from error

    async def remove(self, name: str, step: Step, doing: str) -> bool:
        try:
            await self.client.delete_stack(*_parts(name), force=True)
        except NotFoundError:
            return False
        except ClaimError as error:
            raise StepFailed(step, f"{doing} failed: {error.message}") from error
        return True

    async def secrets_provider(self, name: str, project: str, stack: str) -> dict[str, Any]:
        org = _parts(name)[0]
        return service_secrets_provider(self.client.api_url, org, project, stack)

    async def import_state(self, name: str, version: int | None, deployment: Any) -> None:
        """Seal the open secrets with the new stack's key, then import, as `pulumi stack
        import` does; a state that would not load is refused before anything is sent."""
        problem = integrity_problem(deployment)
        if problem is not None:
            raise StepFailed("import", f"the state to import does not hold together: {problem}")
        org, project, stack = _parts(name)
        try:
            sealed_texts = await self.client.encrypt_values(
                org, project, stack, plaintexts(deployment)
            )
            status = await self.client.import_stack(
                org,
                project,
                stack,
                AppUntypedDeployment(
                    version=DEPLOYMENT_VERSION if version is None else version,
                    deployment=sealed(deployment, sealed_texts),
                ),
            )
        except ClaimError as error:
            raise StepFailed("import", f"importing the state failed: {error.message}") from error
        if status != "succeeded":
            raise StepFailed("import", f"importing the state failed: the import ended {status}")

    async def check_loads(self, name: str) -> None:
        """Nothing more: no CLI loads the state on this path, and the migration checks it as
        the CLI would."""

    async def set_tags(self, name: str, tags: dict[str, str]) -> None:
        """All the stack's tags at once: a stack this migration created has none of its own."""
        try:
            await self.client.replace_stack_tags(*_parts(name), tags)
        except ClaimError as error:
            raise StepFailed(
                "tags", f"copying the tags to {name} failed: {error.message}"
            ) from error


def _parts(name: str) -> tuple[str, str, str]:
    org, project, stack = name.split("/")
    return org, project, stack
