"""What a migrate leaves behind, however it ends: no token in any file, no workspace folder, no
`pulumi` process. Real migrations against the emulator with the real CLI; the toolkit killed
outright runs in a child process, caught while the emulator holds one of its CLI's calls."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from agent_times import agent_entry
from pulumi.automation import ConfigValue, Stack
from waiting import wait_until

from tests.workload.workload import pulumi_program
from toolkit import pulumi_launcher
from toolkit.credentials import BackendIdentity
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import Inventory
from toolkit.models import AgentAccountSummary, TransferEntityStack
from toolkit.plan import ClaimPlan, ClaimTarget, build_plan
from toolkit.resolution_map import ResolutionMap
from toolkit.strategies.migrate import execute_migrate
from toolkit.workspaces import WORKSPACE_PREFIX, isolated_workspace, sweep_stale_workspaces

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; the launcher is Linux-only"
)

AGENT_ORG = "agent-7f3k2q"
COMPANY_ORG = "acme"
AGENT_TOKEN = "tok-agent-5f1c9e"
PLATFORM_TOKEN = "tok-platform-8d2b7a"
TOKENS = (AGENT_TOKEN, PLATFORM_TOKEN)
WORLD = {
    "users": [{"login": "platform", "token": PLATFORM_TOKEN, "orgs": {COMPANY_ORG: "admin"}}],
    "agents": [agent_entry(AGENT_ORG, token=AGENT_TOKEN, claim_token="claim-agent")],
    "orgs": {AGENT_ORG: {}, COMPANY_ORG: {}},
}
"""An agent's org and a company's; each identity a member of its own only."""
SOURCE_STACK = f"{AGENT_ORG}/web/dev"
IMPORT_PATH = rf"/api/stacks/{COMPANY_ORG}/web/dev/import"
"""Where the destination's CLI imports the state: the call the tests catch a migrate in."""


@pytest.fixture
def service(pulumi_cli: Path, make_emulator: EmulatorFactory) -> EmulatorServer:
    """The emulator with the agent's workload deployed in `SOURCE_STACK`."""
    server = make_emulator(WORLD)
    agent = BackendIdentity(url=server.url, token=AGENT_TOKEN)
    with isolated_workspace(agent, project="web", program=pulumi_program) as workspace:
        stack = Stack.create(SOURCE_STACK, workspace)
        stack.set_config("apiKey", ConfigValue("sk-live-42", secret=True))
        assert stack.up().summary.result == "succeeded"
    return server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The workspace root of this test, where a commit makes migrate's workspaces: under its
    runs directory (resolved: the CLI sees real paths)."""
    return (tmp_path / "runs" / "workspaces").resolve()


def workspace_folders(root: Path) -> list[Path]:
    return sorted(root.glob(f"{WORKSPACE_PREFIX}*"))


def files_holding_a_token(root: Path) -> list[Path]:
    """Every file under `root` that holds one of the identities' tokens."""
    holding = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                if any(token.encode() in content for token in TOKENS):
                    holding.append(path)
        except OSError:
            pass  # Removed meanwhile by the workspace it was in.
    return holding


def workspace_processes(root: Path) -> dict[int, str]:
    """The live processes (zombies aside) whose `PULUMI_HOME` is under `root`: a workspace's
    CLI processes and whatever they started. Their pid and command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # Gone, or another user's.
        homes = [
            Path(os.fsdecode(v.partition(b"=")[2]))
            for v in environ
            if v.startswith(b"PULUMI_HOME=")
        ]
        if state != "Z" and any(home.is_relative_to(root) for home in homes):
            found[int(entry.name)] = command
    return found


def migrate_plan(server: EmulatorServer) -> ClaimPlan:
    """Moving the agent's web/dev into the company's org, name unchanged."""
    now = datetime.now(UTC)
    stack = TransferEntityStack(project_name="web", stack_name="dev", last_update=now)
    return build_plan(
        target=ClaimTarget(AGENT_ORG, COMPANY_ORG, server.url, server.url),
        source=Inventory(org=AGENT_ORG, stacks=[stack]),
        destination=Inventory(org=COMPANY_ORG),
        resolution_map=ResolutionMap.empty(),
        strategy="migrate",
        agent=AgentAccountSummary(login=AGENT_ORG, org_name=AGENT_ORG, created_at=now),
        claim_expires_at=now,
    )


def test_no_file_holds_a_token_while_a_migrate_runs_or_after(
    service: EmulatorServer, root: Path
) -> None:
    agent = BackendIdentity(url=service.url, token=AGENT_TOKEN)
    platform = BackendIdentity(url=service.url, token=PLATFORM_TOKEN)
    service.faults.hold(method="POST", path=IMPORT_PATH)
    with ThreadPoolExecutor(1) as pool:
        migrating = pool.submit(
            asyncio.run,
            execute_migrate(migrate_plan(service), agent, platform, via="cli", workspace_root=root),
        )
        try:
            wait_until(lambda: service.faults.holding == 1 or migrating.done(), "the import held")
            assert not migrating.done(), migrating.result()
            # Both identities' workspaces are open; every command before the import has run.
            assert len(workspace_folders(root)) == 2
            assert any(path.is_file() for path in root.rglob("home/**/*")), "the CLI wrote nothing"
            assert files_holding_a_token(root) == []
        finally:
            service.faults.clear()
        assert migrating.result() == {}
    assert service.state.stack_names(COMPANY_ORG) == {("web", "dev")}
    assert files_holding_a_token(root) == []
    assert workspace_folders(root) == []


def commit_in_a_child_process(
    server: EmulatorServer, tmp_path: Path, *, ignoring_sigint: bool = False
) -> subprocess.Popen[str]:
    """`pulumi-claim commit --strategy migrate` of the agent's stacks, run as a process of its
    own whose runs directory is `tmp_path / "runs"` (so its workspace root is `root`); with
    `ignoring_sigint`, as a background job of a shell script starts it."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PULUMI_ACCESS_TOKEN": PLATFORM_TOKEN,
        "PULUMI_CLAIM_SOURCE_TOKEN": AGENT_TOKEN,
        "PULUMI_BACKEND_URL": server.url,
        "PULUMI_CLAIM_RUNS_DIR": str(tmp_path / "runs"),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    command = [sys.executable, "-m", "toolkit", "commit", "--from", AGENT_ORG, "--to", COMPANY_ORG]
    command += ["--strategy", "migrate", "--migrate-via", "cli", "--yes"]
    if ignoring_sigint:
        command = ["/bin/sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_the_held_import(server: EmulatorServer, toolkit: subprocess.Popen[str]) -> None:
    def held() -> bool:
        if toolkit.poll() is not None:
            raise AssertionError(f"the toolkit ended first: {toolkit.communicate()}")
        return server.faults.holding == 1

    wait_until(held, "the child's import is held")


def test_a_toolkit_killed_mid_migrate_leaves_no_pulumi_process_and_its_folders_are_swept(
    service: EmulatorServer, tmp_path: Path, root: Path
) -> None:
    service.faults.hold(method="POST", path=IMPORT_PATH)
    toolkit = commit_in_a_child_process(service, tmp_path)
    try:
        wait_for_the_held_import(service, toolkit)
        running = workspace_processes(root)
        assert any(" stack import " in command for command in running.values()), running
        assert files_holding_a_token(root) == []

        toolkit.kill()
        toolkit.wait()

        wait_until(lambda: not workspace_processes(root), "the toolkit's pulumi processes end")
    finally:
        toolkit.kill()
        service.faults.clear()
    assert len(workspace_folders(root)) == 2, "the source's and the destination's workspace"
    assert files_holding_a_token(root) == []
    # The next run's first workspace under the same root removes them.
    backend = BackendIdentity(url=tmp_path.as_uri(), secrets_passphrase="pw")
    with isolated_workspace(backend, project="web", workspace_root=root) as next_run:
        assert workspace_folders(root) == [Path(next_run.work_dir).parent]


@pytest.mark.parametrize(
    ("stop", "ignoring_sigint"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGTERM", "SIGINT", "SIGTERM-with-SIGINT-ignored"],
)
def test_a_stopped_toolkit_finishes_the_stack_it_moves_and_leaves_nothing(
    service: EmulatorServer,
    tmp_path: Path,
    root: Path,
    stop: signal.Signals,
    ignoring_sigint: bool,
) -> None:
    service.faults.hold(method="POST", path=IMPORT_PATH)
    toolkit = commit_in_a_child_process(service, tmp_path, ignoring_sigint=ignoring_sigint)
    try:
        wait_for_the_held_import(service, toolkit)
        toolkit.send_signal(stop)
        service.faults.release()
        _, stderr = toolkit.communicate()
    finally:
        toolkit.kill()
        service.faults.clear()
    # The one move was under way: it finished, so nothing is left and the run is done.
    assert toolkit.returncode == 0, stderr
    assert "stopping: no new call starts" in stderr
    assert workspace_folders(root) == []
    assert workspace_processes(root) == {}
    assert files_holding_a_token(root) == []
    # The move under way was carried through (or would have been undone), never left half-made.
    assert service.state.stack_names(COMPANY_ORG) == {("web", "dev")}


@pytest.mark.parametrize("failure", [ValueError, KeyboardInterrupt])
def test_a_workspace_left_by_an_exception_is_removed(
    pulumi_cli: Path, tmp_path: Path, root: Path, failure: type[BaseException]
) -> None:
    backend = BackendIdentity(url=tmp_path.as_uri(), secrets_passphrase="pw")
    with pytest.raises(failure), isolated_workspace(backend, project="web", workspace_root=root):
        assert len(workspace_folders(root)) == 1
        raise failure
    assert workspace_folders(root) == []


def test_workspace_folders_are_private_whatever_the_umask(pulumi_cli: Path, tmp_path: Path) -> None:
    root = tmp_path / "new" / "workspaces"
    backend = BackendIdentity(url=tmp_path.as_uri(), secrets_passphrase="pw")
    umask = os.umask(0)
    try:
        with isolated_workspace(backend, project="web", workspace_root=root) as workspace:
            folder = Path(workspace.work_dir).parent
            modes = {
                path.name: path.stat().st_mode & 0o777
                for path in (root, folder, folder / "home", folder / "work")
            }
    finally:
        os.umask(umask)
    assert set(modes.values()) == {0o700}, modes


def test_the_sweep_keeps_live_owners_folders_and_folders_it_did_not_make(
    pulumi_cli: Path, tmp_path: Path, root: Path
) -> None:
    backend = BackendIdentity(url=tmp_path.as_uri(), secrets_passphrase="pw")
    unmarked = root / f"{WORKSPACE_PREFIX}unmarked"
    other = root / "someone-elses"
    with isolated_workspace(backend, project="web", workspace_root=root) as workspace:
        unmarked.mkdir()
        other.mkdir()
        ours = Path(workspace.work_dir).parent
        assert sweep_stale_workspaces(root) == []
        assert sorted(root.iterdir()) == sorted([ours, unmarked, other])


def test_the_sweep_tells_a_live_owner_from_a_later_process_given_its_pid(
    pulumi_cli: Path, tmp_path: Path, root: Path
) -> None:
    backend = BackendIdentity(url=tmp_path.as_uri(), secrets_passphrase="pw")
    with isolated_workspace(backend, project="web", workspace_root=root) as workspace:
        ours = Path(workspace.work_dir).parent
        # A folder whose owner had this process's pid but started at another time: it is dead,
        # and the pid was given to this process since.
        earlier = root / f"{WORKSPACE_PREFIX}earlier"
        shutil.copytree(ours, earlier)
        owner = json.loads((earlier / "owner.json").read_text())
        assert owner["pid"] == os.getpid()
        owner["started"] -= 1
        (earlier / "owner.json").write_text(json.dumps(owner))

        assert sweep_stale_workspaces(root) == [earlier]
        assert workspace_folders(root) == [ours]


def test_the_launcher_starts_nothing_once_the_toolkit_is_gone(tmp_path: Path) -> None:
    # A parent pid that is not the launcher's: the toolkit died before the launcher asked to be
    # killed with it, so it never would be.
    mark = tmp_path / "ran"
    launched = subprocess.run(
        [sys.executable, "-I", "-S", pulumi_launcher.__file__, "1", "/usr/bin/touch", str(mark)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert launched.returncode == 1
    assert "has exited" in launched.stderr
    assert not mark.exists()


def test_no_process_is_started_through_a_preexec_fn() -> None:
    """A `preexec_fn` makes Python fork the whole process rather than spawn the child: where
    gRPC runs threads (the Automation API), the forked child dies now and then of gRPC's abort
    before it runs its command. Limits are set from outside (`prlimit`) instead."""
    root = Path(__file__).resolve().parent.parent
    passing = [
        f"{path.relative_to(root)}:{node.lineno}"
        for folder in ("toolkit", "tests", "bench", "programs", "scripts")
        for path in sorted((root / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.keyword) and node.arg == "preexec_fn"
    ]
    assert passing == []
