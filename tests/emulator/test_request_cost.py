"""The emulator's own work a request, counted in Python function calls while its app answers
(a count, not a time: the same on a busy machine). Every call the emulator makes on a hot
route of a commit, a preview or a migration is CPU that each of the 16 calls in flight waits
behind; these bounds keep FastAPI's per-request machinery from growing back."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest

from toolkit.emulator.app import create_app
from toolkit.emulator.in_process import answer
from toolkit.emulator.state import ServiceState
from toolkit.emulator.world import parse_world

TOKEN = "tok-alice"
WORLD = {
    "users": [{"login": "alice", "token": TOKEN, "orgs": {"acme": "admin", "agent": "admin"}}],
    "orgs": {
        "agent": {
            "stacks": [{"project": "web", "stack": f"dev-{i:03d}"} for i in range(150)],
            "environments": [{"project": "web", "name": f"env-{i:03d}"} for i in range(150)],
        },
        "acme": {"stacks": []},
    },
}


def calls_to_answer(
    method: str, path: str, *, query: str = "", body: Any = None
) -> tuple[int, bytes, int]:
    """The status and body of one request to a fresh emulator app, called in-process, and
    how many Python function calls the app made answering it (the first request, which
    warms caches, is not counted)."""
    app = create_app(ServiceState.from_world(parse_world(WORLD)))

    async def warm_then_count() -> tuple[int, bytes, int]:
        await answer(app, "GET", "/api/user", token=TOKEN)
        calls = 0

        def count(frame: FrameType, event: str, arg: object) -> None:
            nonlocal calls
            if event == "call":
                calls += 1

        profile: Callable[..., None] = count
        sys.setprofile(profile)
        try:
            status, written = await answer(app, method, path, token=TOKEN, query=query, body=body)
        finally:
            sys.setprofile(None)
        return status, written, calls

    return asyncio.run(warm_then_count())


STACK = "/api/stacks/agent/web/dev-007"


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "status", "most_calls"),
    [
        ("GET", "/api/user/stacks", "organization=agent&maxResults=100", None, 200, 1280),
        ("GET", "/api/esc/environments/agent", "maxResults=100", None, 200, 1380),
        ("GET", STACK, "", None, 200, 510),
        ("POST", STACK + "/transfer", "", {"toOrg": "acme"}, 204, 890),
        ("PATCH", STACK + "/tags", "", {"owner": "alice"}, 204, 660),
        ("POST", "/api/stacks/acme/web", "", {"stackName": "new"}, 200, 715),
        ("GET", STACK + "/export", "", None, 200, 575),
        ("POST", STACK + "/batch-encrypt", "", {"plaintexts": ["c2VjcmV0"]}, 200, 760),
    ],
)
def test_a_hot_route_answers_within_its_count_of_calls(
    method: str, path: str, query: str, body: Any, status: int, most_calls: int
) -> None:
    answered, _, calls = calls_to_answer(method, path, query=query, body=body)
    assert answered == status
    assert calls <= most_calls, f"{method} {path} made {calls} Python calls"


def test_the_serving_process_keeps_its_start_up_out_of_full_collections(tmp_path: Path) -> None:
    """What exists once the emulator listens (its modules, the app and its routes, uvicorn)
    lives as long as the process: frozen out of the collector's passes, a full collection
    walks only what requests made since, not tens of thousands of objects (a page that met
    one took 40-100 ms longer)."""
    world = tmp_path / "world.yaml"
    world.write_text(json.dumps(WORLD))
    script = textwrap.dedent(
        f"""
        import gc
        from pathlib import Path
        from toolkit.emulator.server import serve_forever
        serve_forever(Path({str(world)!r}), port=0)
        print("frozen", gc.get_freeze_count(), "tracked", len(gc.get_objects()), flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    url = child.stdout.readline().split()[-1]
    for _ in range(20):
        listed = httpx.get(f"{url}/api/user/stacks", headers={"Authorization": f"token {TOKEN}"})
        assert listed.status_code == 200
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=20) == 0
    _, frozen, _, tracked = child.stdout.read().split()
    assert int(frozen) > 10 * int(tracked), f"{frozen} objects frozen, {tracked} tracked"
