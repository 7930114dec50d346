"""The client's adaptive limit of calls in flight: fed answers, it gives the limit (additive
increase, halving on a 429 and on rising latency, never past the ceiling), and the slots hold
the calls in flight to it."""

from __future__ import annotations

import asyncio

import pytest

from toolkit.cloud.concurrency import AdaptiveLimit, AdaptiveSlots, LimitChange

FAST = 0.02


def answer_window(limit: AdaptiveLimit, seconds: float = FAST, now: float = 0.0) -> list[object]:
    """One window of calls answered 200 in `seconds` each: as many calls as the limit, and at
    least 16."""
    return [
        limit.answered(limit.epoch, 200, seconds, now=now, retry_after=None)
        for _ in range(max(limit.limit, 16))
    ]


def test_it_starts_at_16_or_the_lower_ceiling() -> None:
    assert AdaptiveLimit(64).limit == 16
    assert AdaptiveLimit(3).limit == 3
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveLimit(0)


def test_one_more_call_in_flight_per_window_answered_up_to_the_ceiling() -> None:
    limit = AdaptiveLimit(18)
    first = answer_window(limit)
    assert first[:-1] == [None] * 15
    assert first[-1] == LimitChange(16, 17, "16 calls answered in time")
    assert answer_window(limit)[-1] == LimitChange(17, 18, "17 calls answered in time")
    assert answer_window(limit) == [None] * 18
    assert limit.limit == 18


def test_a_429_halves_it_once_for_the_calls_in_flight_then_it_grows_again() -> None:
    limit = AdaptiveLimit(16)
    sent_together = limit.epoch
    first = limit.answered(sent_together, 429, FAST, now=0.0, retry_after=None)
    assert first == LimitChange(16, 8, "the service answered 429 Too Many Requests")
    # The other calls sent with it answer as they were sent: no second halving.
    assert [limit.answered(sent_together, 429, FAST, now=0.0, retry_after=None)] * 3 == [None] * 3
    assert limit.answered(limit.epoch, 429, FAST, now=0.0, retry_after=None) == LimitChange(
        8, 4, "the service answered 429 Too Many Requests"
    )
    assert answer_window(limit)[-1] == LimitChange(4, 5, "16 calls answered in time")


def test_it_never_falls_below_one() -> None:
    limit = AdaptiveLimit(2)
    assert limit.answered(limit.epoch, 429, FAST, now=0.0, retry_after=None) == LimitChange(
        2, 1, "the service answered 429 Too Many Requests"
    )
    assert limit.answered(limit.epoch, 429, FAST, now=0.0, retry_after=None) is None
    assert limit.limit == 1


def test_it_does_not_grow_before_the_services_retry_after_has_passed() -> None:
    limit = AdaptiveLimit(16)
    limit.answered(limit.epoch, 429, FAST, now=10.0, retry_after=1.0)
    assert answer_window(limit, now=10.5) == [None] * 16
    assert answer_window(limit, now=11.0)[-1] == LimitChange(8, 9, "16 calls answered in time")


def test_rising_latency_halves_it_and_becomes_the_new_baseline() -> None:
    limit = AdaptiveLimit(64)
    answer_window(limit, seconds=0.02)  # 16 -> 17, the lowest window: 20 ms
    assert answer_window(limit, seconds=0.04)[-1] == LimitChange(
        17, 18, "17 calls answered in time"
    )
    slowed = answer_window(limit, seconds=0.05)
    assert slowed[-1] == LimitChange(18, 9, "answers slowed to 50 ms a call, from 20 ms")
    # 50 ms is the service's pace now: the limit grows again from there.
    assert answer_window(limit, seconds=0.05)[-1] == LimitChange(9, 10, "16 calls answered in time")


def test_other_answers_count_as_answered_in_time() -> None:
    limit = AdaptiveLimit(17)
    for status in (404, 409, 500) * 5 + (200,):
        limit.answered(limit.epoch, status, FAST, now=0.0, retry_after=None)
    assert limit.limit == 17


def test_the_slots_hold_the_calls_in_flight_to_the_limit_as_it_falls() -> None:
    slots = AdaptiveSlots(AdaptiveLimit(4))
    in_flight = 0
    peaks: list[int] = []

    async def call(status: int) -> None:
        nonlocal in_flight
        async with slots.slot() as slot:
            in_flight += 1
            peaks.append(in_flight)
            await asyncio.sleep(0)
            slot.answered(status, None)
            in_flight -= 1

    async def scenario() -> None:
        await asyncio.gather(*(call(200) for _ in range(8)))
        assert max(peaks) == 4
        peaks.clear()
        await asyncio.gather(*(call(429) for _ in range(4)))  # sent together: 4 -> 2
        assert (max(peaks), slots.limit) == (4, 2)
        peaks.clear()
        await asyncio.gather(*(call(200) for _ in range(16)))
        assert (max(peaks), slots.limit) == (2, 3)

    asyncio.run(scenario())


def test_a_call_cancelled_while_waiting_for_a_slot_gives_nothing_away() -> None:
    slots = AdaptiveSlots(AdaptiveLimit(1))

    async def scenario() -> None:
        async with slots.slot():
            waiting = asyncio.create_task(slots.slot().__aenter__())
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        async with slots.slot():  # the one slot is free again
            pass

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
