"""The commands of a claim: preview, commit, resolve, status."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.choices import EnvironmentChoice, Format, LogFormat, MigrateVia, StrategyName
from toolkit.cli.imports import heavy_imports
from toolkit.cli.options import CLAIM, REPORT, TARGET, in_cli_words, options, output_option
from toolkit.cli.render import (
    emit,
    report,
    report_format,
    run_context,
    runs_listing,
    say,
    say_summary,
    table_on_terminal,
    write_file,
)
from toolkit.cli.settings import Settings, pass_settings
from toolkit.outcomes import run_exit_code

if TYPE_CHECKING:
    from toolkit.commands import ClaimPlan, ClaimRequest, Preview, RunOutcome, StopSignal
    from toolkit.credentials import Credentials
    from toolkit.progress import ProgressCallback
    from toolkit.run_log import JsonLog


@click.command()
@options(*CLAIM, "reference-orgs", "migrate-via", "no-landing", *REPORT)
@pass_settings
def preview(
    settings: Settings,
    source_org: str,
    destination_org: str,
    source_backend: str | None,
    destination_backend: str | None,
    resolutions: Path | None,
    strategy: StrategyName,
    environments: EnvironmentChoice,
    claim_file: Path | None,
    claim_url: str | None,
    reference_orgs: tuple[str, ...],
    migrate_via: MigrateVia | None,
    no_landing: bool,
    output: Path | None,
    fmt: Format | None,
) -> None:
    """Show what a commit would do, changing nothing.

    Exit 0 when a commit would fully succeed, 3 when it would be blocked (unresolved
    conflicts; with claim-api, anything the service cannot move), 4 when some entities would
    be reported as failures, or the landing would fail.
    """
    with heavy_imports():
        from toolkit import commands
        from toolkit.progress_display import Planning

    target = settings.target(source_org, destination_org, source_backend, destination_backend)
    credentials = settings.credentials(target, claim_file, claim_url)
    request = commands.claim_request(
        target,
        resolutions,
        strategy=strategy,
        environments=environments,
        migrate_via=migrate_via,
        landing=not no_landing,
        reference_orgs=reference_orgs,
    )
    with Planning(settings.spinner_console()):
        result = commands.preview(credentials, request)
    context = report(
        settings,
        result.document,
        result.plan,
        "preview",
        fmt,
        output,
        landing=result.landing,
        landing_error=result.landing_error,
    )
    _say_preview_landing(result)
    on_terminal = table_on_terminal(fmt, output)
    say_summary(
        settings, result.document, context, result.exit_code, output, on_terminal=on_terminal
    )
    sys.exit(result.exit_code)


def _say_preview_landing(result: Preview) -> None:
    """What landing would change after the moves (on stderr, beside the report), or why it
    would fail."""
    from toolkit.commands import landing_failure

    if result.landing_error is not None:
        say(landing_failure(result.landing_error))
    if result.landing is None:
        return
    where = " (a new stack, previewed locally)" if result.landing.local_preview else ""
    say(f"landing {result.landing.stack}{where}: {result.landing.summary()}")
    for step in result.landing.steps:
        say(f"  {step.op:<8} {step.type} {step.name}")


@click.command()
@options(
    *CLAIM,
    "reference-orgs",
    "delete-source",
    "yes",
    "break-lock",
    "new-run",
    "concurrency",
    "claim-wait",
    "migrate-via",
    "no-landing",
    "log-format",
    *REPORT,
    "dry-run",
)
@pass_settings
def commit(
    settings: Settings,
    source_org: str,
    destination_org: str,
    source_backend: str | None,
    destination_backend: str | None,
    resolutions: Path | None,
    strategy: StrategyName,
    environments: EnvironmentChoice,
    claim_file: Path | None,
    claim_url: str | None,
    reference_orgs: tuple[str, ...],
    delete_source: bool,
    yes: bool,
    break_lock: bool,
    new_run: bool,
    concurrency: int | None,
    claim_wait: float | None,
    migrate_via: MigrateVia | None,
    no_landing: bool,
    log_format: LogFormat,
    output: Path | None,
    fmt: Format | None,
) -> None:
    """Move the stacks. A blocked claim (unresolved conflicts; with claim-api, anything the
    service cannot move) changes nothing (exit 3).

    Running the same commit again continues it: after a failure, a kill or Ctrl-C, it finds
    each stack where the last run left it and does only what is left; once finished, it does
    nothing and says so. One run per source org at a time.

    With a landing: section in the resolution map, the landing program then tags what moved
    and grants the teams it names access (--no-landing skips it); a landing that fails undoes
    no move (exit 4), and running the same command again retries it.

    With --log-format json, stdout holds only JSON lines: claim-started, run-started, one per
    progress event, and a last claim-finished (exit code, outcome, counts, run id); the report
    is written only with --output.
    """
    with heavy_imports():
        from toolkit import commands
        from toolkit.errors import ClaimError
        from toolkit.outcomes import summarize_error
        from toolkit.run_log import JsonLog

    target = settings.target(source_org, destination_org, source_backend, destination_backend)
    if log_format == "json" and fmt and not output:
        raise click.UsageError(
            "--log-format json writes JSON lines to stdout; write the report with --output FILE."
        )
    log: JsonLog | None = None
    # Ctrl-C and SIGTERM stop the run, up to the exit: the run decides the outcome, once.
    with commands.stopping(on_stop=_say_stopping) as stop:
        try:
            database = settings.database()
            runs_dir = commands.runs_folder(writable=True)
            credentials = settings.credentials(target, claim_file, claim_url)
            if log_format == "json":
                log = JsonLog(click.echo, credentials.secrets)
                log.claim_started(None, target, strategy)
            request = commands.claim_request(
                target,
                resolutions,
                strategy=strategy,
                environments=environments,
                migrate_via=migrate_via,
                landing=not no_landing,
                reference_orgs=reference_orgs,
                delete_source=delete_source,
                concurrency=concurrency,
                claim_wait=claim_wait,
            )
            outcome = _commit(
                settings,
                credentials,
                request,
                runs_dir,
                database,
                yes,
                break_lock,
                new_run,
                log,
                stop,
            )
        except ClaimError as error:
            if log_format == "json":
                (log or JsonLog(click.echo)).claim_finished(
                    summarize_error(None, in_cli_words(error))
                )
            raise
        with commands.signals_ignored():
            _report_outcome(settings, outcome, log, fmt, output, stopped=stop.requested)


def _commit(
    settings: Settings,
    credentials: Credentials,
    request: ClaimRequest,
    runs_dir: Path,
    database: str | None,
    yes: bool,
    break_lock: bool,
    new_run: bool,
    log: JsonLog | None,
    stop: StopSignal,
) -> RunOutcome:
    """The commit itself, its progress on stderr, or with `log` as JSON lines."""
    from toolkit import commands
    from toolkit.progress_display import Planning, ProgressDisplay

    console = settings.progress_console()
    planning = Planning(console)

    def confirm(plan: ClaimPlan, resumed: bool) -> None:
        planning.done()
        if (plan.moves or plan.environment_copies) and not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("refusing to commit without --yes when not on a terminal.")
            question = commands.confirmation(
                plan, delete_source=request.delete_source, resumed=resumed
            )
            click.confirm(question, abort=True, err=True)

    def announce(run_id: str, resumed: bool) -> None:
        planning.done()
        console.print(f"{'continuing' if resumed else 'run'} {run_id}")
        if log is not None:
            log.run_started(None, run_id, resumed)

    with contextlib.ExitStack() as displayed:
        displayed.enter_context(planning)
        on_progress: ProgressCallback
        if log is None:
            on_progress = displayed.enter_context(ProgressDisplay(console))
        else:
            on_progress = functools.partial(log.progress, None)
        outcome = commands.commit(
            credentials,
            request,
            runs_dir=runs_dir,
            database=database,
            on_progress=on_progress,
            break_lock=break_lock,
            new_run=new_run,
            stop=stop,
            confirm=confirm,
            on_run=announce,
        )
    if outcome.already_finished:
        console.print(
            f"nothing to do: run {outcome.run_id} finished this commit already "
            "(pass --new-run to plan it afresh)"
        )
    return outcome


def _report_outcome(
    settings: Settings,
    outcome: RunOutcome,
    log: JsonLog | None,
    fmt: Format | None,
    output: Path | None,
    *,
    stopped: bool,
) -> None:
    """Report what the run decided, and exit with its code (`stopped`: a stop was asked)."""
    from toolkit.outcomes import summarize_run

    context = run_context(
        outcome.plan,
        "commit",
        outcome.document,
        run_id=outcome.run_id,
        landing=outcome.landing,
        landing_error=outcome.landing_error,
    )
    if log is None or output:
        emit(settings, outcome.document, context, fmt, output)
    if log is not None:
        log.claim_finished(summarize_run(None, outcome))
    else:
        _say_landing(outcome)
    if outcome.interrupted:
        click.echo(
            f"interrupted: run {outcome.run_id} stopped; calls in flight finished and are "
            "recorded. Run the same command again to continue it.",
            err=True,
        )
    elif stopped:
        click.echo(
            f"not interrupted: run {outcome.run_id} had made its last call before it could "
            "stop; the outcome above stands.",
            err=True,
        )
    code = run_exit_code(outcome)
    on_terminal = log is None and table_on_terminal(fmt, output)
    say_summary(settings, outcome.document, context, code, output, on_terminal=on_terminal)
    sys.exit(code)


def _say_stopping() -> None:
    """What a commit says on Ctrl-C or SIGTERM; from the signal handler, hence `os.write` to
    standard error's file descriptor."""
    os.write(2, b"stopping: no new call starts; the calls under way finish and are recorded\n")


def _say_landing(outcome: RunOutcome) -> None:
    """The commit's landing on stderr, beside the report: what changed, or why it failed."""
    from toolkit.commands import landing_failure
    from toolkit.outcomes import landing_line

    line = landing_line(outcome)
    if line is None:
        return
    if outcome.landing_error is not None:
        say(landing_failure(outcome.landing_error))
        return
    say(line)
    for step in outcome.landing.steps if outcome.landing else []:
        say(f"  {step.op:<8} {step.type} {step.name}")


@click.command()
@options(*TARGET, "claim-file", "claim-url")
@click.option(
    "--suffix",
    default="-agent",
    show_default=True,
    help="Appended to each conflicting name to make the new name.",
)
@output_option("Write the map to FILE (default: print it).")
@click.option("--force", is_flag=True, help="Overwrite the --output file when it exists.")
@pass_settings
def resolve(
    settings: Settings,
    source_org: str,
    destination_org: str,
    source_backend: str | None,
    destination_backend: str | None,
    claim_file: Path | None,
    claim_url: str | None,
    suffix: str,
    output: Path | None,
    force: bool,
) -> None:
    """Write a resolution map that renames today's conflicts (edit it, then pass it back).

    With a claim token, the conflicts are those the service's dry run of the claim reports.
    An existing --output file, which may hold edits, is kept unless --force.
    """
    with heavy_imports():
        from toolkit import commands
        from toolkit.errors import InvalidInputError

    if output and output.exists() and not force:
        raise InvalidInputError(
            f"{output} exists already; resolve does not overwrite a resolution map.",
            hint="Pass --force to overwrite it, or name another file with --output.",
        )
    target = settings.target(source_org, destination_org, source_backend, destination_backend)
    credentials = settings.credentials(target, claim_file, claim_url)
    result = commands.resolve(credentials, target, suffix=suffix)
    if output:
        write_file(output, result.text)
        settings.progress_console().print(
            f"wrote {len(result.resolution_map.renames)} rename(s) for {result.conflicts} "
            f"conflict(s) to {output}"
        )
    else:
        click.echo(result.text, nl=False)


@click.command()
@click.argument("run", required=False)
@click.option(
    "--list",
    "list_runs",
    is_flag=True,
    help="List the recorded runs instead, newest first (as a table or JSON).",
)
@options(*REPORT)
@pass_settings
def status(
    settings: Settings, run: str | None, list_runs: bool, output: Path | None, fmt: Format | None
) -> None:
    """Show what a commit did (or was doing when it stopped): the newest run, or RUN.

    With a landing, its latest outcome too (on stderr beside a JSON report, which is the
    service's document). With --list, every recorded run instead: its id, orgs, strategy,
    state, exit code and age.

    Runs are kept in $PULUMI_CLAIM_RUNS_DIR (default: ~/.local/state/pulumi-claim/runs), or
    in the PostgreSQL database of --database-url / $PULUMI_CLAIM_DATABASE_URL.
    """
    with heavy_imports():
        from toolkit import commands

    if list_runs:
        _list_runs(run, output, fmt, settings.database())
        return
    result = commands.status(run, database=settings.database())
    emit(settings, result.document, result.context, fmt, output)
    if result.context.landing is not None and report_format(fmt, output) == "json":
        # The JSON report is the wire document: the landing goes beside it, as commit's does.
        say(f"landing: {result.context.landing}")
    say_summary(
        settings,
        result.document,
        result.context,
        result.exit_code,
        output,
        on_terminal=table_on_terminal(fmt, output),
        warnings_only=True,
    )
    sys.exit(result.exit_code)


def _list_runs(
    run: str | None, output: Path | None, fmt: Format | None, database: str | None
) -> None:
    """`status --list`: the runs, newest first, to `output` or stdout."""
    from datetime import UTC, datetime

    from toolkit import commands

    chosen = report_format(fmt, output)
    if run is not None or chosen not in ("table", "json"):
        raise click.UsageError(
            "--list lists every run as a table or JSON: name no RUN, and use --format table|json."
        )
    runs = commands.runs_list(database=database)
    if not runs and chosen == "table":
        say("no commit has been recorded yet (`pulumi-claim commit` records its run)")
        return
    text = runs_listing(runs, chosen, datetime.now(UTC))
    if output:
        write_file(output, text)
    else:
        click.echo(text, nl=False)
