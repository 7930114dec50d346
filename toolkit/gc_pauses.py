"""Fewer garbage-collector pauses while a plan is read and built.

A preview allocates tens of thousands of objects (each page's summaries, the entities, the
plan) and frees almost none of them until it ends. With Python's default thresholds the
collector then runs hundreds of times during one preview, and its full collections walk every
object the process holds (the wire models' classes, the imported modules) again and again: at
10,000 stacks that was a seventh of a second of pauses, each one landing between a page and
the request for the next. Setting aside what exists before the plan (`gc.freeze`) and letting
more allocations pass between young collections removes nearly all of it; both are undone when
the plan is done.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation while a plan is built
(Python's default is 700): each such collection walks at most this many new objects."""

_lock = threading.Lock()
_depth = 0
"""Plans being built at once; only the first changes the collector, only the last restores it."""
_saved_thresholds: tuple[int, int, int] = gc.get_threshold()
_froze = False
"""Whether the first plan froze the objects: not when something else had frozen them before
(its freeze is left as it was)."""


@asynccontextmanager
async def fewer_gc_pauses() -> AsyncIterator[None]:
    """Within (or around a coroutine function it decorates): the objects that existed on entry
    are out of the collector's sight, and young collections run every `YOUNG_THRESHOLD`
    allocations. Cyclic garbage made within is still collected, only less often; everything
    is as it was once the last plan leaves."""
    global _depth, _saved_thresholds, _froze
    with _lock:
        if _depth == 0:
            _saved_thresholds = gc.get_threshold()
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
            gc.set_threshold(max(YOUNG_THRESHOLD, _saved_thresholds[0]), *_saved_thresholds[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved_thresholds)
                if _froze:
                    gc.unfreeze()
