"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real test data (../shared/data next to the repository); skips where a clone lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only the team's checkout has ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def deterministic():
    """PyTorch's deterministic kernels: on CPU some default kernels accumulate in a thread-dependent order, so two
    identical runs differ by ~1e-5 after a few steps under load; with these they are bit-identical. torch is
    imported here: the Blender tests on bpy 5.3 (Python 3.13) share this conftest and have no torch."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def bench_script() -> Callable[[str], ModuleType]:
    """Imports bench/<name>.py as a module (bench/ holds scripts, not a package), for the tests of a benchmark."""
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def read_only():
    """Makes a folder one the run cannot write into: chattr +i for root (who ignores permission bits), else
    mode 0555; undone afterwards. Skips where neither works."""
    undo = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True, check=False)
            except OSError as error:
                pytest.skip(f"cannot make a folder read-only for root here (chattr: {error})")
            if done.returncode:
                pytest.skip(f"cannot make a folder read-only for root here ({done.stderr.strip()})")
            undo.append(lambda: subprocess.run(["chattr", "-i", str(folder)], check=True))
        else:
            mode = folder.stat().st_mode
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(mode))
        try:
            (folder / "probe").touch()
        except OSError:
            return folder
        (folder / "probe").unlink()
        pytest.skip("this file system lets the test write into a read-only folder")

    yield make
    for step in reversed(undo):
        step()
