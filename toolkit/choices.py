"""The words a user chooses from, one home for each vocabulary.

The command line's choices and the job file's values are these, and `auto` becomes None (let
the toolkit choose) here only. No heavy imports: the command line builds its options from this
module before any work.
"""

from __future__ import annotations

from typing import Literal, get_args

Strategy = Literal["transfer", "migrate", "claim-api"]
"""How stacks move (`toolkit.strategies`)."""

StrategyName = Literal["auto", "transfer", "migrate", "claim-api"]
"""A strategy as a user names it: `auto` lets `toolkit.strategy_choice.choose_strategy` pick."""

EnvironmentChoice = Literal["report", "copy"]
"""What becomes of the source's ESC environments outside claim-api: reported as failures with
what to do by hand, or copied into the destination (`toolkit.strategies.environment_copy`)."""

MigrateVia = Literal["rest", "cli"]
"""How migrate reaches both sides: the REST API, or the pulumi CLI (`cli`)."""

Format = Literal["table", "json", "markdown", "html"]
"""A report's format (`toolkit.report`)."""

LogFormat = Literal["text", "json"]
"""How a commit or a job tells its progress: for people, or as JSON lines (`toolkit.run_log`)."""

STRATEGY_NAMES: tuple[StrategyName, ...] = get_args(StrategyName)
ENVIRONMENT_CHOICES: tuple[EnvironmentChoice, ...] = get_args(EnvironmentChoice)
MIGRATE_VIA: tuple[MigrateVia, ...] = get_args(MigrateVia)
FORMATS: tuple[Format, ...] = get_args(Format)
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)

SUFFIX_FORMATS: dict[str, Format] = {
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
}
"""The format a report file's suffix asks for; any other suffix: table."""


def chosen_strategy(name: StrategyName) -> Strategy | None:
    """The strategy `name` asks for; None for `auto`."""
    return None if name == "auto" else name
