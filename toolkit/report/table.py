"""The report as a terminal table (rich): every value goes in as `Text`, never as markup."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from toolkit.report.view import ActionKind, ReportView, Tone

_ACTION_STYLES: dict[ActionKind, str] = {
    "move": "green",
    "rename": "cyan",
    "blocked": "bold red",
    "failed": "yellow",
    "retry": "magenta",
}
_TONE_STYLES: dict[Tone, str] = {
    "neutral": "",
    "good": "green",
    "warn": "yellow",
    "bad": "bold red",
}


def table_renderable(view: ReportView) -> RenderableType:
    """The whole report as one rich renderable; every value goes in as `Text`, never markup."""
    header = Table.grid(padding=(0, 2))
    header.add_column(style="dim", no_wrap=True)
    header.add_column()
    for label, value in view.header:
        header.add_row(label, Text(value))

    counts = Text("   ").join(
        Text.assemble((f"{count.label} ", "dim"), (str(count.value), _TONE_STYLES[count.tone]))
        for count in view.counts
    )

    inventory = _section_table("Inventory")
    inventory.add_column("Kind", no_wrap=True)
    longest_name = max((len(row.name) for row in view.inventory), default=0)
    inventory.add_column("Name", overflow="fold", min_width=min(longest_name, _NAME_MIN_WIDTH))
    inventory.add_column("Resources", justify="right", no_wrap=True)
    inventory.add_column("Last update", no_wrap=True)
    inventory.add_column("Action", overflow="fold")
    for row in view.inventory:
        inventory.add_row(
            Text(row.kind),
            Text(row.name),
            Text(row.resources),
            Text(row.last_update),
            Text(row.action, style=_ACTION_STYLES[row.action_kind]),
        )

    parts: list[RenderableType] = [
        Text(view.title, style="bold"),
        header,
        Text(),
        counts,
        Text(),
        inventory if view.inventory else Text("No entities."),
        Text(),
    ]

    if view.conflicts:
        conflicts = _section_table("Conflicts")
        conflicts.add_column("Kind", no_wrap=True)
        conflicts.add_column("Name", overflow="fold")
        conflicts.add_column("Name taken in destination", overflow="fold")
        for conflict in view.conflicts:
            conflicts.add_row(Text(conflict.kind), Text(conflict.name), Text(conflict.taken_name))
        parts += [conflicts, Text(view.conflict_hint, style="yellow")]
    else:
        parts.append(Text("No conflicts."))
    parts.append(Text())

    if view.failures:
        failures = _section_table("Failures")
        failures.add_column("Kind", no_wrap=True)
        failures.add_column("Name", overflow="fold")
        failures.add_column("Failure", overflow="fold")
        failures.add_column("Reason", overflow="fold")
        for failure in view.failures:
            failures.add_row(
                Text(failure.kind), Text(failure.name), Text(failure.failure), Text(failure.reason)
            )
        parts.append(failures)
    else:
        parts.append(Text("No failures."))
    parts.append(Text())

    if view.next_steps:
        parts.append(Text("What to do", style="bold"))
        parts += [Padding(Text(f"• {step}"), (0, 0, 0, 2)) for step in view.next_steps]
        parts.append(Text())

    if view.notices:
        parts.append(Text("Notices", style="bold"))
        parts += [Padding(Text(f"• {notice}"), (0, 0, 0, 2)) for notice in view.notices]
        parts.append(Text())

    parts.append(
        Text.assemble(("Outcome: ", "bold"), (view.outcome, _TONE_STYLES[view.outcome_tone]))
    )
    return Group(*parts)


_NAME_MIN_WIDTH = 20
"""Names up to this long are never folded in the inventory table; longer ones fold."""


def _section_table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
