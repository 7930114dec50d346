"""The README's Python example runs as written, against the emulator, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from toolkit.emulator.server import EmulatorServer
from toolkit.jobs import load_job

README = Path(__file__).parent.parent / "README.md"
EXAMPLE_URL = "https://api.pulumi.com"


def code_blocks(section: str, language: str) -> list[str]:
    """The ```language blocks under the README heading `section`."""
    text = README.read_text(encoding="utf-8")
    after = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", after, re.DOTALL)
    assert blocks, f"no {language} block under '## {section}'"
    return blocks


def python_example(section: str) -> str:
    """The first ```python block under the README heading `section`."""
    return code_blocks(section, "python")[0]


def test_the_from_python_example_claims_the_demo_agent(
    demo_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = python_example("From Python")
    assert code.count(EXAMPLE_URL) == 1
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "tok-alice")
    for variable in ("PULUMI_CLAIM_SOURCE_TOKEN", "PULUMI_CLAIM_TOKEN", "PULUMI_BACKEND_URL"):
        monkeypatch.delenv(variable, raising=False)
    agent_stacks = demo_emulator.state.stack_names("agent-7f3k2q")

    exec(compile(code.replace(EXAMPLE_URL, demo_emulator.url), str(README), "exec"), {})

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
    job_file, workflow = code_blocks("Scheduled jobs", "yaml")
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
