"""Isolated Automation API workspaces driving the real `pulumi` CLI, and the workload program."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import ConfigValue, Stack
from semver import VersionInfo

from tests.workload.workload import pulumi_program
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.errors import InvalidInputError, PulumiCliError
from toolkit.workspaces import (
    PULUMI_CLI_VERSION,
    SELF_MANAGED_ORG,
    _environment,
    isolated_workspace,
    list_all_stacks,
    pulumi_command,
    run_pulumi,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def file_backend(path: Path) -> BackendIdentity:
    path.mkdir(parents=True, exist_ok=True)
    return BackendIdentity(url=path.as_uri(), secrets_passphrase="correct horse")


def resources_by_name(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {resource["urn"].split("::")[-1]: resource for resource in deployment["resources"]}


@pytest.mark.parametrize(
    ("url", "is_cloud"),
    [
        ("https://api.pulumi.com", True),
        ("http://127.0.0.1:8080", True),
        ("file:///var/state", False),
        ("s3://bucket/state", False),
        ("azblob://container", False),
    ],
)
def test_identity_is_cloud_only_for_an_http_api(url: str, is_cloud: bool) -> None:
    assert BackendIdentity(url=url).is_cloud is is_cloud


def test_identity_repr_hides_token_and_passphrase() -> None:
    text = repr(BackendIdentity(url="https://x", token="pul-123", secrets_passphrase="hunter2"))
    assert "pul-123" not in text
    assert "hunter2" not in text
    assert "https://x" in text


def test_script_and_toolkit_pin_the_same_cli_version() -> None:
    script = (REPO_ROOT / "scripts" / "install-pulumi-cli").read_text()
    pinned = re.search(r'^readonly PULUMI_VERSION="([^"]+)"$', script, re.MULTILINE)
    assert pinned is not None
    assert pinned.group(1) == PULUMI_CLI_VERSION


def test_a_missing_cli_names_the_install_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(PulumiCliError) as raised:
        pulumi_command()
    assert "scripts/install-pulumi-cli" in str(raised.value)


@pytest.mark.parametrize(
    ("selected", "answered"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.0.0.1:8080.example.com", False),
        ("https://api.pulumi.com", False),
    ],
)
def test_the_credentials_helper_hands_the_token_to_the_workspaces_backend_only(
    selected: str, answered: bool
) -> None:
    identity = BackendIdentity(url="http://127.0.0.1:8080", token='tok-"quoted"\\')
    env = _environment(identity, Path("/nonexistent"))
    request = {"version": 1, "reason": "initial", "selectedBackendUrl": selected}
    helper = subprocess.run(
        [env["PULUMI_CREDENTIAL_HELPER"], *json.loads(env["PULUMI_CREDENTIAL_HELPER_ARGS"])],
        input=json.dumps(request, separators=(",", ":")),  # as the CLI (Go) writes it
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = {"version": 1, "accessToken": identity.token} if answered else {}
    assert json.loads(helper.stdout) == expected


def test_a_cloud_identity_needs_a_token() -> None:
    with (
        pytest.raises(InvalidInputError),
        isolated_workspace(BackendIdentity(url="https://api.pulumi.com"), project="web"),
    ):
        pass


def test_the_cli_is_at_least_the_pinned_version(pulumi_cli: Path) -> None:
    command = pulumi_command()
    assert command.version is not None
    assert command.version >= VersionInfo.parse(PULUMI_CLI_VERSION)


def test_an_older_cli_on_path_gives_way_to_the_cached_build(
    pulumi_cli: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = tmp_path / "on-path"
    on_path.mkdir()
    old_cli = on_path / "pulumi"
    old_cli.write_text("#!/bin/sh\necho v3.100.0\n")
    old_cli.chmod(0o755)
    cache = tmp_path / "cache"
    cached_bin = cache / "pulumi-claim" / "pulumi-cli" / PULUMI_CLI_VERSION / "bin"
    cached_bin.mkdir(parents=True)
    (cached_bin / "pulumi").symlink_to((pulumi_cli / "pulumi").resolve())
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", raising=False)

    assert pulumi_command().command == str(cached_bin / "pulumi")


def test_a_missing_backend_folder_is_a_pulumi_cli_error(pulumi_cli: Path, tmp_path: Path) -> None:
    missing = BackendIdentity(url=(tmp_path / "no-such-folder").as_uri())
    with (
        pytest.raises(
            PulumiCliError, match=r"signing in to .* failed: .*no such file or directory"
        ),
        isolated_workspace(missing, project="web"),
    ):
        pass


def test_a_refused_token_is_a_pulumi_cli_error(
    pulumi_cli: Path, demo_emulator: EmulatorServer
) -> None:
    wrong = BackendIdentity(url=demo_emulator.url, token="not-a-token-of-this-service")
    with (
        pytest.raises(PulumiCliError, match=rf"signing in to {demo_emulator.url} failed: error:"),
        isolated_workspace(wrong, project="web"),
    ):
        pass


def test_workspace_touches_neither_the_users_home_nor_the_process_environment(
    pulumi_cli: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's own setup, which must stay as it is and must not steer the workspace.
    user_home = tmp_path / "user-home"
    user_backend = tmp_path / "user-backend"
    user_credentials = tmp_path / "user-credentials"
    user_home.mkdir()
    user_backend.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.delenv("PULUMI_HOME", raising=False)
    monkeypatch.setenv("PULUMI_BACKEND_URL", user_backend.as_uri())
    monkeypatch.setenv("PULUMI_CREDENTIALS_PATH", str(user_credentials))
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "users-own-token")
    environment_before = dict(os.environ)
    identity = BackendIdentity(
        url=file_backend(tmp_path / "state").url, token="identity-token", secrets_passphrase="pw"
    )

    with isolated_workspace(identity, project="web") as workspace:
        workspace.create_stack("organization/web/dev")
        workspace.set_tag("organization/web/dev", "owner", "agent")
        seen_by_cli = json.loads(run_pulumi(workspace, "whoami", "--json").stdout)
        workspace_root = Path(workspace.work_dir).parent
        assert "identity-token" not in repr(workspace)
        assert dict(os.environ) == environment_before

    assert seen_by_cli["url"] == identity.url
    assert (tmp_path / "state" / ".pulumi" / "stacks" / "web" / "dev.json").is_file()
    assert list(user_backend.iterdir()) == []
    assert not user_credentials.exists()
    assert list(user_home.iterdir()) == []
    assert not workspace_root.exists()
    assert dict(os.environ) == environment_before


def test_two_identities_side_by_side_see_only_their_own_stacks(
    pulumi_cli: Path, tmp_path: Path
) -> None:
    agent = file_backend(tmp_path / "agent")
    company = file_backend(tmp_path / "company")
    with (
        isolated_workspace(agent, project="web") as agent_workspace,
        isolated_workspace(company, project="web") as company_workspace,
    ):
        agent_workspace.create_stack("organization/web/dev")
        company_workspace.create_stack("organization/web/prod")
        assert [s.name for s in list_all_stacks(agent_workspace)] == ["organization/web/dev"]
        assert [s.name for s in list_all_stacks(company_workspace)] == ["organization/web/prod"]


def test_list_all_stacks_names_every_project_in_full(pulumi_cli: Path, tmp_path: Path) -> None:
    identity = file_backend(tmp_path / "state")
    with isolated_workspace(identity, project="web") as workspace:
        workspace.create_stack("organization/web/dev")
    with isolated_workspace(identity, project="api") as workspace:
        workspace.create_stack("organization/api/prod")
        listed = list_all_stacks(workspace)
        assert list_all_stacks(workspace, org="someone-else") == []
        # The Automation API's own listing: the current project only, names shortened.
        assert [s.name for s in workspace.list_stacks()] == ["prod"]
    assert [s.name for s in listed] == ["organization/api/prod", "organization/web/dev"]
    assert all(s.resource_count == 0 for s in listed)
    assert all(s.last_update is not None and s.last_update.tzinfo for s in listed)


def test_workload_up_has_a_component_tree_outputs_and_a_secret_output(
    pulumi_cli: Path, tmp_path: Path
) -> None:
    identity = file_backend(tmp_path / "state")
    name = f"{SELF_MANAGED_ORG}/web/dev"
    with isolated_workspace(identity, project="web", program=pulumi_program) as workspace:
        stack = Stack.create(name, workspace)
        stack.set_config("components", ConfigValue("2"))
        stack.set_config("apiKey", ConfigValue("s3cr3t-key", secret=True))
        result = stack.up()
        exported = workspace.export_stack(name).deployment
        listed = list_all_stacks(workspace)

    # The stack, two services and two workers each.
    assert result.summary.resource_changes == {"create": 7}
    outputs = {key: (value.value, value.secret) for key, value in result.outputs.items()}
    assert outputs == {
        "apiKey": ("s3cr3t-key", True),
        "componentCount": (6, False),
        "endpoints": (
            {
                "service-0": "https://service-0.workload.internal",
                "service-1": "https://service-1.workload.internal",
            },
            False,
        ),
        "region": ("local", False),
    }
    assert [(s.name, s.resource_count) for s in listed] == [(name, 7)]

    assert exported is not None
    resources = resources_by_name(exported)
    stack_urn = resources["web-dev"]["urn"]
    assert stack_urn == "urn:pulumi:dev::web::pulumi:pulumi:Stack::web-dev"
    service_0, service_1 = resources["service-0"], resources["service-1"]
    assert service_0["parent"] == stack_urn
    assert resources["service-0-worker-1"]["parent"] == service_0["urn"]
    assert resources["service-1-worker-0"]["parent"] == service_1["urn"]
    assert resources["service-1-worker-0"]["deletedWith"] == service_1["urn"]
    assert service_1["inputs"] == {"workers": 2}
    assert service_1["outputs"] == {"endpoint": "https://service-1.workload.internal"}
    # `export_stack` shows secrets: the secret output is there in plaintext, marked secret.
    secret = resources["web-dev"]["outputs"]["apiKey"]
    assert secret["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    assert json.loads(secret["plaintext"]) == "s3cr3t-key"
