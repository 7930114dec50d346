"""Stacks an agent built, with states as the pulumi CLI writes them, put into an org of the
emulator over REST as the agent would have (create, seal its secrets with the stack's own key,
import), without running a program."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from toolkit.cloud import CloudClient
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AppUntypedDeployment
from toolkit.stack_state import ciphertexts, plaintexts, sealed, service_secrets_provider
from toolkit.urns import SECRET_SIG, SIG_KEY

SECRET = "sk-agent-42"
"""The plaintext of both secrets of every state here."""


def agent_deployment(project: str, stack: str) -> dict[str, Any]:
    """A state as the CLI writes it: the root stack with a secret output, and a component
    holding the same secret."""
    root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    secret = {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(SECRET)}
    return {
        "manifest": {"time": "2026-11-30T10:00:00Z", "magic": "", "version": ""},
        "resources": [
            {
                "urn": root,
                "custom": False,
                "type": "pulumi:pulumi:Stack",
                "outputs": {"apiKey": secret, "region": "local"},
            },
            {
                "urn": f"urn:pulumi:{stack}::{project}::app:index:Service::api",
                "custom": False,
                "type": "app:index:Service",
                "parent": root,
                "outputs": {"token": dict(secret)},
            },
        ],
    }


async def seed_stacks(
    server: EmulatorServer,
    org: str,
    token: str,
    stacks: Mapping[tuple[str, str], Mapping[str, str]],
) -> None:
    """Each (project, stack) of `stacks`, with its tags, made in `org` as the holder of `token`,
    its state `agent_deployment`'s."""
    async with CloudClient(server.url, token) as agent:
        for (project, stack), tags in stacks.items():
            await agent.create_stack(org, project, stack, tags=dict(tags) or None)
            state = agent_deployment(project, stack)
            state["secrets_providers"] = service_secrets_provider(server.url, org, project, stack)
            sealed_texts = await agent.encrypt_values(org, project, stack, plaintexts(state))
            deployment = AppUntypedDeployment(version=3, deployment=sealed(state, sealed_texts))
            assert await agent.import_stack(org, project, stack, deployment) == "succeeded"


async def landed_secrets(server: EmulatorServer, token: str, name: str) -> list[str]:
    """The plaintexts of every secret of the stack `org/project/stack`, as `token` opens them."""
    org, project, stack = name.split("/")
    async with CloudClient(server.url, token) as client:
        exported = await client.export_stack(org, project, stack)
        opened = await client.decrypt_values(org, project, stack, ciphertexts(exported.deployment))
    return [json.loads(opened[text]) for text in ciphertexts(exported.deployment)]
