"""How many calls one client keeps in flight: a limit that adapts to the service.

The service rate-limits (429 with `Retry-After`) and, when it is busy, answers more slowly;
more calls in flight then only wait longer or are refused. `AdaptiveLimit` is the rule, pure
(fed answers, it gives the limit): additive increase, one more call in flight per window of
calls answered without trouble (`SMALLEST_WINDOW`), up to the ceiling (`--concurrency`);
multiplicative decrease, halving (down to 1) on a 429 and on latency rising well above the
lowest seen. `AdaptiveSlots` holds the calls in flight to that limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

logger = logging.getLogger("toolkit.cloud")

STARTING_LIMIT = 16
"""Calls in flight at first (or the ceiling, when lower): what every client kept before the
limit adapted."""
SMALLEST_WINDOW = STARTING_LIMIT
"""Calls answered before the limit grows by one: as many as the limit, and at least this many,
so that a low limit (one a rate limit forced) probes upward gently rather than every call."""
LATENCY_RISE = 2.0
"""A window of calls whose mean latency passes this many times the lowest window's means that
the service queues them: fewer in flight lose nothing and spare it."""
TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class LimitChange:
    """The limit moved from `before` to `after`, and why (for the client's log)."""

    before: int
    after: int
    reason: str


class AdaptiveLimit:
    """Additive increase, multiplicative decrease of the calls in flight, from answers.

    A call reports the `epoch` it started in: the calls already in flight when the limit fell
    answer as they were sent, so their 429s (and latencies) do not lower it again. After a
    429, the limit does not grow until the service's `Retry-After` has passed.
    """

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError("the ceiling of calls in flight must be at least 1")
        self.ceiling = ceiling
        self.limit = min(STARTING_LIMIT, ceiling)
        self.epoch = 0
        """Decreases so far."""
        self._window_calls = 0
        self._window_seconds = 0.0
        self._lowest_window: float | None = None
        self._hold_until = 0.0

    def answered(
        self, epoch: int, status: int, seconds: float, *, now: float, retry_after: float | None
    ) -> LimitChange | None:
        """A call started in `epoch` was answered with `status` after `seconds` (at `now`,
        monotonic seconds; `retry_after`, the service's Retry-After in seconds, if any)."""
        if epoch != self.epoch:
            return None
        if status == TOO_MANY_REQUESTS:
            self._hold_until = now + (retry_after or 0.0)
            return self._decrease("the service answered 429 Too Many Requests")
        self._window_calls += 1
        self._window_seconds += seconds
        if self._window_calls < max(self.limit, SMALLEST_WINDOW):
            return None
        calls = self._window_calls
        mean = self._window_seconds / calls
        lowest = self._lowest_window
        self._window_calls, self._window_seconds = 0, 0.0
        if lowest is not None and mean > LATENCY_RISE * lowest:
            self._lowest_window = mean
            return self._decrease(
                f"answers slowed to {mean * 1000:.0f} ms a call, from {lowest * 1000:.0f} ms"
            )
        self._lowest_window = mean if lowest is None else min(lowest, mean)
        if self.limit >= self.ceiling or now < self._hold_until:
            return None
        self.limit += 1
        return LimitChange(self.limit - 1, self.limit, f"{calls} calls answered in time")

    def _decrease(self, reason: str) -> LimitChange | None:
        before = self.limit
        self.limit = max(1, before // 2)
        self.epoch += 1
        self._window_calls, self._window_seconds = 0, 0.0
        return LimitChange(before, self.limit, reason) if self.limit != before else None


@dataclass
class Slot:
    """One call's place among those in flight; the call says how it was answered."""

    epoch: int
    started: float
    status: int | None = None
    retry_after: float | None = None

    def answered(self, status: int, retry_after: float | None) -> None:
        self.status, self.retry_after = status, retry_after


class AdaptiveSlots:
    """At most `limit.limit` calls in flight at once, first come first served, the limit
    following the answers; each change is one line of the client's log."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit
        self._in_flight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit.limit

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        await self._acquire()
        slot = Slot(epoch=self._limit.epoch, started=time.monotonic())
        try:
            yield slot
        finally:
            self._in_flight -= 1
            if slot.status is not None:
                now = time.monotonic()
                change = self._limit.answered(
                    slot.epoch,
                    slot.status,
                    now - slot.started,
                    now=now,
                    retry_after=slot.retry_after,
                )
                if change is not None:
                    logger.info(
                        "calls in flight at most %d (was %d): %s",
                        change.after,
                        change.before,
                        change.reason,
                    )
            self._hand_over()

    async def _acquire(self) -> None:
        if self._in_flight < self._limit.limit and not self._waiting:
            self._in_flight += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._in_flight -= 1  # handed a slot as it was cancelled: hand it on
                self._hand_over()
            elif turn in self._waiting:
                self._waiting.remove(turn)
            raise

    def _hand_over(self) -> None:
        """Give free slots to the calls waiting longest."""
        while self._waiting and self._in_flight < self._limit.limit:
            turn = self._waiting.popleft()
            if not turn.done():
                self._in_flight += 1
                turn.set_result(None)
