"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
