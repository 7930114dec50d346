"""`migrate --delete-source` killed at many points, then run again as it was.

The source is a self-managed backend (`file://`) with the workload deployed in one stack (a
secret output, a tag) and two more stacks, or an agent's org on the emulator (both paths, REST
and CLI); the destination is acme on the emulator. The kill comes right after the emulator
applied the k-th state-changing call (a create, an import, a tag copy, a source removed).
Afterwards every stack is in the destination exactly once, whole and verified, the source is
empty, and the journal says the run finished.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from agent_states import SECRET, landed_secrets, seed_stacks
from agent_times import agent_entry
from built_once import built_once
from commit_process import Finished, StopAt, run_toolkit, toolkit_env
from pulumi.automation import ConfigValue, Stack

from tests.workload.workload import pulumi_program
from toolkit.choices import MigrateVia
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse
from toolkit.workspaces import SELF_MANAGED_ORG, isolated_workspace, list_all_stacks

if TYPE_CHECKING:
    from conftest import EmulatorFactory

PASSPHRASE = "agent passphrase"
API_KEY = "sk-agent-42"
WORLD: dict[str, Any] = {
    "users": [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "admin"}}],
    "orgs": {"acme": {"stacks": [{"project": "web", "stack": "dev"}]}},
}
SOURCE_STACKS = ("web/dev", "web/qa", "api/prod")
LANDED = {("web", "dev-agent"), ("web", "qa"), ("api", "prod")}
STATE_CHANGES = 3 + 3 + 2
"""Three creates, three imports, two tag copies (web/dev and web/qa have tags); the kill
points fall among them."""


def file_backend(path: Path) -> BackendIdentity:
    path.mkdir(parents=True, exist_ok=True)
    return BackendIdentity(path.as_uri(), None, PASSPHRASE)


@pytest.fixture(scope="module")
def deployed(pulumi_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file:// backend: the workload deployed in web/dev, web/qa and api/prod empty; built
    once for the whole run (tests copy it)."""
    return built_once(tmp_path_factory, "resume-migrate-source", deploy_source) / "state"


def deploy_source(folder: Path) -> None:
    identity = file_backend(folder / "state")
    with isolated_workspace(identity, project="web", program=pulumi_program) as workspace:
        name = f"{SELF_MANAGED_ORG}/web/dev"
        workspace.create_stack(name)
        stack = Stack.select(name, workspace)
        stack.set_config("apiKey", ConfigValue(API_KEY, secret=True))
        assert stack.up().summary.result == "succeeded"
        workspace.set_tag(name, "team", "platform")
        workspace.create_stack(f"{SELF_MANAGED_ORG}/web/qa")
        workspace.set_tag(f"{SELF_MANAGED_ORG}/web/qa", "team", "qa")
    with isolated_workspace(identity, project="api") as workspace:
        workspace.create_stack(f"{SELF_MANAGED_ORG}/api/prod")


def commit(
    server: EmulatorServer, env: dict[str, str], source: Path, stop: StopAt | None = None
) -> Finished:
    map_file = source.parent / "map.yaml"
    map_file.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    return run_toolkit(
        server,
        env,
        "commit",
        *("--from", SELF_MANAGED_ORG, "--to", "acme", "--source-backend", source.as_uri()),
        *("--strategy", "migrate", "--delete-source", "-r", str(map_file), "--yes"),
        *("--format", "json"),
        stop=stop,
    )


@pytest.mark.parametrize("calls", [1, 3, 4, 6, STATE_CHANGES])
def test_a_migration_killed_after_any_call_is_finished_by_running_it_again(
    deployed: Path, make_emulator: EmulatorFactory, tmp_path: Path, calls: int
) -> None:
    server = make_emulator(WORLD)
    source = tmp_path / "source"
    shutil.copytree(deployed, source)
    env = toolkit_env(
        tmp_path / "runs",
        PULUMI_ACCESS_TOKEN="tok-carol",
        PULUMI_CLAIM_SOURCE_PASSPHRASE=PASSPHRASE,
    )

    killed = commit(server, env, source, StopAt(calls))

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    server.requests.clear()
    again = commit(server, env, source)

    assert again.returncode == 0, again.stderr
    document = AgentClaimResponse.model_validate(json.loads(again.stdout))
    assert document.failures == []
    assert server.state.stack_names("acme") == {("web", "dev"), *LANDED}
    with isolated_workspace(file_backend(source), project="any") as workspace:
        assert list_all_stacks(workspace) == []
    carol = BackendIdentity(server.url, "tok-carol")
    with isolated_workspace(carol, project="web", program=pulumi_program) as workspace:
        outputs = workspace.stack_outputs("acme/web/dev-agent")
        assert outputs["apiKey"].value == API_KEY and outputs["apiKey"].secret
        assert workspace.list_tags("acme/web/dev-agent")["team"] == "platform"
        assert workspace.list_tags("acme/web/qa")["team"] == "qa"
    run = read_run(tmp_path / "runs")
    assert run.finished and run.attempts == 2
    removed = [e.path for e in server.requests.entries() if e.method == "DELETE"]
    assert set(removed) <= {f"/api/stacks/acme/{p}/{s}" for p, s in LANDED}, (
        "only this run's own half-made copies were removed"
    )


# --- Between two orgs of the service, on both paths -------------------------------------------

AGENT = "agent-7f3k2q"
TWO_ORGS: dict[str, Any] = {
    "users": [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-agent")],
    "orgs": {AGENT: {}, "acme": {"stacks": [{"project": "web", "stack": "dev"}]}},
}
"""The agent's org and acme, whose web/dev collides; carol is no member of the agent's org."""
CLOUD_STATE_CHANGES = {"rest": 3 * 4, "cli": 3 + 3 + 2 + 3}
"""Per stack over REST: create, import, tags, delete; through the CLI: three creates, three
imports, a tag for each of the two tagged stacks, three deletes."""


async def seed_agent(server: EmulatorServer) -> None:
    """The agent's three stacks, web/dev and web/qa tagged, each state holding two secrets."""
    stacks = {
        ("web", "dev"): {"team": "platform"},
        ("web", "qa"): {"team": "qa"},
        ("api", "prod"): {},
    }
    await seed_stacks(server, AGENT, "tok-agent", stacks)


def cloud_commit(
    server: EmulatorServer,
    env: dict[str, str],
    via: MigrateVia,
    stop: StopAt | None = None,
    *options: str,
) -> Finished:
    map_file = Path(env["PULUMI_CLAIM_RUNS_DIR"]).parent / "map.yaml"
    map_file.write_text("stacks:\n  web/dev: web/dev-agent\n", encoding="utf-8")
    return run_toolkit(
        server,
        env,
        "commit",
        *("--from", AGENT, "--to", "acme", "--strategy", "migrate", "--migrate-via", via),
        *("--delete-source", "-r", str(map_file), "--yes", "--format", "json", *options),
        stop=stop,
    )


@pytest.mark.parametrize(
    ("via", "calls"),
    [
        *(("rest", calls) for calls in (1, 2, 3, 5, 8, CLOUD_STATE_CHANGES["rest"])),
        *(("cli", calls) for calls in (1, 4, CLOUD_STATE_CHANGES["cli"])),
    ],
)
def test_a_migration_between_two_orgs_killed_after_any_call_is_finished_by_running_it_again(
    pulumi_cli: Path, make_emulator: EmulatorFactory, tmp_path: Path, via: MigrateVia, calls: int
) -> None:
    server = make_emulator(TWO_ORGS)
    asyncio.run(seed_agent(server))
    env = toolkit_env(
        tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-carol", PULUMI_CLAIM_SOURCE_TOKEN="tok-agent"
    )
    server.requests.clear()

    killed = cloud_commit(server, env, via, StopAt(calls))

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    server.requests.clear()
    again = cloud_commit(server, env, via)

    assert again.returncode == 0, again.stderr
    document = AgentClaimResponse.model_validate(json.loads(again.stdout))
    assert document.failures == []
    assert server.state.stack_names("acme") == {("web", "dev"), *LANDED}
    assert server.state.stack_names(AGENT) == set()
    for project, stack in LANDED:
        landed = asyncio.run(landed_secrets(server, "tok-carol", f"acme/{project}/{stack}"))
        assert landed == [SECRET, SECRET]
    run = read_run(tmp_path / "runs")
    assert run.finished and run.attempts == 2
    removed = {e.path for e in server.requests.entries() if e.method == "DELETE"}
    own_copies = {f"/api/stacks/acme/{p}/{s}" for p, s in LANDED}
    sources = {
        f"/api/stacks/{AGENT}/{p}/{s}" for p, s in (("web", "dev"), ("web", "qa"), ("api", "prod"))
    }
    assert removed <= own_copies | sources, "only half-made copies and the sources were removed"


@pytest.mark.parametrize("via", ["rest", "cli"])
def test_ctrl_c_during_a_migration_finishes_the_stack_under_way_and_a_rerun_the_rest(
    pulumi_cli: Path, make_emulator: EmulatorFactory, tmp_path: Path, via: MigrateVia
) -> None:
    server = make_emulator(TWO_ORGS)
    asyncio.run(seed_agent(server))
    env = toolkit_env(
        tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-carol", PULUMI_CLAIM_SOURCE_TOKEN="tok-agent"
    )

    # One stack at a time; Ctrl-C once the first stack's copy has been created.
    stopped = cloud_commit(server, env, via, StopAt(1, signal.SIGINT), "--concurrency", "1")

    assert stopped.returncode == 130, stopped.stderr
    assert "Run the same command again to continue it" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    run = read_run(tmp_path / "runs")
    assert run.state == "interrupted"
    assert all(step.outcome is not None for step in run.steps), "a step went unrecorded"
    assert len(server.state.stack_names("acme") - {("web", "dev")}) == 1, "one stack landed"
    assert len(server.state.stack_names(AGENT)) == 2, "the others were not started"

    again = cloud_commit(server, env, via)

    assert again.returncode == 0, again.stderr
    assert server.state.stack_names("acme") == {("web", "dev"), *LANDED}
    assert server.state.stack_names(AGENT) == set()
