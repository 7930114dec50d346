"""`pulumi-claim emulator` as a user runs it, in a process of its own: the fault options and a
restart over the control API, and bad input refused with one clear line, never a traceback."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

WORLD = (
    "users: [{login: u, token: tok-u, orgs: {o: admin}}]\n"
    "orgs: {o: {stacks: [{project: p, stack: s}]}}\n"
)
AUTH = {"Authorization": "token tok-u"}
CREATED = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
EXPIRES = (datetime.now(UTC) + timedelta(days=29)).isoformat()


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", "emulator", *args]


@pytest.fixture
def world(tmp_path: Path) -> Path:
    path = tmp_path / "world.yaml"
    path.write_text(WORLD, encoding="utf-8")
    return path


@contextlib.contextmanager
def serving(*args: str) -> Iterator[str]:
    """The emulator command running with `args`; its URL, read from its first line. It must
    stop cleanly on Ctrl-C."""
    child = subprocess.Popen(command(*args), stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        urls = re.findall(r"http://\S+", child.stdout.readline())
        assert len(urls) == 1
        yield urls[0]
    finally:
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0


def test_fault_options_and_a_restart_that_keeps_the_db(world: Path, tmp_path: Path) -> None:
    options = ["--fault-rate", "drop-after-apply=1", "--fault-rate", "500=0"]
    options += ["--fault-seed", "7", "--fault-method", "POST", "--fault-path", ".*/rename"]
    with (
        serving("--world", str(world), "--db", str(tmp_path / "state.db"), *options) as url,
        httpx.Client(base_url=url, headers=AUTH) as client,
    ):
        assert client.get("/api/stacks/o/p/s").status_code == 200  # a GET is spared
        with pytest.raises(httpx.TransportError):
            client.post("/api/stacks/o/p/s/rename", json={"newName": "renamed", "newProject": ""})
        rates = client.get("/_emulator/fault-rates").json()
        assert rates["rates"]["seed"] == 7
        assert (rates["considered"], rates["fired"]["dropAfterApply"]) == (1, 1)

        assert client.post("/_emulator/restart").status_code == 202
        restarts = 0
        while restarts == 0:
            with contextlib.suppress(httpx.TransportError):
                restarts = client.get("/_emulator/restart").json()["restarts"]
        assert client.get("/api/stacks/o/p/renamed").status_code == 200


def test_latency_option_is_what_the_control_api_reads(world: Path) -> None:
    with serving("--world", str(world), "--latency-ms", "5") as url:
        assert httpx.get(f"{url}/_emulator/latency").json() == {"latencyMs": 5}


def refused(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command(*args), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result


def test_a_binary_world_file_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "world.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    result = refused("--world", str(binary))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: world file {binary} is not UTF-8 text")


def test_a_db_that_cannot_be_created_is_refused(world: Path, tmp_path: Path) -> None:
    result = refused("--world", str(world), "--db", str(tmp_path / "no" / "such" / "state.db"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot keep emulator state in ")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "99999", "'--port': 99999 is not in the range 0<=x<=65535"),
        ("--port", "-1", "'--port': -1 is not in the range 0<=x<=65535"),
        ("--page-size", "0", "'--page-size': 0 is not in the range x>=1"),
        ("--latency-ms", "-5", "'--latency-ms': -5.0 is not in the range x>=0"),
        ("--fault-rate", "404=0.1", "'404=0.1': expected KIND=RATE with KIND one of 500"),
        ("--fault-rate", "500=2", "'500=2': the rate must be a number from 0 to 1"),
        ("--fault-rate", "500=lots", "'500=lots': the rate must be a number from 0 to 1"),
        ("--retry-after", "-1", "'--retry-after': -1.0 is not in the range x>=0"),
        (
            "--claim-seconds-per-stack",
            "-1",
            "'--claim-seconds-per-stack': -1.0 is not in the range x>=0",
        ),
        ("--rate-limit", "0", "'--rate-limit': 0.0 is not in the range x>0"),
    ],
)
def test_out_of_range_options_are_usage_errors(
    world: Path, option: str, value: str, message: str
) -> None:
    result = refused("--world", str(world), option, value)
    assert result.returncode == 2
    assert message in result.stderr


def test_fault_rates_over_one_in_all_are_a_usage_error(world: Path) -> None:
    result = refused("--world", str(world), "--fault-rate", "500=0.7", "--fault-rate", "503=0.5")
    assert result.returncode == 2
    assert "--fault-rate: the rates add up to 1.2, more than 1" in result.stderr


def test_a_fault_path_that_is_no_regex_is_a_usage_error(world: Path) -> None:
    result = refused("--world", str(world), "--fault-rate", "500=0.1", "--fault-path", "(")
    assert result.returncode == 2
    assert "--fault-path: not a regular expression" in result.stderr


def test_a_host_that_does_not_resolve_is_refused(world: Path) -> None:
    result = refused("--world", str(world), "--host", "no-such-host.invalid")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot listen on no-such-host.invalid:0: ")


def test_a_port_in_use_is_refused(world: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = refused("--world", str(world), "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in result.stderr


def test_max_page_size_option_lets_a_list_call_ask_for_bigger_pages(tmp_path: Path) -> None:
    world = tmp_path / "two-stacks.yaml"
    world.write_text(
        WORLD.replace("{project: p, stack: s}", "{project: p, stack: s}, {project: p, stack: t}"),
        "utf-8",
    )
    with (
        serving("--world", str(world), "--page-size", "1", "--max-page-size", "5") as url,
        httpx.Client(base_url=url, headers=AUTH) as client,
    ):
        listing = {"organization": "o"}
        default = client.get("/api/user/stacks", params=listing).json()
        larger = client.get("/api/user/stacks", params={**listing, "maxResults": "5"}).json()
    assert (len(default["stacks"]), len(larger["stacks"])) == (1, 2)


def test_a_max_page_size_below_the_page_size_is_a_usage_error(world: Path) -> None:
    result = refused("--world", str(world), "--page-size", "10", "--max-page-size", "5")
    assert result.returncode == 2
    assert "--max-page-size (5) must be at least --page-size (10)" in result.stderr


def test_a_resource_count_past_its_bound_is_refused_naming_the_field(tmp_path: Path) -> None:
    """10**30 fits no SQLite integer (an OverflowError once) and no export (a placeholder per
    resource): refused before anything is served."""
    huge = tmp_path / "huge.yaml"
    huge.write_text(WORLD.replace("stack: s}", f"stack: s, resourceCount: {10**30}}}"), "utf-8")
    result = refused("--world", str(huge))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: world file {huge} is invalid (1 problem(s))")
    assert (
        "  - orgs.o.stacks[0].resourceCount: Input should be less than or equal to 100000\n"
        in result.stderr
    )


def test_a_schedule_the_service_would_refuse_is_refused_naming_its_stack(tmp_path: Path) -> None:
    """A world schedule is held to the API's rules as it loads: one without the deployment
    request to run once made every list of the stack's schedules a 500."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        WORLD.replace("stack: s}", "stack: s, schedules: [{scheduleCron: '0 6 * * *'}]}"), "utf-8"
    )
    result = refused("--world", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: world file {bad} is invalid (1 problem(s)):\n"
        "  - orgs.o.stacks[0]: stack p/s: schedules[0]: a schedule needs the deployment request"
        " to run\n"
    )


def warnings_when_serving(*args: str) -> list[str]:
    """The lines on stderr of the emulator command served with `args`, then stopped."""
    child = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    assert b"listening on http://" in child.stdout.readline()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=20)
    assert child.returncode == 0
    return stderr.decode().splitlines()


def test_listening_beyond_loopback_is_warned_about_once_at_the_start(world: Path) -> None:
    """Its control API asks for no token: whoever reaches it drives it. Nothing connects to
    the wildcard address here; the test only listens on it."""
    (warning,) = warnings_when_serving("--world", str(world), "--host", "0.0.0.0")
    assert warning.startswith("warning: the emulator listens on http://0.0.0.0:")
    assert "control API under /_emulator/" in warning
    assert "asks for no token" in warning


def test_listening_on_loopback_is_not_warned_about(world: Path) -> None:
    assert warnings_when_serving("--world", str(world), "--host", "127.0.0.1") == []


def test_the_claim_pace_option_replaces_the_worlds(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    agent = "{login: agent-1, token: tok-a, claimToken: claim-1, "
    world.write_text(
        "service: {claimSecondsPerStack: 0}\n"
        "users: [{login: u, token: tok-u, orgs: {o: admin}}]\n"
        f"agents: [{agent}createdAt: {CREATED}, claimExpiresAt: {EXPIRES}}}]\n"
        "orgs: {agent-1: {stacks: [{project: p, stack: a}, {project: p, stack: b}]}}\n",
        encoding="utf-8",
    )
    with serving("--world", str(world), "--claim-seconds-per-stack", "3600") as url:
        started = httpx.post(
            f"{url}/api/agents/o/claim", json={"claimToken": "claim-1"}, headers=AUTH
        )
        assert started.json()["transferToken"]
        listed = [httpx.get(f"{url}/api/user/stacks?organization=o", headers=AUTH).json()]
        httpx.post(f"{url}/_emulator/clock", json={"advanceSeconds": 3600}).raise_for_status()
        listed.append(httpx.get(f"{url}/api/user/stacks?organization=o", headers=AUTH).json())

    assert [[s["stackName"] for s in page["stacks"]] for page in listed] == [[], ["a"]]


def test_the_rate_limit_option_replaces_the_worlds(tmp_path: Path) -> None:
    world = tmp_path / "world.yaml"
    world.write_text("service: {rateLimit: 1000}\n" + WORLD, encoding="utf-8")
    with serving("--world", str(world), "--rate-limit", "0.01") as url:
        assert httpx.get(f"{url}/_emulator/rate-limit").json() == {"perSecond": 0.01}
        answered = [httpx.get(f"{url}/api/user", headers=AUTH) for _ in range(2)]
    assert [a.status_code for a in answered] == [200, 429]
