"""The `pulumi-claim` command line, click only: parse the options, call a command
(`toolkit.commands`), render its result, exit with its code.

One module per family of commands (`claims`: preview, commit, resolve, status; `references`;
`jobs`; `local`: emulator, demo); the options several commands share are declared once
(`options.OPTIONS`). Heavy modules (aiohttp, pydantic, rich, the emulator) are imported inside
the commands so that `pulumi-claim --help` stays fast, with the garbage collector off until
they are (`imports.heavy_imports`).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import click

from toolkit.cli.claims import commit, preview, resolve, status
from toolkit.cli.completion import PROGRAM, completion
from toolkit.cli.imports import before_exit, start_up
from toolkit.cli.jobs import job
from toolkit.cli.local import demo, emulator
from toolkit.cli.options import in_cli_words
from toolkit.cli.references import references
from toolkit.cli.render import say
from toolkit.cli.settings import ColorChoice, Settings, accept_global_options, global_options
from toolkit.cli.sweeps import sweep, upgrade_database, worker


class ClaimGroup(click.Group):
    """Turns the toolkit's errors into one line on stderr and exit code 1, for every command:
    masked, and printable (what the service said is part of it)."""

    def invoke(self, ctx: click.Context) -> Any:
        from toolkit.errors import ClaimError
        from toolkit.redaction import redact

        try:
            return super().invoke(ctx)
        except ClaimError as error:
            secrets = ctx.obj.secrets if isinstance(ctx.obj, Settings) else ()
            say(f"error: {redact(str(in_cli_words(error)), secrets)}")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=ClaimGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _print_versions(ctx, asked=value),
    help="Show the toolkit's version and the pulumi CLI's, then exit.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    api_url: str | None,
    insecure: bool,
    color: ColorChoice | None,
    database_url: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Move Pulumi stacks from one Pulumi Cloud organization into another.

    Typical claim of an agent's account: `preview`, then `resolve` to write a resolution map
    for the name conflicts, then `commit`. Credentials come from the environment:
    PULUMI_ACCESS_TOKEN (destination), PULUMI_CLAIM_SOURCE_TOKEN (source; defaults to the
    destination identity), PULUMI_CLAIM_TOKEN (the agent's claim token or claim link,
    optional; or --claim-url, --claim-file, else the pulumi CLI's
    /tmp/.pulumi/agent-claim.json when it exists).

    Exit codes: 0 done, 1 error, 2 usage, 3 blocked (nothing changed): by unresolved
    conflicts, or with claim-api by entities the service cannot move, 4 partial (failures
    reported).
    """
    settings = Settings(
        api_url=api_url,
        verbose=verbose,
        quiet=quiet,
        insecure=insecure,
        color=color,
        database_url=database_url,
    )
    settings.configure_logging()
    ctx.obj = settings


def _print_versions(ctx: click.Context, *, asked: bool) -> None:
    """`--version`: the toolkit's, then the pulumi CLI's (or that none was found)."""
    if not asked:
        return
    from toolkit.commands import versions

    found = versions()
    click.echo(f"pulumi-claim, version {found.toolkit}")
    if found.pulumi_cli is None:
        click.echo("pulumi CLI: not found")
    else:
        click.echo(f"pulumi CLI, version {found.pulumi_cli} ({found.pulumi_cli_path})")
    ctx.exit()


for command in (
    preview,
    commit,
    resolve,
    status,
    references,
    sweep,
    worker,
    upgrade_database,
    job,
    emulator,
    demo,
    completion,
):
    accept_global_options(command)
    cli.add_command(command)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_as_interrupted)
    start_up()
    try:
        cli(prog_name=PROGRAM)
    finally:
        before_exit()


def _stop_as_interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (`kill`, a service manager stopping the run) stops a run the way Ctrl-C does:
    no new stack starts, those under way finish or are undone, their workspaces are removed,
    exit 130. Python's own default would end the process on the spot, leaving them behind.

    As SIGINT, so that asyncio's own handler stops a running event loop in order; but where
    SIGINT is ignored (a background job of a script), by raising KeyboardInterrupt here."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)
