"""The documentation's examples run as written, against the emulator, so they cannot drift: the
Python example claims, the job file is a valid job, the command synopsis names exactly the
commands' options, the README's two commands are the getting-started page's, and the
development page names the test command CI runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from toolkit.cli import cli
from toolkit.emulator.server import EmulatorServer
from toolkit.job_file import load_job

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
EXAMPLE_URL = "https://api.pulumi.com"


def code_blocks(path: Path, language: str) -> list[str]:
    """The ```language blocks of the Markdown file at `path`, in order."""
    blocks = re.findall(rf"```{language}\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, f"no {language} block in {path.name}"
    return blocks


def test_the_from_python_example_claims_the_demo_agent(
    demo_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = DOCS / "python-api.md"
    code = code_blocks(page, "python")[0]
    assert code.count(EXAMPLE_URL) == 1
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "tok-alice")
    for variable in ("PULUMI_CLAIM_SOURCE_TOKEN", "PULUMI_CLAIM_TOKEN", "PULUMI_BACKEND_URL"):
        monkeypatch.delenv(variable, raising=False)
    agent_stacks = demo_emulator.state.stack_names("agent-7f3k2q")

    exec(compile(code.replace(EXAMPLE_URL, demo_emulator.url), str(page), "exec"), {})

    assert capsys.readouterr().out == (
        "7 stack(s) to move, 0 unresolved conflict(s)\nmoved; 0 move(s) failed\n"
    )
    assert demo_emulator.state.stack_names("agent-7f3k2q") == set()
    renamed = {("web", "dev"): ("web", "dev-agent"), ("api", "prod"): ("api", "prod-agent")}
    arrived = {renamed.get(name, name) for name in agent_stacks}
    assert len(arrived) == 7
    assert arrived <= demo_emulator.state.stack_names("acme")


def test_the_job_file_example_is_a_valid_job(tmp_path: Path) -> None:
    """`load_job` checks everything but the service: the shape, the map, the variables."""
    job_file, workflow = code_blocks(DOCS / "jobs.md", "yaml")
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "agent-7f3k2q.yaml").write_text("stacks: {}\n", encoding="utf-8")
    (tmp_path / "job.yaml").write_text(job_file, encoding="utf-8")
    variables = ("ACME_TOKEN", "ACME_ADMIN_TOKEN", "AGENT_7F3K2Q_CLAIM_TOKEN")
    environ = {name: f"value-of-{name}" for name in variables}

    job = load_job(tmp_path / "job.yaml", environ=environ)

    assert [claim.name for claim in job.claims] == ["agent-7f3k2q", "sandbox", "old-state"]
    assert job.claims[0].credentials.claim_token == "value-of-AGENT_7F3K2Q_CLAIM_TOKEN"
    assert job.claims[2].delete_source and job.claims[2].strategy == "migrate"
    step = yaml.safe_load(workflow)["jobs"]["claim"]["steps"][-1]
    assert set(variables) <= set(step["env"]), "the workflow passes every variable named"


def documented_synopsis() -> dict[str, set[str]]:
    """Each command of the command line page's synopsis, with the long options it names."""
    synopsis = code_blocks(DOCS / "cli.md", "")[0]
    commands: dict[str, set[str]] = {}
    command = ""
    for line in synopsis.splitlines():
        if line.startswith("pulumi-claim "):
            words = line.split()
            command = " ".join(words[1:3] if words[1] == "job" else words[1:2])
            commands[command] = set()
        commands[command] |= set(re.findall(r"--[a-z][a-z-]*", line))
    return commands


def cli_commands(group: click.Group, prefix: str = "") -> dict[str, set[str]]:
    """Each command of the click group, as typed, with its long options (--help and hidden
    options aside: the global options a command also takes after its name, the habits of
    other tools that it answers with what to use instead)."""
    commands: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            commands |= cli_commands(command, f"{prefix}{name} ")
        else:
            shown = [p for p in command.params if not getattr(p, "hidden", False)]
            options = {o for p in shown for o in p.opts if o.startswith("--")}
            commands[prefix + name] = options
    return commands


def test_the_command_synopsis_names_every_command_and_option_there_is() -> None:
    assert documented_synopsis() == cli_commands(cli)


def test_the_readme_shows_the_two_commands_of_getting_started() -> None:
    """The README keeps only these; both must work: `demo` is a command, `.ci/run` a script."""
    (readme_commands,) = code_blocks(ROOT / "README.md", "sh")
    assert readme_commands in code_blocks(DOCS / "getting-started.md", "sh")
    demo, ci = (line.split("#")[0].split() for line in readme_commands.splitlines())
    assert demo == ["uv", "run", "pulumi-claim", "demo"] and "demo" in cli.commands
    assert ci == ["bash", ".ci/run"] and (ROOT / ".ci" / "run").is_file()


def test_ci_runs_two_test_workers_a_core_as_the_development_page_says() -> None:
    """The suite waits on child processes, latency and quiet periods much of its time, so CI
    gives each core a second worker; the page says exactly the command CI runs."""
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (command,) = re.findall(r"^uv run pytest .*?(?= \|\||$)", ci_script, re.M)
    assert command in (DOCS / "development.md").read_text(encoding="utf-8")
    workers = re.fullmatch(r'uv run pytest -q -n ("\$\(\(.*\)\)") --dist loadgroup', command)
    assert workers, command
    counted = subprocess.run(
        ["bash", "-c", f"echo {workers[1]}"], capture_output=True, text=True, check=True
    )
    assert int(counted.stdout) == 2 * len(os.sched_getaffinity(0))
