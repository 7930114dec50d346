"""Resource search: what `GET /api/orgs/{org}/search/resourcesv2` answers, a page of an
org's resources found by a query."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from toolkit.models.wire import WireModel


class ResourceResult(WireModel):
    """One resource the search found. Two of its keys are snake_case on the wire
    (`parent_urn`, `provider_urn`); `properties` only with `properties=true`."""

    module: str
    package: str
    type: str | None = None
    urn: str | None = None
    name: str | None = None
    id: str | None = None
    project: str | None = None
    stack: str | None = None
    custom: bool = False
    external: bool = False
    delete: bool = False
    protected: bool = False
    created: str | None = None
    modified: str | None = None
    dependencies: list[str] | None = None
    parent_urn: str | None = Field(default=None, alias="parent_urn")
    provider_urn: str | None = Field(default=None, alias="provider_urn")
    managed: str | None = None
    properties: Any = None
    """The inputs and outputs, an object on the wire; read defensively."""


class ResourceSearchPagination(WireModel):
    """Links to the pages around this one, and the cursor that resumes after it."""

    previous: str | None = None
    next: str | None = None
    cursor: str | None = None


class ResourceSearchResult(WireModel):
    total: int = 0
    resources: list[ResourceResult] = Field(default_factory=list)
    pagination: ResourceSearchPagination | None = None

    @field_validator("resources", mode="before")
    @classmethod
    def _null_is_empty(cls, resources: object) -> object:
        """`resources` is optional in the service's schema: `null` is an empty page."""
        return [] if resources is None else resources
