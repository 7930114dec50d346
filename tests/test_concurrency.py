"""The client's adaptive limits: fed answers, it gives the calls in flight (additive increase,
halving when latency stays risen, never past the ceiling) and the pace of sends (set on a 429
just under the calls the service answered, growing while calls are answered); the slots hold
the calls in flight to the one and space their sends by the other."""

from __future__ import annotations

import asyncio
import time

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


def test_a_lone_429_paces_nothing_its_call_is_retried() -> None:
    limit = AdaptiveLimit(16)
    assert limit.answered(limit.epoch, 429, FAST, now=0.0, retry_after=1.0) is None
    for _ in range(16):  # 16 answers on, a 429 is alone again
        limit.answered(limit.epoch, 200, FAST, now=0.5, retry_after=None)
    assert limit.answered(limit.epoch, 429, FAST, now=0.5, retry_after=1.0) is None
    assert (limit.pace, limit.send_delay(0.5)) == (None, 0.0)


def test_a_429_after_another_paces_the_sends_under_the_calls_answered_in_the_last_second() -> None:
    limit = AdaptiveLimit(16)
    assert limit.send_delay(0.0) == 0.0  # not paced before a 429
    for call in range(60):  # 60 calls answered in the second before the 429s
        limit.answered(limit.epoch, 200, FAST, now=call / 60, retry_after=None)
    sent_together = limit.epoch
    assert limit.answered(sent_together, 429, FAST, now=1.0, retry_after=None) is None
    first = limit.answered(sent_together, 429, FAST, now=1.0, retry_after=None)
    assert first == LimitChange(
        16,
        16,
        "the service answered 429 Too Many Requests (59 calls answered in the last 1.0 s)",
        None,
        0.8 * 59,
    )
    assert first.describe() == (
        "calls in flight at most 16 (was 16), at most 47.2 calls a second (was sends not "
        "paced): the service answered 429 Too Many Requests (59 calls answered in the last "
        "1.0 s)"
    )
    # The calls sent with it answer as they were sent: no second decrease.
    assert [limit.answered(sent_together, 429, FAST, now=1.0, retry_after=None)] * 3 == [None] * 3
    assert limit.pace == pytest.approx(47.2)
    # The sends are spaced by the pace: the first a turn after the 429, then one a turn.
    delays = [limit.send_delay(1.0) for _ in range(3)]
    assert delays == pytest.approx([1 / 47.2, 2 / 47.2, 3 / 47.2])


def test_a_429_paces_from_the_calls_answered_in_the_last_second_never_above_the_pace() -> None:
    limit = AdaptiveLimit(16)
    for call in range(40):  # one every 25 ms, over the second before the 429
        limit.answered(limit.epoch, 200, FAST, now=call * 0.025, retry_after=None)
    limit.answered(limit.epoch, 429, FAST, now=1.0, retry_after=None)  # alone: paces nothing
    first = limit.answered(limit.epoch, 429, FAST, now=1.0, retry_after=None)
    assert first is not None and first.pace_after == pytest.approx(0.8 * 39)
    # Half a second on, 19 of them were answered in the last second: the pace follows them.
    second = limit.answered(limit.epoch, 429, FAST, now=1.5, retry_after=None)
    assert second is not None
    assert (second.pace_before, second.pace_after) == (first.pace_after, pytest.approx(0.8 * 19))
    # Calls sent before it answer in a crowd: the pace falls from itself, not up to them.
    for _ in range(100):
        limit.answered(0, 200, FAST, now=1.6, retry_after=None)
    limit.answered(0, 429, FAST, now=1.7, retry_after=None)
    third = limit.answered(limit.epoch, 429, FAST, now=1.7, retry_after=None)
    assert third is not None and third.pace_after == pytest.approx(0.8 * 0.8 * 19)


def test_a_429_a_second_or_more_after_the_last_paces_by_the_calls_answered_since() -> None:
    limit = AdaptiveLimit(16)
    for _ in range(100):
        limit.answered(limit.epoch, 200, FAST, now=0.5, retry_after=None)
    limit.answered(limit.epoch, 429, FAST, now=1.0, retry_after=None)
    limit.answered(limit.epoch, 429, FAST, now=1.0, retry_after=None)  # paced at 80 a second
    for call in range(60):  # the service's bucket, empty at the last 429, allowed 60 since
        limit.answered(0, 200, FAST, now=1.0 + call * 0.015, retry_after=None)
    limit.answered(0, 429, FAST, now=3.0, retry_after=None)
    # None of them in the last second, but 60 in the 2 s since the service's bucket was empty.
    change = limit.answered(limit.epoch, 429, FAST, now=3.0, retry_after=None)
    assert change is not None
    assert change.reason == (
        "the service answered 429 Too Many Requests (60 calls answered in the last 2.0 s)"
    )
    assert (change.pace_before, change.pace_after) == (pytest.approx(80.0), pytest.approx(24.0))


def test_the_pace_grows_by_one_call_a_second_per_window_answered_in_time() -> None:
    limit = AdaptiveLimit(16)
    limit.answered(limit.epoch, 429, FAST, now=0.0, retry_after=None)
    limit.pace = 45.0
    grown = answer_window(limit, now=5.0)
    assert grown[-1] == LimitChange(16, 16, "16 calls answered in time", 45.0, 46.0)
    assert grown[-1].describe() == (
        "calls in flight at most 16 (was 16), at most 46.0 calls a second (was at most 45.0 "
        "calls a second): 16 calls answered in time"
    )


def test_it_does_not_grow_before_the_services_retry_after_has_passed() -> None:
    limit = AdaptiveLimit(17)
    limit.answered(limit.epoch, 429, FAST, now=10.0, retry_after=1.0)
    limit.answered(limit.epoch, 429, FAST, now=10.0, retry_after=1.0)
    assert answer_window(limit, now=10.5) == [None] * 16
    assert answer_window(limit, now=11.0)[-1] == LimitChange(
        16, 17, "16 calls answered in time", 1.0, 2.0
    )


def test_the_pace_falls_no_lower_than_one_call_a_second() -> None:
    limit = AdaptiveLimit(16)
    for second in range(3):
        limit.answered(limit.epoch, 429, FAST, now=float(second), retry_after=None)
    assert limit.pace == 1.0
    assert limit.limit == 16


def test_latency_risen_three_windows_in_a_row_halves_it_and_becomes_the_new_baseline() -> None:
    limit = AdaptiveLimit(64)
    answer_window(limit, seconds=0.02)  # 16 -> 17, the lowest window: 20 ms
    assert answer_window(limit, seconds=0.04)[-1] == LimitChange(
        17, 18, "17 calls answered in time"
    )
    assert answer_window(limit, seconds=0.05) == [None] * 18
    assert answer_window(limit, seconds=0.05) == [None] * 18
    slowed = answer_window(limit, seconds=0.05)
    assert slowed[-1] == LimitChange(
        18, 9, "answers slowed to 50 ms a call, from 20 ms, 3 windows in a row"
    )
    # 50 ms is the service's pace now: the limit grows again from there.
    assert answer_window(limit, seconds=0.05)[-1] == LimitChange(9, 10, "16 calls answered in time")


def test_slow_windows_not_in_a_row_are_noise() -> None:
    limit = AdaptiveLimit(17)
    answer_window(limit, seconds=0.02)  # 16 -> 17, the lowest window: 20 ms
    for _ in range(4):
        assert answer_window(limit, seconds=0.05) == [None] * 17
        assert answer_window(limit, seconds=0.05) == [None] * 17
        assert answer_window(limit, seconds=0.02) == [None] * 17
    assert limit.limit == 17


def test_other_answers_count_as_answered_in_time() -> None:
    limit = AdaptiveLimit(17)
    for status in (404, 409, 500) * 5 + (200,):
        limit.answered(limit.epoch, status, FAST, now=0.0, retry_after=None)
    assert limit.limit == 17


def test_the_slots_hold_the_calls_in_flight_to_the_limit_and_space_them_by_the_pace() -> None:
    limit = AdaptiveLimit(4)
    slots = AdaptiveSlots(limit)
    in_flight = 0
    peaks: list[int] = []
    sent_at: list[float] = []

    async def call(status: int) -> None:
        nonlocal in_flight
        async with slots.slot() as slot:
            in_flight += 1
            peaks.append(in_flight)
            sent_at.append(time.monotonic())
            await asyncio.sleep(0)
            slot.answered(status, None)
            in_flight -= 1

    async def scenario() -> None:
        await asyncio.gather(*(call(200) for _ in range(8)))
        assert max(peaks) == 4
        paced_from = time.monotonic()  # before the 429 that sets the pace and its first turn
        await asyncio.gather(*(call(429) for _ in range(4)))  # sent together: paced once
        assert (limit.epoch, limit.limit, limit.pace) == (1, 4, pytest.approx(0.8 * 8))
        sent_at.clear()
        await asyncio.gather(*(call(200) for _ in range(3)))
        # Each call waited at least its turn at the pace (the loop wakes a sleeper up to one
        # tick of its clock early); a busy machine only makes them later.
        tick = time.get_clock_info("monotonic").resolution
        assert all(
            at - paced_from >= turn / limit.pace - tick for turn, at in enumerate(sent_at, 1)
        )

    asyncio.run(scenario())


def test_calls_waiting_for_their_turn_when_the_pace_falls_take_it_again_at_the_new_pace() -> None:
    limit = AdaptiveLimit(4)
    long_ago = time.monotonic() - 5
    for _ in range(100):
        limit.answered(limit.epoch, 200, FAST, now=long_ago, retry_after=None)
    limit.answered(limit.epoch, 429, FAST, now=long_ago, retry_after=None)
    limit.answered(limit.epoch, 429, FAST, now=long_ago, retry_after=None)  # 80 a second
    slots = AdaptiveSlots(limit)
    sent_at: list[float] = []

    async def call(status: int) -> None:
        async with slots.slot() as slot:
            sent_at.append(time.monotonic())
            await asyncio.sleep(0)
            slot.answered(status, None)

    async def scenario() -> None:
        # The first is refused right after the last 429s, nothing answered since: one call a
        # second.
        await asyncio.gather(call(429), call(200), call(200))
        assert limit.pace == 1.0
        tick = time.get_clock_info("monotonic").resolution
        first, *others = sent_at
        assert all(at - first >= turn - tick for turn, at in enumerate(others, 1))

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
