"""What `migrate` asks of each side of a migration, whichever way it reaches that side.

The steps of a migration and their order live in `toolkit.strategies.migrate`; a `Backend` does
each step on one side, through the pulumi CLI (`_migrate_cli`, any backend) or the REST API
(`_migrate_rest`, Pulumi Cloud only). A step that fails raises `StepFailed`, naming the step and
saying why in words a report can show (never state or secrets).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.progress import Step
from toolkit.strategies import Revision

if TYPE_CHECKING:
    from toolkit.cloud import CloudClient

LONGEST_REASON = 600
"""Characters of a backend's error message a failure reason keeps."""


class StepFailed(Exception):
    """One stack's migration stopped at `step`; `reason` is what the report says."""

    def __init__(self, step: Step, reason: str) -> None:
        super().__init__(reason)
        self.step: Step = step
        self.reason = reason


@dataclass(frozen=True)
class StackState:
    """A stack's state as a migration reads it: open, what it stores sealed, and its tags."""

    version: int | None
    """The deployment schema version it was exported at."""
    plaintext: dict[str, Any]
    """The deployment with its secrets open, as `pulumi stack export --show-secrets` gives it."""
    ciphertexts: frozenset[str]
    """The ciphertext of every secret as the stack stores it, sealed by the stack's key
    (`pulumi stack export`): all a migration needs of the sealed deployment, which a large
    state would double the memory to keep."""
    stores_open_secrets: bool
    """Whether the stack stores any secret unsealed (a state no migration may leave)."""
    tags: dict[str, str]
    """Every tag of the stack."""
    revision: Revision
    """Which stack, at which update, this state is (never newer than the state itself)."""


class Session(Protocol):
    """One side, open for the stacks of one project (a CLI workspace needs a project)."""

    async def read(self, name: str, step: Step, *, tags: bool = True) -> StackState:
        """The state of the stack `name` (fully qualified), and its tags unless `tags` is
        false (then none); `step` is what fails."""
        ...

    async def create(self, name: str) -> None:
        """Create the empty stack `name`; one that exists already is refused and left alone."""
        ...

    async def revision(self, name: str, step: Step) -> Revision | None:
        """The stack `name`'s revision now; None when there is no stack of that name."""
        ...

    async def whereabouts(self, revision: Revision) -> str | None:
        """The fully qualified name the stack of `revision` has now, in any org this side
        sees; None when it is gone (or the backend has no stack ids to look it up by)."""
        ...

    async def remove(self, name: str, step: Step, doing: str) -> bool:
        """Remove the stack `name` and its state, resources and all (nothing is destroyed);
        False when there was no stack of that name to remove."""
        ...

    async def secrets_provider(self, name: str, project: str, stack: str) -> dict[str, Any]:
        """The `secrets_providers` of the new stack `name`, which its state must name."""
        ...

    async def import_state(self, name: str, version: int | None, deployment: Any) -> None:
        """Make `deployment` (secrets open) the state of the new stack `name`, its secrets
        sealed with that stack's own key."""
        ...

    async def check_loads(self, name: str) -> None:
        """What the backend itself checks of the state of `name` when it loads it, beyond the
        checks of every migration (`toolkit.stack_state.integrity_problem`)."""
        ...

    async def set_tags(self, name: str, tags: dict[str, str]) -> None:
        """Give the stack `name` these tags, keeping those it has."""
        ...


class Backend(Protocol):
    """One side of a migration: an org's stacks, as one identity sees them."""

    @property
    def org(self) -> str:
        """The org on this side (`organization` on a self-managed backend)."""
        ...

    @property
    def creates_system_tags(self) -> bool:
        """Whether a stack it creates gets the `pulumi:` tags of its program by itself (`pulumi
        stack init` sets them); if not, the migration copies the source's."""
        ...

    @property
    def settings_client(self) -> CloudClient | None:
        """The REST client for what a stack carries beside its state (deployment settings,
        webhooks, schedules); None on a self-managed backend, which has none of them."""
        ...

    async def stack_names(self) -> set[str]:
        """The fully qualified names of the org's stacks, in every project."""
        ...

    def session(self, project: str) -> AbstractAsyncContextManager[Session]: ...
