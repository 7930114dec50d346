"""`references`: a patch for the user's repository, renaming the names a claim changes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.choices import EnvironmentChoice, StrategyName
from toolkit.cli.imports import heavy_imports
from toolkit.cli.options import BACKENDS, NAMING, options, output_option
from toolkit.cli.render import say, write_file
from toolkit.cli.settings import Settings, pass_settings

if TYPE_CHECKING:
    from toolkit.repository_patch import RepositoryPatch

SKIPPED_SHOWN = 5
"""How many skipped files of one reason are named; the others are counted."""


@click.command()
@options("from-or-run", "to-or-run", *BACKENDS, *NAMING)
@click.option(
    "--run",
    "run_id",
    metavar="RUN",
    help="The names this finished commit changed, read from its journal (instead of --from, "
    "--to and the claim's options).",
)
@click.option(
    "--repo",
    required=True,
    type=click.Path(path_type=Path),
    help="The checkout to scan; only read, never written.",
)
@output_option("Write the patch to FILE (default: print it).")
@pass_settings
def references(
    settings: Settings,
    source_org: str | None,
    destination_org: str | None,
    source_backend: str | None,
    destination_backend: str | None,
    resolutions: Path | None,
    strategy: StrategyName,
    environments: EnvironmentChoice,
    claim_file: Path | None,
    claim_url: str | None,
    run_id: str | None,
    repo: Path,
    output: Path | None,
) -> None:
    """Write a patch that renames, in a checkout of your code, the stacks and environments a
    claim moves: their fully qualified old names (StackReference, --stack in CI files,
    scripts), renamed environments in the imports of Pulumi.<stack>.yaml, and that file itself
    when its stack is renamed. Short names it cannot be sure of are listed on stderr to check
    by hand.

    The claim is named as for preview (--from, --to, --resolutions, ...), or is the finished
    commit --run RUN. Review the patch, then apply it with `git apply`.
    """
    with heavy_imports():
        from toolkit import commands

    claim_options = (source_org, destination_org, source_backend, destination_backend)
    if run_id is not None:
        if any(claim_options) or resolutions or claim_file or claim_url:
            raise click.UsageError(
                "--run reads the names a finished commit changed: give it without --from, "
                "--to, --resolutions and the other options that name a claim."
            )
        patch = commands.run_references(run_id, repo, database=settings.database())
    elif source_org is None or destination_org is None:
        raise click.UsageError(
            "name the claim with --from ORG --to ORG (as for preview), or a finished commit "
            "with --run RUN."
        )
    else:
        target = settings.target(source_org, destination_org, source_backend, destination_backend)
        credentials = settings.credentials(target, claim_file, claim_url)
        request = commands.claim_request(
            target, resolutions, strategy=strategy, environments=environments, landing=False
        )
        patch = commands.planned_references(credentials, request, repo)
    _say_findings(patch, repo, output)
    if output:
        write_file(output, patch.diff)
    else:
        click.echo(patch.diff, nl=False)


def _say_findings(patch: RepositoryPatch, repo: Path, output: Path | None) -> None:
    """On stderr: the files not read, the short names to check by hand, what the patch
    changes."""
    reasons = sorted({skipped.reason for skipped in patch.skipped})
    for reason in reasons:
        paths = [skipped.path for skipped in patch.skipped if skipped.reason == reason]
        more = f" and {len(paths) - SKIPPED_SHOWN} more" if len(paths) > SKIPPED_SHOWN else ""
        say(f"skipped {len(paths)} file(s), {reason}: {', '.join(paths[:SKIPPED_SHOWN])}{more}")
    for found in patch.check_by_hand:
        say(f"check by hand: {found.describe()}")
    if not patch.changed:
        say(f"nothing to rename: no old name of a moved stack or environment in {repo}")
        return
    where = f"written to {output}" if output else "on stdout"
    say(
        f"patch {where}: {len(patch.changed)} file(s) to change; review it, then apply it in "
        f"{repo} with `git apply`"
    )
