"""The migrate strategy: state copied, renamed, verified, and only then (if asked) the source
removed; a failure leaves the source as it was and no destination. Between self-managed backends
through the real `pulumi` CLI; between two orgs of the service on both paths, over REST and
through the CLI, with the same tests."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_times import agent_entry
from built_once import built_once
from pulumi.automation import ConfigValue, LocalWorkspace, Stack

from tests.workload.workload import pulumi_program
from toolkit.choices import MigrateVia
from toolkit.cloud import ACCEPT
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import Inventory, entity_key
from toolkit.errors import InvalidInputError, PulumiCliError
from toolkit.models import AgentAccountSummary, TransferEntityStack
from toolkit.plan import ClaimPlan, ClaimTarget, build_plan
from toolkit.progress import MoveFailed, MoveFailure, MoveFinished, MoveStarted, ProgressEvent
from toolkit.resolution_map import parse_resolution_map
from toolkit.strategies import FailedMoves
from toolkit.strategies.migrate import execute_migrate
from toolkit.urns import SECRET_SIG, SIG_KEY
from toolkit.workspaces import (
    SELF_MANAGED_ORG,
    isolated_workspace,
    list_all_stacks,
    pulumi_command,
    run_pulumi,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

API_KEY = "sk-live-0123456789"
SOURCE_PASSPHRASE = "agent passphrase"
DESTINATION_PASSPHRASE = "company passphrase"
SOURCE_STACK = f"{SELF_MANAGED_ORG}/web/dev"
TARGET_STACK = f"{SELF_MANAGED_ORG}/shop/prod"
WORKLOAD_RESOURCES = 10
"""The root stack resource plus 3 services with 2 workers each."""
WORKLOAD_OUTPUTS = {
    "apiKey": API_KEY,
    "componentCount": 9,
    "endpoints": {f"service-{i}": f"https://service-{i}.workload.internal" for i in range(3)},
    "region": "local",
}
"""`pulumi stack output --show-secrets` of the deployed workload."""


def file_backend(path: Path, passphrase: str) -> BackendIdentity:
    path.mkdir(parents=True, exist_ok=True)
    return BackendIdentity(url=path.as_uri(), secrets_passphrase=passphrase)


def deploy(identity: BackendIdentity, name: str) -> None:
    """`up` the workload program into the new stack `name` (project web), as an agent would,
    with the secret `apiKey` and a user tag."""
    with isolated_workspace(identity, project="web", program=pulumi_program) as workspace:
        workspace.create_stack(name)
        stack = Stack.select(name, workspace)
        stack.set_config("apiKey", ConfigValue(API_KEY, secret=True))
        assert stack.up().summary.result == "succeeded"
        workspace.set_tag(name, "team", "platform")


def user_of(identity: BackendIdentity, project: str) -> AbstractContextManager[LocalWorkspace]:
    """The workspace of someone who runs the workload program as project `project`."""
    return isolated_workspace(identity, project=project, program=pulumi_program)


def assert_previews_without_changes(stack: Stack) -> None:
    """The workload program changes nothing in the migrated stack once its user has set the
    stack's config (its secrets were encrypted for the old stack) for the new one."""
    stack.set_config("apiKey", ConfigValue(API_KEY, secret=True))
    assert stack.preview().change_summary == {"same": WORKLOAD_RESOURCES}


@pytest.fixture(scope="module")
def deployed_state(pulumi_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file:// backend with the workload deployed in organization/web/dev. Tests migrate from
    copies of it; built once for the whole run."""

    def deploy_source(folder: Path) -> None:
        deploy(file_backend(folder / "state", SOURCE_PASSPHRASE), SOURCE_STACK)

    return built_once(tmp_path_factory, "migrate-source", deploy_source) / "state"


@pytest.fixture
def source(deployed_state: Path, tmp_path: Path) -> BackendIdentity:
    """This test's own copy of the deployed source backend."""
    shutil.copytree(deployed_state, tmp_path / "source")
    return file_backend(tmp_path / "source", SOURCE_PASSPHRASE)


@pytest.fixture
def destination(tmp_path: Path) -> BackendIdentity:
    return file_backend(tmp_path / "destination", DESTINATION_PASSPHRASE)


def migrate_plan(
    source: BackendIdentity,
    destination: BackendIdentity,
    resolution: str = "stacks: {web/dev: shop/prod}",
    *,
    source_org: str = SELF_MANAGED_ORG,
    destination_org: str = SELF_MANAGED_ORG,
) -> ClaimPlan:
    """The plan of moving web/dev from `source` to `destination`, renamed by `resolution`."""
    now = datetime.now(UTC)
    stack = TransferEntityStack(
        project_name="web", stack_name="dev", resource_count=WORKLOAD_RESOURCES, last_update=now
    )
    return build_plan(
        target=ClaimTarget(source_org, destination_org, source.url, destination.url),
        source=Inventory(org=source_org, stacks=[stack]),
        destination=Inventory(org=destination_org),
        resolution_map=parse_resolution_map(resolution),
        strategy="migrate",
        agent=AgentAccountSummary(login=source_org, org_name=source_org, created_at=now),
        claim_expires_at=now,
    )


def migrate(
    plan: ClaimPlan,
    source: BackendIdentity,
    destination: BackendIdentity,
    *,
    via: MigrateVia | None = None,
    delete_source: bool = False,
    progress: list[ProgressEvent] | None = None,
) -> FailedMoves:
    report: Callable[[ProgressEvent], None] = (progress if progress is not None else []).append
    return asyncio.run(
        execute_migrate(
            plan, source, destination, via=via, delete_source=delete_source, on_progress=report
        )
    )


def looking_at(identity: BackendIdentity) -> AbstractContextManager[LocalWorkspace]:
    """A workspace to inspect `identity`'s stacks with, as their user would."""
    return isolated_workspace(identity, project="any")


def stack_names(workspace: LocalWorkspace, org: str | None = None) -> set[str]:
    return {stack.name for stack in list_all_stacks(workspace, org=org)}


def export(workspace: LocalWorkspace, name: str) -> dict[str, Any]:
    """`pulumi stack export` of `name`: secrets as that backend's ciphertext."""
    exported: dict[str, Any] = json.loads(
        run_pulumi(workspace, "stack", "export", "--stack", name).stdout
    )
    return exported


def outputs(workspace: LocalWorkspace, name: str) -> dict[str, Any]:
    """`pulumi stack output --show-secrets`: what a user of the stack sees."""
    shown: dict[str, Any] = json.loads(
        run_pulumi(workspace, "stack", "output", "--json", "--show-secrets", "--stack", name).stdout
    )
    return shown


def stored_api_key(exported: dict[str, Any]) -> dict[str, Any]:
    """The secret output `apiKey` as the state stores it."""
    root = exported["deployment"]["resources"][0]
    assert root["type"] == "pulumi:pulumi:Stack"
    api_key: dict[str, Any] = root["outputs"]["apiKey"]
    assert api_key[SIG_KEY] == SECRET_SIG
    return api_key


def test_migrate_moves_the_state_under_a_new_name_and_leaves_the_source(
    source: BackendIdentity, destination: BackendIdentity
) -> None:
    progress: list[ProgressEvent] = []
    with looking_at(source) as agent_view, user_of(destination, "shop") as user:
        source_before = export(agent_view, SOURCE_STACK)

        failed = migrate(migrate_plan(source, destination), source, destination, progress=progress)

        assert failed == {}
        assert outputs(user, TARGET_STACK) == outputs(agent_view, SOURCE_STACK)
        assert outputs(user, TARGET_STACK)["apiKey"] == API_KEY
        landed = export(user, TARGET_STACK)
        assert len(landed["deployment"]["resources"]) == WORKLOAD_RESOURCES
        assert "ciphertext" in stored_api_key(landed)
        assert stored_api_key(landed) != stored_api_key(source_before)
        assert user.list_tags(TARGET_STACK)["team"] == "platform"
        assert_previews_without_changes(Stack.select(TARGET_STACK, user))
        assert export(agent_view, SOURCE_STACK) == source_before, "the source must stay as it was"
    assert progress[0] == MoveStarted(
        source=SOURCE_STACK, target=TARGET_STACK, done=0, failed=0, total=1
    )
    assert progress[-1] == MoveFinished(
        source=SOURCE_STACK,
        target=TARGET_STACK,
        step="verify",
        summary=f"migrated {SOURCE_STACK} -> {TARGET_STACK} (verified)",
        done=1,
        failed=0,
        total=1,
    )


def test_a_destination_stack_that_exists_already_is_refused_before_anything_changes(
    source: BackendIdentity, destination: BackendIdentity
) -> None:
    plan = migrate_plan(source, destination)
    with looking_at(source) as agent_view, isolated_workspace(destination, project="shop") as other:
        other.create_stack(TARGET_STACK)
        source_before = export(agent_view, SOURCE_STACK)

        failed = migrate(plan, source, destination, delete_source=True)

        assert failed == {
            entity_key(plan.moves[0].source): MoveFailure(
                "create", f"{TARGET_STACK} already exists; nothing was changed"
            )
        }
        assert export(agent_view, SOURCE_STACK) == source_before
        assert "resources" not in export(other, TARGET_STACK)["deployment"]


def plant(identity: BackendIdentity, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the source stack's stored deployment directly, as a damaged backend would hold it."""
    stack_file = Path(identity.url.removeprefix("file://")) / ".pulumi/stacks/web/dev.json"
    stored = json.loads(stack_file.read_text())
    edit(stored["checkpoint"]["latest"])
    stack_file.write_text(json.dumps(stored))


def test_a_failed_import_removes_the_new_stack_and_leaves_the_source(
    source: BackendIdentity, destination: BackendIdentity
) -> None:
    def dangling_dependency(deployment: dict[str, Any]) -> None:
        deployment["resources"][-1]["dependencies"] = ["urn:pulumi:dev::web::app:index:Gone::x"]

    plant(source, dangling_dependency)
    plan = migrate_plan(source, destination)
    progress: list[ProgressEvent] = []
    with looking_at(source) as agent_view, looking_at(destination) as company_view:
        source_before = export(agent_view, SOURCE_STACK)

        failed = migrate(plan, source, destination, delete_source=True, progress=progress)

        failure = failed[entity_key(plan.moves[0].source)]
        assert (failure.step, failure.source_untouched) == ("import", True)
        assert failure.message.startswith("importing the state failed: error:")
        assert "state file contains errors" in failure.message
        assert [event.describe() for event in progress] == [
            f"moving {SOURCE_STACK} -> {TARGET_STACK}",
            f"created {TARGET_STACK}",
            f"removed the half-made {TARGET_STACK}",
            f"{SOURCE_STACK} -> {TARGET_STACK} failed (import): {failure.message}",
        ]
        assert progress[-1] == MoveFailed(
            source=SOURCE_STACK, target=TARGET_STACK, failure=failure, done=0, failed=1, total=1
        )
        assert stack_names(company_view) == set()
        assert export(agent_view, SOURCE_STACK) == source_before


def test_a_stack_with_pending_operations_is_refused(
    source: BackendIdentity, destination: BackendIdentity
) -> None:
    def interrupted(deployment: dict[str, Any]) -> None:
        deployment["pending_operations"] = [
            {"resource": deployment["resources"][-1], "type": "creating"}
        ]

    plant(source, interrupted)
    plan = migrate_plan(source, destination)
    progress: list[ProgressEvent] = []

    failed = migrate(plan, source, destination, progress=progress)

    failure = failed[entity_key(plan.moves[0].source)]
    assert failure.step == "read"
    assert "1 pending operation(s)" in failure.message
    assert [type(event) for event in progress] == [MoveStarted, MoveFailed]
    with looking_at(source) as agent_view, looking_at(destination) as company_view:
        assert stack_names(company_view) == set()
        assert stack_names(agent_view) == {SOURCE_STACK}


# --- Pulumi Cloud (the emulator) ------------------------------------------------------------

AGENT_ORG = "agent-7f3k2q"
COMPANY_ORG = "acme"
TWO_ORGS = {
    "users": [{"login": "platform", "token": "tok-platform", "orgs": {COMPANY_ORG: "admin"}}],
    "agents": [agent_entry(AGENT_ORG, token="tok-agent", claim_token="claim-agent")],
    "orgs": {AGENT_ORG: {}, COMPANY_ORG: {}},
}
"""An agent's org and a company's; neither identity is a member of the other's org."""


@pytest.fixture
def service(pulumi_cli: Path, make_emulator: EmulatorFactory) -> EmulatorServer:
    return make_emulator(TWO_ORGS)


@pytest.fixture(params=["rest", "cli"])
def via(request: pytest.FixtureRequest) -> MigrateVia:
    """Each test between two orgs of the service runs on both paths."""
    path: MigrateVia = request.param
    return path


def identities(service: EmulatorServer) -> tuple[BackendIdentity, BackendIdentity]:
    """The agent's identity and the platform team's, on `service`."""
    return (
        BackendIdentity(url=service.url, token="tok-agent"),
        BackendIdentity(url=service.url, token="tok-platform"),
    )


def cloud_plan(agent: BackendIdentity, platform: BackendIdentity) -> ClaimPlan:
    return migrate_plan(agent, platform, source_org=AGENT_ORG, destination_org=COMPANY_ORG)


def plant_in_service(service: EmulatorServer, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the agent's stored deployment of web/dev through an import of the edited export,
    as a damaged state would be stored."""
    stack = f"/api/stacks/{AGENT_ORG}/web/dev"
    headers = {"Authorization": "token tok-agent", "Accept": ACCEPT}
    with httpx.Client(base_url=service.url, headers=headers) as http:
        exported = http.get(f"{stack}/export").raise_for_status().json()
        edit(exported["deployment"])
        http.post(f"{stack}/import", json=exported).raise_for_status()


def test_migrate_between_two_orgs_each_with_its_own_identity(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    source_name, target = f"{AGENT_ORG}/web/dev", f"{COMPANY_ORG}/shop/prod"
    deploy(agent, source_name)
    with looking_at(agent) as agent_view:
        source_before = export(agent_view, source_name)

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via)

    assert failed == {}
    with looking_at(agent) as agent_view, user_of(platform, "shop") as user:
        assert outputs(user, target) == outputs(agent_view, source_name)
        assert outputs(user, target)["apiKey"] == API_KEY
        landed = export(user, target)
        assert len(landed["deployment"]["resources"]) == WORKLOAD_RESOURCES
        assert "ciphertext" in stored_api_key(landed)
        assert stored_api_key(landed) != stored_api_key(source_before)
        assert landed["deployment"]["secrets_providers"]["state"]["stack"] == "prod"
        tags = user.list_tags(target)
        assert tags["team"] == "platform"
        assert tags["pulumi:project"] == "shop"
        assert_previews_without_changes(Stack.select(target, user))
        assert export(agent_view, source_name) == source_before, "the source stays as it was"


def test_a_destination_stack_that_exists_already_in_the_service_is_refused(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    deploy(agent, f"{AGENT_ORG}/web/dev")
    target = f"{COMPANY_ORG}/shop/prod"
    with isolated_workspace(platform, project="shop") as other:
        other.create_stack(target)

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via, delete_source=True)

    assert [failure.message for failure in failed.values()] == [
        f"{target} already exists; nothing was changed"
    ]
    with looking_at(agent) as agent_view, looking_at(platform) as company_view:
        assert outputs(agent_view, f"{AGENT_ORG}/web/dev") == WORKLOAD_OUTPUTS
        assert "resources" not in export(company_view, target)["deployment"]


def test_a_state_that_would_not_load_fails_the_import_and_leaves_the_source(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    source_name, target = f"{AGENT_ORG}/web/dev", f"{COMPANY_ORG}/shop/prod"
    deploy(agent, source_name)

    def dangling_dependency(deployment: dict[str, Any]) -> None:
        deployment["resources"][-1]["dependencies"] = ["urn:pulumi:dev::web::app:index:Gone::x"]

    plant_in_service(service, dangling_dependency)
    progress: list[ProgressEvent] = []

    failed = migrate(
        cloud_plan(agent, platform), agent, platform, via=via, delete_source=True, progress=progress
    )

    failure = failed[entity_key(plan_move_source())]
    assert (failure.step, failure.source_untouched) == ("import", True)
    if via == "cli":
        assert failure.message.startswith("importing the state failed: error:")
        assert "state file contains errors" in failure.message
    else:
        assert failure.message.startswith("the state to import does not hold together: ")
        assert "dependency urn:pulumi:prod::shop::app:index:Gone::x is missing" in failure.message
    assert [event.describe() for event in progress] == [
        f"moving {source_name} -> {target}",
        f"created {target}",
        f"removed the half-made {target}",
        f"{source_name} -> {target} failed (import): {failure.message}",
    ]
    with looking_at(agent) as agent_view, looking_at(platform) as company_view:
        assert stack_names(company_view, COMPANY_ORG) == set()
        assert stack_names(agent_view, AGENT_ORG) == {source_name}


def test_an_import_the_service_refuses_removes_the_new_stack(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    deploy(agent, f"{AGENT_ORG}/web/dev")
    target = f"{COMPANY_ORG}/shop/prod"
    service.faults.fail(500, method="POST", path=f"/api/stacks/{target}/import", times=None)

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via)

    service.faults.clear()
    failure = failed[entity_key(plan_move_source())]
    assert (failure.step, failure.source_untouched) == ("import", True)
    assert failure.message.startswith("importing the state failed: ")
    with looking_at(agent) as agent_view, looking_at(platform) as company_view:
        assert stack_names(company_view, COMPANY_ORG) == set()
        assert outputs(agent_view, f"{AGENT_ORG}/web/dev") == WORKLOAD_OUTPUTS


def test_a_stack_with_pending_operations_in_the_service_is_refused(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    deploy(agent, f"{AGENT_ORG}/web/dev")

    def interrupted(deployment: dict[str, Any]) -> None:
        deployment["pending_operations"] = [
            {"resource": deployment["resources"][-1], "type": "creating"}
        ]

    plant_in_service(service, interrupted)

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via)

    failure = failed[entity_key(plan_move_source())]
    assert failure.step == "read"
    assert "1 pending operation(s)" in failure.message
    assert service.state.stack_names(COMPANY_ORG) == set()


def test_a_failed_verification_removes_the_new_stack_and_its_state(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    source_name, target = f"{AGENT_ORG}/web/dev", f"{COMPANY_ORG}/shop/prod"
    deploy(agent, source_name)
    # The import goes through; reading the new stack's state back does not.
    service.faults.fail(400, method="GET", path=f"/api/stacks/{target}/export", times=None)
    progress: list[ProgressEvent] = []

    failed = migrate(
        cloud_plan(agent, platform), agent, platform, via=via, delete_source=True, progress=progress
    )

    service.faults.clear()
    failure = failed[entity_key(plan_move_source())]
    assert failure.step == "verify"
    if via == "cli":
        assert failure.message.startswith("verification: loading the state failed: error:")
    else:
        assert failure.message.startswith(
            f"verification: reading {target} failed: GET /api/stacks/{target}/export"
        )
    assert [event.describe() for event in progress] == [
        f"moving {source_name} -> {target}",
        f"created {target}",
        f"removed the half-made {target}",
        f"{source_name} -> {target} failed (verify): {failure.message}",
    ]
    with looking_at(agent) as agent_view, looking_at(platform) as company_view:
        assert stack_names(company_view, COMPANY_ORG) == set()
        assert outputs(agent_view, source_name) == WORKLOAD_OUTPUTS


def test_migrate_between_two_orgs_deleting_the_source(
    service: EmulatorServer, via: MigrateVia
) -> None:
    agent, platform = identities(service)
    deploy(agent, f"{AGENT_ORG}/web/dev")

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via, delete_source=True)

    assert failed == {}
    assert service.state.stack_names(AGENT_ORG) == set()
    with looking_at(platform) as company_view:
        assert outputs(company_view, f"{COMPANY_ORG}/shop/prod") == WORKLOAD_OUTPUTS


def test_the_rest_path_needs_no_pulumi_cli(
    service: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, platform = identities(service)
    deploy(agent, f"{AGENT_ORG}/web/dev")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    with pytest.raises(PulumiCliError):
        pulumi_command()

    failed = migrate(cloud_plan(agent, platform), agent, platform, via="rest")

    assert failed == {}
    assert service.state.stack_names(COMPANY_ORG) == {("shop", "prod")}


def test_rest_with_a_self_managed_side_is_refused_before_anything_is_done(
    service: EmulatorServer, tmp_path: Path
) -> None:
    agent = BackendIdentity(url=service.url, token="tok-agent")
    files = file_backend(tmp_path / "state", DESTINATION_PASSPHRASE)
    service.requests.clear()

    with pytest.raises(InvalidInputError, match="migrate_via rest needs both sides"):
        migrate(migrate_plan(agent, files, "", source_org=AGENT_ORG), agent, files, via="rest")

    assert service.requests.entries() == []


def plan_move_source() -> TransferEntityStack:
    """The source stack of every plan here: web/dev."""
    return TransferEntityStack(project_name="web", stack_name="dev")


def test_migrate_from_the_service_to_a_file_backend_and_back_deleting_the_source(
    service: EmulatorServer, tmp_path: Path
) -> None:
    agent, platform = identities(service)
    files = file_backend(tmp_path / "state", DESTINATION_PASSPHRASE)
    deploy(agent, f"{AGENT_ORG}/web/dev")

    out = migrate(
        migrate_plan(agent, files, "", source_org=AGENT_ORG), agent, files, delete_source=True
    )
    back_in = migrate(
        migrate_plan(
            files, platform, "stacks: {web/dev: web/agent-dev}", destination_org=COMPANY_ORG
        ),
        files,
        platform,
        delete_source=True,
    )

    assert out == back_in == {}
    with (
        looking_at(agent) as agent_view,
        looking_at(files) as file_view,
        looking_at(platform) as company_view,
    ):
        assert stack_names(agent_view, AGENT_ORG) == set()
        assert stack_names(file_view) == set()
        assert outputs(company_view, f"{COMPANY_ORG}/web/agent-dev") == WORKLOAD_OUTPUTS


def test_migrate_between_two_pulumi_clouds(
    pulumi_cli: Path, make_emulator: EmulatorFactory, via: MigrateVia
) -> None:
    agents_cloud = make_emulator({**TWO_ORGS, "orgs": {AGENT_ORG: {}}})
    company_cloud = make_emulator({**TWO_ORGS, "agents": [], "orgs": {COMPANY_ORG: {}}})
    agent = BackendIdentity(url=agents_cloud.url, token="tok-agent")
    platform = BackendIdentity(url=company_cloud.url, token="tok-platform")
    deploy(agent, f"{AGENT_ORG}/web/dev")

    failed = migrate(cloud_plan(agent, platform), agent, platform, via=via, delete_source=True)

    assert failed == {}
    assert agents_cloud.state.stack_names(AGENT_ORG) == set()
    with user_of(platform, "shop") as user:
        assert outputs(user, f"{COMPANY_ORG}/shop/prod") == WORKLOAD_OUTPUTS
        provider = export(user, f"{COMPANY_ORG}/shop/prod")["deployment"]["secrets_providers"]
        assert provider["state"]["url"] == company_cloud.url
