"""The one rule for text the toolkit did not write itself, wherever people read it.

Names and messages come from the service, a map file, a job file, the pulumi CLI: any of them
can hold control characters, and a terminal obeys them (clear the screen, retitle the window,
recolour or hide what follows), as a Markdown or HTML viewer may. `printable` writes each as
an escape one can read (`\\x1b`, `\\x9b`, `\\u202e`), which also makes every escape sequence
inert: its introducer is no longer there. It is applied where such text enters what people
read: the report's view (table, Markdown, HTML), the progress lines and bar, the text log, log
records, and the error line and other lines on stderr. JSON escapes control characters itself
(`json.dumps` writes ASCII only) and is left as it is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["printable", "utc_minute"]

_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Characters that reorder the text around them (a name could show as another one)."""

_UNPRINTABLE = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI_CONTROLS}\u2028\u2029]")
"""C0 and C1 control characters, DEL, the bidirectional controls and the Unicode line and
paragraph separators."""

_UNPRINTABLE_BUT_NEWLINE = re.compile(rf"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI_CONTROLS}\u2028\u2029]")
"""The same, but for the line break."""


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with each control character written as its escape (`\\x1b`, `\\n`, `\\u202e`).

    `keep_newlines` keeps line breaks, for text of several lines the toolkit composed (an
    error and its hint, a log record with its traceback).
    """
    pattern = _UNPRINTABLE_BUT_NEWLINE if keep_newlines else _UNPRINTABLE
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    """The character as Python writes it in a string literal; all of them are non-printable."""
    return match[0].encode("unicode_escape").decode("ascii")


def utc_minute(moment: datetime) -> str:
    """A moment as messages and reports show it: to the minute, in UTC, the same on every
    machine (a naive time is read as UTC already, as the service sends them)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{aware:%Y-%m-%d %H:%M} UTC"
