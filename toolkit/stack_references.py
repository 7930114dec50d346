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


def referenced_name(*properties: object, resource_id: object = None) -> str | None:
    """The stack name a StackReference reads: the `name` of the first of its `properties`
    (its inputs, its outputs, or what the search shows) that has one, else its ID, which the
    CLI sets to the name."""
    for source in properties:
        name = source.get("name") if isinstance(source, dict) else None
        if isinstance(name, str) and name:
            return name
    return resource_id if isinstance(resource_id, str) and resource_id else None


def references_in_state(
    org: str, project: str, stack: str, deployment: object
) -> list[StackReferenceFound]:
    """The StackReferences of one stack's exported state (the `deployment` of an untyped
    deployment), each with the name it reads."""
    resources = deployment.get("resources") if isinstance(deployment, dict) else None
    found: list[StackReferenceFound] = []
    for resource in resources if isinstance(resources, list) else []:
        if not isinstance(resource, dict) or resource.get("type") != STACK_REFERENCE_TYPE:
            continue
        name = referenced_name(
            resource.get("inputs"), resource.get("outputs"), resource_id=resource.get("id")
        )
        if name is not None:
            found.append(StackReferenceFound(org, project, stack, name))
    return found
