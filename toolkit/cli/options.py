"""Every option that more than one command takes, declared once (`OPTIONS`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from toolkit.choices import ENVIRONMENT_CHOICES, FORMATS, LOG_FORMATS, MIGRATE_VIA, STRATEGY_NAMES
from toolkit.errors import ChoiceError, ClaimError

Command = TypeVar("Command", bound=Callable[..., Any])


def checked_output(ctx: click.Context, param: click.Parameter, output: str | None) -> Path | None:
    """--output FILE, checked writable before the command does anything (a commit never runs
    to the end only to find it cannot write its report)."""
    from toolkit.private_files import check_output_path

    if output is None:
        return None
    path = Path(output)
    check_output_path(path)
    return path


def _checked_report_output(
    ctx: click.Context, param: click.Parameter, output: str | None
) -> Path | None:
    """A report's --output FILE (`checked_output`), refusing a FILE spelled exactly as a report
    format: `-o json` means the format (as with kubectl), not a file named `json`. Such a file
    is still written when named as a path: `-o ./json`."""
    if output in FORMATS:
        raise click.BadParameter(
            f"{output!r} is a report format, not a file: use --format {output} to print the "
            f"report as {output}, or --output ./{output} for a file of that name."
        )
    return checked_output(ctx, param, output)


def output_option(
    help_text: str, callback: Callable[..., Path | None] = checked_output
) -> Callable[[Command], Command]:
    return click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        callback=callback,
        help=help_text,
    )


def _no_dry_run(ctx: click.Context, param: click.Parameter, dry_run: bool) -> None:
    """`commit --dry-run`, a habit from other tools: the command that changes nothing is
    `preview`."""
    if dry_run:
        raise click.UsageError(
            "there is no --dry-run: `pulumi-claim preview` with the same options shows what "
            "commit would do, changing nothing."
        )


def _org_list(ctx: click.Context, param: click.Parameter, orgs: str | None) -> tuple[str, ...]:
    """ORG[,ORG...]: each org once, in the order given; an empty name is refused."""
    if orgs is None:
        return ()
    names = [org.strip() for org in orgs.split(",")]
    if not all(names):
        raise click.BadParameter(f"{orgs!r} names an empty org: write ORG[,ORG...].")
    return tuple(dict.fromkeys(names))


def _org_option(
    flag: str, field: str, help_text: str, *, required: bool = True
) -> Callable[[Command], Command]:
    return click.option(flag, field, required=required, metavar="ORG", help=help_text)


OPTIONS: dict[str, Callable[[Command], Command]] = {
    "from": _org_option("--from", "source_org", "Org to move from."),
    "to": _org_option("--to", "destination_org", "Org to move into."),
    "from-or-run": _org_option(
        "--from", "source_org", "Org the claim moves from (or --run).", required=False
    ),
    "to-or-run": _org_option(
        "--to", "destination_org", "Org the claim moves into (or --run).", required=False
    ),
    "source-backend": click.option(
        "--source-backend",
        metavar="URL",
        help="Where the source org lives, if not at the API URL: another Pulumi Cloud or a "
        "self-managed backend such as file:///path (org `organization`). migrate only.",
    ),
    "destination-backend": click.option(
        "--destination-backend",
        metavar="URL",
        help="Where the destination org lives, if not at the API URL. migrate only.",
    ),
    "resolutions": click.option(
        "--resolutions",
        "-r",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Resolution map (YAML or JSON) renaming entities whose names collide.",
    ),
    "strategy": click.option(
        "--strategy",
        type=click.Choice(STRATEGY_NAMES),
        default="auto",
        show_default=True,
        help="How stacks move: claim-api (the service's own claim, with the agent's claim "
        "token and a claimer with any role in the destination; all or nothing; keeps "
        "history), transfer (REST transfer; one identity admin of both orgs; keeps history), "
        "migrate (copy the state with two identities through the pulumi CLI; works across "
        "backends; keeps only the latest state); auto: claim-api when a claim token is at "
        "hand, else transfer when the credentials allow it, else migrate.",
    ),
    "environments": click.option(
        "--environments",
        type=click.Choice(ENVIRONMENT_CHOICES),
        default="report",
        show_default=True,
        help="What becomes of the source's ESC environments with transfer and migrate: report "
        "them as failures, with what to do by hand; or copy each into the destination (its "
        "decrypted definition written there, imports pointed at the copies, tags copied, "
        "verified; the map's environment renames apply). With claim-api: those the service "
        "cannot claim are copied, then removed from the agent's org (as the agent: set "
        "PULUMI_CLAIM_SOURCE_TOKEN to its token) before the claim.",
    ),
    "reference-orgs": click.option(
        "--reference-orgs",
        metavar="ORG[,ORG...]",
        callback=_org_list,
        help="Other orgs (of the destination's identity) whose stacks may hold "
        "StackReferences to the moved stacks: they are searched too, and what breaks is "
        "reported (the source and destination orgs always are). An org the identity has no "
        "role in is refused.",
    ),
    "claim-file": click.option(
        "--claim-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The agent's agent-claim.json (the pulumi CLI writes it at sign-up), the "
        "PULUMI_EPHEMERAL_AGENT_ACCOUNT block it printed saved to a file, or a file holding the "
        "claim link, to read the claim token from (default: PULUMI_CLAIM_TOKEN, else "
        "/tmp/.pulumi/agent-claim.json when it exists).",
    ),
    "claim-url": click.option(
        "--claim-url",
        metavar="URL",
        help="The agent's claim link, as the pulumi CLI prints it after sign-up "
        "(https://app.pulumi.com/claim/<claimToken>), to take the claim token from; a link of "
        "another service than the API URL's is refused. The process list shows it to the "
        "machine's other users: PULUMI_CLAIM_TOKEN and --claim-file take a link too.",
    ),
    "delete-source": click.option(
        "--delete-source",
        is_flag=True,
        help="migrate: remove each source stack once its copy is verified (the resources are "
        "not destroyed; the destination stack manages them). With --environments copy: remove "
        "the source environments once every copy is verified.",
    ),
    "yes": click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
    "break-lock": click.option(
        "--break-lock",
        is_flag=True,
        help="Take the source org's lock from a run that is stale or left the org unfinished.",
    ),
    "new-run": click.option(
        "--new-run",
        is_flag=True,
        help="Plan afresh, even when the same commit ran before (finished or not).",
    ),
    "concurrency": click.option(
        "--concurrency",
        type=click.IntRange(1, 64),
        help="The most calls made at once (the client starts at 16 or this, if lower, and "
        "halves on a 429 or slower answers), and with migrate stacks at once; default 16 "
        "(migrate through the pulumi CLI: 4).",
    ),
    "claim-wait": click.option(
        "--claim-wait",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="claim-api: how long to follow the claim the service runs before reporting the "
        "stacks not landed yet as of unknown outcome (the same command follows it further); "
        "default 300.",
    ),
    "migrate-via": click.option(
        "--migrate-via",
        type=click.Choice(MIGRATE_VIA),
        help="migrate: how both sides are reached. rest (the default when both are Pulumi "
        "Cloud): every step is a REST call, no pulumi process. cli: through the pulumi CLI, "
        "as with a self-managed backend (which only cli reaches).",
    ),
    "no-landing": click.option(
        "--no-landing",
        is_flag=True,
        help="Skip the landing program that the resolution map's landing: section asks for "
        "(tags and team permissions on what moved).",
    ),
    "log-format": click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        show_default=True,
        help="text: progress for people on stderr; json: one JSON object per line on stdout "
        "(every progress event, then the claim's outcome), for log collectors.",
    ),
    "output": output_option(
        "Write the report to FILE instead of printing it.", callback=_checked_report_output
    ),
    "format": click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        help="Report format (default: table on a terminal, json otherwise; "
        "with --output, from the file's suffix).",
    ),
    "json": click.option("--json", "fmt", flag_value="json", help="Short for --format json."),
    "dry-run": click.option(
        "--dry-run",
        is_flag=True,
        hidden=True,
        is_eager=True,
        expose_value=False,
        callback=_no_dry_run,
    ),
}
"""Every option more than one command takes (or that `preview` and `commit` share), by name."""

BACKENDS = ("source-backend", "destination-backend")
TARGET = ("from", "to", *BACKENDS)
NAMING = ("resolutions", "strategy", "environments", "claim-file", "claim-url")
"""What, besides the orgs, says which names a claim changes."""
CLAIM = (*TARGET, *NAMING)
"""What `preview` and `commit` both take."""
REPORT = ("format", "json", "output")


def options(*names: str) -> Callable[[Command], Command]:
    """The options of `OPTIONS` named `names`, in that order."""

    def decorate(command: Command) -> Command:
        for name in reversed(names):
            command = OPTIONS[name](command)
        return command

    return decorate


def option_name(field: str) -> str:
    """How the command line names the choice a library error calls `field` (`ChoiceError`):
    `migrate_via` is `--migrate-via`, the orgs are `--from` and `--to`."""
    return _ORG_OPTIONS.get(field) or "--" + field.replace("_", "-")


_ORG_OPTIONS = {"source_org": "--from", "destination_org": "--to"}
"""The choices whose option is not named after their field (`OPTIONS`)."""


def in_cli_words(error: ClaimError) -> ClaimError:
    """`error`, naming the choices it is about as the command line does (`option_name`)."""
    return error.spelled(option_name) if isinstance(error, ChoiceError) else error
