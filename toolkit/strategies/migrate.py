"""The `migrate` strategy: copy each stack's state into a new stack, verify, then let go of it.

An agent's stacks usually cannot be REST-transferred, because no single identity is admin of
both the agent's org and the company's. With two identities the move is a state migration.
Per stack:

1. read the source (source identity): the deployment with secrets open, the same deployment
   sealed (to compare ciphertexts later) and the stack's tags;
2. create the destination stack (destination identity), which gets its own secrets manager;
3. rewrite every URN for the new project and stack name as `pulumi stack rename` does
   (`toolkit.urns`), point the deployment at the destination's secrets manager, and import it,
   its secrets sealed again with the destination stack's key;
4. verify: the destination's state loads (the CLI's integrity checks), the same resources and
   values come out of it modulo the rename, every secret opens to the same plaintext, and
   none of its ciphertext is the source's;
5. copy the stack tags (the `pulumi:` ones only where creating the stack did not set them);
6. on Pulumi Cloud, copy its deployment settings, webhooks and deployment schedules
   (`_migrate_settings`): what the service never shows (a secret value of the settings, a
   webhook's signing secret) is reported, and the move is partial until it is set;
7. only with `delete_source`, remove the source stack.

Each step is done one of two ways (`MigrateVia`), the steps and their order being the same:
- `rest`: every step is a REST call the CLI itself would make (export, batch-decrypt with the
  source stack's key, create, batch-encrypt with the destination stack's key, import, tags),
  concurrent and bounded, with no CLI process; for two Pulumi Cloud sides (one service or two).
- `cli`: through the Automation API (the `pulumi` CLI), one isolated workspace per identity;
  it works with self-managed backends (`file://`, object stores) too.

A failed step leaves the source untouched and removes the destination stack this run created.
The CLI's own `pulumi stack migrate` cannot do this: it acts as one login, and refuses when both
stacks live on the same service, which is the agent-to-company case.

What does not carry over: update history, permissions and the stack's config files (the plan's
notices say so).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from toolkit.choices import MigrateVia
from toolkit.credentials import BackendIdentity
from toolkit.entities import entity_key, qualified_name
from toolkit.errors import ClaimError
from toolkit.journal import Journal
from toolkit.moves import StackMove
from toolkit.plan import ClaimPlan
from toolkit.progress import MoveFailure, MoveTally, Step
from toolkit.stack_state import difference
from toolkit.strategies import (
    FailedMoves,
    ProgressCallback,
    Revision,
    StepHistory,
    StopSignal,
    no_progress,
)
from toolkit.strategies._migrate_settings import copy_settings
from toolkit.strategies._migrate_state import (
    all_tags,
    refuse_pending_operations,
    renamed_state,
    user_tags_of,
    verify_copy,
)
from toolkit.strategies._migration import Backend, Session, StackState, StepFailed
from toolkit.strategy_choice import choose_migrate_via

T = TypeVar("T")

CLI_CONCURRENCY = 4
"""Stacks migrated at once through the CLI by default: each runs several CLI processes."""


async def execute_migrate(
    plan: ClaimPlan,
    source: BackendIdentity,
    destination: BackendIdentity,
    *,
    via: MigrateVia | None = None,
    delete_source: bool = False,
    max_concurrency: int | None = None,
    journal: Journal | None = None,
    stop: StopSignal | None = None,
    on_progress: ProgressCallback = no_progress,
    workspace_root: Path | None = None,
) -> FailedMoves:
    """Migrate every stack of `plan` from `source` to `destination`; return the failed moves.

    `via` as `choose_migrate_via` chooses. A move whose destination stack already exists is refused
    before anything is done for it, unless the journal shows this run created it: then it is
    this run's half-made copy, removed and made again (or, when the source was already removed
    after verification, the move had landed). A move the journal shows landed is not made
    again. At most `max_concurrency` stacks migrate at once (default: the REST client's
    concurrency, or `CLI_CONCURRENCY` through the CLI); once `stop` is set, no new stack
    starts. The CLI's workspaces are made under `workspace_root` (see
    `toolkit.workspaces.isolated_workspace`).
    """
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    chosen = choose_migrate_via(source, destination, via)
    async with _backends(chosen, plan, source, destination, max_concurrency, workspace_root) as (
        source_side,
        destination_side,
        default_concurrency,
    ):
        migration = _Migration(
            source=source_side,
            destination=destination_side,
            delete_source=delete_source,
            tally=MoveTally(len(plan.moves), on_progress),
            journal=journal or Journal.in_memory(),
        )
        return await migration.run(
            plan.moves, max_concurrency or default_concurrency, stop or StopSignal()
        )


@asynccontextmanager
async def _backends(
    via: MigrateVia,
    plan: ClaimPlan,
    source: BackendIdentity,
    destination: BackendIdentity,
    max_concurrency: int | None,
    workspace_root: Path | None,
) -> AsyncIterator[tuple[Backend, Backend, int]]:
    """Both sides reached `via`, and how many stacks migrate at once by default that way."""
    from toolkit.cloud import DEFAULT_MAX_CONCURRENCY, CloudClient

    calls = max_concurrency or DEFAULT_MAX_CONCURRENCY
    async with AsyncExitStack() as clients:

        async def client_of(identity: BackendIdentity) -> CloudClient | None:
            if not identity.is_cloud:
                return None
            client = CloudClient.for_identity(identity, max_concurrency=calls)
            return await clients.enter_async_context(client)

        source_client = await client_of(source)
        destination_client = await client_of(destination)
        if via == "cli":
            from toolkit.strategies._migrate_cli import CliBackend

            yield (
                CliBackend.of(source, plan.source_org, workspace_root, source_client),
                CliBackend.of(
                    destination, plan.destination_org, workspace_root, destination_client
                ),
                CLI_CONCURRENCY,
            )
            return
        from toolkit.strategies._migrate_rest import RestBackend

        assert source_client is not None and destination_client is not None
        yield (
            RestBackend(source_client, plan.source_org),
            RestBackend(destination_client, plan.destination_org),
            calls,
        )


@dataclass(frozen=True)
class _Migration:
    """The migration of single stacks from one backend to another; the one home of the steps.

    What this run read of a source and what it wrote and verified in the destination are
    recorded as revisions in the journal, and every later removal or overwrite checks them
    first: a verified copy is never removed or made again, a source is removed only while it
    is still what was copied, and a stack that has changed since is left alone and reported.
    """

    source: Backend
    destination: Backend
    delete_source: bool
    tally: MoveTally
    journal: Journal

    def source_name(self, move: StackMove) -> str:
        return qualified_name(self.source.org, move.source)

    def target_name(self, move: StackMove) -> str:
        return qualified_name(self.destination.org, move.target)

    @property
    def copies_settings(self) -> bool:
        """Whether both sides are Pulumi Cloud, where stacks have deployment settings,
        webhooks and schedules to copy."""
        return self.source.settings_client is not None and (
            self.destination.settings_client is not None
        )

    def last_step(self) -> Step:
        """The step whose recorded outcome `done` means a move landed."""
        if self.delete_source:
            return "delete-source"
        return "settings" if self.copies_settings else "tags"

    async def run(
        self, moves: list[StackMove], max_concurrency: int, stop: StopSignal
    ) -> FailedMoves:
        failed: FailedMoves = {}

        def fail(move: StackMove, failure: MoveFailure) -> None:
            failed[entity_key(move.source)] = failure
            self.tally.failed(self.source_name(move), self.target_name(move), failure)

        history = StepHistory(self.journal)
        try:
            existing = await self.destination.stack_names() if moves else set()
        except ClaimError as error:
            unlisted = MoveFailure("list", f"could not list the stacks: {error.message}")
            for move in moves:
                fail(move, unlisted)
            return failed
        pending: list[tuple[StackMove, Callable[[], Awaitable[MoveFailure | None]]]] = []
        for move in moves:
            target = self.target_name(move)
            if history.done(move.journal_name, self.last_step()):
                self.tally.finished(
                    self.source_name(move), target, "verify", f"{target} landed earlier"
                )
            elif history.done(move.journal_name, "verify"):
                copied = _Copied(
                    tags=history.done(move.journal_name, "tags"),
                    settings=history.done(move.journal_name, "settings"),
                )
                pending.append((move, functools.partial(self.finish, move, copied)))
            elif target not in existing:
                pending.append((move, functools.partial(self.migrate, move, half_made=False)))
            elif history.began(move.journal_name, "create"):
                pending.append((move, functools.partial(self.migrate, move, half_made=True)))
            else:
                fail(move, MoveFailure("create", f"{target} already exists; nothing was changed"))

        slots = asyncio.Semaphore(max_concurrency)

        async def run_one(
            move: StackMove, work: Callable[[], Awaitable[MoveFailure | None]]
        ) -> None:
            async with slots:
                if stop.requested:
                    fail(move, MoveFailure.interrupted("create"))
                    return
                self.tally.started(self.source_name(move), self.target_name(move))
                failure = await work()
            if failure is not None:
                fail(move, failure)

        await asyncio.gather(*(run_one(move, work) for move, work in pending))
        return failed

    async def recorded(self, move: StackMove, step: Step, detail: str, call: Awaitable[T]) -> T:
        """`await call`, written to the journal before it starts and after it ends."""
        row = self.journal.begin(move.journal_name, step, detail)
        try:
            result = await call
        except StepFailed as failure:
            self.journal.end(row, "failed", failure.reason)
            raise
        except Exception as error:
            said = error.message if isinstance(error, ClaimError) else str(error)
            self.journal.end(row, "failed", said or type(error).__name__)
            raise
        self.journal.end(row, "done")
        return result

    def report(self, move: StackMove, step: Step, summary: str, *, landed: bool = False) -> None:
        send = self.tally.finished if landed else self.tally.step
        send(self.source_name(move), self.target_name(move), step, summary)

    @asynccontextmanager
    async def sessions(self, move: StackMove) -> AsyncIterator[tuple[Session, Session]]:
        async with (
            self.source.session(move.source.project_name) as source,
            self.destination.session(move.target.project_name) as target,
        ):
            yield source, target

    async def migrate(self, move: StackMove, *, half_made: bool) -> MoveFailure | None:
        """Migrate one stack; None when it landed (and, if asked, left the source), else why not.

        `half_made`: the destination stack is this run's copy from an attempt that stopped
        before it was verified; it is removed first, if it is still what this run made of it.
        """
        source_name, target_name = self.source_name(move), self.target_name(move)
        try:
            async with self.sessions(move) as (source, target):
                state = await self.read_source(move, source)
                deployment = renamed_state(state, move)
                if half_made:
                    await self.recorded(
                        move,
                        "undo",
                        f"remove the half-made {target_name}",
                        self._remove_leftover(target, target_name, deployment),
                    )
                    self.report(move, "undo", f"removed the half-made {target_name}")
                await self.recorded(
                    move, "create", f"create {target_name}", target.create(target_name)
                )
                self.report(move, "create", f"created {target_name}")
                try:
                    await self._land(state, deployment, move, target)
                except BaseException as failure:
                    await self._remove_half_made(move, target, failure)
                    raise
                await self._copy_settings(move, created_now=True)
                self.report(
                    move,
                    "verify",
                    f"migrated {source_name} -> {target_name} (verified)",
                    landed=not self.delete_source,
                )
                if self.delete_source:
                    await self._remove_source(move, source)
        except StepFailed as failure:
            return MoveFailure(failure.step, failure.reason)
        except ClaimError as error:
            return MoveFailure("login", error.message)
        return None

    async def finish(self, move: StackMove, copied: _Copied) -> MoveFailure | None:
        """Finish a move whose copy an earlier attempt verified: that copy is never removed or
        made again; only the steps still missing are done (the tags, the deployment settings,
        webhooks and schedules, the source's removal).
        A source changed since it was copied is brought over first, while the copy is still
        exactly what this run wrote."""
        source_name, target_name = self.source_name(move), self.target_name(move)
        try:
            async with self.sessions(move) as (source, target):
                if not copied.tags:
                    await self._check_copy_unchanged(move, target, "tags")
                    state = await source.read(source_name, "read")
                    await self._copy_tags(state, move, target)
                if not copied.settings:
                    await self._copy_settings(move, created_now=False)
                if not self.delete_source:
                    self.report(move, "verify", f"{target_name} is migrated", landed=True)
                    return None
                try:
                    await self._remove_source(move, source)
                except _SourceChanged:
                    await self._check_copy_unchanged(move, target, "delete-source", both=True)
                    state = await self.read_source(move, source)
                    await self._land(state, renamed_state(state, move), move, target)
                    self.report(
                        move, "verify", f"brought the changes of {source_name} into {target_name}"
                    )
                    await self._remove_source(move, source)
        except StepFailed as failure:
            return MoveFailure(failure.step, failure.reason)
        except ClaimError as error:
            return MoveFailure("login", error.message)
        return None

    async def read_source(self, move: StackMove, source: Session) -> StackState:
        """The source's state, its revision recorded: what its removal will check."""
        name = self.source_name(move)
        state = await source.read(name, "read")
        refuse_pending_operations(name, state)
        self.journal.record_revision(move.journal_name, "source", str(state.revision))
        return state

    async def _land(
        self, state: StackState, deployment: dict[str, Any], move: StackMove, target: Session
    ) -> None:
        """Import the renamed state into the new (or this run's own) stack, verify, copy tags."""
        target_name = self.target_name(move)
        deployment["secrets_providers"] = await target.secrets_provider(
            target_name, move.target.project_name, move.target.stack_name
        )
        await self.recorded(
            move,
            "import",
            f"import the state into {target_name}",
            target.import_state(target_name, state.version, deployment),
        )
        await self.recorded(
            move,
            "verify",
            f"verify {target_name}",
            self._verified(move, target, expected=deployment, source=state),
        )
        await self._copy_tags(state, move, target)

    async def _verified(
        self, move: StackMove, target: Session, *, expected: dict[str, Any], source: StackState
    ) -> None:
        """`verify_copy`, then the copy's revision recorded: the one every later step checks."""
        revision = await verify_copy(
            target, self.target_name(move), expected=expected, source=source
        )
        self.journal.record_revision(move.journal_name, "copy", str(revision))

    async def _copy_tags(self, state: StackState, move: StackMove, target: Session) -> None:
        target_name = self.target_name(move)
        user_tags = user_tags_of(state)
        tags = user_tags if self.destination.creates_system_tags else all_tags(state, move)
        await self.recorded(
            move,
            "tags",
            f"copy {len(user_tags)} tag(s) to {target_name}",
            target.set_tags(target_name, tags),
        )
        if user_tags:
            self.report(move, "tags", f"copied {len(user_tags)} tag(s) to {target_name}")

    async def _copy_settings(self, move: StackMove, *, created_now: bool) -> None:
        """Copy the source's deployment settings, webhooks and schedules to the verified copy
        (`_migrate_settings`), when both sides have them; `created_now`: this attempt
        created the copy."""
        source_client, destination_client = (
            self.source.settings_client,
            self.destination.settings_client,
        )
        if source_client is None or destination_client is None:
            return
        target_name = self.target_name(move)
        copied = await self.recorded(
            move,
            "settings",
            f"copy the deployment settings, webhooks and schedules to {target_name}",
            copy_settings(
                source_client,
                destination_client,
                self.source_name(move),
                target_name,
                created_now=created_now,
            ),
        )
        summary = copied.summary()
        if summary is not None:
            self.report(move, "settings", f"copied {summary} to {target_name}")

    async def _check_copy_unchanged(
        self, move: StackMove, target: Session, step: Step, *, both: bool = False
    ) -> None:
        """Refuse to touch the verified copy once it is no longer what this run wrote."""
        source_name, target_name = self.source_name(move), self.target_name(move)
        recorded = Revision.parse(self.journal.revision(move.journal_name, "copy"))
        now = await target.revision(target_name, step)
        if recorded is not None and now == recorded:
            return
        if both:
            raise StepFailed(
                step,
                f"both {source_name} and {target_name} changed since this run copied the one "
                f"into the other: both are left as they are; compare them, keep the one that "
                f"should manage the resources and remove the other with "
                f"`pulumi stack rm --force`",
            )
        raise StepFailed(
            step,
            f"{target_name} changed since this run verified it, so it is left as it is (its "
            f"source {source_name} too): copy what is still missing by hand",
        )

    async def _remove_leftover(
        self, target: Session, name: str, deployment: dict[str, Any]
    ) -> None:
        """Remove an earlier attempt's unverified copy, if it is still what this run made of
        it: empty as created, or holding the state this run imports."""
        landed = await target.read(name, "undo", tags=False)
        if landed.plaintext.get("resources") and difference(deployment, landed.plaintext):
            raise StepFailed(
                "undo",
                f"{name}, left by an earlier attempt, has changed since (it is neither empty "
                "nor the state this run imports), so it is left as it is: remove it with "
                f"`pulumi stack rm --force {name}` if it is not needed, and run again",
            )
        try:
            await target.remove(name, "undo", f"removing the half-made {name}")
        except StepFailed as failure:
            raise StepFailed(
                "undo",
                f"{failure.reason} (left by an earlier attempt); remove it with "
                f"`pulumi stack rm --force {name}`",
            ) from failure

    async def _remove_half_made(
        self, move: StackMove, target: Session, failure: BaseException
    ) -> None:
        """Remove the destination stack this run created; say so in the failure if that fails."""
        name = self.target_name(move)
        try:
            await target.remove(name, "undo", "removing it")
        except StepFailed as undo:
            if isinstance(failure, StepFailed):
                failure.step = "undo"
                failure.reason += (
                    f"; removing the half-made {name} also failed ({undo.reason}): "
                    f"remove it with `pulumi stack rm --force {name}`"
                )
        else:
            self.report(move, "undo", f"removed the half-made {name}")

    async def _remove_source(self, move: StackMove, source: Session) -> None:
        """Remove the source stack's record, now that the verified destination owns its
        resources, if it is still the stack at the revision this run copied; `_SourceChanged`
        when it has changed since. Only its state goes, resources and all: nothing is
        destroyed, and the cloud resources stay, managed by the destination stack from now on."""
        source_name, target_name = self.source_name(move), self.target_name(move)
        copied = Revision.parse(self.journal.revision(move.journal_name, "source"))
        now = await source.revision(source_name, "delete-source")
        if now is None or (copied is not None and now.identity != copied.identity):
            await self._confirm_gone(move, source, copied)
            self.report(move, "delete-source", f"{source_name} was removed earlier", landed=True)
            return
        if now != copied:
            raise _SourceChanged(
                "delete-source",
                f"{source_name} changed after it was copied to {target_name}, so it was left "
                f"in place and {target_name} holds the state as copied; run the same command "
                f"again to bring the change over, then remove {source_name}",
            )
        try:
            await self.recorded(
                move,
                "delete-source",
                f"remove {source_name}",
                self._remove_copied_source(move, source, copied),
            )
        except _SourceElsewhere:
            raise
        except StepFailed as failure:
            raise StepFailed(
                "delete-source",
                f"{failure.reason}; {target_name} is migrated and verified, but {source_name} "
                f"still manages the same resources: run the same command again to remove it",
            ) from failure
        self.report(move, "delete-source", f"removed {source_name}", landed=True)

    async def _remove_copied_source(
        self, move: StackMove, source: Session, copied: Revision | None
    ) -> None:
        """The removal as the journal records it: done once the source is removed, or its
        name was free already and a look-up by its identity confirms it is gone."""
        name = self.source_name(move)
        if not await source.remove(name, "delete-source", "removing the source"):
            await self._confirm_gone(move, source, copied)

    async def _confirm_gone(
        self, move: StackMove, source: Session, copied: Revision | None
    ) -> None:
        """The source is not at its name: fail unless a look-up by its identity confirms that
        it is gone (renamed or moved, it still manages the same resources as the copy)."""
        source_name, target_name = self.source_name(move), self.target_name(move)
        now = None if copied is None else await source.whereabouts(copied)
        if now is not None:
            raise _SourceElsewhere(
                "delete-source",
                f"{source_name} is now {now} (renamed or moved during the run): it still "
                f"manages the same resources as {target_name}, and was left as it is; remove "
                f"it with `pulumi stack rm --force {now}` once {target_name} is the one to keep",
            )


@dataclass(frozen=True)
class _Copied:
    """What an earlier attempt copied to a verified copy, beside its state."""

    tags: bool
    settings: bool


class _SourceChanged(StepFailed):
    """The source changed after it was copied: it was not removed."""


class _SourceElsewhere(StepFailed):
    """The source is no longer at its name but still exists (renamed or moved)."""
