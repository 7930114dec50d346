"""The public API of `toolkit`: every exported name resolves, and importing it stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

import toolkit
from toolkit import errors

HEAVY = ("httpx", "pydantic", "rich", "pulumi")
"""Top-level packages that cost start-up time; `pulumi` is the Automation API."""


@pytest.mark.parametrize("name", sorted(set(toolkit.__all__) - {"__version__"}))
def test_every_exported_name_is_the_object_its_module_defines(name: str) -> None:
    exported = getattr(toolkit, name)
    assert exported.__module__.startswith("toolkit.")
    assert getattr(sys.modules[exported.__module__], name) is exported
    assert name in dir(toolkit)


def test_the_version_is_the_distribution_version() -> None:
    assert toolkit.__version__ == version("pulumi-claim")


def test_every_error_class_is_exported() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.ClaimError)
    }
    assert classes <= set(toolkit.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = toolkit.no_such_name  # type: ignore[attr-defined]


def loaded_after(statement: str) -> set[str]:
    """The heavy packages a fresh interpreter has loaded after running `statement`."""
    probe = f"import sys; {statement}; print(__import__('json').dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout)) & set(HEAVY)


@pytest.mark.parametrize("statement", ["import toolkit", "import toolkit.cli"])
def test_importing_the_package_or_the_cli_loads_nothing_heavy(statement: str) -> None:
    assert loaded_after(statement) == set()


def test_the_library_loads_the_automation_api_only_when_a_listing_needs_it() -> None:
    assert "pulumi" not in loaded_after("from toolkit import plan_claim, commit_claim")


PURE = (
    "toolkit.entities",
    "toolkit.resolution_map",
    "toolkit.resolver",
    "toolkit.plan",
    "toolkit.moves",
    "toolkit.esc_definitions",
    "toolkit.references",
    "toolkit.name_changes",
    "toolkit.git_diff",
    "toolkit.stack_references",
    "toolkit.landing_spec",
    "toolkit.urns",
    "toolkit.stack_state",
    "toolkit.report.view",
)
"""The pure core: functions over models (ARCHITECTURE.md, "Pure core, I/O at the edges")."""
IO = ("toolkit.cloud", "toolkit.landing", "toolkit.workspaces", "toolkit.journal", "httpx")
"""What talks to a service, runs a program or writes a file, and the HTTP client itself."""


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_loads_no_io(module: str) -> None:
    probe = f"import sys, {module}; print(__import__('json').dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert set(json.loads(result.stdout)) & set(IO) == set()
