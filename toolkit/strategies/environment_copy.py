"""Copying ESC environments into the destination org (`--environments copy`).

No endpoint moves an environment between orgs, so each one is recreated: its definition is
read decrypted from the source (in memory only), its `imports:` are pointed at the copies'
names and its stack reads at the moved stacks' names, and it is written to a new environment
in the destination, whose service encrypts the secrets with the new environment's own key. The
environment tags follow. A copy counts once both sides decrypt to the same definition (modulo
the rewritten names) and none of the source's ciphertext is in the destination.

What a definition is, and the order imports impose, is pure and apart
(`toolkit.esc_definitions`); this module makes the calls, journal-recorded like the other
strategies', so a re-run finishes what a failure or a stop left.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.entities import entity_key, qualified_name
from toolkit.errors import ClaimError, NotFoundError
from toolkit.esc_definitions import (
    EnvironmentName,
    ciphertexts,
    definition_difference,
    environment_name,
    import_order,
    import_waves,
    imports_of,
    parse_definition,
    plaintext_secrets,
    rewrite_imports,
    rewrite_stack_reads,
)
from toolkit.journal import Journal
from toolkit.moves import EnvironmentCopy
from toolkit.progress import MoveFailure, MoveTally, ProgressCallback, Step, no_progress
from toolkit.strategies import CallOutcome, FailedMoves, RecordedCalls, StepHistory, StopSignal
from toolkit.strategies._environment_writes import (
    create_environment,
    remove_environment,
    write_definition,
)

if TYPE_CHECKING:
    from toolkit.cloud import CloudClient
    from toolkit.models import EnvironmentDefinition


async def unreadable(
    client: CloudClient, org: str, copies: Sequence[EnvironmentCopy]
) -> tuple[EnvironmentCopy, ClaimError] | None:
    """The first of the copies' sources that `client` cannot read decrypted, and why; None
    when it reads them all. The plaintext read is dropped at once."""

    async def refusal(copy: EnvironmentCopy) -> ClaimError | None:
        try:
            await client.get_environment_decrypted(org, *environment_name(copy.source))
        except ClaimError as error:
            return error
        return None

    refusals = await asyncio.gather(*(refusal(copy) for copy in copies))
    return next(
        ((copy, error) for copy, error in zip(copies, refusals, strict=True) if error), None
    )


async def copy_environments(
    copies: Sequence[EnvironmentCopy],
    source: CloudClient,
    destination: CloudClient,
    *,
    source_org: str,
    destination_org: str,
    delete_source: bool,
    journal: Journal,
    stop: StopSignal,
    stack_reads: Mapping[str, str],
    on_progress: ProgressCallback = no_progress,
    limit: int = 8,
) -> FailedMoves:
    """Copy each environment of `copies` from `source_org` to `destination_org`; return those
    that did not land (source key -> why).

    Each copy's imports name the copies, and its stack reads (`fn::open::pulumi-stacks`)
    name the stacks as `stack_reads` renames them (`project/stack` -> `project/stack`), since
    a copy reads the stacks of the destination org (`toolkit.references.stack_read_renames`).
    Imports first: an environment is copied once those it imports have landed, and not at all
    when one of them failed. A copy the journal shows verified is not made again; a copy the
    journal shows begun by this run is removed and made again; a destination environment of
    that name made by anyone else is left alone, and the copy refused. A failed step removes
    the environment it created; the source is never changed, except by `delete_source`, which
    removes the sources once every copy is verified, those that import others first.
    """
    copier = _Copier(
        source=source,
        destination=destination,
        source_org=source_org,
        destination_org=destination_org,
        delete_source=delete_source,
        calls=RecordedCalls(journal, stop, limit),
        tally=MoveTally(len(copies), on_progress, "environments"),
        history=StepHistory(journal),
        renames={environment_name(copy.source): environment_name(copy.target) for copy in copies},
        stack_reads=stack_reads,
    )
    return await copier.run(copies)


class _CopyFailed(Exception):
    """One environment's copy stopped; `failure` is what the report says."""

    def __init__(self, failure: MoveFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class _Source:
    """What the copy needs of one source environment, read before anything is made."""

    definition: dict[str, Any]
    """Decrypted: plaintext secrets, in memory only."""
    ciphertexts: set[str]
    tags: dict[str, str]
    revision: str
    """The revision read (`_revision`): what the source's removal checks it still is."""


@dataclass
class _Copier:
    """The copies of one run: the two orgs' clients, the run's journal, the counts."""

    source: CloudClient
    destination: CloudClient
    source_org: str
    destination_org: str
    delete_source: bool
    calls: RecordedCalls
    tally: MoveTally
    history: StepHistory
    renames: dict[EnvironmentName, EnvironmentName]
    stack_reads: Mapping[str, str]
    failed: FailedMoves = field(default_factory=dict)
    failed_names: set[EnvironmentName] = field(default_factory=set)

    async def run(self, copies: Sequence[EnvironmentCopy]) -> FailedMoves:
        by_name = {environment_name(copy.source): copy for copy in copies}
        verified = [copy for copy in copies if self.history.done(copy.journal_name, "verify")]
        for copy in verified:
            if not self.delete_source:
                self._landed(copy, f"{self._target(copy)} was copied earlier")
        pending = [copy for copy in copies if copy not in verified]
        # The sources still to remove are read too: their imports order the removals (one
        # already gone has none).
        to_remove = [
            copy
            for copy in verified
            if self.delete_source and not self.history.done(copy.journal_name, "delete-source")
        ]
        to_read = [*pending, *to_remove]
        sources: dict[EnvironmentName, _Source] = {}
        for copy, read in zip(
            to_read, await asyncio.gather(*(self._read(copy) for copy in to_read)), strict=True
        ):
            if isinstance(read, _Source):
                sources[environment_name(copy.source)] = read
            elif read is not None:
                self._fail(copy, read)
            elif copy not in to_remove:
                self._fail(copy, MoveFailure("read", f"{self._source(copy)} is not there"))
        graph = {
            name: [ref.environment for ref in imports_of(source.definition)]
            for name, source in sources.items()
        }
        order, stuck = import_order(graph)
        waiting = {environment_name(copy.source) for copy in pending}
        for name in stuck:
            self._fail(
                by_name[name],
                MoveFailure(
                    "read",
                    "its imports form a cycle (it imports itself through the environments it "
                    "imports), or it imports one that does; fix them in the source org and run "
                    "again",
                ),
            )
        for every in import_waves(order, graph):
            wave = [name for name in every if name in waiting]
            failures = await asyncio.gather(
                *(self._copy(by_name[name], sources[name], graph[name]) for name in wave)
            )
            for name, failure in zip(wave, failures, strict=True):
                if failure is None:
                    verified.append(by_name[name])
                else:
                    self._fail(by_name[name], failure)
        if self.delete_source:
            await self._delete_sources(verified, order, graph)
        return self.failed

    async def _read(self, copy: EnvironmentCopy) -> _Source | MoveFailure | None:
        """The source of `copy` as the copy needs it; None when there is no such source."""
        project, name = environment_name(copy.source)
        try:
            decrypted, stored, tags = await asyncio.gather(
                self.source.get_environment_decrypted(self.source_org, project, name),
                self.source.get_environment(self.source_org, project, name),
                self.source.list_environment_tags(self.source_org, project, name),
            )
            definition = parse_definition(decrypted)
            imports_of(definition)
            stored_texts = ciphertexts(parse_definition(stored.yaml))
            return _Source(definition, stored_texts, tags, _revision(stored))
        except NotFoundError:
            return None
        except ClaimError as error:
            return MoveFailure("read", f"reading {self._source(copy)} failed: {error.message}")

    async def _copy(
        self, copy: EnvironmentCopy, source: _Source, imports: Sequence[EnvironmentName]
    ) -> MoveFailure | None:
        """Copy one environment; None when it landed verified, else why not."""
        for imported in imports:
            if imported in self.failed_names:
                label = f"{self.source_org}/{imported[0]}/{imported[1]}"
                return MoveFailure("create", f"not copied: it imports {label}, whose copy failed")
        if self.calls.stop.requested:
            return MoveFailure.interrupted("create")
        target = self._target(copy)
        self.tally.started(self._source(copy), target)
        project, name = environment_name(copy.target)
        org = self.destination_org
        expected = self._as_copied(source.definition)
        self.calls.journal.record_revision(copy.journal_name, "source", source.revision)
        try:
            if await self.destination.environment_exists(org, project, name):
                if not self.history.began(copy.journal_name, "create"):
                    return MoveFailure("create", f"{target} already exists; nothing was changed")
                if not await self._still_as_made(copy, expected):
                    return MoveFailure(
                        "undo",
                        f"{target}, left by an earlier attempt, has changed since (it is "
                        "neither empty nor the definition this run writes), so it is left as "
                        f"it is: remove it with `esc env rm {target}` if it is not needed, and "
                        "run again",
                    )
                await self._step(
                    copy,
                    "undo",
                    f"remove the half-made {target}",
                    lambda: remove_environment(self.destination, org, project, name),
                )
                self.tally.step(
                    self._source(copy), target, "undo", f"removed the half-made {target}"
                )
            await self._step(
                copy,
                "create",
                f"create {target}",
                lambda: create_environment(self.destination, org, project, name),
            )
        except _CopyFailed as stopped:
            return stopped.failure
        except ClaimError as error:
            return MoveFailure("create", f"looking for {target} failed: {error.message}")
        self.tally.step(self._source(copy), target, "create", f"created {target}")
        try:
            await self._step(
                copy,
                "write",
                f"write the definition of {target}",
                lambda: write_definition(self.destination, org, project, name, expected),
            )
            await self._step(
                copy,
                "tags",
                f"copy {len(source.tags)} tag(s) to {target}",
                lambda: self._set_tags(copy, source.tags),
            )
            await self._step(
                copy, "verify", f"verify {target}", lambda: self._verify(copy, expected, source)
            )
        except _CopyFailed as stopped:
            if stopped.failure.outcome == "interrupted":
                return stopped.failure
            return await self._undo(copy, stopped.failure)
        summary = f"copied {self._source(copy)} -> {target} (verified)"
        if self.delete_source:
            self.tally.step(self._source(copy), target, "verify", summary)
        else:
            self._landed(copy, summary)
        return None

    async def _step(
        self,
        copy: EnvironmentCopy,
        action: Step,
        detail: str,
        call: Callable[[], Awaitable[object]],
    ) -> None:
        """`call`, recorded in the journal; a failure or a stop raises `_CopyFailed`."""

        async def made() -> CallOutcome:
            try:
                await call()
            except _VerificationFailed as error:
                return CallOutcome("failed", str(error))
            except ClaimError as error:
                return CallOutcome("failed", error.message)
            return CallOutcome("done")

        outcome = await self.calls.make(copy.journal_name, action, detail, made)
        if outcome is None:
            raise _CopyFailed(MoveFailure.interrupted(action))
        if not outcome.done:
            raise _CopyFailed(MoveFailure(action, f"{detail}: {outcome.message}"))

    async def _set_tags(self, copy: EnvironmentCopy, tags: Mapping[str, str]) -> None:
        project, name = environment_name(copy.target)
        await asyncio.gather(
            *(
                self.destination.set_environment_tag(
                    self.destination_org, project, name, key, value
                )
                for key, value in sorted(tags.items())
            )
        )

    async def _verify(
        self, copy: EnvironmentCopy, expected: Mapping[str, Any], source: _Source
    ) -> None:
        """Both sides decrypt to the same definition, the destination's secrets are its own
        ciphertext, and the tags are there."""
        project, name = environment_name(copy.target)
        org = self.destination_org
        decrypted, definition, tags = await asyncio.gather(
            self.destination.get_environment_decrypted(org, project, name),
            self.destination.get_environment(org, project, name),
            self.destination.list_environment_tags(org, project, name),
        )
        if difference := definition_difference(expected, parse_definition(decrypted)):
            raise _VerificationFailed(f"{difference} than the source")
        stored = parse_definition(definition.yaml)
        if plaintext_secrets(stored):
            raise _VerificationFailed("it stores secrets unencrypted")
        if ciphertexts(stored) & source.ciphertexts:
            raise _VerificationFailed("it holds the source's ciphertext, not its own")
        missing = sorted(key for key, value in source.tags.items() if tags.get(key) != value)
        if missing:
            raise _VerificationFailed(f"its tags {', '.join(missing)} are not the source's")
        self.calls.journal.record_revision(copy.journal_name, "copy", _revision(definition))

    async def _still_as_made(self, copy: EnvironmentCopy, expected: Mapping[str, Any]) -> bool:
        """Whether an earlier attempt's unverified copy is still what this run made of it:
        empty as created, or holding the definition this run writes."""
        project, name = environment_name(copy.target)
        decrypted = await self.destination.get_environment_decrypted(
            self.destination_org, project, name
        )
        landed = parse_definition(decrypted)
        return not landed or definition_difference(expected, landed) is None

    async def _undo(self, copy: EnvironmentCopy, failure: MoveFailure) -> MoveFailure:
        """Remove the environment this copy created; say so in the failure if that fails."""
        target = self._target(copy)
        project, name = environment_name(copy.target)
        try:
            await self._step(
                copy,
                "undo",
                f"remove the half-made {target}",
                lambda: remove_environment(self.destination, self.destination_org, project, name),
            )
        except _CopyFailed as undo:
            return MoveFailure(
                "undo",
                f"{failure.message}; removing the half-made {target} also failed "
                f"({undo.failure.message}): remove it with `esc env rm {target}`",
            )
        self.tally.step(self._source(copy), target, "undo", f"removed the half-made {target}")
        return failure

    async def _delete_sources(
        self,
        verified: Sequence[EnvironmentCopy],
        order: Sequence[EnvironmentName],
        imports: Mapping[EnvironmentName, Sequence[EnvironmentName]],
    ) -> None:
        """Remove the sources, those that import others first, once every copy is verified.
        A source that changed since it was copied stays, and so does every source it imports."""
        if self.failed:
            for copy in verified:
                if entity_key(copy.source) in self.failed:
                    continue
                self._landed(
                    copy,
                    f"copied {self._source(copy)} -> {self._target(copy)} (verified); the "
                    "source stays until every environment is copied",
                )
            return
        position = {name: index for index, name in enumerate(order)}
        kept: set[EnvironmentName] = set()
        for copy in sorted(verified, key=lambda c: -position.get(environment_name(c.source), -1)):
            source, name = self._source(copy), environment_name(copy.source)
            if self.history.done(copy.journal_name, "delete-source"):
                self._landed(copy, f"{source} was removed earlier")
                continue
            importers = sorted(
                f"{self.source_org}/{p}/{n}" for p, n in kept if name in imports.get((p, n), ())
            )
            try:
                if importers:
                    raise _CopyFailed(
                        MoveFailure(
                            "delete-source",
                            f"{self._target(copy)} is copied and verified; {source} stays, "
                            f"since {', '.join(importers)}, which stays, imports it",
                        )
                    )
                self._landed(copy, await self._let_go_of_source(copy))
            except _CopyFailed as stopped:
                kept.add(name)
                self._fail(copy, stopped.failure)

    async def _let_go_of_source(self, copy: EnvironmentCopy) -> str:
        """Remove the source of a verified copy while it is still the revision this run
        copied; a summary of what was done. A source changed since is left in place, and the
        run says so; the next run brings the change into the copy (while that copy is still
        exactly what this run wrote), then removes the source."""
        source, target = self._source(copy), self._target(copy)
        project, name = environment_name(copy.source)
        journal = self.calls.journal
        for looked in range(2):
            try:
                now = await self.source.get_environment(self.source_org, project, name)
            except NotFoundError:
                return f"{source} was removed earlier"
            except ClaimError as error:
                raise _CopyFailed(
                    MoveFailure(
                        "delete-source",
                        f"looking up {source} failed: {error.message}; {target} is copied and "
                        f"verified: run the same command again to remove {source}",
                    )
                ) from error
            if _revision(now) == journal.revision(copy.journal_name, "source"):
                break
            if looked or not self.history.done(copy.journal_name, "verify"):
                raise _CopyFailed(
                    MoveFailure(
                        "delete-source",
                        f"{source} changed after it was copied to {target}, so it was left in "
                        f"place and {target} holds the definition as copied; run the same "
                        f"command again to bring the change over, then remove {source}",
                    )
                )
            await self._bring_over(copy)
        try:
            await self._step(
                copy,
                "delete-source",
                f"remove {source}",
                functools.partial(self._delete_source, project, name),
            )
        except _CopyFailed as stopped:
            if stopped.failure.outcome == "interrupted":
                raise
            raise _CopyFailed(
                MoveFailure(
                    "delete-source",
                    f"{stopped.failure.message}; {target} is copied and verified: run the same "
                    f"command again to remove {source}",
                )
            ) from stopped
        return f"removed {source}"

    async def _bring_over(self, copy: EnvironmentCopy) -> None:
        """Write the source's new definition and tags into this run's verified copy, if the
        copy is still the revision this run verified (the write names it in `If-Match`)."""
        source, target = self._source(copy), self._target(copy)
        project, name = environment_name(copy.target)
        org = self.destination_org
        try:
            landed = await self.destination.get_environment(org, project, name)
        except ClaimError as error:
            raise _CopyFailed(
                MoveFailure("delete-source", f"looking up {target} failed: {error.message}")
            ) from error
        if _revision(landed) != self.calls.journal.revision(copy.journal_name, "copy"):
            raise _CopyFailed(
                MoveFailure(
                    "delete-source",
                    f"both {source} and {target} changed since this run copied the one into "
                    "the other: both are left as they are; compare them, keep the one to use "
                    f"and remove the other with `esc env rm`",
                )
            )
        read = await self._read(copy)
        if read is None:
            return  # Removed meanwhile: nothing left to bring over or to remove.
        if isinstance(read, MoveFailure):
            raise _CopyFailed(read)
        self.calls.journal.record_revision(copy.journal_name, "source", read.revision)
        expected = self._as_copied(read.definition)
        await self._step(
            copy,
            "write",
            f"write the changes of {source} into {target}",
            lambda: write_definition(self.destination, org, project, name, expected, over=landed),
        )
        await self._step(
            copy,
            "tags",
            f"copy {len(read.tags)} tag(s) to {target}",
            lambda: self._set_tags(copy, read.tags),
        )
        await self._step(
            copy, "verify", f"verify {target}", lambda: self._verify(copy, expected, read)
        )
        self.tally.step(source, target, "verify", f"brought the changes of {source} into {target}")

    async def _delete_source(self, project: str, name: str) -> None:
        try:
            await self.source.delete_environment(self.source_org, project, name)
        except NotFoundError:
            return  # removed by an earlier attempt whose answer was lost

    def _as_copied(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """`definition` as its copy holds it: imports and stack reads at the new names."""
        return rewrite_stack_reads(rewrite_imports(definition, self.renames), self.stack_reads)

    def _source(self, copy: EnvironmentCopy) -> str:
        return qualified_name(self.source_org, copy.source)

    def _target(self, copy: EnvironmentCopy) -> str:
        return qualified_name(self.destination_org, copy.target)

    def _landed(self, copy: EnvironmentCopy, summary: str) -> None:
        self.tally.finished(self._source(copy), self._target(copy), "verify", summary)

    def _fail(self, copy: EnvironmentCopy, failure: MoveFailure) -> None:
        self.failed[entity_key(copy.source)] = failure
        self.failed_names.add(environment_name(copy.source))
        self.tally.failed(self._source(copy), self._target(copy), failure)


class _VerificationFailed(Exception):
    """The copy is not what the source is: the words say how, never with a value."""


def _revision(definition: EnvironmentDefinition) -> str:
    """Which environment, at which revision: its ETag (the service's names both), else the
    revision number."""
    return definition.etag or f"revision {definition.revision}"
