"""ESC environments in the emulator, as the official clients use them: the unmodified pulumi
CLI's `pulumi env` commands, and `pulumi-esc-sdk`'s `EscClient`, each over real HTTP.

Every CLI runs with its own HOME and PULUMI_HOME in the test's folder, the emulator as its
backend and a world token: nothing of the machine's own login is read, and no AI-agent
variable reaches it (the environment is built from scratch).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pulumi_esc_sdk import EscClient, models
from pulumi_esc_sdk.esc_client import default_config
from pulumi_esc_sdk.exceptions import ApiException

from toolkit.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

BASE_SECRET = "base-plaintext-secret"
NEW_SECRET = "xyzzy-new-secret"

WORLD: dict[str, Any] = {
    "users": [
        {"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", "labs": "member"}},
        {"login": "carol", "token": "tok-carol", "orgs": {"labs": "admin"}},
    ],
    "orgs": {
        "acme": {
            "environments": [
                {
                    "project": "app",
                    "name": "base",
                    "definition": (
                        f"values:\n  region: eu-west-1\n  pw:\n    fn::secret: {BASE_SECRET}\n"
                    ),
                    "tags": {"team": "platform"},
                }
            ]
        },
        "labs": {"environments": [{"project": "lab", "name": "scratch"}]},
    },
}


@dataclass(frozen=True)
class PulumiEnv:
    """The real CLI's `pulumi env`, logged in to the emulator from an isolated home."""

    bin_dir: Path
    home: Path
    url: str
    token: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`pulumi env ARGS`; a failure raises unless `check` is False."""
        env = {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.home),
            "PULUMI_HOME": str(self.home / ".pulumi"),
            "PULUMI_BACKEND_URL": self.url,
            "PULUMI_ACCESS_TOKEN": self.token,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        done = subprocess.run(
            [str(self.bin_dir / "pulumi"), "env", *args],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi env {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD)


@pytest.fixture
def pulumi_env(pulumi_cli: Path, emulator: EmulatorServer, tmp_path: Path) -> PulumiEnv:
    return PulumiEnv(pulumi_cli, tmp_path, emulator.url, "tok-alice")


def test_pulumi_env_init_set_get_open_ls_and_history(
    pulumi_env: PulumiEnv, emulator: EmulatorServer
) -> None:
    state = emulator.state
    alice = state.authenticate("tok-alice")
    shown: list[str] = []

    def run(*args: str) -> str:
        done = pulumi_env.run(*args)
        shown.append(done.stdout + done.stderr)
        return done.stdout

    run("init", "acme/app/dev")
    assert state.environment_definition(alice, "acme", "app", "dev").revision == 1
    run("set", "acme/app/dev", "greeting", "hello")
    run("set", "acme/app/dev", "--secret", "password", NEW_SECRET)
    run("set", "acme/app/dev", "imports[0]", "app/base")

    stored = state.environment_definition(alice, "acme", "app", "dev")
    assert stored.revision == 4
    assert NEW_SECRET not in stored.yaml
    assert yaml.safe_load(stored.yaml)["imports"] == ["app/base"]
    decrypted = state.environment_definition(alice, "acme", "app", "dev", decrypt=True)
    assert yaml.safe_load(decrypted.yaml)["values"]["password"] == {"fn::secret": NEW_SECRET}

    redacted = {
        "greeting": "hello",
        "password": "[secret]",
        "pw": "[secret]",
        "region": "eu-west-1",
    }
    assert json.loads(run("get", "acme/app/dev", "--value", "json")) == redacted
    assert all(NEW_SECRET not in text and BASE_SECRET not in text for text in shown)
    plaintext = {**redacted, "password": NEW_SECRET, "pw": BASE_SECRET}
    assert json.loads(run("get", "acme/app/dev", "--value", "json", "--show-secrets")) == plaintext
    assert json.loads(run("open", "acme/app/dev")) == plaintext
    assert "hello" in run("get", "acme/app/dev", "greeting")

    assert run("ls").split() == ["acme/app/base", "acme/app/dev", "labs/lab/scratch"]
    assert run("ls", "--organization", "labs").split() == ["labs/lab/scratch"]
    history = run("version", "history", "acme/app/dev")
    assert [line.split()[1] for line in history.splitlines() if line.startswith("revision")] == [
        "4",
        "3",
        "2",
        "1",
    ]


@pytest.fixture
def esc(emulator: EmulatorServer) -> EscClient:
    return EscClient(default_config(host=emulator.url, access_token="tok-alice"))


def test_esc_sdk_creates_updates_reads_decrypts_and_opens(esc: EscClient) -> None:
    esc.create_environment("acme", "app", "sdk")
    diagnostics = esc.update_environment_yaml(
        "acme",
        "app",
        "sdk",
        "imports: [app/base]\n"
        "values:\n"
        "  url: https://${region}.example.com\n"
        f"  token:\n    fn::secret: {NEW_SECRET}\n",
    )
    assert not diagnostics.diagnostics
    definition, raw = esc.get_environment("acme", "app", "sdk")
    assert definition.imports == ["app/base"]
    assert NEW_SECRET not in raw.decode()
    _, decrypted_raw = esc.decrypt_environment("acme", "app", "sdk")
    assert yaml.safe_load(decrypted_raw)["values"]["token"] == {"fn::secret": NEW_SECRET}
    _, values, _ = esc.open_and_read_environment("acme", "app", "sdk")
    assert values == {
        "region": "eu-west-1",
        "pw": BASE_SECRET,
        "url": "https://eu-west-1.example.com",
        "token": NEW_SECRET,
    }
    opened = esc.open_environment("acme", "app", "sdk")
    value, plain = esc.read_open_environment_property("acme", "app", "sdk", opened.id, "token")
    assert (plain, value.secret) == (NEW_SECRET, True)
    check = esc.check_environment_yaml("acme", "values:\n  a: ${nothing}\n")
    assert check.diagnostics and "unknown property" in check.diagnostics[0].summary
    esc.delete_environment("acme", "app", "sdk")
    with pytest.raises(ApiException) as missing:
        esc.get_environment("acme", "app", "sdk")
    assert missing.value.status == 404


def test_esc_sdk_revisions_and_revision_tags(esc: EscClient) -> None:
    esc.update_environment_yaml("acme", "app", "base", "values:\n  region: us-east-1\n")
    revisions = esc.list_environment_revisions("acme", "app", "base")
    assert [(r.number, r.tags) for r in revisions] == [(2, ["latest"]), (1, None)]
    esc.create_environment_revision_tag("acme", "app", "base", "stable", 1)
    first, _ = esc.get_environment_at_version("acme", "app", "base", "stable")
    assert first.values.additional_properties["region"] == "eu-west-1"
    _, values, _ = esc.open_and_read_environment_at_version("acme", "app", "base", "1")
    assert values["region"] == "eu-west-1"
    tags = esc.list_environment_revision_tags("acme", "app", "base")
    assert [(t.name, t.revision) for t in tags.tags] == [("latest", 2), ("stable", 1)]
    esc.update_environment_revision_tag("acme", "app", "base", "stable", 2)
    assert esc.get_environment_revision_tag("acme", "app", "base", "stable").revision == 2
    esc.delete_environment_revision_tag("acme", "app", "base", "stable")
    with pytest.raises(ApiException) as latest:
        esc.delete_environment_revision_tag("acme", "app", "base", "latest")
    assert latest.value.status == 400


def test_esc_sdk_environment_tags_and_listing(esc: EscClient) -> None:
    assert esc.list_environment_tags("acme", "app", "base").tags["team"].value == "platform"
    esc.create_environment_tag("acme", "app", "base", "owner", "alice")
    updated = esc.update_environment_tag("acme", "app", "base", "team", "platform", "team", "web")
    assert updated.value == "web"
    assert esc.get_environment_tag("acme", "app", "base", "owner").value == "alice"
    esc.delete_environment_tag("acme", "app", "base", "owner")
    listed = esc.list_environment_tags("acme", "app", "base")
    assert {name: tag.value for name, tag in listed.tags.items()} == {"team": "web"}
    assert [(e.project, e.name) for e in esc.list_environments("acme").environments or []] == [
        ("app", "base")
    ]


def test_esc_sdk_sees_the_service_s_refusals(emulator: EmulatorServer) -> None:
    carol = EscClient(default_config(host=emulator.url, access_token="tok-carol"))
    with pytest.raises(ApiException) as refused:
        carol.get_environment("acme", "app", "base")
    assert refused.value.status == 403
    alice = EscClient(default_config(host=emulator.url, access_token="tok-alice"))
    with pytest.raises(ApiException) as taken:
        alice.create_environment("acme", "app", "base")
    assert taken.value.status == 409
    with pytest.raises(ApiException) as invalid:
        alice.update_environment_yaml("acme", "app", "base", "imports: [app/none]\n")
    assert invalid.value.status == 400
    assert isinstance(invalid.value.data, models.EnvironmentDiagnostics)
    summaries = [d.summary for d in invalid.value.data.diagnostics or []]
    assert summaries == ["unknown environment 'app/none'"]
    where = (invalid.value.data.diagnostics or [])[0].range
    assert where is not None and (where.environment, where.begin.line) == ("app/base", 1)


def test_pulumi_env_tags_revision_tags_and_rm(
    pulumi_env: PulumiEnv, emulator: EmulatorServer
) -> None:
    state = emulator.state
    alice = state.authenticate("tok-alice")
    pulumi_env.run("tag", "acme/app/base", "owner", "alice")
    listed = pulumi_env.run("tag", "list", "acme/app/base").stdout
    assert "Name: owner" in listed and "Name: team" in listed
    pulumi_env.run("tag", "remove", "acme/app/base", "owner")
    tags = state.list_environment_tags(alice, "acme", "app", "base").items
    assert [(t.name, t.value) for t in tags] == [("team", "platform")]

    pulumi_env.run("set", "acme/app/base", "region", "us-east-1")
    pulumi_env.run("version", "tag", "acme/app/base@stable", "1")
    table = pulumi_env.run("version", "tag", "ls", "acme/app/base").stdout
    assert [line.split()[1:4:2] for line in table.splitlines() if "alice" in line] == [
        ["latest", "2"],
        ["stable", "1"],
    ]
    at_stable = pulumi_env.run("get", "acme/app/base@stable", "--value", "json").stdout
    assert json.loads(at_stable) == {"region": "eu-west-1", "pw": "[secret]"}

    pulumi_env.run("rm", "acme/app/base", "--yes")
    assert state.environment_names("acme") == set()
