"""The commands that run a local Pulumi Cloud: `emulator` serves one, `demo` claims on one."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from toolkit.cli.imports import heavy_imports
from toolkit.cli.options import checked_output
from toolkit.cli.render import stdout_console
from toolkit.cli.settings import Settings, pass_settings


def _fault_rates(
    ctx: click.Context, param: click.Parameter, specs: tuple[str, ...]
) -> dict[str, float]:
    """`--fault-rate KIND=RATE` options, as `FaultRates.rates`."""
    from toolkit.emulator.faults import parse_fault_rate

    rates: dict[str, float] = {}
    for spec in specs:
        try:
            kind, rate = parse_fault_rate(spec)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        rates[kind] = rate
    return rates


@click.command()
@click.option(
    "--world",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="World file (YAML or JSON) describing users, agents and orgs.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port; 0 picks a free one.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file for the state; reused if it exists (default: in memory).",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Items per page of lists that name no page size.",
)
@click.option(
    "--max-page-size",
    type=click.IntRange(min=1),
    help="The most items per page a list call may ask for (default: --page-size).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Added to every request.",
)
@click.option(
    "--fault-rate",
    "fault_rates",
    multiple=True,
    metavar="KIND=RATE",
    callback=_fault_rates,
    help="Fail this fraction (0-1) of requests at random; KIND: 500, 502, 503, 429, drop "
    "(the connection, before the change), drop-after-apply (after it). Repeatable.",
)
@click.option("--fault-seed", type=int, help="Seed of the random faults, to repeat a run.")
@click.option(
    "--retry-after",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds in the Retry-After header of random 429 answers.",
)
@click.option(
    "--fault-method",
    default=".*",
    show_default=True,
    help="Regex: the methods random faults may hit.",
)
@click.option(
    "--fault-path", default=".*", show_default=True, help="Regex: the paths random faults may hit."
)
@click.option(
    "--signup-difficulty",
    type=click.IntRange(1, 256),
    help="Zero bits of agent sign-up's proof of work (default: the world's, else 12).",
)
@click.option(
    "--claim-seconds-per-stack",
    type=click.FloatRange(min=0),
    help="Seconds a started claim takes to move each stack (default: the world's, else 0.02).",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Requests a second answered per token (per address without one); beyond it, 429 "
    "with Retry-After (default: the world's, else no limit).",
)
def emulator(
    world: Path,
    host: str,
    port: int,
    db: Path | None,
    page_size: int,
    max_page_size: int | None,
    latency_ms: float,
    fault_rates: dict[str, float],
    fault_seed: int | None,
    retry_after: float,
    fault_method: str,
    fault_path: str,
    signup_difficulty: int | None,
    claim_seconds_per_stack: float | None,
    rate_limit: float | None,
) -> None:
    """Serve a local Pulumi Cloud for rehearsals and tests; the first line says its URL.

    Random faults (--fault-rate) hit service calls only: never agent sign-up nor the
    control API under /_emulator/, which sets them too and restarts the server
    (docs/emulator.md).
    """
    with heavy_imports():
        from pydantic import ValidationError

        from toolkit.emulator.faults import FaultRates
        from toolkit.emulator.server import serve_forever

    if max_page_size is not None and max_page_size < page_size:
        raise click.UsageError(
            f"--max-page-size ({max_page_size}) must be at least --page-size ({page_size})."
        )
    rates = None
    if fault_rates:
        try:
            rates = FaultRates.model_validate(
                {
                    "seed": fault_seed,
                    "rates": fault_rates,
                    "retryAfter": retry_after,
                    "method": fault_method,
                    "path": fault_path,
                }
            )
        except ValidationError as exc:
            options = {"method": "--fault-method", "path": "--fault-path"}
            problems = "; ".join(
                f"{options.get(str(error['loc'][0]) if error['loc'] else '', '--fault-rate')}: "
                f"{error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors()
            )
            raise click.UsageError(f"the fault options do not fit together: {problems}") from None
    serve_forever(
        world,
        host=host,
        port=port,
        db_path=str(db) if db else ":memory:",
        page_size=page_size,
        max_page_size=max_page_size,
        latency_ms=latency_ms,
        fault_rates=rates,
        signup_difficulty=signup_difficulty,
        claim_seconds_per_stack=claim_seconds_per_stack,
        rate_limit=rate_limit,
    )


@click.command()
@click.option(
    "--transfer",
    is_flag=True,
    help="Show the org-to-org move by an admin of both orgs instead of an agent's claim.",
)
@click.option(
    "--review-page",
    type=click.Path(dir_okay=False),
    callback=checked_output,
    metavar="FILE",
    help="Also write the first preview as the HTML review page a reviewer is sent, to FILE.",
)
@pass_settings
def demo(settings: Settings, transfer: bool, review_page: Path | None) -> None:
    """Run the whole flow against a built-in world on a local emulator; no account needed.

    An AI agent signs up an account and builds stacks; a member of the company's org claims the
    account with its claim link, renaming what collides.
    """
    with heavy_imports():
        from toolkit import commands

    out, progress = stdout_console(settings), settings.progress_console()
    sys.exit(commands.demo(out, progress, transfer=transfer, review_page=review_page))
