"""A state shaped like a large one (components nested 12 deep, several providers, custom
resources depending on one another, resource references, secrets holding URNs) migrates
between two orgs of the service with every reference rewritten for the new stack name, and
every secret opening to its value, on both paths. The state is renamed in place and opened
and sealed sharing what holds no secret (`toolkit.stack_state`), so this guards that nothing
the source read is lost or left unrenamed on the way."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.test_migrate import AGENT_ORG, COMPANY_ORG, TWO_ORGS, cloud_plan, identities, migrate
from toolkit.choices import MigrateVia
from toolkit.cloud import CloudClient
from toolkit.emulator.server import EmulatorServer
from toolkit.models import AppUntypedDeployment
from toolkit.stack_state import ciphertexts, plaintexts, sealed, service_secrets_provider
from toolkit.urns import RESOURCE_REFERENCE_SIG, SECRET_SIG, SIG_KEY

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

DEPTH = 12
TREES = 3
CUSTOMS_PER_TREE = 60
PROVIDERS = ("default_4_16_0", "eu", "us")
LAYER = "app:index:Layer"
COMPARED = ("urn", "type", "custom", "id", "parent", "provider", "dependencies")
COMPARED_MAPS = ("propertyDependencies", "inputs", "outputs")


def urn(qualified_type: str, name: str, *, project: str = "web", stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::{project}::{qualified_type}::{name}"


def reference(target: str) -> dict[str, Any]:
    """A resource reference as the CLI writes it (`packageVersion` included)."""
    return {SIG_KEY: RESOURCE_REFERENCE_SIG, "urn": target, "packageVersion": ""}


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}


def deep_state(url: str) -> dict[str, Any]:
    """The state of web/dev, secrets open: the root, `PROVIDERS`, then `TREES` chains of
    `DEPTH` nested components, each with custom resources spread over its levels."""
    root = urn("pulumi:pulumi:Stack", "web-dev")
    resources: list[dict[str, Any]] = [
        {"urn": root, "custom": False, "type": "pulumi:pulumi:Stack"}
    ]
    references = []
    for index, name in enumerate(PROVIDERS):
        provider_id = f"0000000{index}-0000-4000-8000-000000000000"
        resources.append(
            {
                "urn": urn("pulumi:providers:random", name),
                "custom": True,
                "id": provider_id,
                "type": "pulumi:providers:random",
                "parent": root,
            }
        )
        references.append(f"{resources[-1]['urn']}::{provider_id}")
    for tree in range(TREES):
        chain: list[str] = []
        for level in range(DEPTH):
            chain.append(urn("$".join([LAYER] * (level + 1)), f"t{tree}-layer-{level}"))
            resources.append(
                {
                    "urn": chain[-1],
                    "custom": False,
                    "type": LAYER,
                    "parent": chain[-2] if level else root,
                    "outputs": {"self": reference(chain[-1])},
                }
            )
        previous: list[str] = []
        for index in range(CUSTOMS_PER_TREE):
            parent = chain[index % DEPTH]
            parent_type = parent.split("::")[2]
            name = f"t{tree}-pet-{index}"
            owner = reference(parent)
            outputs: dict[str, Any] = {"id": name, "owner": owner}
            if index % 6 == 0:
                outputs["token"] = secret({"value": f"s-{tree}-{index}", "owner": owner})
            resources.append(
                {
                    "urn": urn(f"{parent_type}$random:index/randomPet:RandomPet", name),
                    "custom": True,
                    "id": name,
                    "type": "random:index/randomPet:RandomPet",
                    "parent": parent,
                    "provider": references[index % len(references)],
                    "dependencies": [parent, *previous],
                    "propertyDependencies": {"keepers": previous},
                    "inputs": {"length": 2, "keepers": {"at": index}},
                    "outputs": outputs,
                }
            )
            previous = [resources[-1]["urn"]]
    return {
        "manifest": {"time": "2026-12-01T10:00:00Z", "magic": "", "version": ""},
        "secrets_providers": service_secrets_provider(url, AGENT_ORG, "web", "dev"),
        "resources": resources,
    }


def shown(resources: list[dict[str, Any]], opened: dict[str, str]) -> list[dict[str, Any]]:
    """The compared fields of each resource, each secret shown as its decoded value (a
    sealed one opened through `opened`, ciphertext to plaintext)."""

    def reveal(value: Any) -> Any:
        if isinstance(value, list):
            return [reveal(element) for element in value]
        if not isinstance(value, dict):
            return value
        if value.get(SIG_KEY) == SECRET_SIG:
            text = value.get("plaintext") or opened[value["ciphertext"]]
            return {"secret": json.loads(text)}
        return {key: reveal(element) for key, element in value.items()}

    return [
        {key: reveal(resource.get(key)) for key in COMPARED}
        | {key: reveal(resource.get(key) or {}) for key in COMPARED_MAPS}
        for resource in resources
    ]


async def seed(service: EmulatorServer, state: dict[str, Any]) -> None:
    async with CloudClient(service.url, "tok-agent") as agent:
        await agent.create_stack(AGENT_ORG, "web", "dev")
        texts = await agent.encrypt_values(AGENT_ORG, "web", "dev", plaintexts(state))
        deployment = AppUntypedDeployment(version=3, deployment=sealed(state, texts))
        assert await agent.import_stack(AGENT_ORG, "web", "dev", deployment) == "succeeded"


async def landed(service: EmulatorServer) -> tuple[dict[str, Any], dict[str, str]]:
    """The company's shop/prod as its user exports it, and its secrets opened."""
    async with CloudClient(service.url, "tok-platform") as platform:
        exported = await platform.export_stack(COMPANY_ORG, "shop", "prod")
        deployment: dict[str, Any] = exported.deployment
        opened = await platform.decrypt_values(COMPANY_ORG, "shop", "prod", ciphertexts(deployment))
    return deployment, opened


@pytest.fixture
def service(pulumi_cli: Path, make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(TWO_ORGS)


@pytest.mark.parametrize("via", ["rest", "cli"])
def test_a_deep_state_with_providers_migrates_with_every_reference_rewritten(
    service: EmulatorServer, via: MigrateVia
) -> None:
    state = deep_state(service.url)
    asyncio.run(seed(service, state))
    renamed_text = (
        json.dumps(shown(state["resources"], {}))
        .replace("urn:pulumi:dev::web::", "urn:pulumi:prod::shop::")
        .replace("pulumi:pulumi:Stack::web-dev", "pulumi:pulumi:Stack::shop-prod")
    )
    agent, platform = identities(service)

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via)

    assert failed == {}
    deployment, opened = asyncio.run(landed(service))
    resources = deployment["resources"]
    assert len(resources) == 1 + len(PROVIDERS) + TREES * (DEPTH + CUSTOMS_PER_TREE)
    assert "urn:pulumi:dev::web::" not in json.dumps(deployment), "a URN names the old stack"
    assert shown(resources, opened) == json.loads(renamed_text)
    deepest = resources[len(PROVIDERS) + DEPTH]
    assert deepest["urn"] == urn(
        "$".join([LAYER] * DEPTH), "t0-layer-11", project="shop", stack="prod"
    )
    assert len(opened) == TREES * CUSTOMS_PER_TREE // 6
