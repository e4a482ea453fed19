"""Fixtures for the add-on's bpy-free layer: the add-on package laid out as its zip (addon_package.py), and
stand-in worker Pythons (scripts that answer the add-on's commands as a test needs)."""

from __future__ import annotations

import stat
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from addon_package import load_addon


@pytest.fixture(scope="session")
def addon() -> ModuleType:
    """The add-on package: addon.io.<module>, addon.interchange.<module> (the add-on's own copy)."""
    return load_addon()


@pytest.fixture
def fake_python(tmp_path: Path) -> Callable[[str], Path]:
    """Makes an executable standing in for the worker's Python: it runs body (Python, with sys imported)
    whatever arguments it is given, e.g. `-m core @args.txt ...` or `-m core.worker --check`."""
    def make(body: str, name: str = "python") -> Path:
        path = tmp_path / name
        path.write_text(f"#!{sys.executable}\nimport sys\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path
    return make
