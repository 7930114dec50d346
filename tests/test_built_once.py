"""What the tests build once for the whole run is built by the first worker that asks, and
read by every other worker from the same folder."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from built_once import built_once


def test_the_first_caller_builds_and_every_later_one_reads_the_same_folder(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []

    def build(folder: Path) -> None:
        builds.append(folder)
        (folder / "state").write_text("deployed", encoding="utf-8")

    name = f"example-{uuid.uuid4().hex}"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = built_once(tmp_path_factory, name, build)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    second = built_once(tmp_path_factory, name, build)

    assert builds == [first] and second == first
    assert first.parent == tmp_path_factory.getbasetemp().parent, "shared by every worker"
    assert (second / "state").read_text(encoding="utf-8") == "deployed"
    shutil.rmtree(first)  # outside this run's own folder when no worker runs this test
    first.with_suffix(".lock").unlink()


def test_a_build_that_failed_half_way_is_made_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    name = f"example-{uuid.uuid4().hex}"

    def fail(folder: Path) -> None:
        (folder / "half").write_text("half", encoding="utf-8")
        raise RuntimeError("the deployment failed")

    with pytest.raises(RuntimeError, match="the deployment failed"):
        built_once(tmp_path_factory, name, fail)
    folder = built_once(tmp_path_factory, name, lambda folder: None)

    assert not (folder / "half").exists()
