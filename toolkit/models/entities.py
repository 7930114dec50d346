"""Transfer entities: what an org owns (stacks, ESC environments, Insights accounts, registry
packages), each in a plain and a rename form, discriminated on `kind`; and a failure to move one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from toolkit.models.wire import WireModel


class TransferEntityStack(WireModel):
    kind: Literal["TransferEntityStack"] = "TransferEntityStack"
    project_name: str
    stack_name: str
    resource_count: int = 0
    last_update: AwareDatetime | None = None


class TransferEntityStackRename(WireModel):
    kind: Literal["TransferEntityStackRename"] = "TransferEntityStackRename"
    project_name: str
    stack_name: str
    resource_count: int = 0
    last_update: AwareDatetime | None = None
    rename_as: TransferEntityStack


class TransferEntityEnvironment(WireModel):
    kind: Literal["TransferEntityEnvironment"] = "TransferEntityEnvironment"
    project_name: str
    environment_name: str


class TransferEntityEnvironmentRename(WireModel):
    kind: Literal["TransferEntityEnvironmentRename"] = "TransferEntityEnvironmentRename"
    project_name: str
    environment_name: str
    rename_as: TransferEntityEnvironment


class TransferEntityInsightsAccount(WireModel):
    kind: Literal["TransferEntityInsightsAccount"] = "TransferEntityInsightsAccount"
    name: str


class TransferEntityInsightsAccountRename(WireModel):
    kind: Literal["TransferEntityInsightsAccountRename"] = "TransferEntityInsightsAccountRename"
    name: str
    rename_as: TransferEntityInsightsAccount


class TransferEntityRegistryPackage(WireModel):
    kind: Literal["TransferEntityRegistryPackage"] = "TransferEntityRegistryPackage"
    source: str
    publisher: str
    name: str


class TransferEntityRegistryPackageRename(WireModel):
    kind: Literal["TransferEntityRegistryPackageRename"] = "TransferEntityRegistryPackageRename"
    source: str
    publisher: str
    name: str
    rename_as: TransferEntityRegistryPackage


BaseEntity = (
    TransferEntityStack
    | TransferEntityEnvironment
    | TransferEntityInsightsAccount
    | TransferEntityRegistryPackage
)
"""An entity as it exists in an org: the four base kinds."""


RenameEntity = (
    TransferEntityStackRename
    | TransferEntityEnvironmentRename
    | TransferEntityInsightsAccountRename
    | TransferEntityRegistryPackageRename
)
"""An entity together with the name it should take: the four `*Rename` kinds."""


TransferEntity = Annotated[BaseEntity | RenameEntity, Field(discriminator="kind")]


class TransferEntityFailure(WireModel):
    entity: TransferEntity
    failure_details: str
