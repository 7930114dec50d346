"""Paging: how large a page each listing is asked for, the tokens that chain its pages, and
the page asked ahead while the one before is read."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from toolkit.errors import NOT_AN_API_HINT, EndlessListingError


@dataclass(frozen=True)
class PageSize:
    """The page-size parameter of one listing and the largest page to ask it for.

    A page is one request after another, so the fewer pages, the shorter the listing.
    """

    listing: str
    parameter: str
    largest: int


class PageTokens:
    """The page tokens one listing has followed, which a service cannot make endless: a token
    handed out before, or a page past `max_pages`, ends the listing with an error. Kept as
    digests, so that their memory does not grow with the tokens' length."""

    def __init__(self, call: str, max_pages: int) -> None:
        self._call = call
        self._max_pages = max_pages
        self._seen: set[bytes] = set()

    def follow(self, token: str) -> None:
        """Allow the page after the last one read, at `token`, or raise `EndlessListingError`."""
        digest = hashlib.sha256(token.encode()).digest()
        if digest in self._seen:
            raise EndlessListingError(
                f"{self._call} handed out a page token it had handed out before; "
                "the listing would never end",
                hint=NOT_AN_API_HINT,
            )
        if len(self._seen) + 1 >= self._max_pages:
            raise EndlessListingError(
                f"{self._call} still had more after {self._max_pages:,} pages; "
                "the listing was stopped there",
                hint=NOT_AN_API_HINT,
            )
        self._seen.add(digest)


def page_token(content: object, token_key: str) -> str | None:
    """The next page's token in a decoded page, if it is there and a string; anything else
    there is left for the page's validation to refuse."""
    token = content.get(token_key) if isinstance(content, dict) else None
    return token if isinstance(token, str) and token else None


def abandon(asked: asyncio.Future[object]) -> None:
    """Stop a page asked ahead that no one will read (the listing ended early or failed), and
    take its outcome, so that its own failure goes unreported rather than logged as lost."""
    asked.cancel()
    asked.add_done_callback(_take_outcome)


def _take_outcome(asked: asyncio.Future[object]) -> None:
    if not asked.cancelled():
        asked.exception()
