"""The README's Python example runs as written, against the emulator, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.emulator.server import EmulatorServer

README = Path(__file__).parent.parent / "README.md"
EXAMPLE_URL = "https://api.pulumi.com"


def python_example(section: str) -> str:
    """The first ```python block under the README heading `section`."""
    text = README.read_text(encoding="utf-8")
    after = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


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
