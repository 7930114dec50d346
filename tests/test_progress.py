"""Progress events: the counts every event carries as moves land, fail and fail again."""

from __future__ import annotations

from toolkit.progress import MoveFailed, MoveFailure, MoveTally, ProgressEvent


def test_the_counts_follow_moves_that_land_fail_and_fail_again() -> None:
    events: list[ProgressEvent] = []
    tally = MoveTally(3, events.append)
    verify = MoveFailure("verify", "verification: web/a is not in acme", source_untouched=False)

    tally.started("agent/web/a", "acme/web/a")
    tally.finished("agent/web/a", "acme/web/a", "transfer", "transferred web/a to acme")
    tally.finished("agent/web/b", "acme/web/b", "transfer", "transferred web/b to acme")
    tally.failed("agent/web/c", "acme/web/c", MoveFailure("transfer", "refused"))
    tally.failed("agent/web/c", "acme/web/c", MoveFailure("undo", "refused; undo too", False))
    tally.failed("agent/web/a", "acme/web/a", verify)

    counts = [(event.done, event.failed, event.total, event.settled) for event in events]
    assert counts == [
        (0, 0, 3, 0),
        (1, 0, 3, 1),
        (2, 0, 3, 2),
        (2, 1, 3, 3),
        (2, 1, 3, 3),
        (1, 2, 3, 3),
    ]
    assert events[-1] == MoveFailed(
        source="agent/web/a", target="acme/web/a", failure=verify, done=1, failed=2, total=3
    )
