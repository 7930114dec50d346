"""Checks and the reads they guard, started together.

At 200 ms a call, every round trip before a listing's first page is visible: a listing that
waits for the checks of the claim (who each token is, whether it sees the orgs named, what
the claim token claims) adds their round trips to the preview. So the checks and the reads
start at once, and the checks still decide: their errors come first, in the order written,
and cancel the reads already started. Only reads run ahead of the checks, never a change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from toolkit.cloud import CloudClient
from toolkit.credentials import BackendIdentity
from toolkit.models import User

CheckedT = TypeVar("CheckedT")
ReadT = TypeVar("ReadT")


async def checked_first(
    checks: Awaitable[CheckedT], reads: Awaitable[ReadT]
) -> tuple[CheckedT, ReadT]:
    """What `checks` and `reads` give, both started at once; the checks' error, when they
    fail, is raised before (and instead of) any error of the reads, which are cancelled."""
    checking, reading = asyncio.ensure_future(checks), asyncio.ensure_future(reads)
    try:
        return await checking, await reading
    finally:
        await _cancelled([checking, reading])


async def nothing() -> None:
    """A check with nothing to check (where a side has none), in `checked_first`'s place."""


class CurrentUsers:
    """Who each identity is (`GET /api/user`), asked at most once per token and service and
    shared by every check that reads it: the strategy's choice, the known-org checks and the
    source's owner. Used as `async with`: what is unfinished at the end is cancelled."""

    def __init__(self) -> None:
        self._asked: dict[tuple[str, str | None], asyncio.Task[User]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await _cancelled(list(self._asked.values()))

    async def of(self, identity: BackendIdentity) -> User:
        """The user `identity`'s token belongs to; the call is made once, whoever asks first,
        and one asker cancelled does not cancel it for the others."""
        key = (identity.service, identity.token)
        if key not in self._asked:
            self._asked[key] = asyncio.ensure_future(_current_user(identity))
        return await asyncio.shield(self._asked[key])


async def _current_user(identity: BackendIdentity) -> User:
    async with CloudClient.for_identity(identity) as client:
        return await client.get_current_user()


async def _cancelled(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel what is unfinished of `tasks` and wait for it to stop; the errors of those that
    failed count as seen (the caller raised the one that counts)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
