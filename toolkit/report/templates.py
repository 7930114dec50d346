"""What every report turns into text with: the plain-text console and the HTML templates."""

from __future__ import annotations

from functools import cache
from io import StringIO

import jinja2
from rich.console import Console, RenderableType


def plain_text(*renderables: RenderableType, width: int) -> str:
    """`renderables` as plain text `width` columns wide: no colour, no markup, no emoji, and no
    trailing spaces (rich pads every line to the full width; a file or a diff reads better
    without it)."""
    buffer = StringIO()
    console = Console(
        file=buffer,
        width=width,
        color_system=None,
        force_terminal=False,
        force_jupyter=False,
        force_interactive=False,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )
    for renderable in renderables:
        console.print(renderable)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


@cache
def html_template(name: str) -> jinja2.Template:
    """The HTML template `name` (in `toolkit/templates`), every value it is given escaped."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("toolkit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(name)
