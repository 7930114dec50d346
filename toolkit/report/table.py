"""The report as a terminal table (rich): every value goes in as `Text`, never as markup.

No cell ever loses a character, whatever the width: cells wrap between words, never inside one,
and a section whose words do not fit its columns at the width it is drawn at is drawn stacked
instead, one block per entity with the name on a line of its own (`_Fitted`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.columns import Columns
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from toolkit.report.references import REFERENCES_TITLE
from toolkit.report.view import (
    NOT_APPLICABLE,
    ActionKind,
    ConflictRow,
    FailureRow,
    InventoryRow,
    ReportView,
    Tone,
)

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
    # Side by side, wrapping between counts, never between a count's label and its value.
    counts = Columns(
        [
            Text.assemble((f"{count.label} ", "dim"), (str(count.value), _TONE_STYLES[count.tone]))
            for count in view.counts
        ],
        padding=(0, 3),
    )
    parts: list[RenderableType] = [
        Text(view.title, style="bold"),
        _header(view.header),
        Text(),
        counts,
        Text(),
        _inventory(view.inventory) if view.inventory else Text("No entities."),
        Text(),
    ]

    if view.conflicts:
        parts += [_conflicts(view.conflicts), Text(view.conflict_hint, style="yellow")]
    else:
        parts.append(Text("No conflicts."))
    parts.append(Text())

    parts.append(_failures(view.failures) if view.failures else Text("No failures."))
    parts.append(Text())

    sections = (
        ("What to do", view.next_steps),
        (REFERENCES_TITLE, view.references),
        ("Notices", view.notices),
    )
    for title, items in sections:
        if items:
            parts.append(Text(title, style="bold"))
            parts.append(_bullets(items))
            parts.append(Text())

    parts.append(
        Text.assemble(("Outcome: ", "bold"), (view.outcome, _TONE_STYLES[view.outcome_tone]))
    )
    return Group(*parts)


# --- Sections: each a table, or stacked when its words do not fit ------------------------


def _header(header: Sequence[tuple[str, str]]) -> _Fitted:
    """Label and value side by side; stacked, the value under its label."""

    def grid() -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column()
        return table

    rows = tuple((Text(label, style="dim"), Text(value)) for label, value in header)
    stacked = Group(*(part for label, value in rows for part in (label, _indented(value, 2))))
    return _Fitted(grid, rows, stacked)


def _inventory(inventory: Sequence[InventoryRow]) -> _Fitted:
    """One row per entity; stacked, its name then `kind · resources · last update · action`."""

    def table() -> Table:
        table = _section_table("Inventory")
        table.add_column("Kind", no_wrap=True)
        table.add_column("Name", no_wrap=True)
        table.add_column("Resources", justify="right", no_wrap=True)
        table.add_column("Last update", no_wrap=True)
        table.add_column("Action")
        return table

    rows = tuple(
        (
            Text(row.kind),
            Text(row.name),
            Text(row.resources),
            Text(row.last_update),
            _action(row),
        )
        for row in inventory
    )
    blocks = (
        _block(row.name, _facts(row.kind, *_stacked_facts(row), _action(row))) for row in inventory
    )
    return _Fitted(table, rows, _stacked("Inventory", blocks))


def _conflicts(conflicts: Sequence[ConflictRow]) -> _Fitted:
    """One row per conflict; stacked, its name then the name taken in the destination."""

    def table() -> Table:
        table = _section_table("Conflicts")
        table.add_column("Kind", no_wrap=True)
        table.add_column("Name", no_wrap=True)
        table.add_column("Name taken in destination", no_wrap=True)
        return table

    rows = tuple(
        (Text(conflict.kind), Text(conflict.name), Text(conflict.taken_name))
        for conflict in conflicts
    )
    blocks = (
        _block(
            conflict.name,
            _facts(conflict.kind, Text(f"name taken in destination: {conflict.taken_name}")),
        )
        for conflict in conflicts
    )
    return _Fitted(table, rows, _stacked("Conflicts", blocks))


def _failures(failures: Sequence[FailureRow]) -> _Fitted:
    """One row per failure; stacked, its name then `kind · failure: reason`."""

    def table() -> Table:
        table = _section_table("Failures")
        table.add_column("Kind", no_wrap=True)
        table.add_column("Name", no_wrap=True)
        table.add_column("Failure")
        table.add_column("Reason")
        return table

    rows = tuple(
        (Text(failure.kind), Text(failure.name), Text(failure.failure), Text(failure.reason))
        for failure in failures
    )
    blocks = (
        _block(failure.name, _facts(failure.kind, Text(f"{failure.failure}: {failure.reason}")))
        for failure in failures
    )
    return _Fitted(table, rows, _stacked("Failures", blocks))


def _bullets(items: Sequence[str]) -> Padding:
    """One bullet an item, a long item wrapping under its own text rather than the bullet."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for item in items:
        grid.add_row("•", Text(item))
    return _indented(grid, 2)


def _action(row: InventoryRow) -> Text:
    return Text(row.action, style=_ACTION_STYLES[row.action_kind])


def _stacked_facts(row: InventoryRow) -> tuple[Text, ...]:
    """Resources and last update, said in words; left out (not shown as `NOT_APPLICABLE`) for a
    kind that has neither."""
    facts = []
    if row.resources != NOT_APPLICABLE:
        facts.append(Text(f"{row.resources} resource{'' if row.resources == '1' else 's'}"))
    if row.last_update != NOT_APPLICABLE:
        facts.append(Text(f"updated {row.last_update}"))
    return tuple(facts)


def _facts(kind: str, *facts: Text) -> Text:
    return Text(" · ").join((Text(kind), *facts))


def _block(name: str, facts: Text) -> Group:
    """One entity stacked: its name on a line of its own, what is said of it indented below."""
    return Group(_indented(Text(name), 2), _indented(facts, 4))


def _stacked(title: str, blocks: Iterable[RenderableType]) -> Group:
    return Group(Text(title, style="bold"), *blocks)


def _indented(renderable: RenderableType, spaces: int) -> Padding:
    return Padding(renderable, (0, 0, 0, spaces))


def _section_table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


# --- Choosing a layout at the width the report is drawn at ------------------------------


@dataclass(frozen=True)
class _Fitted:
    """A table whose column widths are chosen at the width it is drawn at, so that every word of
    every cell fits its column (cells wrap between words, never inside one); where they cannot
    all fit, `stacked` is drawn instead. A name has no spaces, so in a table it is never split."""

    empty_table: Callable[[], Table]
    """The table's style and columns, without widths or rows; a `no_wrap` column holds names or
    labels, drawn whole on one line, the others wrap between words."""
    rows: tuple[tuple[Text, ...], ...]
    stacked: RenderableType

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        empty = self.empty_table()
        columns = [
            [Text(str(column.header) if empty.show_header else ""), *(row[i] for row in self.rows)]
            for i, column in enumerate(empty.columns)
        ]
        longest = [max(cell_len(cell.plain) for cell in cells) for cells in columns]
        widths = fitted_widths(
            [
                whole if column.no_wrap else max(_longest_word(cell) for cell in cells)
                for column, cells, whole in zip(empty.columns, columns, longest, strict=True)
            ],
            longest,
            options.max_width - self._overhead(console, options),
        )
        if widths is None:
            yield self.stacked
            return
        for column, width in zip(empty.columns, widths, strict=True):
            column.width = width
            column.overflow = "fold"
        for row in self.rows:
            empty.add_row(*row)
        yield empty

    def _overhead(self, console: Console, options: ConsoleOptions) -> int:
        """What the table takes besides its cells: padding and the lines between columns."""
        table = self.empty_table()
        for column in table.columns:
            column.width = 1
        return Measurement.get(console, options, table).maximum - len(table.columns)


def fitted_widths(
    minimums: Sequence[int], maximums: Sequence[int], available: int
) -> tuple[int, ...] | None:
    """Column widths within `available`: each column its longest cell, the widest shrunk first
    but never below its longest word (`minimums`); None when the longest words do not fit."""
    if sum(minimums) > available:
        return None
    widths = [max(low, high) for low, high in zip(minimums, maximums, strict=True)]
    for _ in range(sum(widths) - available):
        widest = max(
            range(len(widths)),
            key=lambda index: (widths[index] > minimums[index], widths[index]),
        )
        widths[widest] -= 1
    return tuple(widths)


def _longest_word(text: Text) -> int:
    return max((cell_len(word) for word in text.plain.split()), default=0)
