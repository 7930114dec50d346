"""Which strategy a claim runs: as asked, or as `auto` picks it from the claim's sides and who
the claiming identity is (its `GET /api/user`, shared with the checks of the claim); and how
migrate reaches both sides (over REST, or through the pulumi CLI)."""

from __future__ import annotations

from toolkit.checks_first import CurrentUsers
from toolkit.choices import MigrateVia, Strategy
from toolkit.credentials import BackendIdentity
from toolkit.errors import ChoiceError, InvalidInputError
from toolkit.sides import Sides

StrategyChoice = Strategy | None
"""A strategy by name, or None to let `choose_strategy` pick one."""


async def strategy_for(
    sides: Sides, users: CurrentUsers, strategy: StrategyChoice
) -> tuple[Strategy, str]:
    """`strategy` as asked, or the one `choose_strategy` picks, with why."""
    if strategy is not None:
        return strategy, "as asked"
    return await choose_strategy(sides, users)


def auto_claims_by_token(sides: Sides) -> bool:
    """Whether `auto` picks claim-api: a claim token at hand, both orgs on one service."""
    return sides.claim_token is not None and sides.one_service


async def choose_strategy(sides: Sides, users: CurrentUsers) -> tuple[Strategy, str]:
    """The strategy `auto` picks, and why, in words for the preview.

    `claim-api` when a claim token is at hand; else `transfer` when one Pulumi Cloud holds both
    orgs and the claiming identity administers both; `migrate` otherwise (it needs only read
    access to the source). Who the claiming identity is comes from `users`, shared with the
    checks.
    """
    if sides.claim_token and auto_claims_by_token(sides):
        return "claim-api", f"a claim token is at hand ({sides.claim_token.origin})"
    if not sides.one_service:
        return "migrate", "the two orgs are on different backends"
    user = await users.of(sides.destination)
    roles = {org.name: org.role for org in user.organizations}
    orgs = (sides.source_org, sides.destination_org)
    if all(roles.get(org) == "admin" for org in orgs):
        return "transfer", f"{user.github_login} administers both {orgs[0]} and {orgs[1]}"
    return "migrate", f"{user.github_login} does not administer both {orgs[0]} and {orgs[1]}"


def check_backends(sides: Sides, chosen: Strategy) -> None:
    if chosen == "migrate":
        return
    if not sides.one_service:
        raise InvalidInputError(
            f"the {chosen} strategy moves stacks within one Pulumi Cloud only.",
            hint="Use --strategy migrate to move stacks between backends.",
        )


def choose_migrate_via(
    source: BackendIdentity, destination: BackendIdentity, asked: MigrateVia | None
) -> MigrateVia:
    """`asked`, else `rest` when both sides are Pulumi Cloud, else `cli`; `rest` with a
    self-managed side is an InvalidInputError."""
    both_cloud = source.is_cloud and destination.is_cloud
    if asked == "rest" and not both_cloud:
        raise ChoiceError(
            "{migrate_via} rest needs both sides on Pulumi Cloud; a self-managed backend "
            "({url}) is reached through the pulumi CLI only",
            hint="Leave out {migrate_via} (or pass {migrate_via} cli).",
            values={"url": (destination if source.is_cloud else source).url},
        )
    return asked or ("rest" if both_cloud else "cli")


def check_migrate_via(
    strategy: str | None,
    source: BackendIdentity,
    destination: BackendIdentity,
    asked: MigrateVia | None,
) -> None:
    """Refuse `asked` where it cannot apply, before a run starts: with a strategy other than
    migrate (None: auto, which may choose migrate), or `rest` with a self-managed side."""
    if asked is None:
        return
    if strategy not in (None, "migrate"):
        raise ChoiceError(
            "{migrate_via} applies to {strategy} migrate only ({chosen} copies no state)",
            hint="Leave out {migrate_via}, or use {strategy} migrate.",
            values={"chosen": str(strategy)},
        )
    choose_migrate_via(source, destination, asked)
