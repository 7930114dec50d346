"""What the landing program manages, as plain data: the toolkit builds it, the program
declares it, and its `landed` output carries it to the next run. (No Pulumi import here, so
the toolkit reads it without loading the Pulumi SDK.)"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TeamPermission = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class LandedStack:
    """A stack in the destination org (`project/stack`) and the tags it gets."""

    project: str
    stack: str
    tags: dict[str, str]


@dataclass(frozen=True)
class LandedEnvironment:
    project: str
    name: str


@dataclass(frozen=True)
class Landing:
    """Everything the program manages in `organization`; `teams` apply to every stack and
    environment."""

    organization: str
    stacks: list[LandedStack] = field(default_factory=list)
    environments: list[LandedEnvironment] = field(default_factory=list)
    teams: dict[str, TeamPermission] = field(default_factory=dict)

    def to_output(self) -> dict[str, Any]:
        """The `landed` output: this landing as plain JSON values."""
        return asdict(self)

    @classmethod
    def from_output(cls, value: Any) -> Landing:
        """A `Landing` from a `landed` output written by `to_output`."""
        return cls(
            organization=value["organization"],
            stacks=[LandedStack(**stack) for stack in value.get("stacks", [])],
            environments=[LandedEnvironment(**env) for env in value.get("environments", [])],
            teams=dict(value.get("teams", {})),
        )
