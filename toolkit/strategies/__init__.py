"""Strategies: each executes the stack moves of a `ClaimPlan` its own way.

A strategy returns the moves that failed (source stack key -> reason); everything else in the
plan is expected to have landed, which the caller verifies against the service.
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit.entities import EntityKey

ProgressCallback = Callable[[str], None]
"""Receives one human-readable line per completed step; the CLI shows it, tests collect it."""

FailedMoves = dict[EntityKey, str]


def no_progress(_message: str) -> None:
    """The default progress callback: stay silent."""
