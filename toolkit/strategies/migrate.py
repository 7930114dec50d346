"""The `migrate` strategy: copy each stack's state into a new stack, verify, then let go of it.

An agent's stacks usually cannot be REST-transferred, because no single identity is admin of
both the agent's org and the company's. With two identities the move is a state migration,
driven through the Automation API (the `pulumi` CLI), one isolated workspace per identity, so it
works between Pulumi Cloud orgs and self-managed backends (`file://`, ...) alike. Per stack:

1. read the source (source identity): the deployment with secrets decrypted, the same
   deployment encrypted (to compare ciphertexts later) and the stack's tags;
2. create the destination stack (destination identity), which gets its own secrets manager;
3. rewrite every URN for the new project and stack name as `pulumi stack rename` does
   (`toolkit.urns`), point the deployment at the destination's secrets manager, and import it:
   the CLI encrypts the plaintext secrets again, with the destination's key;
4. verify: the CLI loads the destination's state (its integrity checks), the same resources and
   values come out of it modulo the rename, every secret decrypts to the same plaintext, and
   none of its ciphertext is the source's;
5. copy the stack tags, except the `pulumi:` ones the CLI sets itself on every update;
6. only with `delete_source`, remove the source stack.

A failed step leaves the source untouched and removes the destination stack this run created.
The CLI's own `pulumi stack migrate` cannot do this: it acts as one login, and refuses when both
stacks live on the same service, which is the agent-to-company case.

What does not carry over: update history, permissions, webhooks, deployment settings and the
stack's config files (the plan's notices say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pulumi.automation import CommandResult, LocalWorkspace
from pulumi.automation.errors import CommandError, StackAlreadyExistsError

from toolkit.credentials import BackendIdentity
from toolkit.entities import entity_key
from toolkit.errors import ClaimError
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
from toolkit.urns import SECRET_SIG, SIG_KEY, rename_deployment
from toolkit.workspaces import (
    SELF_MANAGED_ORG,
    cli_error_text,
    isolated_workspace,
    list_all_stacks,
    run_pulumi,
)

T = TypeVar("T")

SYSTEM_TAG_PREFIX = "pulumi:"
"""Tags the CLI sets on every update (project, runtime, ...); they are not copied."""

_LONGEST_REASON = 600
"""Characters of the CLI's error message a failure reason keeps."""


async def execute_migrate(
    plan: ClaimPlan,
    source: BackendIdentity,
    destination: BackendIdentity,
    *,
    delete_source: bool = False,
    max_concurrency: int = 4,
    journal: Journal | None = None,
    stop: StopSignal | None = None,
    on_progress: ProgressCallback = no_progress,
    workspace_root: Path | None = None,
) -> FailedMoves:
    """Migrate every stack of `plan` from `source` to `destination`; return the failed moves.

    A move whose destination stack already exists is refused before anything is done for it,
    unless the journal shows this run created it: then it is this run's half-made copy, removed
    and made again (or, when the source was already removed after verification, the move had
    landed). A move the journal shows landed is not made again. At most `max_concurrency`
    stacks migrate at once, each in a worker thread (the Automation API blocks while the CLI
    runs); once `stop` is set, no new stack starts. The workspaces are made under
    `workspace_root` (see `toolkit.workspaces.isolated_workspace`).
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    journal = journal or Journal.in_memory()
    stop = stop or StopSignal()
    tally = MoveTally(len(plan.moves), on_progress)
    migration = _Migration(
        source=source,
        destination=destination,
        source_org=plan.source_org if source.is_cloud else SELF_MANAGED_ORG,
        destination_org=plan.destination_org if destination.is_cloud else SELF_MANAGED_ORG,
        delete_source=delete_source,
        loop=asyncio.get_running_loop(),
        tally=tally,
        journal=journal,
        workspace_root=workspace_root,
    )
    failed: FailedMoves = {}

    def fail(move: StackMove, failure: MoveFailure) -> None:
        failed[entity_key(move.source)] = failure
        tally.failed(migration.source_name(move), migration.target_name(move), failure)

    history = StepHistory(journal)
    try:
        existing = await asyncio.to_thread(migration.stacks, "destination", plan.moves)
        left_source = [
            move for move in plan.moves if history.began(move.journal_name, "delete-source")
        ]
        still_in_source = (
            await asyncio.to_thread(migration.stacks, "source", left_source)
            if left_source
            else set()
        )
    except (ClaimError, CommandError) as error:
        unlisted = MoveFailure("list", f"could not list the stacks: {_reason(error)}")
        for move in plan.moves:
            fail(move, unlisted)
        return failed
    pending: list[tuple[StackMove, bool]] = []
    for move in plan.moves:
        target = migration.target_name(move)
        if history.done(move.journal_name, _last_step(delete_source)) or (
            move in left_source and migration.source_name(move) not in still_in_source
        ):
            tally.finished(
                migration.source_name(move), target, "verify", f"{target} landed earlier"
            )
        elif target not in existing:
            pending.append((move, False))
        elif history.began(move.journal_name, "create"):
            pending.append((move, True))
        else:
            fail(move, MoveFailure("create", f"{target} already exists; nothing was changed"))

    semaphore = asyncio.Semaphore(max_concurrency)

    async def migrate(move: StackMove, half_made: bool) -> None:
        async with semaphore:
            if stop.requested:
                fail(move, MoveFailure.interrupted("create"))
                return
            tally.started(migration.source_name(move), migration.target_name(move))
            failure = await asyncio.to_thread(migration.migrate, move, half_made)
        if failure is not None:
            fail(move, failure)

    await asyncio.gather(*(migrate(move, half_made) for move, half_made in pending))
    return failed


def _last_step(delete_source: bool) -> Step:
    """The step whose recorded outcome `done` means a move landed."""
    return "delete-source" if delete_source else "tags"


class _StepFailed(Exception):
    """One stack's migration stopped at `step`; `reason` is what the report says."""

    def __init__(self, step: Step, reason: str) -> None:
        super().__init__(reason)
        self.step: Step = step
        self.reason = reason


@dataclass(frozen=True)
class _Migration:
    """The migration of single stacks between two backends, each run in a worker thread."""

    source: BackendIdentity
    destination: BackendIdentity
    source_org: str
    destination_org: str
    delete_source: bool
    loop: asyncio.AbstractEventLoop
    tally: MoveTally
    """Counts the moves; lives on `loop`'s thread, which `report` posts to."""
    journal: Journal
    workspace_root: Path | None

    def source_name(self, move: StackMove) -> str:
        return f"{self.source_org}/{move.source.project_name}/{move.source.stack_name}"

    def target_name(self, move: StackMove) -> str:
        return f"{self.destination_org}/{move.target.project_name}/{move.target.stack_name}"

    def stacks(self, side: Literal["source", "destination"], moves: list[StackMove]) -> set[str]:
        """The fully qualified names of one side's stacks, in every project."""
        if not moves:
            return set()
        identity, org = (
            (self.destination, self.destination_org)
            if side == "destination"
            else (self.source, self.source_org)
        )
        with isolated_workspace(
            identity, project=moves[0].target.project_name, workspace_root=self.workspace_root
        ) as workspace:
            return {s.name for s in list_all_stacks(workspace, org=org)}

    def recorded(self, move: StackMove, step: Step, detail: str, call: Callable[[], T]) -> T:
        """`call()`, written to the journal before it starts and after it ends."""
        row = self.journal.begin(move.journal_name, step, detail)
        try:
            result = call()
        except _StepFailed as failure:
            self.journal.end(row, "failed", failure.reason)
            raise
        except Exception as error:
            self.journal.end(row, "failed", _reason(error))
            raise
        self.journal.end(row, "done")
        return result

    def report(self, move: StackMove, step: Step, summary: str, *, landed: bool = False) -> None:
        """Send a step done in a worker thread to the tally, on the event loop's thread."""
        send = self.tally.finished if landed else self.tally.step
        self.loop.call_soon_threadsafe(
            send, self.source_name(move), self.target_name(move), step, summary
        )

    def migrate(self, move: StackMove, half_made: bool) -> MoveFailure | None:
        """Migrate one stack; None when it landed (and, if asked, left the source), else why not.

        `half_made`: the destination stack is this run's copy from an attempt that stopped
        before it landed; it is removed first.
        """
        source_name, target_name = self.source_name(move), self.target_name(move)
        try:
            with (
                isolated_workspace(
                    self.source,
                    project=move.source.project_name,
                    workspace_root=self.workspace_root,
                ) as source,
                isolated_workspace(
                    self.destination,
                    project=move.target.project_name,
                    workspace_root=self.workspace_root,
                ) as target,
            ):
                state = _read_source(source, source_name)
                if half_made:
                    self.recorded(
                        move,
                        "undo",
                        f"remove the half-made {target_name}",
                        lambda: _remove_leftover(target, target_name),
                    )
                    self.report(move, "undo", f"removed the half-made {target_name}")
                self.recorded(
                    move, "create", f"create {target_name}", lambda: _create(target, target_name)
                )
                self.report(move, "create", f"created {target_name}")
                try:
                    self._land(state, move, target, target_name)
                except BaseException as failure:
                    self._remove_half_made(move, target, failure)
                    raise
                self.report(
                    move,
                    "verify",
                    f"migrated {source_name} -> {target_name} (verified)",
                    landed=not self.delete_source,
                )
                if self.delete_source:
                    self._remove_source(move, source)
        except _StepFailed as failure:
            return MoveFailure(failure.step, failure.reason)
        except ClaimError as error:
            return MoveFailure("login", error.message)
        return None

    def _land(
        self, state: _SourceState, move: StackMove, target: LocalWorkspace, target_name: str
    ) -> None:
        """Import the renamed state into the new (empty) stack `target_name`, verify, copy tags."""
        secrets_provider = self._secrets_provider(target, move)
        try:
            deployment = rename_deployment(
                state.plaintext,
                old_project=move.source.project_name,
                old_stack=move.source.stack_name,
                new_project=move.target.project_name,
                new_stack=move.target.stack_name,
            )
        except ValueError as error:
            raise _StepFailed("import", f"the source's state cannot be renamed: {error}") from error
        deployment["secrets_providers"] = secrets_provider
        self.recorded(
            move,
            "import",
            f"import the state into {target_name}",
            lambda: _import(
                target, target_name, {"version": state.version, "deployment": deployment}
            ),
        )
        self.recorded(
            move,
            "verify",
            f"verify {target_name}",
            lambda: _verify(
                target, target_name, expected=deployment, source_encrypted=state.encrypted
            ),
        )
        self.recorded(
            move,
            "tags",
            f"copy {len(state.tags)} tag(s) to {target_name}",
            lambda: _copy_tags(target, target_name, state.tags),
        )
        if state.tags:
            self.report(move, "tags", f"copied {len(state.tags)} tag(s) to {target_name}")

    def _secrets_provider(self, target: LocalWorkspace, move: StackMove) -> dict[str, Any]:
        """The new stack's secrets manager, which the import is to encrypt the secrets with.

        A self-managed stack's is in its (empty) state, key material and all. On Pulumi Cloud it
        is the service itself, keyed per stack, and the import hands any `service` provider over
        to the stack it imports into; this one names the new stack anyway.
        """
        name = self.target_name(move)
        if self.destination.is_cloud:
            owner = {"url": self.destination.url, "owner": self.destination_org}
            stack = {"project": move.target.project_name, "stack": move.target.stack_name}
            return {"type": "service", "state": {**owner, **stack}}
        provider = _export(target, name, "create", "reading the new stack")["deployment"].get(
            "secrets_providers"
        )
        if not isinstance(provider, dict):
            raise _StepFailed("create", f"{name} was created without a secrets provider")
        return provider

    def _remove_half_made(
        self, move: StackMove, target: LocalWorkspace, failure: BaseException
    ) -> None:
        """Remove the destination stack this run created; say so in the failure if that fails."""
        name = self.target_name(move)
        try:
            target.remove_stack(name, force=True)
        except CommandError as error:
            if isinstance(failure, _StepFailed):
                failure.step = "undo"
                failure.reason += (
                    f"; removing the half-made {name} also failed ({_reason(error)}): "
                    f"remove it with `pulumi stack rm --force {name}`"
                )
        else:
            self.report(move, "undo", f"removed the half-made {name}")

    def _remove_source(self, move: StackMove, source: LocalWorkspace) -> None:
        """Remove the source stack's record, now that the verified destination owns its resources.

        `--force` is needed because the stack still has resources; it removes the state only and
        destroys nothing, which is what a migration wants: the cloud resources stay, managed by
        the destination stack from now on.
        """
        source_name, target_name = self.source_name(move), self.target_name(move)
        try:
            self.recorded(
                move,
                "delete-source",
                f"remove {source_name}",
                lambda: _run(
                    source,
                    "delete-source",
                    "removing the source",
                    *("stack", "rm", "--yes", "--force", source_name),
                ),
            )
        except _StepFailed as failure:
            raise _StepFailed(
                "delete-source",
                f"{failure.reason}; {target_name} is migrated and verified, but {source_name} "
                f"still manages the same resources: remove it with "
                f"`pulumi stack rm --force {source_name}`",
            ) from failure
        self.report(move, "delete-source", f"removed {source_name}", landed=True)


@dataclass(frozen=True)
class _SourceState:
    version: int | None
    """The deployment schema version the source exported."""
    plaintext: dict[str, Any]
    """The deployment, as `pulumi stack export --show-secrets` gives it: secrets in plaintext."""
    encrypted: dict[str, Any]
    """The same deployment with secrets as the source's ciphertext (`pulumi stack export`)."""
    tags: dict[str, str]
    """The tags to copy: every tag but the `pulumi:` ones."""


def _read_source(source: LocalWorkspace, name: str) -> _SourceState:
    """Everything the migration needs from the source, read before anything is created."""
    try:
        exported = source.export_stack(name)
        tags = source.list_tags(name)
    except CommandError as error:
        raise _StepFailed("read", f"reading {name} failed: {_reason(error)}") from error
    except ValueError as error:
        raise _unreadable("read", error) from error
    plaintext = dict(exported.deployment or {})
    pending = plaintext.get("pending_operations") or []
    if pending:
        raise _StepFailed(
            "read",
            f"{name} has {len(pending)} pending operation(s) left by an interrupted update, "
            f"which an import would drop; run `pulumi refresh --stack {name}` and migrate again",
        )
    return _SourceState(
        version=exported.version,
        plaintext=plaintext,
        encrypted=_export(source, name, "read", "reading the source")["deployment"],
        tags={k: v for k, v in tags.items() if not k.startswith(SYSTEM_TAG_PREFIX)},
    )


def _create(target: LocalWorkspace, name: str) -> None:
    """`pulumi stack init`, refusing (and leaving alone) a stack that is there already."""
    try:
        target.create_stack(name)
    except StackAlreadyExistsError as error:
        raise _StepFailed("create", f"{name} already exists; nothing was changed") from error
    except CommandError as error:
        # The backend may have created the stack before a later part of `stack init` failed;
        # an empty stack of that name is this run's leftover (removing it without --force
        # cannot remove a stack that has resources).
        with contextlib.suppress(CommandError):
            target.remove_stack(name)
        raise _StepFailed("create", f"creating {name} failed: {_reason(error)}") from error


def _remove_leftover(target: LocalWorkspace, name: str) -> None:
    try:
        target.remove_stack(name, force=True)
    except CommandError as error:
        raise _StepFailed(
            "undo",
            f"removing the half-made {name} (left by an earlier attempt) failed: "
            f"{_reason(error)}; remove it with `pulumi stack rm --force {name}`",
        ) from error


def _import(target: LocalWorkspace, name: str, state: Mapping[str, Any]) -> None:
    """`pulumi stack import` from a file only the current user can read, inside the workspace.

    (The Automation API's `import_stack` writes its file to the system temp folder and leaves
    it there when the import fails, plaintext secrets and all.)
    """
    path = Path(target.work_dir) / "deployment.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(state, file)
        _run(
            target,
            "import",
            "importing the state",
            *("stack", "import", "--file", str(path), "--stack", name),
        )
    finally:
        path.unlink()


def _verify(
    target: LocalWorkspace,
    name: str,
    *,
    expected: Mapping[str, Any],
    source_encrypted: Mapping[str, Any],
) -> None:
    """Check the destination holds `expected` (the renamed source state), encrypted its own way."""
    # `pulumi stack` loads the state the way every update does: integrity checks, decryption.
    _run(target, "verify", "verification: loading the state", "stack", "--stack", name)
    try:
        landed = target.export_stack(name).deployment or {}
    except CommandError as error:
        raise _StepFailed(
            "verify", f"verification: exporting {name} failed: {_reason(error)}"
        ) from error
    except ValueError as error:
        raise _unreadable("verify", error) from error
    difference = _difference(_comparable(expected), _comparable(landed))
    if difference:
        raise _StepFailed("verify", f"verification: {name} {difference}")
    encrypted = _export(target, name, "verify", "verification")["deployment"]
    if _plaintext_secrets(encrypted):
        raise _StepFailed("verify", f"verification: {name} stores secrets unencrypted")
    if _ciphertexts(encrypted) & _ciphertexts(source_encrypted):
        raise _StepFailed(
            "verify", f"verification: {name} holds the source's ciphertext, not its own"
        )


def _copy_tags(target: LocalWorkspace, name: str, tags: Mapping[str, str]) -> None:
    try:
        for key, value in sorted(tags.items()):
            target.set_tag(name, key, value)
    except CommandError as error:
        raise _StepFailed("tags", f"copying the tags to {name} failed: {_reason(error)}") from error


# --- Comparing states -----------------------------------------------------------------------

_Resource = tuple[str, Any, Any]
"""(urn, inputs, outputs), secrets replaced by their decoded plaintext."""


def _comparable(deployment: Mapping[str, Any]) -> list[_Resource]:
    return [
        (
            resource.get("urn", ""),
            _revealed(resource.get("inputs") or {}),
            _revealed(resource.get("outputs") or {}),
        )
        for resource in deployment.get("resources") or []
    ]


def _difference(expected: list[_Resource], landed: list[_Resource]) -> str | None:
    """How `landed` differs from `expected`, in words; None when it does not."""
    if len(expected) != len(landed):
        return f"has {len(landed)} resources, the source {len(expected)}"
    for (urn, inputs, outputs), (landed_urn, landed_inputs, landed_outputs) in zip(
        expected, landed, strict=True
    ):
        if urn != landed_urn:
            return f"has {landed_urn} where the source has {urn}"
        if inputs != landed_inputs or outputs != landed_outputs:
            return f"holds other values for {urn} than the source"
    return None


def _revealed(value: Any) -> Any:
    """`value` with each plaintext secret replaced by ("secret", its decoded value)."""
    if isinstance(value, list):
        return [_revealed(element) for element in value]
    if not isinstance(value, dict):
        return value
    if value.get(SIG_KEY) == SECRET_SIG and isinstance(value.get("plaintext"), str):
        return ("secret", _revealed(json.loads(value["plaintext"])))
    return {key: _revealed(element) for key, element in value.items()}


def _secrets(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        for element in value:
            yield from _secrets(element)
    elif isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            yield value
        else:
            for element in value.values():
                yield from _secrets(element)


def _plaintext_secrets(deployment: Mapping[str, Any]) -> bool:
    return any("plaintext" in secret for secret in _secrets(deployment.get("resources")))


def _ciphertexts(deployment: Mapping[str, Any]) -> set[str]:
    return {
        secret["ciphertext"]
        for secret in _secrets(deployment.get("resources"))
        if isinstance(secret.get("ciphertext"), str)
    }


# --- Running the CLI ------------------------------------------------------------------------


def _export(workspace: LocalWorkspace, name: str, step: Step, doing: str) -> dict[str, Any]:
    """`pulumi stack export` with secrets encrypted (the Automation API's reveals them)."""
    stdout = _run(workspace, step, doing, "stack", "export", "--stack", name).stdout
    try:
        exported: dict[str, Any] = json.loads(stdout)
    except ValueError as error:
        raise _unreadable(step, error) from error
    return exported


def _run(workspace: LocalWorkspace, step: Step, doing: str, *args: str) -> CommandResult:
    """`pulumi ARGS`; a failure fails `step`, with the CLI's words after what it was `doing`."""
    try:
        return run_pulumi(workspace, *args)
    except CommandError as error:
        raise _StepFailed(step, f"{doing} failed: {_reason(error)}") from error


def _unreadable(step: Step, error: ValueError) -> _StepFailed:
    return _StepFailed(step, f"the pulumi CLI gave an answer that could not be read: {error}")


def _reason(error: Exception) -> str:
    """What the CLI said on stderr from its first `error:` on, on one line; never its stdout,
    which may hold state and secrets."""
    said = error.message if isinstance(error, ClaimError) else cli_error_text(error)
    return said if len(said) <= _LONGEST_REASON else said[: _LONGEST_REASON - 3] + "..."
