"""Strategies: each executes the stack moves of a `ClaimPlan` its own way.

A strategy returns the moves that failed (source stack key -> why); everything else in the
plan is expected to have landed, which the caller verifies against the service. It reports
its progress as events (`toolkit.progress`).
"""

from __future__ import annotations

from toolkit.entities import EntityKey
from toolkit.progress import MoveFailure, ProgressCallback, no_progress

__all__ = ["FailedMoves", "ProgressCallback", "no_progress"]

FailedMoves = dict[EntityKey, MoveFailure]
