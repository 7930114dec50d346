"""The landing program: tags on every moved stack, and team permissions on every moved stack
and copied ESC environment, managed by the pulumiservice provider as one stack in the
destination org.

It declares exactly what a `Landing` describes and nothing else, so running it again with the
same `Landing` changes nothing, and a stack or grant left out of it is removed (the toolkit
keeps what earlier runs landed in the `Landing` it passes). What it landed is exported as the
`landed` output, which the toolkit reads back before the next run.

The provider is an explicit one pointed at the destination's API URL, its access token a
secret input: the token reaches the engine from this process only, and the stack's state holds
it encrypted (with the stack's secrets provider), never in plaintext.
"""

from __future__ import annotations

import pulumi
import pulumi_pulumiservice as pulumiservice

from toolkit.landing_program.model import Landing, TeamPermission

STACK_PERMISSIONS: dict[TeamPermission, pulumiservice.TeamStackPermissionScope] = {
    "read": pulumiservice.TeamStackPermissionScope.READ,
    "write": pulumiservice.TeamStackPermissionScope.EDIT,
    "admin": pulumiservice.TeamStackPermissionScope.ADMIN,
}
ENVIRONMENT_PERMISSIONS: dict[TeamPermission, pulumiservice.EnvironmentPermission] = {
    "read": pulumiservice.EnvironmentPermission.READ,
    "write": pulumiservice.EnvironmentPermission.WRITE,
    "admin": pulumiservice.EnvironmentPermission.ADMIN,
}


def landing_program(landing: Landing, *, api_url: str, access_token: pulumi.Input[str]) -> None:
    """Declare the resources of `landing`, all through one provider for the destination."""
    provider = pulumiservice.Provider(
        "destination", api_url=api_url, access_token=pulumi.Output.secret(access_token)
    )
    through = pulumi.ResourceOptions(provider=provider)
    org = landing.organization
    for stack in landing.stacks:
        where = f"{stack.project}/{stack.stack}"
        pulumiservice.StackTags(
            f"tags:{where}",
            organization=org,
            project=stack.project,
            stack=stack.stack,
            tags=stack.tags,
            opts=through,
        )
        for team, permission in sorted(landing.teams.items()):
            pulumiservice.TeamStackPermission(
                f"team:{team}:stack:{where}",
                organization=org,
                project=stack.project,
                stack=stack.stack,
                team=team,
                permission=STACK_PERMISSIONS[permission],
                opts=through,
            )
    for environment in landing.environments:
        where = f"{environment.project}/{environment.name}"
        for team, permission in sorted(landing.teams.items()):
            pulumiservice.TeamEnvironmentPermission(
                f"team:{team}:environment:{where}",
                organization=org,
                project=environment.project,
                environment=environment.name,
                team=team,
                permission=ENVIRONMENT_PERMISSIONS[permission],
                opts=through,
            )
    pulumi.export("landed", landing.to_output())
