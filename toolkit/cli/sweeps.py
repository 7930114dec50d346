"""`sweep`: claim every agent account whose claim file is in a folder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.choices import Format
from toolkit.cli.imports import heavy_imports
from toolkit.cli.options import REPORT, options
from toolkit.cli.render import report_format, say, write_file
from toolkit.cli.settings import Settings, pass_settings
from toolkit.display import printable

if TYPE_CHECKING:
    from toolkit.sweep_result import SweepRow


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    from toolkit.errors import InvalidInputError
    from toolkit.sweep import parse_duration

    try:
        return parse_duration(value)
    except InvalidInputError as error:
        raise click.BadParameter(str(error)) from None


@click.command()
@click.option(
    "--claims",
    "claims_dir",
    required=True,
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of claim files, one agent account per file (agent-claim.json as the pulumi "
    "CLI writes it).",
)
@options("to")
@click.option(
    "--policy",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Naming policy (YAML): a template per kind for names taken in the destination, e.g. "
    'stacks: "{stack}-{agent}" (default), or suffix: -agent.',
)
@click.option(
    "--warn-within",
    default="24h",
    show_default=True,
    metavar="DURATION",
    callback=_duration,
    help="Warn about accounts whose claim window closes within DURATION (90s, 30m, 24h, 7d).",
)
@click.option(
    "--enqueue",
    is_flag=True,
    help="Check and plan the sweep, then queue its claims in the runs database for "
    "`pulumi-claim worker` processes, and return (needs --database-url).",
)
@options("claim-wait", *REPORT)
@pass_settings
def sweep(
    settings: Settings,
    claims_dir: Path,
    destination_org: str,
    policy: Path | None,
    warn_within: timedelta,
    enqueue: bool,
    claim_wait: float | None,
    fmt: Format | None,
    output: Path | None,
) -> None:
    """Claim every agent account whose claim file is in DIR into ORG, one claim per file.

    The whole folder and the naming policy are checked first: a file that is no claim file
    (or is for another service), and a new name the policy makes invalid or taken, are listed
    together and nothing is claimed (exit 1). A token the service does not know (used or
    expired) is skipped and reported. Each account is claimed with the claim-api strategy as
    its own run; a sweep run again claims only what is new: an account claimed before is
    reported as already claimed without asking the service. Exit code: the worst of the
    claims' (0 done < 3 blocked < 4 partial < 1 error).

    With --enqueue (and a runs database), the claims are queued rather than made: each row
    says `queued`, and workers (`pulumi-claim worker`) make them.
    """
    with heavy_imports():
        from toolkit import commands
        from toolkit.credentials import load_credentials
        from toolkit.report.sweep import render_sweep, summary

    database = settings.database()
    request = commands.sweep_request(
        claims_dir, destination_org, policy, warn_within=warn_within, claim_wait=claim_wait
    )
    credentials = load_credentials(settings.api_url, allow_insecure=settings.insecure)
    settings.secrets.update(credentials.secrets)
    if enqueue:
        result = commands.enqueue_sweep(
            credentials, request, database=database, on_row=_say_row(settings)
        )
    else:
        with commands.stopping() as stop:
            result = commands.sweep(
                credentials, request, database=database, stop=stop, on_row=_say_row(settings)
            )
    chosen = report_format(fmt, output)
    text = render_sweep(result, chosen)
    if chosen == "table":
        text = printable(text, keep_newlines=True)
    if output:
        write_file(output, text)
    else:
        click.echo(text, nl=False)
    if not settings.quiet:
        for warning in result.warnings:
            say(f"warning: {warning}")
        say(f"sweep into {destination_org}: {summary(result)}")
    sys.exit(result.exit_code)


def _say_row(settings: Settings) -> Callable[[SweepRow], None]:
    """Each account's outcome on stderr as it is decided."""

    def said(row: SweepRow) -> None:
        if not settings.quiet:
            said = f"{row.agent}: {row.outcome}" if row.agent else row.message
            say(f"{row.file}: {said}")

    return said


@click.command()
@click.option(
    "--until-empty",
    is_flag=True,
    help="Exit once no claim is queued or being made by any worker (else run until stopped).",
)
@click.option(
    "--lease",
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    type=click.FloatRange(min=1),
    help="A worker silent for this long is taken for dead: its claim is taken over.",
)
@pass_settings
def worker(settings: Settings, until_empty: bool, lease: float) -> None:
    """Make the claims that `sweep --enqueue` queued in the runs database.

    Each claim is its own run under its org's lock, as `sweep` makes it; the token is read
    from the claim file the job names, which must be where the sweep found it (shared
    storage). Run as many workers as you like, on any machine. Exit code: the worst of the
    claims this worker made.
    """
    with heavy_imports():
        from toolkit import commands
        from toolkit.credentials import load_credentials

    credentials = load_credentials(settings.api_url, allow_insecure=settings.insecure)
    settings.secrets.update(credentials.secrets)
    code = commands.work(
        credentials,
        database=settings.database(),
        until_empty=until_empty,
        lease=lease,
        on_row=_say_row(settings),
    )
    sys.exit(code)


@click.command("upgrade-database")
@pass_settings
def upgrade_database(settings: Settings) -> None:
    """Bring the runs database (--database-url) to this release's schema version.

    Run it once, while no run is under way, when a command says the database holds an earlier
    version: it moves each run into the tables every run shares, in one transaction. A
    database already at this version is left as it is.
    """
    with heavy_imports():
        from toolkit import commands

    done = commands.upgrade_database(settings.database())
    say(done)
