"""An org the claim names must be one its token can see: checked once, before planning, so a
misspelled `--to` (or `--from`) gets the orgs the token sees and a did-you-mean, rather than
a 404 from whichever listing asks first."""

from __future__ import annotations

from toolkit.checks_first import CurrentUsers, checked_first, nothing
from toolkit.credentials import BackendIdentity
from toolkit.errors import ChoiceError, did_you_mean
from toolkit.models import User
from toolkit.sides import Sides


class UnknownOrgError(ChoiceError):
    """A claim names an org its token cannot see; the choice (`{destination_org}` or
    `{source_org}`) is named as each front end spells it."""


async def require_known_orgs(sides: Sides, users: CurrentUsers, *, claim_api: bool) -> None:
    """Refuse a destination org that the destination token cannot see, and a source org that
    the source token cannot see, before anything planned from their listings is shown or
    done (`toolkit.checks_first`: the two checks start at once, the destination's error comes
    first). With `claim_api` the claim token stands for the source org (the service checks
    that it claims that org) and any role in the destination will do; a self-managed backend
    has no orgs to list. Neither is checked here."""
    destination, source = sides.destination, sides.source
    await checked_first(
        require_visible(
            users, destination, sides.destination_org, "destination_org", claiming=claim_api
        )
        if destination.is_cloud
        else nothing(),
        require_visible(users, source, sides.source_org, "source_org")
        if source.is_cloud and not claim_api
        else nothing(),
    )


async def require_visible(
    users: CurrentUsers,
    identity: BackendIdentity,
    org: str,
    choice: str,
    *,
    claiming: bool = False,
) -> None:
    """`org` is among those `identity` has a role in; else the error, which names them. The
    service does not say whether an org exists to those outside it, so neither does this.
    `claiming`: the identity claims an agent's account into `org`, with any role in it."""
    user = await users.of(identity)
    visible = visible_orgs(user)
    if user.site_admin or org in visible or org == user.github_login:
        return
    raise UnknownOrgError(
        f"{{{choice}}} {{org}}: {{login}} has no role in {{org}}{{close}}",
        hint="The orgs {login} has a role in: {listing}. Name one of them, or use the token "
        "of a member of {org}"
        + (
            " (any role will do). The agent's own token cannot claim its account."
            if claiming
            else "."
        ),
        values={
            "org": org,
            "login": user.github_login,
            "close": did_you_mean(org, visible),
            "listing": ", ".join(visible) if visible else "none",
        },
    )


def visible_orgs(user: User) -> list[str]:
    """The orgs `user` has a role in, and the org an org token is for, sorted. (A user's own
    account, named as its login, is not listed: it holds no org's stacks.)"""
    names = {org.name for org in user.organizations}
    if user.token_info is not None and user.token_info.organization:
        names.add(user.token_info.organization)
    return sorted(names)
