"""The global options, handed to every command: typed before the command or after it."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import click
from click.core import ParameterSource

from toolkit.cli.options import Command

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.commands import ClaimTarget
    from toolkit.credentials import Credentials


ColorChoice = Literal["auto", "always", "never"]
COLOR_CHOICES: tuple[ColorChoice, ...] = ("auto", "always", "never")


@dataclass(frozen=True)
class Settings:
    """Global options, shared by every command."""

    api_url: str | None
    verbose: int
    quiet: bool
    insecure: bool = False
    color: ColorChoice | None = None
    """--color; None when not given: then a non-empty NO_COLOR means never, as no-color.org
    asks, and otherwise auto."""
    database_url: str | None = field(default=None, repr=False)
    """--database-url / $PULUMI_CLAIM_DATABASE_URL: the runs' journals and locks in PostgreSQL
    rather than the runs folder (`database`)."""
    secrets: set[str] = field(default_factory=set, repr=False)
    """The run's tokens and passphrases once loaded: masked in logs, errors and reports."""

    def database(self) -> str | None:
        """The runs database's URL, checked, its password masked from then on; None: the
        runs folder (SQLite) keeps the runs."""
        if self.database_url is None:
            return None
        from toolkit.journal.database import check_database_url, password

        if secret := password(self.database_url):
            self.secrets.add(secret)
        check_database_url(self.database_url)
        return self.database_url

    def target(
        self,
        source_org: str,
        destination_org: str,
        source_backend: str | None,
        destination_backend: str | None,
    ) -> ClaimTarget:
        """--from/--to and the optional backends, as one target."""
        from toolkit.commands import ClaimTarget

        return ClaimTarget(
            source_org,
            destination_org,
            source_backend,
            destination_backend,
            allow_insecure=self.insecure,
        )

    def credentials(
        self, target: ClaimTarget, claim_file: Path | None = None, claim_url: str | None = None
    ) -> Credentials:
        """The tokens of this run, for `target`. A claim token found at the pulumi CLI's default
        location (when none of --claim-url, --claim-file, PULUMI_CLAIM_TOKEN gives one) is said on
        stderr, and so are the URLs that --insecure lets tokens travel to in cleartext."""
        from toolkit.credentials import load_credentials
        from toolkit.service_urls import is_cleartext_remote

        credentials = load_credentials(
            self.api_url,
            claim_file=claim_file,
            claim_url=claim_url,
            discover_claim_file=True,
            allow_insecure=self.insecure,
        )
        self.secrets.update(credentials.secrets)
        urls = (credentials.api_url, target.source_backend, target.destination_backend)
        cleartext = sorted({url for url in urls if url and is_cleartext_remote(url)})
        if cleartext:
            click.echo(
                f"warning: --insecure: tokens travel unencrypted to {', '.join(cleartext)}",
                err=True,
            )
        if credentials.claim_file and credentials.claim_file.discovered and not self.quiet:
            click.echo(f"using {credentials.claim_token_origin}", err=True)
        return credentials

    def configure_logging(self) -> None:
        """With -v, one line per request on stderr (-vv: every detail), tokens masked."""
        if not self.verbose:
            return
        from toolkit.redaction import RedactingFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            RedactingFormatter("%(levelname)s %(name)s: %(message)s", self.secrets)
        )
        logging.basicConfig(
            level=logging.DEBUG if self.verbose > 1 else logging.INFO,
            handlers=[handler],
            force=True,
        )

    def progress_console(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, quiet=self.quiet, **self.console_colors(sys.stderr))

    def spinner_console(self) -> Console | None:
        """The console for a spinner on stderr, or None when it would draw nothing there
        (quiet, or stderr no terminal for rich: `may_be_terminal`): rich is not even imported
        then, which a preview written to a pipe or a file never needs."""
        if self.quiet or not may_be_terminal(sys.stderr):
            return None
        return self.progress_console()

    def console_colors(self, stream: TextIO) -> dict[str, Any]:
        """How a rich Console writing to `stream` shows colour, the one rule for every console
        of the command line: `never` writes no ANSI code at all (no colour, no style, and no
        live progress bar, which moves the cursor: one line per step instead); `always`
        colours even a pipe or a file; `auto` colours a terminal only."""
        chosen = self.color or ("never" if os.environ.get("NO_COLOR") else "auto")
        if chosen == "never":
            return {"color_system": None, "force_terminal": False, "no_color": True}
        if chosen == "always":
            return {"color_system": "auto" if stream.isatty() else "standard", "no_color": False}
        return {"no_color": False}


def may_be_terminal(stream: TextIO) -> bool:
    """Whether a rich Console writing to `stream` may take it for a terminal, and so draw on
    it: only when the stream is one or the environment says to treat it as one (rich reads
    `TTY_COMPATIBLE` and `FORCE_COLOR`). False: such a console draws nothing there."""
    return "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ or stream.isatty()


pass_settings = click.make_pass_decorator(Settings)

_GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--api-url",),
        {
            "metavar": "URL",
            "help": "Pulumi Cloud API (default: $PULUMI_BACKEND_URL, else the current backend "
            "of `pulumi login`, else https://api.pulumi.com).",
        },
    ),
    (
        ("--insecure",),
        {
            "is_flag": True,
            "help": "Allow http:// URLs to other machines than this one; tokens then travel "
            "unencrypted.",
        },
    ),
    (
        ("--color",),
        {
            "type": click.Choice(COLOR_CHOICES),
            "help": "Colours: auto (on a terminal; none when NO_COLOR is set), always, never "
            "(no ANSI codes at all).",
        },
    ),
    (
        ("--database-url",),
        {
            "metavar": "URL",
            "envvar": "PULUMI_CLAIM_DATABASE_URL",
            "show_envvar": False,
            "help": "Keep the runs' journals and locks in this PostgreSQL database "
            "(postgresql://USER:PASSWORD@HOST:PORT/DB; default: $PULUMI_CLAIM_DATABASE_URL, "
            "else the runs folder), shared by every machine that runs claims.",
        },
    ),
    (("-v", "--verbose"), {"count": True, "help": "Show each request (-vv: more detail)."}),
    (("-q", "--quiet"), {"is_flag": True, "help": "Print only the report and errors."}),
)
"""The global options, declared once: taken by the group before the command
(`global_options`) and by every command after its name (`accept_global_options`)."""


def global_options(group: Command) -> Command:
    """The global options, on the group: `pulumi-claim -v preview ...`."""
    for declarations, attributes in reversed(_GLOBAL_OPTIONS):
        group = click.option(*declarations, **attributes)(group)
    return group


def accept_global_options(command: click.Command) -> None:
    """Let `command` (and a group's commands) take the global options after its name too, as
    pulumi, gh and kubectl do: `pulumi-claim preview ... -v --api-url URL`. Hidden from the
    command's own help (the group's lists them); given after the command, they add to
    (-v) or replace what was given before it."""
    for declarations, attributes in _GLOBAL_OPTIONS:
        command.params.append(
            click.Option(
                list(declarations),
                **attributes,
                hidden=True,
                expose_value=False,
                callback=_after_command,
            )
        )
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            accept_global_options(subcommand)


def _after_command(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the command, into the Settings the command is handed."""
    if not value or param.name is None:
        return
    if ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
        return  # the group read the variable already; an option before the command wins
    settings = ctx.find_object(Settings)
    if settings is None:
        return
    if param.name == "verbose":
        value += settings.verbose
    ctx.obj = dataclasses.replace(settings, **{param.name: value})
    if param.name == "verbose":
        ctx.obj.configure_logging()
