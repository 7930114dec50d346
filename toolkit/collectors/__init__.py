"""Inventory of what an org owns, gathered from the service or from the Automation API."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.models import (
    BaseEntity,
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)


@dataclass(frozen=True)
class Inventory:
    """Everything one org owns, each entity in its wire form (its identity plus facts)."""

    org: str
    stacks: list[TransferEntityStack] = field(default_factory=list)
    environments: list[TransferEntityEnvironment] = field(default_factory=list)
    insights_accounts: list[TransferEntityInsightsAccount] = field(default_factory=list)
    registry_packages: list[TransferEntityRegistryPackage] = field(default_factory=list)

    @property
    def entities(self) -> list[BaseEntity]:
        return [
            *self.stacks,
            *self.environments,
            *self.insights_accounts,
            *self.registry_packages,
        ]
