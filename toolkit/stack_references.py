"""Stack references as the service holds them: a `pulumi:pulumi:StackReference` resource in a
stack's latest state names another stack, as its program wrote the name."""

from __future__ import annotations

from dataclasses import dataclass

STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"


@dataclass(frozen=True)
class StackReferenceFound:
    """One StackReference resource: the stack that holds it and the name it reads, as written
    (`org/project/stack`, `org/stack` in the holder's project, or `stack` in the holder's org
    and project)."""

    org: str
    project: str
    stack: str
    name: str
