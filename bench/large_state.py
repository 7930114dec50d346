"""Benchmark: migrate one large stack to a company org, over REST and by hand through the CLI.

Measures the large-state targets (docs/performance.md): one stack of 20,000 resources with
2,000 secrets moves from the agent's org to `acme` under a new stack name, at 20 ms added
per request, two ways:

- the REST path: `commit_claim(..., migrate_via="rest")` in a process of its own, whose peak
  resident memory is the figure (the plan is made there first, untimed);
- by hand, as a user without the toolkit would do it: `pulumi stack export --show-secrets
  --file F` as the agent, then `pulumi stack init`, `pulumi stack import --file F` and
  `pulumi stack rename` as the acme user (the state goes into a stack of the name its URNs
  hold, and the rename rewrites them).

The state is built by `large_deployment`: a root stack, several providers, and trees of
components nested `DEPTH` deep whose custom resources use those providers, depend on one
another and hold resource references, one in nine of them with a secret output. It is seeded
once, untimed, over plain REST (its secrets sealed by the emulator with the stack's own key),
and each path runs on a fresh copy of that world (see `bench/migrate.py`). After each path the
checks below stand apart from the code they measure: every resource landed under the new name,
no URN anywhere names the old stack, every parent, provider, dependency and property dependency
refers to a resource before it, and every secret, sealed in acme, opens there to the source's
plaintext.

    uv run python bench/large_state.py           # 20,000 resources: a few minutes on 2 cores
    uv run python bench/large_state.py --quick   # 400 resources: seconds; targets n/a

It is a benchmark, not a test: it asserts only that both paths moved the stack intact.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

from _emulator import Emulator, announce, check, sign_off
from migrate import (
    AGENT,
    AGENT_TOKEN,
    DESTINATION,
    LATENCY_MS,
    TARGET,
    USER_TOKEN,
    Measured,
    SeededWorld,
    Service,
    cpu_now,
    exported_state,
    free_loopback_port,
    fresh_copy,
    migrate_world,
    pulumi_user,
    serving,
    timed,
)
from preview_commit import Figure, print_table, write_world

from toolkit.claim import commit_claim, plan_claim
from toolkit.credentials import Credentials
from toolkit.resolution_map import parse_resolution_map
from toolkit.sides import Sides
from toolkit.stack_state import plaintexts, sealed, secrets
from toolkit.urns import RESOURCE_REFERENCE_SIG, SECRET_SIG, SIG_KEY

PROJECT = "platform"
SOURCE_STACK = "agent-dev"
TARGET_STACK = "prod"
"""The stack is renamed as it moves, so every URN in its state must be rewritten."""
RESOLUTION = f"stacks: {{{PROJECT}/{SOURCE_STACK}: {PROJECT}/{TARGET_STACK}}}"
PROVIDERS = ("default_4_16_0", "eu", "us", "ap")
"""The state's providers, `pulumi:providers:random` all; custom resources take them in turn."""
DEPTH = 12
"""Components nested in one another in each tree: the state's longest parent chain."""
LAYER_TYPE = "bench:index:Layer"
SECRETS_BATCH = 1000
"""Secrets sealed or opened per call by the seed and the checks, as the CLI batches them."""
REST_SPEEDUP_TARGET = 3.0
PEAK_MB_TARGET = 500.0


@dataclass(frozen=True)
class Scale:
    resources: int
    secrets: int
    tree_size: int
    """Resources per tree of components: its `DEPTH` components and their custom resources."""


FULL = Scale(resources=20_000, secrets=2_000, tree_size=200)
QUICK = Scale(resources=400, secrets=30, tree_size=100)


# --- The state ------------------------------------------------------------------------------


def urn(stack: str, qualified_type: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{qualified_type}::{name}"


def large_deployment(url: str, scale: Scale, secret_values: list[str]) -> dict[str, Any]:
    """A v3 state of `scale.resources` resources, its secrets open (as `pulumi stack export
    --show-secrets` shows them), in an order the CLI accepts (everything a resource refers to
    comes before it).

    After the root and the providers, trees of `scale.tree_size` resources: a chain of `DEPTH`
    components, each the child of the one before, then custom resources spread over the
    chain's levels. A custom resource depends on the one before it in its tree, uses one of
    the providers, and refers to its parent component by a resource reference; every ninth
    is a password with a secret `result`, until `scale.secrets` of them.
    """
    stack = SOURCE_STACK

    def resource_id(name: str) -> str:
        return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"

    root = urn(stack, "pulumi:pulumi:Stack", f"{PROJECT}-{stack}")
    resources: list[dict[str, Any]] = [
        {"urn": root, "custom": False, "type": "pulumi:pulumi:Stack", "outputs": {}}
    ]
    provider_references: list[str] = []
    for name in PROVIDERS:
        provider_urn = urn(stack, "pulumi:providers:random", name)
        provider_id = str(uuid.UUID(hashlib.sha256(name.encode()).hexdigest()[:32]))
        provider_references.append(f"{provider_urn}::{provider_id}")
        resources.append(
            {
                "urn": provider_urn,
                "custom": True,
                "id": provider_id,
                "type": "pulumi:providers:random",
                "parent": root,
                "inputs": {"version": "4.16.0"},
                "outputs": {"version": "4.16.0"},
            }
        )
    values = iter(secret_values)
    customs = 0
    tree = 0
    while len(resources) < scale.resources:
        chain: list[dict[str, Any]] = []
        for level in range(DEPTH):
            qualified = "$".join([LAYER_TYPE] * (level + 1))
            name = f"tree-{tree}-layer-{level}"
            chain.append(
                {
                    "urn": urn(stack, qualified, name),
                    "custom": False,
                    "type": LAYER_TYPE,
                    "parent": chain[-1]["urn"] if chain else root,
                    "outputs": {"level": level},
                }
            )
        resources += chain[: scale.resources - len(resources)]
        previous: str | None = None
        for index in range(scale.tree_size - DEPTH):
            if len(resources) >= scale.resources:
                break
            parent = chain[index % DEPTH]
            secret = customs % 9 == 0 and (value := next(values, None)) is not None
            kind = "randomPassword:RandomPassword" if secret else "randomPet:RandomPet"
            type_ = f"random:index/{kind}"
            name = f"tree-{tree}-{index}"
            reference = {SIG_KEY: RESOURCE_REFERENCE_SIG, "urn": parent["urn"]}
            inputs: dict[str, Any] = {"length": 16, "keepers": {"tree": str(tree), "at": index}}
            outputs: dict[str, Any] = {**inputs, "id": resource_id(name), "owner": reference}
            if secret:
                outputs["result"] = {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}
            dependencies = [parent["urn"]] + ([previous] if previous else [])
            resources.append(
                {
                    "urn": urn(stack, f"{parent['urn'].split('::')[2]}${type_}", name),
                    "custom": True,
                    "id": resource_id(name),
                    "type": type_,
                    "inputs": inputs,
                    "outputs": outputs,
                    "parent": parent["urn"],
                    "provider": provider_references[customs % len(provider_references)],
                    "dependencies": dependencies,
                    "propertyDependencies": {"keepers": dependencies},
                    **({"additionalSecretOutputs": ["result"]} if secret else {}),
                }
            )
            previous = resources[-1]["urn"]
            customs += 1
        tree += 1
    sealed_count = sum(1 for _ in secrets(resources))
    check(sealed_count == scale.secrets, f"the state holds {sealed_count} secrets")
    return exported_state(url, PROJECT, stack, resources)


def seed(folder: Path, scale: Scale) -> tuple[SeededWorld, list[str]]:
    """The agent's one stack, seeded over REST at no added latency (untimed); its secrets'
    values, in the state's order."""
    values = [token_urlsafe(18) for _ in range(scale.secrets)]
    world = SeededWorld(
        world_file=write_world(folder, "large-state", migrate_world()),
        db=folder / "seeded.sqlite",
        port=free_loopback_port(),
        stacks=[(PROJECT, SOURCE_STACK)],
        secret_values={},
    )
    with serving(world, world.db, latency_ms=0.0) as service:
        state = large_deployment(service.url, scale, values)
        asyncio.run(replicate(service.url, state))
    check(not Path(f"{world.db}-wal").exists(), f"{world.db} was not closed cleanly")
    return world, values


async def replicate(url: str, state: dict[str, Any]) -> None:
    """Create the agent's stack, seal the state's secrets with its key, import it."""
    async with Service(url, AGENT_TOKEN) as api:
        await api.create_stack(AGENT, PROJECT, SOURCE_STACK)
        opened = state["deployment"]
        texts = plaintexts(opened)
        sealed_texts: list[str] = []
        for start in range(0, len(texts), SECRETS_BATCH):
            batch = texts[start : start + SECRETS_BATCH]
            sealed_texts += await api.batch_encrypt(AGENT, PROJECT, SOURCE_STACK, batch)
        state["deployment"] = sealed(opened, sealed_texts)
        await api.import_stack(AGENT, PROJECT, SOURCE_STACK, state)


# --- The checks -------------------------------------------------------------------------------


def strings(value: Any) -> Iterator[str]:
    """Every string inside `value`, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for element in value:
            yield from strings(element)
    elif isinstance(value, dict):
        for key, element in value.items():
            yield key
            yield from strings(element)


def check_integrity(resources: list[dict[str, Any]]) -> None:
    """Every parent, provider, dependency and property dependency is a resource before it."""
    seen: set[str] = set()
    for landed in resources:
        name = landed["urn"]
        referred = [landed.get("parent"), *(landed.get("dependencies") or [])]
        for urns in (landed.get("propertyDependencies") or {}).values():
            referred += urns
        if landed.get("provider"):
            referred.append(landed["provider"].rpartition("::")[0])
        missing = [urn for urn in referred if urn and urn not in seen]
        check(not missing, f"{name} refers to {missing[:1]}, not before it")
        seen.add(name)


async def check_migrated(url: str, scale: Scale, values: list[str]) -> None:
    """The stack is in acme under its new name with every resource, no URN naming the old
    stack, its references resolving, and its secrets, sealed there, opening as the acme user
    to the source's plaintext; the agent's stack is still there."""
    async with Service(url, USER_TOKEN) as acme, Service(url, AGENT_TOKEN) as agent:
        landed = await acme.stack_names(DESTINATION)
        check(landed == [(PROJECT, TARGET_STACK)], f"{DESTINATION} holds {landed}")
        left = await agent.stack_names(AGENT)
        check(left == [(PROJECT, SOURCE_STACK)], f"{AGENT} holds {left}")
        deployment = (await acme.export_stack(DESTINATION, PROJECT, TARGET_STACK))["deployment"]
        resources = deployment.get("resources") or []
        check(len(resources) == scale.resources, f"the new stack has {len(resources)} resources")
        root = urn(TARGET_STACK, "pulumi:pulumi:Stack", f"{PROJECT}-{TARGET_STACK}")
        check(resources[0]["urn"] == root, f"the new stack's root is {resources[0]['urn']}")
        old = f"urn:pulumi:{SOURCE_STACK}::"
        stale = next((text for text in strings(resources) if old in text), None)
        check(stale is None, f"a URN still names the old stack: {stale}")
        new = f"urn:pulumi:{TARGET_STACK}::{PROJECT}::"
        check(all(r["urn"].startswith(new) for r in resources), "a URN names another stack")
        check_integrity(resources)
        sealed_secrets = list(secrets(resources))
        check(
            len(sealed_secrets) == scale.secrets
            and all("ciphertext" in secret for secret in sealed_secrets),
            f"the new stack does not hold its {scale.secrets} secrets sealed",
        )
        ciphertexts = [secret["ciphertext"] for secret in sealed_secrets]
        opened: dict[str, str] = {}
        for start in range(0, len(ciphertexts), SECRETS_BATCH):
            batch = ciphertexts[start : start + SECRETS_BATCH]
            opened |= await acme.batch_decrypt(DESTINATION, PROJECT, TARGET_STACK, batch)
        check(
            [json.loads(opened[text]) for text in ciphertexts] == values,
            "the new stack's secrets do not open to the source's",
        )


# --- The two paths ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One path's run, as the process that did the work measured it."""

    seconds: float
    cpu_seconds: float
    """That process's CPU and its pulumi processes'."""
    peak_mb: float
    """The peak resident memory of that process (by hand: of its largest pulumi process)."""


def run_in_own_process(service: Emulator, path: str, *more: str) -> tuple[Run, Measured]:
    """`path` (`rest` or `by-hand`) in a new process of this script, with the calls `service`
    served meanwhile (over REST these include the plan's, made there untimed)."""

    def child() -> Run:
        probe = subprocess.run(
            [sys.executable, __file__, f"--{path}-in-this-process", service.url, *more],
            check=False,
            capture_output=True,
            text=True,
        )
        check(probe.returncode == 0, f"the {path} path failed: {probe.stdout}{probe.stderr}")
        said = json.loads(probe.stdout)
        return Run(said["seconds"], said["cpuSeconds"], said["peakRssMb"])

    return timed(service, child)


def rest_in_this_process(api_url: str) -> None:
    """The REST path's own work: plan (untimed), commit; print its time and this process's
    peak RSS as JSON."""
    credentials = Credentials(
        api_url=api_url, destination_token=USER_TOKEN, source_token=AGENT_TOKEN
    )
    sides = Sides.of(TARGET, credentials)
    plan = asyncio.run(plan_claim(sides, parse_resolution_map(RESOLUTION), "migrate"))
    check(not plan.blocked, "the migrate plan is blocked")
    check(len(plan.moves) == 1, f"the plan has {len(plan.moves)} moves")
    cpu, started = cpu_now(), time.perf_counter()
    result = asyncio.run(commit_claim(sides, plan, migrate_via="rest"))
    seconds, cpu = time.perf_counter() - started, cpu_now() - cpu
    check(not result.failed_moves, f"failed moves {sorted(result.failed_moves)}")
    check(not result.document.failures, f"failures {result.document.failures}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"seconds": seconds, "cpuSeconds": cpu, "peakRssMb": peak_kb / 1024}))


def by_hand_in_this_process(api_url: str, folder: str) -> None:
    """Export with secrets as the agent into a private file; as the acme user, create the
    stack under the name its URNs hold, import the file, rename it (which rewrites
    its URNs); remove the file.
    Print the time and the largest pulumi process's peak RSS as JSON."""
    source = f"{AGENT}/{PROJECT}/{SOURCE_STACK}"
    imported = f"{DESTINATION}/{PROJECT}/{SOURCE_STACK}"
    renamed = f"{DESTINATION}/{PROJECT}/{TARGET_STACK}"
    with (
        pulumi_user(api_url, AGENT_TOKEN, Path(folder)) as agent,
        pulumi_user(api_url, USER_TOKEN, Path(folder)) as user,
        tempfile.TemporaryDirectory(prefix="by-hand-", dir=folder) as private,
    ):
        check(Path(private).stat().st_mode & 0o077 == 0, f"{private} is not private")
        exported = str(Path(private) / "stack.json")
        # `stack rename` runs in the project's folder, as a user would run it.
        (user.work_dir / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
        cpu, started = cpu_now(), time.perf_counter()
        try:
            agent.run("stack", "export", "--show-secrets", "--stack", source, "--file", exported)
            user.run("stack", "init", imported, "--no-select")
            user.run("stack", "import", "--stack", imported, "--file", exported)
            user.run("stack", "rename", renamed, "--stack", imported)
        finally:
            Path(exported).unlink(missing_ok=True)
        seconds, cpu = time.perf_counter() - started, cpu_now() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # its pulumi processes
    print(json.dumps({"seconds": seconds, "cpuSeconds": cpu, "peakRssMb": peak_kb / 1024}))


def measure(
    label: str, world: SeededWorld, folder: Path, scale: Scale, values: list[str], *more: str
) -> tuple[Run, Measured, float | None]:
    """`label`'s path on a fresh copy of the world, checked once it is done (at no added
    latency: the checks are no part of the figure); also the emulator's peak RSS."""
    with fresh_copy(world, folder, label) as service:
        run, measured = run_in_own_process(service, label, *more)
        emulator_mb = service.peak_rss_mb()
        service.set_latency(0.0)
        asyncio.run(check_migrated(service.url, scale, values))
    return run, measured, emulator_mb


def describe(run: Run, measured: Measured, emulator_mb: float | None) -> str:
    emulator = (
        f"; the emulator: CPU {measured.emulator_cpu_seconds:.1f} s"
        if measured.emulator_cpu_seconds is not None
        else ""
    ) + (f", peak RSS {emulator_mb:.0f} MB" if emulator_mb else "")
    return (
        f"{run.seconds:.2f} s, {measured.calls} calls, at most {measured.peak_in_flight} in "
        f"flight, CPU {run.cpu_seconds:.1f} s, peak RSS {run.peak_mb:.0f} MB{emulator}"
    )


# --- The run ------------------------------------------------------------------------------------


def run(scale: Scale, *, quick: bool) -> None:
    kind = "quick" if quick else "full"
    announce(f"pulumi-claim large-state benchmark ({kind})")
    n = f"{scale.resources:,}"
    with tempfile.TemporaryDirectory(prefix="pulumi-claim-bench-large-") as name:
        folder = Path(name)
        started = time.perf_counter()
        world, values = seed(folder, scale)
        print(
            f"world: one stack of {n} resources ({scale.secrets:,} secrets, {len(PROVIDERS)} "
            f"providers, components nested {DEPTH} deep) in {AGENT}, moving to {DESTINATION} "
            f"as {PROJECT}/{TARGET_STACK}; seeded in {time.perf_counter() - started:.1f} s "
            f"(untimed); {LATENCY_MS:g} ms added per request"
        )
        rest, rest_calls, rest_emulator = measure("rest", world, folder, scale, values)
        print(
            f"migrate {n} resources, REST path (toolkit process), {LATENCY_MS:g} ms: "
            f"{describe(rest, rest_calls, rest_emulator)}"
        )
        hand, hand_calls, hand_emulator = measure(
            "by-hand", world, folder, scale, values, str(folder)
        )
        print(
            f"migrate {n} resources by hand (stack export --show-secrets, stack init, stack "
            f"import, stack rename), {LATENCY_MS:g} ms: "
            f"{describe(hand, hand_calls, hand_emulator)}"
        )
    speedup = hand.seconds / rest.seconds
    name = f"migrate {n} resources"
    print_table(
        [
            Figure(
                f"{name}, by hand / REST path",
                f"{speedup:.1f}x",
                f">= {REST_SPEEDUP_TARGET:g}x",
                speedup >= REST_SPEEDUP_TARGET,
            ),
            Figure(
                f"{name}, REST path peak RSS",
                f"{rest.peak_mb:.0f} MB",
                f"< {PEAK_MB_TARGET:g} MB",
                rest.peak_mb < PEAK_MB_TARGET,
            ),
        ],
        quick=quick,
    )
    sign_off()


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark migrating one large stack.")
    parser.add_argument("--quick", action="store_true", help="400 resources: a smoke run")
    parser.add_argument("--rest-in-this-process", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument(
        "--by-hand-in-this-process", nargs=2, metavar=("URL", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.rest_in_this_process:
        rest_in_this_process(args.rest_in_this_process)
    elif args.by_hand_in_this_process:
        by_hand_in_this_process(*args.by_hand_in_this_process)
    else:
        run(QUICK if args.quick else FULL, quick=args.quick)


if __name__ == "__main__":
    main()
