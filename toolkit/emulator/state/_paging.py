"""Keyset paging: a page of a listing and the continuation token that resumes after it.

A token is the sort key of the last item shown, tagged with the listing that issued it, so a
page costs one indexed range query however deep into a listing it is, and a token from one
listing is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from toolkit.emulator.state._records import ServiceFault

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; `next_token` is None on the last page."""

    items: list[T]
    next_token: str | None


def page_of(
    items: Sequence[T], limit: int, scope: str, *, key: Callable[[T], tuple[str, ...]]
) -> Page[T]:
    """Turn `limit + 1` fetched items into a page and the token that resumes after it."""
    shown = list(items[:limit])
    next_token = _encode_token(scope, key(shown[-1])) if len(items) > limit else None
    return Page(items=shown, next_token=next_token)


def _encode_token(scope: str, key: tuple[str, ...]) -> str:
    raw = json.dumps([scope, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str, size: int) -> list[str]:
    """The key a continuation token resumes after; 400 for anything this listing did not issue."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        decoded = None
    if (
        not isinstance(decoded, list)
        or len(decoded) != size + 1
        or decoded[0] != scope
        or not all(isinstance(part, str) for part in decoded)
    ):
        raise ServiceFault(400, "Bad Request: invalid continuation token")
    return decoded[1:]
