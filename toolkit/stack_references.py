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


def referenced_name(*sources: object) -> str | None:
    """The stack name a StackReference reads: the `name` of the first of `sources` (its
    inputs, its outputs, or the search's properties) that has one as a string."""
    for source in sources:
        name = source.get("name") if isinstance(source, dict) else None
        if isinstance(name, str) and name:
            return name
    return None


def resource_id(resource: dict[str, object]) -> dict[str, object]:
    """A resource's ID as a source of `referenced_name`: the CLI gives a StackReference the
    name it reads as its ID."""
    return {"name": resource.get("id")}


def references_in_state(
    org: str, project: str, stack: str, deployment: object
) -> list[StackReferenceFound]:
    """The StackReferences of one stack's exported state (the `deployment` of an untyped
    deployment), each with the name it reads (its inputs', else its outputs', else its ID,
    which the CLI sets to the name)."""
    resources = deployment.get("resources") if isinstance(deployment, dict) else None
    found: list[StackReferenceFound] = []
    for resource in resources if isinstance(resources, list) else []:
        if not isinstance(resource, dict) or resource.get("type") != STACK_REFERENCE_TYPE:
            continue
        name = referenced_name(
            resource.get("inputs"), resource.get("outputs"), resource_id(resource)
        )
        if name is not None:
            found.append(StackReferenceFound(org, project, stack, name))
    return found
