"""Benchmark: migrate an agent's stacks to a company org, over REST, through the CLI, by hand.

Measures the migrate targets (docs/performance.md): 200 stacks of 20 resources with 2 secrets
each move from the agent's org to `acme`, whose user is no member of the agent's org (so
migrate is the strategy, as in an agent claim), at 20 ms added per request, three ways
(`--via rest`: the first alone, for its figure without the CLI's minutes):

- the REST path: `commit_claim(..., migrate_via="rest")`, no pulumi process;
- the CLI path: the same through the pulumi CLI (`migrate_via="cli"`, its default concurrency);
- by hand, as a user without the toolkit would do it: for each stack, one after another,
  `pulumi stack export --show-secrets --file F` as the agent, then `pulumi stack init` and
  `pulumi stack import --file F` as the acme user. The file stands between the two logins as it
  does when state is moved by hand (export as one identity, import as the other); it holds the
  stack's secrets in plaintext, so it lives in a private (0700) temporary folder and is removed
  after each stack. It is the baseline to compare with, never something the toolkit does.

The world is seeded once and honestly, untimed: the real pulumi CLI imports a hand-built state
(`hand_built_deployment`) into the first stack; every other stack gets the same state under its
own name over plain REST, its secrets sealed with its own key by the emulator (`batch-encrypt`).
Each measurement then runs on a fresh copy of that world, in an emulator process of its own
(`pulumi-claim emulator --db`, on the port the seeded secrets provider names), so the
destination is empty every time and the calls served are that path's alone. After each path
every stack must be in acme exactly once, with its 20 resources, its secrets opening there (as
the acme user) to the source's plaintext.

    uv run python bench/migrate.py           # 200 stacks: about 10 minutes on 2 cores
    uv run python bench/migrate.py --quick   # 3 stacks: about half a minute; targets n/a
    uv run python bench/migrate.py --via rest   # the REST path alone: well under a minute

It is a benchmark, not a test: it asserts only that every path moved every stack intact.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_urlsafe
from typing import Any, TypeVar

import httpx
from _emulator import Emulator, SlotCycle, announce, check, sign_off
from preview_commit import CallFloors, CpuACall, Figure, print_table, write_world

from toolkit.choices import MigrateVia
from toolkit.claim import commit_claim, plan_claim
from toolkit.cloud import DEFAULT_MAX_CONCURRENCY
from toolkit.credentials import Credentials
from toolkit.plan import ClaimTarget
from toolkit.resolution_map import ResolutionMap
from toolkit.sides import Sides
from toolkit.stack_state import plaintexts, sealed, secrets
from toolkit.strategies.migrate import CLI_CONCURRENCY
from toolkit.urns import SECRET_SIG, SIG_KEY
from toolkit.workspaces import PULUMI_CLI_VERSION, pulumi_command

T = TypeVar("T")

AGENT = "agent-bench"
AGENT_TOKEN = "tok-agent"
DESTINATION = "acme"
USER = "carol"
USER_TOKEN = "tok-carol"
"""carol administers acme only: migrate is the strategy, with the agent's token as the source."""
TARGET = ClaimTarget(source_org=AGENT, destination_org=DESTINATION)
LATENCY_MS = 20.0
RESOURCES = 20
"""Per stack: the root stack, its default provider and 18 custom resources."""
SECRETS = 2
REST_SECONDS_TARGET = 10.0
CLI_SPEEDUP_TARGET = 20.0
"""The CLI path takes at least this many times the REST path's time."""


@dataclass(frozen=True)
class Scale:
    stacks: int
    projects: int


FULL = Scale(stacks=200, projects=4)
QUICK = Scale(stacks=3, projects=2)


def stack_names(scale: Scale) -> list[tuple[str, str]]:
    """(project, stack) of every stack the agent owns."""
    return [(f"app-{i % scale.projects:02d}", f"env-{i:03d}") for i in range(scale.stacks)]


# --- The world -----------------------------------------------------------------------------


def migrate_world() -> dict[str, Any]:
    """The agent's org (its own token) and acme (carol, admin there only), no stacks yet."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "users": [{"login": USER, "token": USER_TOKEN, "orgs": {DESTINATION: "admin"}}],
        "agents": [
            {
                "login": AGENT,
                "token": AGENT_TOKEN,
                "claimToken": "claim-bench",
                # Within the service's windows: an hour old (writes for 72 hours), claimable.
                "createdAt": (now - timedelta(hours=1)).isoformat(),
                "claimExpiresAt": (now + timedelta(days=30)).isoformat(),
            }
        ],
        "orgs": {DESTINATION: {"stacks": []}, AGENT: {"stacks": []}},
    }


def hand_built_deployment(
    url: str, project: str, stack: str, secret_values: tuple[str, str]
) -> dict[str, Any]:
    """A v3 state as `pulumi up` of a small random-provider program would leave it, with its
    two secrets in plaintext (as `pulumi stack export --show-secrets` shows them).

    The root stack; the default provider; two passwords, each with a secret `result`; eight
    pets and eight ids, each id depending on a pet (so dependencies and property dependencies
    name URNs too). Every custom resource names the provider by `urn::id`.
    """

    def digest(name: str) -> str:
        return hashlib.sha256(f"{project}/{stack}/{name}".encode()).hexdigest()

    def urn(type_: str, name: str) -> str:
        return f"urn:pulumi:{stack}::{project}::{type_}::{name}"

    def custom(type_: str, name: str, inputs: dict[str, Any], **more: Any) -> dict[str, Any]:
        resource_id = f"{name}-{digest(name)[:8]}"
        outputs = {**inputs, "id": resource_id, **more.pop("outputs", {})}
        return {
            "urn": urn(type_, name),
            "custom": True,
            "id": resource_id,
            "type": type_,
            "inputs": inputs,
            "outputs": outputs,
            "parent": root,
            "provider": provider_reference,
            **more,
        }

    root = urn("pulumi:pulumi:Stack", f"{project}-{stack}")
    provider_urn = urn("pulumi:providers:random", "default_4_16_0")
    provider_id = str(uuid.UUID(digest("provider")[:32]))
    provider_reference = f"{provider_urn}::{provider_id}"
    resources: list[dict[str, Any]] = [
        {
            "urn": root,
            "custom": False,
            "type": "pulumi:pulumi:Stack",
            "outputs": {"region": "local", "endpoint": f"https://{stack}.{project}.internal"},
        },
        {
            "urn": provider_urn,
            "custom": True,
            "id": provider_id,
            "type": "pulumi:providers:random",
            "inputs": {"version": "4.16.0"},
            "outputs": {"version": "4.16.0"},
        },
    ]
    for index, value in enumerate(secret_values):
        secret = {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}
        resources.append(
            custom(
                "random:index/randomPassword:RandomPassword",
                f"password-{index}",
                {"length": len(value), "special": False},
                outputs={"result": secret},
                additionalSecretOutputs=["result"],
            )
        )
    for index in range(8):
        pet = custom("random:index/randomPet:RandomPet", f"pet-{index}", {"length": 2})
        keepers = {"pet": pet["id"]}
        resources += [
            pet,
            custom(
                "random:index/randomId:RandomId",
                f"id-{index}",
                {"byteLength": 8, "keepers": keepers},
                dependencies=[pet["urn"]],
                propertyDependencies={"keepers": [pet["urn"]]},
            ),
        ]
    check(len(resources) == RESOURCES, f"the hand-built state has {len(resources)} resources")
    return exported_state(url, project, stack, resources)


@dataclass(frozen=True)
class SeededWorld:
    world_file: Path
    db: Path
    """The emulator's state with every stack seeded; each measurement serves a copy."""
    port: int
    """The seeded stacks' secrets provider names the service at this port."""
    stacks: list[tuple[str, str]]
    secret_values: dict[tuple[str, str], tuple[str, str]]
    """Each stack's two secrets, in memory only: what they must open to after a migration."""


def exported_state(
    url: str, project: str, stack: str, resources: list[dict[str, Any]]
) -> dict[str, Any]:
    """A stack of the agent's org as `pulumi stack export` writes it: `resources`, their
    secrets sealed by the service's secrets manager of that stack at `url`."""
    version = f"v{PULUMI_CLI_VERSION}"
    return {
        "version": 3,
        "deployment": {
            "manifest": {
                "time": datetime.now(UTC).isoformat(),
                "magic": hashlib.sha256(version.encode()).hexdigest(),
                "version": version,
            },
            "secrets_providers": {
                "type": "service",
                "state": {"url": url, "owner": AGENT, "project": project, "stack": stack},
            },
            "resources": resources,
        },
    }


def seed(folder: Path, scale: Scale) -> SeededWorld:
    """The agent's stacks, seeded at no added latency (untimed)."""
    world = SeededWorld(
        world_file=write_world(folder, "migrate", migrate_world()),
        db=folder / "seeded.sqlite",
        port=free_loopback_port(),
        stacks=stack_names(scale),
        secret_values={name: (token_urlsafe(18), token_urlsafe(24)) for name in stack_names(scale)},
    )
    with serving(world, world.db, latency_ms=0.0) as service:
        with pulumi_user(service.url, AGENT_TOKEN, folder) as agent:
            first = world.stacks[0]
            state = hand_built_deployment(service.url, *first, world.secret_values[first])
            agent.run("stack", "init", f"{AGENT}/{first[0]}/{first[1]}", "--no-select")
            agent.run("stack", "import", "--stack", f"{AGENT}/{first[0]}/{first[1]}", stdin=state)
        asyncio.run(replicate(service.url, world))
    # A clean stop leaves the whole state in the file (no write-ahead log beside it) to copy.
    check(not Path(f"{world.db}-wal").exists(), f"{world.db} was not closed cleanly")
    return world


async def replicate(url: str, world: SeededWorld) -> None:
    """Every stack but the first, as the agent over REST: created, its state's secrets sealed
    with its own key, imported."""

    async def one(api: Service, project: str, stack: str) -> None:
        state = hand_built_deployment(url, project, stack, world.secret_values[project, stack])
        await api.create_stack(AGENT, project, stack)
        opened = state["deployment"]
        ciphertexts = await api.batch_encrypt(AGENT, project, stack, plaintexts(opened))
        state["deployment"] = sealed(opened, ciphertexts)
        await api.import_stack(AGENT, project, stack, state)

    async with Service(url, AGENT_TOKEN) as api:
        await asyncio.gather(*(one(api, *name) for name in world.stacks[1:]))


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(world: SeededWorld, db: Path, *, latency_ms: float) -> Iterator[Emulator]:
    """An emulator of `db` (the seeded world's, or a copy of it) on the world's port."""
    service = Emulator(world.world_file, latency_ms=latency_ms, db=db, port=world.port)
    try:
        service.wait_until_listening()
        yield service
    finally:
        service.stop()


@contextmanager
def fresh_copy(world: SeededWorld, folder: Path, name: str) -> Iterator[Emulator]:
    """An emulator serving a copy of the seeded world, at LATENCY_MS."""
    db = folder / f"{name}.sqlite"
    shutil.copyfile(world.db, db)
    with serving(world, db, latency_ms=LATENCY_MS) as service:
        yield service


# --- The service's calls, as the seeding and the checks make them --------------------------


class Service:
    """The REST calls the pulumi CLI makes to seed and read stacks, as one identity.

    Deliberately not the toolkit's client: the seed and the checks stand apart from the code
    they measure.
    """

    def __init__(self, url: str, token: str) -> None:
        headers = {"Authorization": f"token {token}", "Accept": "application/vnd.pulumi+8"}
        limits = httpx.Limits(max_connections=DEFAULT_MAX_CONCURRENCY)
        self._http = httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60)

    async def __aenter__(self) -> Service:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def create_stack(self, org: str, project: str, stack: str) -> None:
        await self._call("POST", f"/api/stacks/{org}/{project}", {"stackName": stack})

    async def batch_encrypt(
        self, org: str, project: str, stack: str, texts: list[str]
    ) -> list[str]:
        body = {"plaintexts": [base64.b64encode(text.encode()).decode() for text in texts]}
        answer = await self._call("POST", f"{_stack(org, project, stack)}/batch-encrypt", body)
        ciphertexts: list[str] = answer["ciphertexts"]
        return ciphertexts

    async def batch_decrypt(
        self, org: str, project: str, stack: str, ciphertexts: list[str]
    ) -> dict[str, str]:
        """Each ciphertext's plaintext (the secret value's JSON)."""
        answer = await self._call(
            "POST", f"{_stack(org, project, stack)}/batch-decrypt", {"ciphertexts": ciphertexts}
        )
        return {
            sent: base64.b64decode(opened).decode() for sent, opened in answer["plaintexts"].items()
        }

    async def import_stack(self, org: str, project: str, stack: str, state: dict[str, Any]) -> None:
        path = _stack(org, project, stack)
        update = await self._call("POST", f"{path}/import", state)
        status = await self._call("GET", f"{path}/update/{update['updateId']}")
        check(status["status"] == "succeeded", f"importing {path} ended {status['status']}")

    async def export_stack(self, org: str, project: str, stack: str) -> dict[str, Any]:
        exported: dict[str, Any] = await self._call("GET", f"{_stack(org, project, stack)}/export")
        return exported

    async def stack_names(self, org: str) -> list[tuple[str, str]]:
        """(project, stack) of every stack of `org`, one entry per stack listed."""
        names: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            query = {"organization": org, **({"continuationToken": token} if token else {})}
            page = await self._call("GET", "/api/user/stacks", params=query)
            names += [(s["projectName"], s["stackName"]) for s in page.get("stacks") or []]
            token = page.get("continuationToken")
            if not token:
                return names

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = await self._http.request(method, path, json=body, params=params)
        check(response.is_success, f"{method} {path} answered {response.status_code}")
        return response.json() if response.content else None


def _stack(org: str, project: str, stack: str) -> str:
    return f"/api/stacks/{org}/{project}/{stack}"


async def check_migrated(url: str, world: SeededWorld) -> None:
    """Every stack is in acme exactly once, with its resources under its own name, and its
    secrets, sealed there, open as the acme user to the source's plaintext; the agent's
    stacks are all still there (nothing asked to remove them)."""
    async with Service(url, USER_TOKEN) as acme, Service(url, AGENT_TOKEN) as agent:
        landed, left = await asyncio.gather(acme.stack_names(DESTINATION), agent.stack_names(AGENT))
        listed = Counter(landed)
        check(len(landed) == len(world.stacks), f"{len(landed)} stacks in {DESTINATION}")
        check(sorted(left) == sorted(world.stacks), f"{len(left)} stacks left in {AGENT}")
        for project, stack in world.stacks:
            times = listed[project, stack]
            check(times == 1, f"{DESTINATION}/{project}/{stack} is listed {times} time(s)")
        limit = asyncio.Semaphore(DEFAULT_MAX_CONCURRENCY)

        async def one(project: str, stack: str) -> None:
            name = f"{DESTINATION}/{project}/{stack}"
            async with limit:
                deployment = (await acme.export_stack(DESTINATION, project, stack))["deployment"]
                resources = deployment.get("resources") or []
                check(len(resources) == RESOURCES, f"{name} has {len(resources)} resources")
                root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
                check(resources[0]["urn"] == root, f"{name}'s root is {resources[0]['urn']}")
                sealed_secrets = list(secrets(resources))
                check(
                    len(sealed_secrets) == SECRETS
                    and all("ciphertext" in secret for secret in sealed_secrets),
                    f"{name} does not hold its {SECRETS} secrets sealed",
                )
                ciphertexts = [secret["ciphertext"] for secret in sealed_secrets]
                opened = await acme.batch_decrypt(DESTINATION, project, stack, ciphertexts)
            values = tuple(json.loads(opened[text]) for text in ciphertexts)
            check(
                values == world.secret_values[project, stack],
                f"{name}'s secrets do not open to the source's",
            )

        await asyncio.gather(*(one(*name) for name in world.stacks))


# --- The pulumi CLI as a user runs it --------------------------------------------------------


@dataclass(frozen=True)
class PulumiUser:
    """Someone at a shell, logged in to the emulator as one identity, in a home of their own."""

    command: str
    environment: dict[str, str]
    work_dir: Path

    def run(self, *args: str, stdin: dict[str, Any] | None = None) -> None:
        """`pulumi ARGS` (`stdin` as JSON on its stdin); a failure stops the benchmark with the
        CLI's error line (never its stdout, which may hold state)."""
        finished = subprocess.run(
            [self.command, *args, "--non-interactive"],
            env=self.environment,
            cwd=self.work_dir,
            input=json.dumps(stdin) if stdin is not None else None,
            capture_output=True,
            text=True,
            check=False,
        )
        said = [line for line in finished.stderr.splitlines() if "error" in line.lower()]
        check(finished.returncode == 0, f"pulumi {args[0]} {args[1]} failed: {said[-1:]}")


@contextmanager
def pulumi_user(url: str, token: str, folder: Path) -> Iterator[PulumiUser]:
    """A user of `token` on the emulator at `url`, logged in (`pulumi whoami`) before use.

    The environment is made from nothing but PATH: no login, backend or AI-agent variable of
    the shell reaches the CLI, and `PULUMI_HOME` (where the login is kept) is a private
    temporary folder, removed at the end.
    """
    with tempfile.TemporaryDirectory(prefix="pulumi-user-", dir=folder) as name:
        home = Path(name)
        user = PulumiUser(
            command=pulumi_command().command,
            environment={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(home),
                "PULUMI_HOME": str(home / ".pulumi"),
                "PULUMI_BACKEND_URL": url,
                "PULUMI_ACCESS_TOKEN": token,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_ENABLE_AUTOMATIC_AGENT_SIGNUP": "false",
            },
            work_dir=home,
        )
        subprocess.run(
            [user.command, "whoami", "--non-interactive"],
            env=user.environment,
            cwd=home,
            check=True,
            capture_output=True,
        )
        yield user


# --- The three paths ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One path's run on its own emulator."""

    seconds: float
    calls: int
    peak_in_flight: int
    cpu_seconds: float
    """User and system CPU of this process and of the processes it ran and waited for."""
    emulator_cpu_seconds: float | None
    cycle: SlotCycle


def cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(service: Emulator, action: Callable[[], T]) -> tuple[T, Measured]:
    """`action()`, and how long it took, with the calls `service` served meanwhile."""
    service.clear_requests()
    emulator_cpu = service.cpu_seconds()
    cpu = cpu_now()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    cpu = cpu_now() - cpu
    emulator_cpu = service.cpu_seconds_since(emulator_cpu)
    served = service.served()
    return result, Measured(
        seconds=seconds,
        calls=len(served.requests),
        peak_in_flight=served.peak_in_flight,
        cpu_seconds=cpu,
        emulator_cpu_seconds=emulator_cpu,
        cycle=served.slot_cycle(DEFAULT_MAX_CONCURRENCY),
    )


def migrate_with_toolkit(service: Emulator, world: SeededWorld, via: MigrateVia) -> Measured:
    """`commit_claim` of the migrate plan, through `via`; the plan is made first, untimed."""
    credentials = Credentials(
        api_url=service.url, destination_token=USER_TOKEN, source_token=AGENT_TOKEN
    )
    plan = asyncio.run(plan_claim(Sides.of(TARGET, credentials), ResolutionMap.empty(), "migrate"))
    check(not plan.blocked, "the migrate plan is blocked")
    check(len(plan.moves) == len(world.stacks), f"the plan has {len(plan.moves)} moves")
    result, measured = timed(
        service,
        lambda: asyncio.run(commit_claim(Sides.of(TARGET, credentials), plan, migrate_via=via)),
    )
    check(not result.failed_moves, f"{via}: failed moves {sorted(result.failed_moves)}")
    check(not result.document.failures, f"{via}: failures {result.document.failures}")
    return measured


def migrate_by_hand(service: Emulator, world: SeededWorld, folder: Path) -> Measured:
    """Each stack, one after another: export with secrets as the agent into a file, create
    the stack as the acme user and import the file, remove the file."""
    with (
        pulumi_user(service.url, AGENT_TOKEN, folder) as agent,
        pulumi_user(service.url, USER_TOKEN, folder) as user,
        tempfile.TemporaryDirectory(prefix="by-hand-", dir=folder) as private,
    ):
        check(Path(private).stat().st_mode & 0o077 == 0, f"{private} is not private")
        exported = str(Path(private) / "stack.json")

        def move_every_stack() -> None:
            for project, stack in world.stacks:
                source, target = f"{AGENT}/{project}/{stack}", f"{DESTINATION}/{project}/{stack}"
                try:
                    agent.run(
                        "stack", "export", "--show-secrets", "--stack", source, "--file", exported
                    )
                    user.run("stack", "init", target, "--no-select")
                    user.run("stack", "import", "--stack", target, "--file", exported)
                finally:
                    Path(exported).unlink(missing_ok=True)

        _, measured = timed(service, move_every_stack)
    return measured


def measure(
    label: str, world: SeededWorld, folder: Path, run_path: Callable[[Emulator], Measured]
) -> Measured:
    """`run_path(service)` on a fresh copy of the world, checked once it is done (at no added
    latency: the checks are no part of the figure)."""
    with fresh_copy(world, folder, label) as service:
        measured: Measured = run_path(service)
        service.set_latency(0.0)
        asyncio.run(check_migrated(service.url, world))
    return measured


def describe(measured: Measured, stacks: int) -> str:
    emulator = (
        f", the emulator {measured.emulator_cpu_seconds:.1f} s"
        if measured.emulator_cpu_seconds is not None
        else ""
    )
    return (
        f"{measured.seconds:.2f} s, {stacks / measured.seconds:.2f} stacks/s, "
        f"{measured.calls} calls, at most {measured.peak_in_flight} in flight, "
        f"CPU {measured.cpu_seconds:.1f} s (this process and its pulumi processes){emulator}"
    )


# --- The run ------------------------------------------------------------------------------------


def run(scale: Scale, *, quick: bool, rest_only: bool) -> None:
    kind = "quick" if quick else "full"
    announce(f"pulumi-claim migrate benchmark ({kind}{', REST path only' if rest_only else ''})")
    n = scale.stacks
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-migrate-") as name:
        folder = Path(name)
        started = time.perf_counter()
        world = seed(folder, scale)
        print(
            f"world: {n} stacks of {RESOURCES} resources with {SECRETS} secrets each in "
            f"{scale.projects} projects of {AGENT}, moving to {DESTINATION} (its user is no "
            f"member of {AGENT}); seeded in {time.perf_counter() - started:.1f} s (untimed); "
            f"{LATENCY_MS:g} ms added per request"
        )
        rest = measure(
            "rest", world, folder, lambda service: migrate_with_toolkit(service, world, "rest")
        )
        floors = CallFloors(rest.calls, DEFAULT_MAX_CONCURRENCY, LATENCY_MS)
        ratio = rest.seconds / floors.in_flight
        print(
            f"migrate {n} stacks, REST path, {LATENCY_MS:g} ms: {describe(rest, n)}\n"
            f"  in flight at {floors.concurrency}: floor {floors.in_flight_sum()}, "
            f"{ratio:.2f}x the floor\n"
            f"  {CpuACall.of(rest.calls, rest.cpu_seconds, rest.emulator_cpu_seconds).describe()}\n"
            f"  {rest.cycle.describe(LATENCY_MS)}"
        )
        if rest_only:
            print_table([rest_figure(rest, n), rest_cpu_figure(rest, n)], quick=quick)
            sign_off()
            return
        cli = measure(
            "cli", world, folder, lambda service: migrate_with_toolkit(service, world, "cli")
        )
        print(
            f"migrate {n} stacks, CLI path ({CLI_CONCURRENCY} stacks at once), "
            f"{LATENCY_MS:g} ms: {describe(cli, n)}"
        )
        by_hand = measure(
            "by-hand", world, folder, lambda service: migrate_by_hand(service, world, folder)
        )
        print(
            f"migrate {n} stacks by hand (stack export --show-secrets, stack init, stack "
            f"import; one stack after another), {LATENCY_MS:g} ms: {describe(by_hand, n)}"
        )
    cli_speedup = cli.seconds / rest.seconds
    by_hand_speedup = by_hand.seconds / rest.seconds
    name = f"migrate {n} stacks"
    print_table(
        [
            rest_figure(rest, n),
            Figure(
                f"{name}, CLI path / REST path",
                f"{cli_speedup:.1f}x",
                f">= {CLI_SPEEDUP_TARGET:g}x",
                cli_speedup >= CLI_SPEEDUP_TARGET,
            ),
            Figure(f"{name}, by hand / REST path", f"{by_hand_speedup:.1f}x", "reported", True),
            Figure(
                f"{name}, CPU s: REST / CLI / by hand",
                f"{rest.cpu_seconds:.1f} / {cli.cpu_seconds:.1f} / {by_hand.cpu_seconds:.1f}",
                "reported",
                True,
            ),
        ],
        quick=quick,
    )
    sign_off()


def rest_figure(rest: Measured, stacks: int) -> Figure:
    return Figure(
        f"migrate {stacks} stacks, REST path",
        f"{rest.seconds:.2f} s",
        f"< {REST_SECONDS_TARGET:g} s",
        rest.seconds < REST_SECONDS_TARGET,
    )


def rest_cpu_figure(rest: Measured, stacks: int) -> Figure:
    """The REST path's CPU on each side, for a run of that path alone."""
    emulator = f"{rest.emulator_cpu_seconds:.1f}" if rest.emulator_cpu_seconds is not None else "?"
    return Figure(
        f"migrate {stacks} stacks, REST path CPU s: toolkit / emulator",
        f"{rest.cpu_seconds:.1f} / {emulator}",
        "reported",
        True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark pulumi-claim's migrate paths.")
    parser.add_argument("--quick", action="store_true", help="3 stacks: a smoke run")
    parser.add_argument(
        "--via",
        choices=("all", "rest"),
        default="all",
        help="rest: the REST path alone (no CLI path, no migration by hand); all: every path",
    )
    args = parser.parse_args()
    run(QUICK if args.quick else FULL, quick=args.quick, rest_only=args.via == "rest")


if __name__ == "__main__":
    main()
