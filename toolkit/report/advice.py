"""What a report tells the user to do about an entity that blocks a claim (pure): a conflict
is renamed away in the resolution map; an entity the service cannot claim leaves the agent's org
first, copied or noted where it can be recreated."""

from __future__ import annotations

from toolkit.entities import EntityKind, describe, display_name, kind_of
from toolkit.models import BaseEntity, RenameEntity


def unblocking_step(
    entity: BaseEntity | RenameEntity, *, conflict: bool, source_org: str, destination_org: str
) -> str:
    """What the user can do about an entity that blocks a claim, before claiming again."""
    advice = unblocking_advice(
        kind_of(entity),
        conflict=conflict,
        name=display_name(entity),
        source_org=source_org,
        destination_org=destination_org,
    )
    return f"{describe(entity)}: {advice}"


def unblocking_advice(
    kind: EntityKind, *, conflict: bool, name: str, source_org: str, destination_org: str
) -> str:
    """What to do about a blocking entity of `kind` named `name` (a placeholder such as
    `<name>` gives the advice shared by every entity of the kind, for a grouped report).

    A conflict is renamed away in the resolution map. An entity the service cannot claim (a
    failure) has to leave the agent's org first, acting as the agent (its own access token):
    copied or noted where it can be recreated in the destination, then removed.
    """
    if conflict:
        return (
            f"the name is taken in {destination_org}; rename it in the resolution map "
            "(pulumi-claim resolve writes one) and pass the map with --resolutions"
        )
    match kind.wire_kind:
        case "TransferEntityEnvironment":
            return (
                "claim with --environments copy and PULUMI_CLAIM_SOURCE_TOKEN set to "
                "the agent's token (it is copied, verified and removed from the agent's org "
                f"before the claim), or copy it by hand first (esc env get {source_org}/{name} "
                "shows its definition; "
                f"esc env init {destination_org}/{name}, then esc env edit "
                f"{destination_org}/{name} to paste it, with secret values from esc env get "
                f"--show-secrets), then remove it from the agent's org (esc env rm "
                f"{source_org}/{name}) and claim again"
            )
        case "TransferEntityInsightsAccount":
            return (
                f"remove it in {source_org} before claiming (Pulumi Cloud console, "
                f"Insights > Accounts, as the agent), claim again, then add it in "
                f"{destination_org} with the same cloud credentials"
            )
        case "TransferEntityRegistryPackage":
            return (
                f"remove it in {source_org} before claiming (Pulumi Cloud console, "
                f"Registry, as the agent), claim again, then publish it in {destination_org} "
                f"(pulumi package publish <schema> --publisher {destination_org})"
            )
        case _:
            return (
                f"the service cannot claim it; copy it first (pulumi-claim commit "
                f"--strategy migrate) or remove it in {source_org} (pulumi stack rm "
                f"{source_org}/{name}), then claim again"
            )
