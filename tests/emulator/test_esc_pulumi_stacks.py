"""`fn::open::pulumi-stacks` in the emulator, over real HTTP with `pulumi-esc-sdk` and the
unmodified `pulumi env`: a definition that interpolates a stack's outputs is accepted, a check
leaves them unknown, an open reads them from the stack's latest state (its secrets staying
secret), and once the stack has moved to another org the old org's environment no longer
opens while a copy in the new org, reading the new name, does."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pulumi_esc_sdk import EscClient, models
from pulumi_esc_sdk.esc_client import default_config
from pulumi_esc_sdk.exceptions import ApiException

from tests.emulator.test_esc import PulumiEnv
from toolkit.emulator.esc_evaluation import ImportedDefinition, evaluate
from toolkit.emulator.server import EmulatorServer
from toolkit.emulator.state import ServiceState
from toolkit.urns import SECRET_SIG, SIG_KEY

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-abc123"
PASSWORD = "hunter2-stack-secret"

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {AGENT: "admin", "acme": "admin"}},
    ],
    "orgs": {
        AGENT: {
            "stacks": [{"project": "web", "stack": "dev"}],
            "environments": [{"project": "app", "name": "dev"}],
        },
        "acme": {"environments": [{"project": "app", "name": "dev"}]},
    },
}

READS_WEB_DEV = """\
values:
  stacks:
    fn::open::pulumi-stacks:
      stacks:
        dev: {stack: web/dev}
  url: ${stacks.dev.url}
  endpoint: https://${stacks.dev.host}:${stacks.dev.port}/
  password: ${stacks.dev.password}
"""


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    server = make_emulator(WORLD)
    write_outputs(server.state, AGENT, "web", "dev")
    return server


@pytest.fixture
def esc(emulator: EmulatorServer) -> EscClient:
    return EscClient(default_config(host=emulator.url, access_token="tok-alice"))


def write_outputs(
    state: ServiceState, org: str, project: str, stack: str, *, sealed: bytes | None = None
) -> None:
    """Make the stack's latest state hold outputs as the CLI writes them with the service's
    secrets manager: `password` sealed with the stack's own key (or given as `sealed`)."""
    alice = state.authenticate("tok-alice")
    if sealed is None:
        plaintext = json.dumps(PASSWORD).encode()
        (sealed,) = state.encrypt_values(alice, org, project, stack, [plaintext])
    outputs = {
        "url": "https://dev.example.invalid",
        "host": "dev.example.invalid",
        "port": 8443,
        "password": {SIG_KEY: SECRET_SIG, "ciphertext": base64.b64encode(sealed).decode()},
    }
    write_state(state, org, project, stack, outputs)


def write_state(
    state: ServiceState, org: str, project: str, stack: str, outputs: dict[str, Any]
) -> None:
    """Make the stack's latest state one whose root resource holds `outputs`."""
    alice = state.authenticate("tok-alice")
    root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    deployment = {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "", "version": ""},
            "secrets_providers": {
                "type": "service",
                "state": {"url": "", "owner": org, "project": project, "stack": stack},
            },
            "resources": [
                {"urn": root, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": outputs}
            ],
        },
    }
    state.import_deployment(alice, org, project, stack, deployment)


def test_a_definition_reading_a_stack_s_outputs_is_written_checked_and_opened(
    esc: EscClient,
) -> None:
    esc.update_environment_yaml(AGENT, "app", "dev", READS_WEB_DEV)

    checked = esc.check_environment_yaml(AGENT, READS_WEB_DEV)
    assert [d.summary for d in checked.diagnostics or []] == []
    properties = checked.properties or {}
    assert all(properties[key].unknown for key in ("stacks", "url", "endpoint", "password"))

    environment, values, _ = esc.open_and_read_environment(AGENT, "app", "dev")
    assert values is not None
    assert {key: values[key] for key in ("url", "endpoint", "password")} == {
        "url": "https://dev.example.invalid",
        "endpoint": "https://dev.example.invalid:8443/",
        "password": PASSWORD,
    }
    assert values["stacks"]["dev"]["port"] == 8443
    opened = (environment.properties if environment else None) or {}
    assert opened["password"].secret is True
    assert not opened["url"].secret
    assert opened["stacks"].value["dev"]["value"]["password"]["secret"] is True


def test_after_the_stack_moves_the_old_org_s_environment_fails_and_a_copy_reads_the_new_name(
    emulator: EmulatorServer, esc: EscClient, pulumi_cli: Path, tmp_path: Path
) -> None:
    esc.update_environment_yaml(AGENT, "app", "dev", READS_WEB_DEV)
    state = emulator.state
    alice = state.authenticate("tok-alice")
    state.transfer_stack(alice, AGENT, "web", "dev", to_org="acme")
    state.rename_stack(alice, "acme", "web", "dev", new_project="", new_name="dev-agent")

    with pytest.raises(ApiException) as refused:
        esc.open_environment(AGENT, "app", "dev")
    assert refused.value.status == 400
    assert isinstance(refused.value.data, models.EnvironmentDiagnostics)
    (found,) = refused.value.data.diagnostics or []
    assert (found.summary, found.path) == ("no matching item", "values.stacks")
    assert found.range is not None
    assert (found.range.environment, found.range.begin.line) == ("app/dev", 3)

    pulumi_env = PulumiEnv(pulumi_cli, tmp_path, emulator.url, "tok-alice")
    failed = pulumi_env.run("open", f"{AGENT}/app/dev", check=False)
    assert failed.returncode != 0
    assert "app/dev:3:5: no matching item" in failed.stderr.splitlines()

    copy = READS_WEB_DEV.replace("{stack: web/dev}", "{stack: web/dev-agent}")
    esc.update_environment_yaml("acme", "app", "dev", copy)
    opened = json.loads(pulumi_env.run("open", "acme/app/dev").stdout)
    assert (opened["url"], opened["password"]) == ("https://dev.example.invalid", PASSWORD)


def test_a_check_accepts_references_into_an_unopened_provider_but_not_into_nothing() -> None:
    text = READS_WEB_DEV + "  other: ${nothing.here}\n"
    evaluation = evaluate(ImportedDefinition(text, None, "<yaml>"), lambda name: None)
    assert [d.summary for d in evaluation.diagnostics] == [
        "cannot interpolate: unknown property 'nothing.here'"
    ]
    assert evaluation.values["url"].unknown


def test_an_open_reads_only_existing_stacks_and_names_a_missing_output(
    emulator: EmulatorServer, esc: EscClient
) -> None:
    write_state(emulator.state, AGENT, "web", "dev", {"host": "h"})

    def refusal(text: str) -> list[str]:
        esc.update_environment_yaml(AGENT, "app", "dev", text)
        with pytest.raises(ApiException) as refused:
            esc.open_environment(AGENT, "app", "dev")
        assert refused.value.status == 400
        assert isinstance(refused.value.data, models.EnvironmentDiagnostics)
        return [d.summary for d in refused.value.data.diagnostics or []]

    assert refusal(READS_WEB_DEV) == [
        "cannot interpolate: unknown property 'stacks.dev.url'",
        "cannot interpolate: unknown property 'stacks.dev.port'",
        "cannot interpolate: unknown property 'stacks.dev.password'",
    ]
    long_form = (
        "values:\n  s:\n    fn::open:\n      provider: pulumi-stacks\n"
        "      inputs: {stacks: {a: {stack: web/dev}, b: {stack: web}}}\n"
    )
    assert refusal(long_form) == ["no matching item"]
    assert refusal(long_form.replace("web}", "web/prod}")) == ["no matching item"]
    esc.update_environment_yaml(AGENT, "app", "dev", long_form.replace("web}", "web/dev}"))
    _, values, _ = esc.open_and_read_environment(AGENT, "app", "dev")
    assert values == {"s": {"a": {"host": "h"}, "b": {"host": "h"}}}


def test_a_secret_output_the_service_did_not_seal_fails_the_open_and_says_whose(
    emulator: EmulatorServer, esc: EscClient
) -> None:
    write_outputs(emulator.state, AGENT, "web", "dev", sealed=b"sealed-by-a-passphrase-manager")
    esc.update_environment_yaml(AGENT, "app", "dev", READS_WEB_DEV)
    with pytest.raises(ApiException) as refused:
        esc.open_environment(AGENT, "app", "dev")
    assert isinstance(refused.value.data, models.EnvironmentDiagnostics)
    assert [d.summary for d in refused.value.data.diagnostics or []] == [
        "cannot read the outputs of stack web/dev: the ciphertext was not sealed with this key"
    ]
