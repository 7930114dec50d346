"""The built-in demo world, shipped as a world file inside the package."""

from __future__ import annotations

from importlib.resources import files

import yaml

from toolkit.emulator.world import World, parse_world

DEMO_WORLD_FILE = "demo_world.yaml"


def demo_world_text() -> str:
    """The demo world file as shipped (also a worked example of the world file format)."""
    return files("toolkit.emulator").joinpath(DEMO_WORLD_FILE).read_text(encoding="utf-8")


def demo_world() -> World:
    return parse_world(yaml.safe_load(demo_world_text()), origin="demo world")
