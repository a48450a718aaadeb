"""The image and the wheel hold every package of the project."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _wheel_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages: list[str] = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def test_every_top_level_package_is_in_the_wheel() -> None:
    """Each folder with an __init__.py at the root (but tests and bench) ships in the wheel."""
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert on_disk == set(_wheel_packages())


def test_the_dockerfile_copies_every_package() -> None:
    """The image's build stage copies each package the wheel needs."""
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert set(_wheel_packages()) <= copied
