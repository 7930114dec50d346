"""The base of every wire shape, and the error body every non-2xx answer carries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of every wire shape: camelCase aliases, fields by either name, unknown keys kept out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def to_wire(self) -> dict[str, object]:
        """JSON-ready dict with the service's field names, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ErrorResponse(WireModel):
    """The body of every non-2xx answer from the service."""

    code: int
    message: str
