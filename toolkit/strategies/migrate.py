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
6. only with `delete_source`, remove the source stack.

Each step is done one of two ways (`MigrateVia`), the steps and their order being the same:
- `rest`: every step is a REST call the CLI itself would make (export, batch-decrypt with the
  source stack's key, create, batch-encrypt with the destination stack's key, import, tags),
  concurrent and bounded, with no CLI process; for two Pulumi Cloud sides (one service or two).
- `cli`: through the Automation API (the `pulumi` CLI), one isolated workspace per identity;
  it works with self-managed backends (`file://`, object stores) too.

A failed step leaves the source untouched and removes the destination stack this run created.
The CLI's own `pulumi stack migrate` cannot do this: it acts as one login, and refuses when both
stacks live on the same service, which is the agent-to-company case.

What does not carry over: update history, permissions, webhooks, deployment settings and the
stack's config files (the plan's notices say so).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from toolkit.credentials import BackendIdentity
from toolkit.deployments import (
    ciphertexts,
    difference,
    has_plaintext_secrets,
    integrity_problem,
)
from toolkit.entities import entity_key
from toolkit.errors import ClaimError, InvalidInputError
from toolkit.journal import Journal
from toolkit.plan import ClaimPlan, StackMove
from toolkit.progress import MoveFailure, MoveTally, Step
from toolkit.strategies import (
    FailedMoves,
    ProgressCallback,
    StepHistory,
    StopSignal,
    no_progress,
)
from toolkit.strategies._migration import Backend, Session, StackState, StepFailed
from toolkit.urns import rename_deployment

T = TypeVar("T")

MigrateVia = Literal["rest", "cli"]
"""How migrate reaches both sides: the REST API, or the pulumi CLI (`cli`)."""

CLI_CONCURRENCY = 4
"""Stacks migrated at once through the CLI by default: each runs several CLI processes."""

SYSTEM_TAG_PREFIX = "pulumi:"
"""Tags the CLI sets on a stack it creates and on every update (project, runtime, ...)."""
PROJECT_TAG = "pulumi:project"


def choose_migrate_via(
    source: BackendIdentity, destination: BackendIdentity, asked: MigrateVia | None
) -> MigrateVia:
    """`asked`, else `rest` when both sides are Pulumi Cloud, else `cli`; `rest` with a
    self-managed side is an InvalidInputError."""
    both_cloud = source.is_cloud and destination.is_cloud
    if asked == "rest" and not both_cloud:
        raise InvalidInputError(
            "--migrate-via rest needs both sides on Pulumi Cloud; a self-managed backend "
            f"({(destination if source.is_cloud else source).url}) is reached through the "
            "pulumi CLI only",
            hint="Leave out --migrate-via (or pass --migrate-via cli).",
        )
    return asked or ("rest" if both_cloud else "cli")


def check_migrate_via(
    strategy: str | None,
    source: BackendIdentity,
    destination: BackendIdentity,
    asked: MigrateVia | None,
) -> None:
    """Refuse `asked` where it cannot apply, before a run starts: with a strategy other than
    migrate (None: auto, which may choose migrate), or `rest` with a self-managed side."""
    if asked is None:
        return
    if strategy not in (None, "migrate"):
        raise InvalidInputError(
            f"--migrate-via applies to --strategy migrate only ({strategy} copies no state)",
            hint="Leave out --migrate-via, or use --strategy migrate.",
        )
    choose_migrate_via(source, destination, asked)


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
    if via == "cli":
        from toolkit.strategies._migrate_cli import CliBackend

        yield (
            CliBackend.of(source, plan.source_org, workspace_root),
            CliBackend.of(destination, plan.destination_org, workspace_root),
            CLI_CONCURRENCY,
        )
        return
    from toolkit.cloud import DEFAULT_MAX_CONCURRENCY, CloudClient
    from toolkit.strategies._migrate_rest import RestBackend

    calls = max_concurrency or DEFAULT_MAX_CONCURRENCY
    async with AsyncExitStack() as clients:
        source_client = await clients.enter_async_context(
            CloudClient(source.url, source.token or "", max_concurrency=calls)
        )
        destination_client = await clients.enter_async_context(
            CloudClient(destination.url, destination.token or "", max_concurrency=calls)
        )
        yield (
            RestBackend(source_client, plan.source_org),
            RestBackend(destination_client, plan.destination_org),
            calls,
        )


def _last_step(delete_source: bool) -> Step:
    """The step whose recorded outcome `done` means a move landed."""
    return "delete-source" if delete_source else "tags"


@dataclass(frozen=True)
class _Migration:
    """The migration of single stacks from one backend to another; the one home of the steps."""

    source: Backend
    destination: Backend
    delete_source: bool
    tally: MoveTally
    journal: Journal

    def source_name(self, move: StackMove) -> str:
        return f"{self.source.org}/{move.source.project_name}/{move.source.stack_name}"

    def target_name(self, move: StackMove) -> str:
        return f"{self.destination.org}/{move.target.project_name}/{move.target.stack_name}"

    async def run(
        self, moves: list[StackMove], max_concurrency: int, stop: StopSignal
    ) -> FailedMoves:
        failed: FailedMoves = {}

        def fail(move: StackMove, failure: MoveFailure) -> None:
            failed[entity_key(move.source)] = failure
            self.tally.failed(self.source_name(move), self.target_name(move), failure)

        history = StepHistory(self.journal)
        left_source = [move for move in moves if history.began(move.journal_name, "delete-source")]
        try:
            existing, still_in_source = await asyncio.gather(
                self.destination.stack_names() if moves else _nothing(),
                self.source.stack_names() if left_source else _nothing(),
            )
        except ClaimError as error:
            unlisted = MoveFailure("list", f"could not list the stacks: {error.message}")
            for move in moves:
                fail(move, unlisted)
            return failed
        pending: list[tuple[StackMove, bool]] = []
        for move in moves:
            target = self.target_name(move)
            if history.done(move.journal_name, _last_step(self.delete_source)) or (
                move in left_source and self.source_name(move) not in still_in_source
            ):
                self.tally.finished(
                    self.source_name(move), target, "verify", f"{target} landed earlier"
                )
            elif target not in existing:
                pending.append((move, False))
            elif history.began(move.journal_name, "create"):
                pending.append((move, True))
            else:
                fail(move, MoveFailure("create", f"{target} already exists; nothing was changed"))

        slots = asyncio.Semaphore(max_concurrency)

        async def migrate(move: StackMove, half_made: bool) -> None:
            async with slots:
                if stop.requested:
                    fail(move, MoveFailure.interrupted("create"))
                    return
                self.tally.started(self.source_name(move), self.target_name(move))
                failure = await self.migrate(move, half_made)
            if failure is not None:
                fail(move, failure)

        await asyncio.gather(*(migrate(move, half_made) for move, half_made in pending))
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

    async def migrate(self, move: StackMove, half_made: bool) -> MoveFailure | None:
        """Migrate one stack; None when it landed (and, if asked, left the source), else why not.

        `half_made`: the destination stack is this run's copy from an attempt that stopped
        before it landed; it is removed first.
        """
        source_name, target_name = self.source_name(move), self.target_name(move)
        try:
            async with (
                self.source.session(move.source.project_name) as source,
                self.destination.session(move.target.project_name) as target,
            ):
                state = await source.read(source_name, "read")
                _refuse_pending_operations(source_name, state)
                if half_made:
                    await self.recorded(
                        move,
                        "undo",
                        f"remove the half-made {target_name}",
                        self._remove_leftover(target, target_name),
                    )
                    self.report(move, "undo", f"removed the half-made {target_name}")
                await self.recorded(
                    move, "create", f"create {target_name}", target.create(target_name)
                )
                self.report(move, "create", f"created {target_name}")
                try:
                    await self._land(state, move, target, target_name)
                except BaseException as failure:
                    await self._remove_half_made(move, target, failure)
                    raise
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

    async def _land(
        self, state: StackState, move: StackMove, target: Session, target_name: str
    ) -> None:
        """Import the renamed state into the new (empty) stack `target_name`, verify, copy tags."""
        secrets_provider = await target.secrets_provider(
            target_name, move.target.project_name, move.target.stack_name
        )
        try:
            deployment = rename_deployment(
                state.plaintext,
                old_project=move.source.project_name,
                old_stack=move.source.stack_name,
                new_project=move.target.project_name,
                new_stack=move.target.stack_name,
            )
        except ValueError as error:
            raise StepFailed("import", f"the source's state cannot be renamed: {error}") from error
        deployment["secrets_providers"] = secrets_provider
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
            _verify(target, target_name, expected=deployment, source=state),
        )
        user_tags = {k: v for k, v in state.tags.items() if not k.startswith(SYSTEM_TAG_PREFIX)}
        tags = user_tags if self.destination.creates_system_tags else _all_tags(state, move)
        await self.recorded(
            move,
            "tags",
            f"copy {len(user_tags)} tag(s) to {target_name}",
            target.set_tags(target_name, tags),
        )
        if user_tags:
            self.report(move, "tags", f"copied {len(user_tags)} tag(s) to {target_name}")

    async def _remove_leftover(self, target: Session, name: str) -> None:
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
        resources. Only its state goes, resources and all: nothing is destroyed, and the cloud
        resources stay, managed by the destination stack from now on."""
        source_name, target_name = self.source_name(move), self.target_name(move)
        try:
            await self.recorded(
                move,
                "delete-source",
                f"remove {source_name}",
                source.remove(source_name, "delete-source", "removing the source"),
            )
        except StepFailed as failure:
            raise StepFailed(
                "delete-source",
                f"{failure.reason}; {target_name} is migrated and verified, but {source_name} "
                f"still manages the same resources: remove it with "
                f"`pulumi stack rm --force {source_name}`",
            ) from failure
        self.report(move, "delete-source", f"removed {source_name}", landed=True)


async def _nothing() -> set[str]:
    return set()


def _refuse_pending_operations(name: str, state: StackState) -> None:
    pending = state.plaintext.get("pending_operations") or []
    if pending:
        raise StepFailed(
            "read",
            f"{name} has {len(pending)} pending operation(s) left by an interrupted update, "
            f"which an import would drop; run `pulumi refresh --stack {name}` and migrate again",
        )


def _all_tags(state: StackState, move: StackMove) -> dict[str, str]:
    """Every tag of the source, `pulumi:project` naming the new project, for a new stack
    that no CLI tagged with its program's `pulumi:` tags."""
    tags = dict(state.tags)
    if PROJECT_TAG in tags:
        tags[PROJECT_TAG] = move.target.project_name
    return tags


async def _verify(
    target: Session, name: str, *, expected: dict[str, object], source: StackState
) -> None:
    """Check the destination holds `expected` (the renamed source state), sealed its own way."""
    await target.check_loads(name)
    try:
        landed = await target.read(name, "verify")
    except StepFailed as failure:
        raise StepFailed("verify", f"verification: {failure.reason}") from failure
    problem = integrity_problem(landed.plaintext)
    if problem is not None:
        raise StepFailed("verify", f"verification: the state of {name} is broken: {problem}")
    problem = difference(expected, landed.plaintext)
    if problem:
        raise StepFailed("verify", f"verification: {name} {problem}")
    if has_plaintext_secrets(landed.encrypted):
        raise StepFailed("verify", f"verification: {name} stores secrets unencrypted")
    if set(ciphertexts(landed.encrypted)) & set(ciphertexts(source.encrypted)):
        raise StepFailed(
            "verify", f"verification: {name} holds the source's ciphertext, not its own"
        )
