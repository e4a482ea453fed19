"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.util
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
