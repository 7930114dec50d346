"""The real `pulumi` CLI against the emulator: login, listings, stacks, tags, secrets, export and
import, rename and transfer, and whole updates of the workload program (run inline through the
Automation API, so no language host is needed).

Every CLI runs with its own PULUMI_HOME and HOME in the test's temporary folder and a world
token, so nothing of the user's own Pulumi login is read or touched. CLI commands take about
half a second each: the tests tell one story per feature rather than one command per test.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from contract_samples import sdk_fields, sdk_model, toolkit_fields
from pulumi import automation as auto
from pulumi_cloud_sdk._support import default_encoder

from tests.workload.workload import pulumi_program
from toolkit.emulator import cli_models
from toolkit.emulator.server import EmulatorServer
from toolkit.models import WireModel

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

AGENT = "agent-1"
SECRET = "s3cr3t-api-key"

AGENT_CREATED = datetime.now(UTC) - timedelta(hours=1)
"""The agent signed up an hour ago: it may still write, and its claim window is open."""

WORLD: dict[str, Any] = {
    "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin", AGENT: "admin"}}],
    "agents": [
        {
            "login": AGENT,
            "token": "tok-agent",
            "claimToken": "claim-1",
            "createdAt": AGENT_CREATED.isoformat(),
            "claimExpiresAt": (AGENT_CREATED + timedelta(days=30)).isoformat(),
        }
    ],
    "orgs": {
        AGENT: {
            "stacks": [
                {"project": "web", "stack": "dev", "resourceCount": 3, "tags": {"team": "a"}},
                {"project": "web", "stack": "prod", "resourceCount": 5},
            ]
        },
        "acme": {
            "stacks": [
                {"project": "api", "stack": name, "resourceCount": 2}
                for name in ("dev", "qa", "prod", "canary", "perf")
            ]
        },
    },
}


@dataclass(frozen=True)
class PulumiCli:
    """The real CLI as one identity, logged in to the emulator from its own isolated home."""

    bin_dir: Path
    home: Path
    url: str
    token: str

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.home),
            "PULUMI_HOME": str(self.home / ".pulumi"),
            "PULUMI_BACKEND_URL": self.url,
            "PULUMI_ACCESS_TOKEN": self.token,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin_dir / "pulumi"), *args, "--non-interactive", "--color", "never"],
            cwd=cwd or self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def json(self, *args: str, cwd: Path | None = None) -> Any:
        return json.loads(self.run(*args, cwd=cwd).stdout)

    def workload(self, stack: str, project_dir: Path) -> auto.Stack:
        """The workload program as `stack` (org/project/stack) through the Automation API,
        in `project_dir`, as this identity."""
        project_dir.mkdir(parents=True, exist_ok=True)
        return auto.create_or_select_stack(
            stack_name=stack,
            project_name=stack.split("/")[1],
            program=pulumi_program,
            opts=auto.LocalWorkspaceOptions(
                work_dir=str(project_dir),
                env_vars=self.env(),
                pulumi_command=auto.PulumiCommand(
                    root=str(self.bin_dir.parent), skip_version_check=True
                ),
            ),
        )


@pytest.fixture
def emulator(make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(WORLD, page_size=2)


@pytest.fixture
def cli_as(emulator: EmulatorServer, pulumi_cli: Path, tmp_path: Path) -> Any:
    def login_as(token: str) -> PulumiCli:
        home = tmp_path / token
        home.mkdir()
        return PulumiCli(bin_dir=pulumi_cli, home=home, url=emulator.url, token=token)

    return login_as


def http(server: EmulatorServer, token: str = "tok-agent") -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"token {token}"})


def stack_names(listing: list[dict[str, Any]]) -> dict[str, int]:
    return {entry["name"]: entry.get("resourceCount", 0) for entry in listing}


# --- Identity and listings -----------------------------------------------------------------


def test_login_whoami_and_a_listing_longer_than_a_page(
    emulator: EmulatorServer, cli_as: Any
) -> None:
    alice: PulumiCli = cli_as("tok-alice")

    login = alice.run("login", emulator.url)
    whoami = alice.run("whoami", "--verbose").stdout
    listed = stack_names(alice.json("stack", "ls", "--all", "--json"))
    tagged = stack_names(alice.json("stack", "ls", "--all", "--tag", "team=a", "--json"))

    assert f"Logged in to {emulator.url} as alice" in login.stdout + login.stderr
    assert "User: alice" in whoami
    assert f"Organizations: acme, {AGENT}" in whoami
    assert listed == {
        **{f"acme/api/{name}": 2 for name in ("canary", "dev", "perf", "prod", "qa")},
        f"{AGENT}/web/dev": 3,
        f"{AGENT}/web/prod": 5,
    }
    pages = [r for r in emulator.requests.entries() if r.path == "/api/user/stacks"]
    assert len(pages) >= 4 + 1  # 7 stacks two to a page, then the tag-filtered listing
    assert tagged == {f"{AGENT}/web/dev": 3}


def test_stack_init_tags_and_removal(emulator: EmulatorServer, cli_as: Any) -> None:
    alice: PulumiCli = cli_as("tok-alice")
    fqsn = "acme/billing/dev"

    alice.run("stack", "init", fqsn, "--no-select")
    alice.run("stack", "tag", "set", "owner", "platform", "--stack", fqsn)
    alice.run("stack", "tag", "set", "tier", "gold", "--stack", fqsn)
    alice.run("stack", "tag", "rm", "tier", "--stack", fqsn)
    tags = alice.json("stack", "tag", "ls", "--json", "--stack", fqsn)

    assert tags == {"owner": "platform"}
    assert emulator.state.find_stack("acme", "billing", "dev") is not None
    alice.run("stack", "rm", fqsn, "--yes")
    assert emulator.state.find_stack("acme", "billing", "dev") is None


# --- The workload, from `up` to `stack rm` -------------------------------------------------


def test_the_workload_from_up_through_rename_and_transfer_to_removal(
    emulator: EmulatorServer, cli_as: Any, tmp_path: Path
) -> None:
    agent: PulumiCli = cli_as("tok-agent")
    fqsn, project_dir = f"{AGENT}/workload/dev", tmp_path / "workload"
    stack = agent.workload(fqsn, project_dir)
    agent.run("config", "set", "--secret", "apiKey", SECRET, "--stack", fqsn, cwd=project_dir)
    agent.run("config", "set", "components", "2", "--stack", fqsn, cwd=project_dir)

    assert stack.up().summary.result == "succeeded"

    # The secret config value became a secret output, stored as the stack's ciphertext.
    shown = agent.json("stack", "output", "--show-secrets", "--json", "--stack", fqsn)
    hidden = agent.json("stack", "output", "--json", "--stack", fqsn)
    assert (shown["apiKey"], shown["componentCount"]) == (SECRET, 6)
    assert hidden["apiKey"] == "[secret]"
    stored = emulator.state.checkpoint_of(AGENT, "workload", "dev")
    assert stored is not None
    assert SECRET not in json.dumps(stored)
    (summary,) = emulator.state.list_stacks(
        emulator.state.authenticate("tok-agent"), limit=10, project="workload"
    ).items
    assert summary.resource_count == len(stored["deployment"]["resources"]) == 7
    assert summary.last_update > 0

    # Export keeps ciphertext unless asked; an export imports back as a new version.
    exported = agent.json("stack", "export", "--stack", fqsn)
    revealed = agent.json("stack", "export", "--show-secrets", "--stack", fqsn)
    assert SECRET not in json.dumps(exported)
    assert SECRET in json.dumps(revealed)
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(exported))
    agent.run("stack", "import", "--file", str(state_file), "--stack", fqsn)
    history = agent.json("stack", "history", "--json", "--stack", fqsn)
    assert [(e["kind"], e["version"], e["resourceChanges"]) for e in history] == [
        ("import", 2, {}),
        ("update", 1, {"create": 7}),
    ]
    shown_history = agent.run("stack", "history", "--stack", fqsn).stdout.splitlines()
    assert [line.split()[0] for line in shown_history if line.startswith("+")] == [
        "+0-0~0",
        "+7-0~0",
    ]

    # A stack with resources is only removed with --force.
    refused = agent.run("stack", "rm", "--yes", "--stack", fqsn, check=False)
    assert refused.returncode != 0
    assert "still has resources" in refused.stderr

    # After a rename to another project and name, the same program previews without changes.
    renamed, renamed_dir = f"{AGENT}/shop/prod", tmp_path / "shop"
    agent.run("stack", "rename", renamed, "--stack", fqsn, cwd=project_dir)
    moved = agent.workload(renamed, renamed_dir)
    agent.run("config", "set", "--secret", "apiKey", SECRET, "--stack", renamed, cwd=renamed_dir)
    agent.run("config", "set", "components", "2", "--stack", renamed, cwd=renamed_dir)
    assert moved.preview().change_summary == {"same": 7}

    # Transferred to alice's org, the stack's secrets still open there.
    with http(emulator, "tok-alice") as client:
        client.post(f"/api/stacks/{renamed}/transfer", json={"toOrg": "acme"}).raise_for_status()
    alice: PulumiCli = cli_as("tok-alice")
    transferred = "acme/shop/prod"
    outputs = alice.json("stack", "output", "--show-secrets", "--json", "--stack", transferred)
    assert outputs["apiKey"] == SECRET

    # Destroyed, it holds nothing and goes without --force.
    assert alice.workload(transferred, renamed_dir).destroy().summary.result == "succeeded"
    assert emulator.state.find_stack("acme", "shop", "prod").resource_count == 0  # type: ignore[union-attr]
    alice.run("stack", "rm", "--yes", "--stack", transferred)
    assert emulator.state.find_stack("acme", "shop", "prod") is None

    # The CLI asked for nothing the emulator lacks: the only refusals were probes for stacks
    # before they existed and the removal refused above.
    refusals = {
        (r.method, r.status)
        for r in emulator.requests.entries()
        if r.status is not None and r.status >= 400
    }
    assert refusals == {("GET", 404), ("DELETE", 400)}


def test_a_world_stack_updated_before_has_that_first_update_in_its_history(
    make_emulator: EmulatorFactory, pulumi_cli: Path, tmp_path: Path
) -> None:
    updated = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    world: dict[str, Any] = {
        "users": [{"login": "alice", "token": "tok-alice", "orgs": {"acme": "admin"}}],
        "orgs": {
            "acme": {
                "stacks": [
                    {"project": "web", "stack": "prod", "resourceCount": 4, "lastUpdate": updated},
                    {"project": "web", "stack": "new"},
                ]
            }
        },
    }
    server = make_emulator(world)
    alice = PulumiCli(bin_dir=pulumi_cli, home=tmp_path, url=server.url, token="tok-alice")

    history = alice.json("stack", "history", "--json", "--stack", "acme/web/prod")
    with http(server, "tok-alice") as client:
        latest = client.get("/api/stacks/acme/web/prod/updates/latest")
        never = client.get("/api/stacks/acme/web/new/updates/latest")

    assert [(e["kind"], e["version"], e["result"], e["resourceChanges"]) for e in history] == [
        ("update", 1, "succeeded", {"create": 4})
    ]
    info = default_encoder.deserialize(latest.json(), "UpdateInfo")
    assert (info.version, info.info.kind.value, info.info.resource_changes) == (
        1,
        "update",
        {"create": 4},
    )
    assert info.info.end_time == int(updated.timestamp())
    assert never.status_code == 404
    assert alice.run("stack", "history", "--stack", "acme/web/new").stdout.strip() == (
        "Stack has never been updated"
    )


# --- Updates that do not finish ------------------------------------------------------------


def test_pulumi_cancel_frees_a_stack_an_unfinished_update_holds(
    emulator: EmulatorServer, cli_as: Any, tmp_path: Path
) -> None:
    agent: PulumiCli = cli_as("tok-agent")
    fqsn = f"{AGENT}/web/dev"
    with http(emulator) as client:
        created = client.post(
            f"/api/stacks/{fqsn}/update", json={"name": "web", "runtime": "python"}
        )
        update_id = created.json()["updateID"]
        client.post(f"/api/stacks/{fqsn}/update/{update_id}", json={}).raise_for_status()
    state_file = tmp_path / "state.json"
    state_file.write_text(agent.run("stack", "export", "--stack", fqsn).stdout)

    busy = agent.run("stack", "import", "--file", str(state_file), "--stack", fqsn, check=False)
    agent.run("cancel", "--yes", "--stack", fqsn)
    agent.run("stack", "import", "--file", str(state_file), "--stack", fqsn)

    assert busy.returncode != 0
    assert "Another update is currently in progress" in busy.stderr
    caller = emulator.state.authenticate("tok-agent")
    assert emulator.state.get_update(caller, AGENT, "web", "dev", update_id).status == "cancelled"
    assert (
        emulator.state.get_stack(caller, AGENT, "web", "dev").record.version == 2
    )  # update, import


# --- The protocol over plain HTTP ----------------------------------------------------------


def test_the_protocol_shapes_carry_the_sdk_names_and_fields() -> None:
    """The CLI's shapes are not in `toolkit.models` (the contract tests' scope), so check here
    that each names an SDK model, knows the fields it requires and declares no others."""
    shapes = [
        shape
        for _, shape in inspect.getmembers(cli_models, inspect.isclass)
        if issubclass(shape, WireModel) and shape.__module__ == cli_models.__name__
    ]
    untyped_in_the_sdk = {"GetHistoryResponse"}
    only_read = {"AppUpdateOptions", "AppUpdateMetadata", "AppEngineEventBatch", "StackTag"}

    assert len(shapes) > 20
    for shape in shapes:
        if shape.__name__ in untyped_in_the_sdk:
            assert sdk_model(shape.__name__) is None
            continue
        sdk_shape = sdk_model(shape.__name__)
        assert sdk_shape is not None, shape.__name__
        declared = sdk_fields(sdk_shape)
        assert set(toolkit_fields(shape)) <= set(declared), shape.__name__
        if shape.__name__.endswith("Request") or shape.__name__ in only_read:
            continue  # what the emulator only reads needs only the fields it uses
        required = {key for key, field in declared.items() if field.required}
        assert required <= set(toolkit_fields(shape)), shape.__name__


def test_capabilities_advertise_only_what_the_emulator_implements(
    emulator: EmulatorServer,
) -> None:
    with http(emulator) as client:
        capabilities = client.get("/api/capabilities").json()

    assert capabilities == {"capabilities": [{"capability": "batch-encrypt", "version": 1}]}
    parsed = default_encoder.deserialize(capabilities, "AppCapabilitiesResponse")
    assert [c.capability.value for c in parsed.capabilities] == ["batch-encrypt"]


def test_secrets_travel_base64_and_gzip_and_open_only_in_their_stack(
    emulator: EmulatorServer,
) -> None:
    plaintexts = [b"one", b"", "\u00e9\u00e8".encode()]
    body = json.dumps({"plaintexts": [_b64(p) for p in plaintexts]}).encode()
    with http(emulator) as client:
        sealed = client.post(
            f"/api/stacks/{AGENT}/web/dev/batch-encrypt",
            content=gzip.compress(body),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ).json()["ciphertexts"]
        opened = client.post(
            f"/api/stacks/{AGENT}/web/dev/batch-decrypt", json={"ciphertexts": sealed}
        )
        single = client.post(
            f"/api/stacks/{AGENT}/web/dev/decrypt", json={"ciphertext": sealed[0]}
        ).json()
        elsewhere = client.post(
            f"/api/stacks/{AGENT}/web/prod/decrypt", json={"ciphertext": sealed[0]}
        )

    read = default_encoder.deserialize(opened.json(), "AppBatchDecryptResponse")
    assert {key: read.plaintexts[key] for key in sealed} == dict(
        zip(sealed, plaintexts, strict=True)
    )
    assert single == {"plaintext": _b64(b"one")}
    assert elsewhere.status_code == 400


def test_update_calls_take_the_lease_token_not_the_access_token(
    emulator: EmulatorServer,
) -> None:
    fqsn = f"{AGENT}/web/prod"
    checkpoint = {
        "version": 3,
        "deployment": {"manifest": {"time": "t", "magic": "", "version": ""}},
    }
    with http(emulator) as client:
        created = client.post(f"/api/stacks/{fqsn}/refresh", json={"name": "web", "runtime": "go"})
        update_id = default_encoder.deserialize(
            created.json(), "AppUpdateProgramResponse"
        ).update_id
        started = client.post(f"/api/stacks/{fqsn}/update/{update_id}", json={"tags": {"a": "b"}})
        lease = default_encoder.deserialize(started.json(), "AppStartUpdateResponse")
        with_access_token = client.patch(
            f"/api/stacks/{fqsn}/update/{update_id}/checkpoint", json=checkpoint
        )
        lease_header = {"Authorization": f"update-token {lease.token}"}
        with_lease = client.patch(
            f"/api/stacks/{fqsn}/update/{update_id}/checkpoint",
            json=checkpoint,
            headers=lease_header,
        )
        renewed = client.post(
            f"/api/stacks/{fqsn}/update/{update_id}/renew_lease",
            json={"duration": 120},
            headers=lease_header,
        )
        client.post(
            f"/api/stacks/{fqsn}/update/{update_id}/complete",
            json={"status": "succeeded"},
            headers=lease_header,
        ).raise_for_status()
        status = client.get(f"/api/stacks/{fqsn}/update/{update_id}").json()
        latest = client.get(f"/api/stacks/{fqsn}/updates/latest").json()

    assert lease.version == 1  # the world stack was never updated
    assert with_access_token.status_code == 401
    assert with_lease.status_code == 204
    assert default_encoder.deserialize(renewed.json(), "AppRenewUpdateLeaseResponse").token
    assert default_encoder.deserialize(status, "AppUpdateResults").status.value == "succeeded"
    assert "continuationToken" not in status  # the CLI stops polling
    latest_info = default_encoder.deserialize(latest, "UpdateInfo").info
    assert (latest_info.kind.value, latest_info.result.value) == ("refresh", "succeeded")
    assert emulator.state.find_stack(AGENT, "web", "prod").resource_count == 0  # type: ignore[union-attr]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
