"""How fast one client calls the service: a limit of calls in flight and a pace of sends, both
adapting to the service.

The service rate-limits (429 with `Retry-After`) and, when it is busy, answers more slowly;
more calls then only wait longer or are refused. `AdaptiveLimit` is the rule, pure (fed
answers, it gives the limits):

- a 429 soon after another (`ANSWERS_BEFORE`) paces the sends: at most a rate a second, set
  under the rate the service answered calls at (`RATE_BACKOFF`), never above the pace
  before. Since the last 429, when a second or more ago, that rate is the service's own: its
  bucket was empty then and is empty now; else it is the calls answered in the last second;
- latency well above the lowest seen, window after window (`SLOW_WINDOWS`), halves the calls
  in flight (down to 1): one slow window is noise on a busy machine, not a queue;
- each window of calls answered without trouble (`SMALLEST_WINDOW`) adds one call in flight, up
  to the ceiling (`--concurrency`), and one call a second to the pace.

`AdaptiveSlots` holds the calls in flight to that limit and spaces their sends by that pace.
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
"""Calls answered before the limits grow by one: as many as the limit, and at least this many,
so that a low limit probes upward gently rather than every call."""
LATENCY_RISE = 2.0
"""A window of calls whose mean latency passes this many times the lowest window's is slow."""
SLOW_WINDOWS = 3
"""Slow windows in a row that mean the service queues the calls: fewer in flight lose nothing
and spare it. Fewer in a row are a busy machine's noise (a CPU-starved loopback)."""
RATE_WINDOW = 1.0
"""Seconds of answers, at least, counted to estimate the rate the service allows, on a 429."""
RATE_BACKOFF = 0.8
"""On a 429, the pace is this share of the rate the service allowed: its bucket fills again
while the pace grows back (one call a second per window, so about 32 x (1 - this) seconds),
and every token is used, as the bucket, filled to about 8 x (1 - this)^2 seconds' worth,
does not overflow."""
SLOWEST_PACE = 1.0
ANSWERS_BEFORE = SMALLEST_WINDOW
"""A 429 paces the sends only when one of this many answers just before it was a 429 too:
past a service's rate its bucket stays empty, so more calls are refused soon, while a lone
429 (a fault, another client's burst) says little of the rate; its call is retried. Pacing
on every 429 drove the pace to a few calls a second under 2 % of random 429s."""
"""Calls a second the pace never falls below."""
TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class LimitChange:
    """The limits moved (calls in flight, from `before` to `after`; the pace in calls a second,
    None when sends are not paced), and why: one line of the client's log."""

    before: int
    after: int
    reason: str
    pace_before: float | None = None
    pace_after: float | None = None

    def describe(self) -> str:
        return (
            f"calls in flight at most {self.after} (was {self.before}), "
            f"{_pace(self.pace_after)} (was {_pace(self.pace_before)}): {self.reason}"
        )


def _pace(pace: float | None) -> str:
    return "sends not paced" if pace is None else f"at most {pace:.1f} calls a second"


class AdaptiveLimit:
    """Additive increase, multiplicative decrease of the calls in flight and of the pace.

    A call reports the `epoch` it was sent in: the calls already sent when a limit fell answer
    as they were sent, so their 429s (and latencies) do not lower it again. After a 429, the
    limits do not grow until the service's `Retry-After` has passed.
    """

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError("the ceiling of calls in flight must be at least 1")
        self.ceiling = ceiling
        self.limit = min(STARTING_LIMIT, ceiling)
        self.pace: float | None = None
        """Calls sent a second at most; None: as fast as the calls in flight allow."""
        self.epoch = 0
        """Decreases so far."""
        self._window_calls = 0
        self._window_seconds = 0.0
        self._lowest_window: float | None = None
        self._slow_windows = 0
        self._hold_until = 0.0
        self._answered_at: deque[float] = deque()
        self._refused_before: deque[bool] = deque(maxlen=ANSWERS_BEFORE)
        self._paced_at: float | None = None
        self._answered_since_paced = 0
        self._next_send = 0.0

    def send_delay(self, now: float) -> float:
        """Seconds a call about to be sent at `now` waits for its turn at the pace (0 when
        sends are not paced); the turn is taken."""
        if self.pace is None:
            return 0.0
        turn = max(now, self._next_send)
        self._next_send = turn + 1 / self.pace
        return turn - now

    def answered(
        self, epoch: int, status: int, seconds: float, *, now: float, retry_after: float | None
    ) -> LimitChange | None:
        """A call sent in `epoch` was answered with `status` after `seconds` (at `now`,
        monotonic seconds; `retry_after`, the service's Retry-After in seconds, if any)."""
        refused = status == TOO_MANY_REQUESTS
        refused_again = refused and any(self._refused_before)
        self._refused_before.append(refused)
        if not refused:
            self._answered_at.append(now)
            self._answered_since_paced += 1
        while self._answered_at and self._answered_at[0] <= now - RATE_WINDOW:
            self._answered_at.popleft()
        if epoch != self.epoch:
            return None
        if refused:
            if not refused_again:
                return None
            self._hold_until = now + (retry_after or 0.0)
            return self._slow_down(now)
        self._window_calls += 1
        self._window_seconds += seconds
        if self._window_calls < max(self.limit, SMALLEST_WINDOW):
            return None
        calls = self._window_calls
        mean = self._window_seconds / calls
        lowest = self._lowest_window
        self._window_calls, self._window_seconds = 0, 0.0
        if lowest is not None and mean > LATENCY_RISE * lowest:
            self._slow_windows += 1
            if self._slow_windows >= SLOW_WINDOWS:
                return self._halve(mean, lowest)
            return None
        self._slow_windows = 0
        self._lowest_window = mean if lowest is None else min(lowest, mean)
        return self._grow(calls, now)

    def _slow_down(self, now: float) -> LimitChange:
        """A 429: pace the sends under the rate the service answered calls at."""
        answered, seconds = len(self._answered_at), RATE_WINDOW
        if self._paced_at is not None and now - self._paced_at >= RATE_WINDOW:
            answered, seconds = self._answered_since_paced, now - self._paced_at
        before = self.pace
        allowed = answered / seconds if before is None else min(before, answered / seconds)
        self.pace = max(SLOWEST_PACE, RATE_BACKOFF * allowed)
        self._next_send = now + 1 / self.pace
        self._paced_at, self._answered_since_paced = now, 0
        self._decreased()
        return LimitChange(
            self.limit,
            self.limit,
            f"the service answered 429 Too Many Requests ({answered} calls answered in the "
            f"last {seconds:.1f} s)",
            before,
            self.pace,
        )

    def _halve(self, mean: float, lowest: float) -> LimitChange | None:
        """Answers slowed window after window: the service queues; halve the calls in flight,
        and the slow pace is the new baseline."""
        before = self.limit
        self.limit = max(1, before // 2)
        self._lowest_window = mean
        self._decreased()
        if self.limit == before:
            return None
        reason = (
            f"answers slowed to {mean * 1000:.0f} ms a call, from {lowest * 1000:.0f} ms, "
            f"{SLOW_WINDOWS} windows in a row"
        )
        return LimitChange(before, self.limit, reason, self.pace, self.pace)

    def _grow(self, calls: int, now: float) -> LimitChange | None:
        if now < self._hold_until:
            return None
        before, pace_before = self.limit, self.pace
        self.limit = min(self.ceiling, before + 1)
        if pace_before is not None:
            self.pace = pace_before + 1
        if (self.limit, self.pace) == (before, pace_before):
            return None
        return LimitChange(
            before, self.limit, f"{calls} calls answered in time", pace_before, self.pace
        )

    def _decreased(self) -> None:
        self.epoch += 1
        self._window_calls, self._window_seconds, self._slow_windows = 0, 0.0, 0


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
    """At most `limit.limit` calls in flight at once, first come first served, sent no faster
    than `limit.pace`, the limits following the answers; each change is one line of the
    client's log."""

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
        slot: Slot | None = None
        try:
            await self._turn()
            slot = Slot(epoch=self._limit.epoch, started=time.monotonic())
            yield slot
        finally:
            self._in_flight -= 1
            if slot is not None and slot.status is not None:
                self._record(slot, slot.status)
            self._hand_over()

    async def _turn(self) -> None:
        """Wait for this call's turn at the pace; a turn taken at a pace since lowered is
        taken again at the new one, so no call goes out at the old pace after a 429."""
        while True:
            epoch = self._limit.epoch
            delay = self._limit.send_delay(time.monotonic())
            if delay <= 0:
                return
            await asyncio.sleep(delay)
            if self._limit.epoch == epoch:
                return

    def _record(self, slot: Slot, status: int) -> None:
        """Feed the limits the call's answer; log a change."""
        now = time.monotonic()
        change = self._limit.answered(
            slot.epoch, status, now - slot.started, now=now, retry_after=slot.retry_after
        )
        if change is not None:
            logger.info("%s", change.describe())

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
