"""Waiting for something another process or thread is doing, without timing assertions."""

from __future__ import annotations

import time
from collections.abc import Callable

PATIENCE_S = 120.0
"""How long to wait before calling it a failure: far longer than anything here takes."""


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Return as soon as `condition()` holds; fail, saying `what` never happened, if it never
    does."""
    give_up = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"waited {PATIENCE_S:g} s, but never: {what}")
        time.sleep(0.01)
