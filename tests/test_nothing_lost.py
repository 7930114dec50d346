"""Nothing is lost on a re-run: a copy this run verified is never removed or made again, a
source that changed after it was copied is never removed, and a source that is not at its
name any more counts as removed only when a look-up by its identity says it is gone.

Each test runs `pulumi-claim commit --strategy migrate --delete-source` in its own process
against the emulator, and changes what a person or the agent would change between or during
the runs over the service's own API: the new owner updates the copy, the agent updates or
renames the source. A `hold` fault rule keeps the toolkit's next call waiting while the test
makes its change, so the change lands at an exact point of the run.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from agent_states import SECRET, landed_secrets, seed_stacks
from agent_times import agent_entry
from commit_process import Finished, run_toolkit, toolkit_env

from toolkit.choices import MigrateVia
from toolkit.cloud import ACCEPT
from toolkit.emulator.faults import RecordedRequest
from toolkit.emulator.server import EmulatorServer
from toolkit.entities import display_name
from toolkit.journal import read_run
from toolkit.models import AgentClaimResponse

if TYPE_CHECKING:
    from conftest import EmulatorFactory

AGENT = "agent-7f3k2q"
BASE = "values:\n  region: eu-west-1\n  password:\n    fn::secret: base-secret-1\n"
APP = "imports:\n  - base\nvalues:\n  name: app\n"
WORLD: dict[str, Any] = {
    "users": [{"login": "carol", "token": "tok-carol", "orgs": {"acme": "admin"}}],
    "agents": [agent_entry(AGENT, token="tok-agent", claim_token="claim-agent")],
    "orgs": {
        AGENT: {
            "environments": [
                {"project": "default", "name": "base", "definition": BASE},
                {"project": "default", "name": "app", "definition": APP},
            ]
        },
        "acme": {},
    },
}
"""The agent's org (two ESC environments, app importing base) and acme; carol, acme's
admin, is no member of the agent's org."""
SOURCE = f"{AGENT}/web/qa"
COPY = "acme/web/qa"
OTHER_SOURCE = f"{AGENT}/api/prod"


@pytest.fixture
def server(make_emulator: EmulatorFactory) -> EmulatorServer:
    server = make_emulator(WORLD)
    asyncio.run(
        seed_stacks(
            server, AGENT, "tok-agent", {("web", "qa"): {"team": "qa"}, ("api", "prod"): {}}
        )
    )
    server.requests.clear()
    return server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return toolkit_env(
        tmp_path / "runs", PULUMI_ACCESS_TOKEN="tok-carol", PULUMI_CLAIM_SOURCE_TOKEN="tok-agent"
    )


def commit(server: EmulatorServer, env: dict[str, str], via: MigrateVia = "rest") -> Finished:
    return run_toolkit(
        server,
        env,
        "commit",
        *("--from", AGENT, "--to", "acme", "--strategy", "migrate", "--migrate-via", via),
        *("--environments", "copy", "--delete-source", "--yes", "--format", "json"),
    )


def failures(finished: Finished) -> dict[str, str]:
    """`project/name -> failure details` of the commit's claim document (stacks and
    environments)."""
    document = AgentClaimResponse.model_validate(json.loads(finished.stdout))
    return {display_name(f.entity): f.failure_details for f in document.failures}


def service(server: EmulatorServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"token {token}", "Accept": ACCEPT}
    )


def add_resource(server: EmulatorServer, token: str, name: str, resource_name: str) -> None:
    """An update of the stack `name` that adds one resource, as `pulumi up` would store it
    (a new checkpoint, a new update version)."""
    _, project, stack = name.split("/")
    path = f"/api/stacks/{name}"
    with service(server, token) as http:
        exported = http.get(f"{path}/export").raise_for_status().json()
        exported["deployment"]["resources"].append(
            {
                "urn": f"urn:pulumi:{stack}::{project}::app:index:Service::{resource_name}",
                "custom": False,
                "type": "app:index:Service",
                "outputs": {"added": resource_name},
            }
        )
        http.post(f"{path}/import", json=exported).raise_for_status()


def resources(server: EmulatorServer, token: str, name: str) -> list[str]:
    with service(server, token) as http:
        exported = http.get(f"/api/stacks/{name}/export").raise_for_status().json()
    return [resource["urn"].rsplit("::", 1)[1] for resource in exported["deployment"]["resources"]]


def stacks(server: EmulatorServer, org: str) -> set[str]:
    return {f"{org}/{project}/{stack}" for project, stack in server.state.stack_names(org)}


@contextmanager
def while_held(
    server: EmulatorServer, *, method: str, path: str, after: Callable[[RecordedRequest], bool]
) -> Iterator[None]:
    """Once a request that `after` accepts has been carried out, hold the next `method path`
    request unanswered; the caller changes what it wants, then leaves the block, which lets
    the held request go on."""
    armed = threading.Event()

    def arm(entry: RecordedRequest) -> None:
        if not armed.is_set() and after(entry):
            armed.set()
            server.faults.hold(method=method, path=path)

    server.requests.watch(arm)
    try:
        yield
    finally:
        server.faults.release()


def commit_in_background(
    server: EmulatorServer, env: dict[str, str]
) -> tuple[threading.Thread, list[Finished]]:
    done: list[Finished] = []
    thread = threading.Thread(target=lambda: done.append(commit(server, env)))
    thread.start()
    return thread, done


def wait_held(server: EmulatorServer) -> None:
    for _ in range(3000):
        if server.faults.holding:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the toolkit never made the held call")


def copy_tagged(entry: RecordedRequest) -> bool:
    return entry.method == "PATCH" and entry.path == f"/api/stacks/{COPY}/tags"


# --- A verified copy is never removed -----------------------------------------------------


@pytest.mark.parametrize("via", ["rest", "cli"])
def test_a_rerun_after_a_failed_source_removal_keeps_the_copy_its_owner_updated(
    server: EmulatorServer, env: dict[str, str], via: MigrateVia, pulumi_cli: Path
) -> None:
    server.faults.fail(503, method="DELETE", path=f"/api/stacks/{SOURCE}", times=None)

    first = commit(server, env, via)

    assert first.returncode == 4, first.stderr
    assert f"{COPY} is migrated and verified" in failures(first)["web/qa"]
    server.faults.clear()
    # The new owner takes the copy on: an update adds a resource to it.
    add_resource(server, "tok-carol", COPY, "owners-cache")
    server.requests.clear()

    again = commit(server, env, via)

    assert again.returncode == 0, again.stderr
    assert "owners-cache" in resources(server, "tok-carol", COPY), "the owner's update is kept"
    assert stacks(server, AGENT) == set()
    changes = {(e.method, e.path) for e in server.requests.entries() if e.method != "GET"}
    assert ("DELETE", f"/api/stacks/{COPY}") not in changes, "the verified copy was removed"
    assert ("POST", "/api/stacks/acme/web") not in changes, "the copy was made again"
    assert ("POST", f"/api/stacks/{COPY}/import") not in changes
    assert read_run(Path(env["PULUMI_CLAIM_RUNS_DIR"])).finished


# --- A changed source is never removed ----------------------------------------------------


def test_a_source_updated_after_it_was_copied_is_kept_and_a_rerun_brings_the_change_over(
    server: EmulatorServer, env: dict[str, str]
) -> None:
    with while_held(server, method="GET", path=f"/api/stacks/{SOURCE}", after=copy_tagged):
        thread, done = commit_in_background(server, env)
        wait_held(server)
        # Between the copy's verification and the source's removal, the agent updates it.
        add_resource(server, "tok-agent", SOURCE, "agents-late-change")
    thread.join()
    first = done[0]

    assert first.returncode == 4, first.stderr
    assert f"{SOURCE} changed after it was copied" in failures(first)["web/qa"]
    assert "agents-late-change" in resources(server, "tok-agent", SOURCE), "the edit is kept"
    assert "agents-late-change" not in resources(server, "tok-carol", COPY)
    assert stacks(server, AGENT) == {SOURCE}, "only the unchanged source was removed"

    again = commit(server, env)

    assert again.returncode == 0, again.stderr
    assert "agents-late-change" in resources(server, "tok-carol", COPY), "brought over"
    assert asyncio.run(landed_secrets(server, "tok-carol", COPY)) == [SECRET, SECRET]
    assert stacks(server, AGENT) == set()
    assert stacks(server, "acme") == {COPY, "acme/api/prod"}


def test_when_both_the_source_and_the_copy_changed_both_are_left_and_the_run_says_so(
    server: EmulatorServer, env: dict[str, str]
) -> None:
    server.faults.fail(503, method="DELETE", path=f"/api/stacks/{SOURCE}", times=None)
    assert commit(server, env).returncode == 4
    server.faults.clear()
    add_resource(server, "tok-agent", SOURCE, "agents-change")
    add_resource(server, "tok-carol", COPY, "owners-change")

    again = commit(server, env)

    assert again.returncode == 4, again.stderr
    assert f"both {SOURCE} and {COPY} changed" in failures(again)["web/qa"]
    assert "agents-change" in resources(server, "tok-agent", SOURCE)
    assert "owners-change" in resources(server, "tok-carol", COPY)
    assert "agents-change" not in resources(server, "tok-carol", COPY)


# --- A source renamed meanwhile is not taken for removed ------------------------------------


def test_a_source_renamed_during_the_run_is_reported_where_it_is_now_not_as_removed(
    server: EmulatorServer, env: dict[str, str]
) -> None:
    server.faults.hold(method="DELETE", path=f"/api/stacks/{SOURCE}")
    thread, done = commit_in_background(server, env)
    wait_held(server)
    with service(server, "tok-agent") as http:
        http.post(
            f"/api/stacks/{SOURCE}/rename", json={"newName": "qa-renamed", "newProject": ""}
        ).raise_for_status()
    server.faults.release()
    thread.join()
    first = done[0]

    assert first.returncode == 4, first.stderr
    details = failures(first)["web/qa"]
    assert f"{SOURCE} is now {AGENT}/web/qa-renamed" in details
    assert stacks(server, AGENT) == {f"{AGENT}/web/qa-renamed"}
    assert stacks(server, "acme") == {COPY, "acme/api/prod"}

    again = commit(server, env)

    assert again.returncode == 4, "a re-run does not take the renamed source for removed"
    assert f"is now {AGENT}/web/qa-renamed" in failures(again)["web/qa"]


def test_a_source_whose_removal_was_applied_but_not_answered_counts_as_removed(
    server: EmulatorServer, env: dict[str, str]
) -> None:
    server.faults.drop_after_apply(method="DELETE", path=f"/api/stacks/{SOURCE}", times=None)

    first = commit(server, env)

    server.faults.clear()
    assert first.returncode in (0, 4), first.stderr
    again = commit(server, env)
    assert again.returncode == 0, again.stderr
    assert stacks(server, AGENT) == set()
    assert stacks(server, "acme") == {COPY, "acme/api/prod"}


# --- Environments: a changed source is never removed ---------------------------------------


def environment(server: EmulatorServer, token: str, name: str, tail: str = "") -> str:
    with service(server, token) as http:
        return http.get(f"/api/esc/environments/{name}{tail}").raise_for_status().text


def environments(server: EmulatorServer, token: str, org: str) -> set[str]:
    with service(server, token) as http:
        listed = http.get(f"/api/esc/environments/{org}").raise_for_status().json()
    return {f"{org}/{e['project']}/{e['name']}" for e in listed["environments"]}


def edit(server: EmulatorServer, token: str, name: str, definition: str) -> None:
    with service(server, token) as http:
        http.patch(
            f"/api/esc/environments/{name}",
            content=definition,
            headers={"Content-Type": "application/x-yaml"},
        ).raise_for_status()


APP_EDITED = APP + "  token:\n    fn::secret: added-late-7\n"


def app_copy_written(entry: RecordedRequest) -> bool:
    return entry.method == "PATCH" and entry.path == "/api/esc/environments/acme/default/app"


def test_an_environment_edited_after_it_was_copied_is_kept_and_a_rerun_brings_the_edit_over(
    server: EmulatorServer, env: dict[str, str]
) -> None:
    source_app = f"/api/esc/environments/{AGENT}/default/app"
    with while_held(server, method="GET", path=source_app, after=app_copy_written):
        thread, done = commit_in_background(server, env)
        wait_held(server)
        # Between the copy's verification and the source's removal, the agent adds a secret.
        edit(server, "tok-agent", f"{AGENT}/default/app", APP_EDITED)
    thread.join()
    first = done[0]

    assert first.returncode == 4, first.stderr
    failed = failures(first)
    assert f"{AGENT}/default/app changed after it was copied" in failed["default/app"]
    assert f"{AGENT}/default/app, which stays, imports it" in failed["default/base"]
    assert environments(server, "tok-agent", AGENT) == {
        f"{AGENT}/default/base",
        f"{AGENT}/default/app",
    }
    assert "added-late-7" in environment(server, "tok-agent", f"{AGENT}/default/app", "/decrypt")
    assert "added-late-7" not in environment(server, "tok-carol", "acme/default/app", "/decrypt")

    again = commit(server, env)

    assert again.returncode == 0, again.stderr
    assert "added-late-7" in environment(server, "tok-carol", "acme/default/app", "/decrypt")
    assert "added-late-7" not in environment(server, "tok-carol", "acme/default/app")
    assert environments(server, "tok-agent", AGENT) == set()


def test_when_an_environment_and_its_copy_both_changed_both_are_left(
    server: EmulatorServer, env: dict[str, str]
) -> None:
    server.faults.fail(
        503, method="DELETE", path=f"/api/esc/environments/{AGENT}/default/app", times=None
    )
    assert commit(server, env).returncode == 4
    server.faults.clear()
    edit(server, "tok-agent", f"{AGENT}/default/app", APP_EDITED)
    edit(server, "tok-carol", "acme/default/app", APP + "  owner: carol\n")

    again = commit(server, env)

    assert again.returncode == 4, again.stderr
    details = failures(again)["default/app"]
    assert f"both {AGENT}/default/app and acme/default/app changed" in details
    assert "added-late-7" in environment(server, "tok-agent", f"{AGENT}/default/app", "/decrypt")
    copy = environment(server, "tok-carol", "acme/default/app", "/decrypt")
    assert "owner: carol" in copy and "added-late-7" not in copy
    assert f"{AGENT}/default/base" in environments(server, "tok-agent", AGENT)
