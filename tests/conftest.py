"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real test data (../shared/data next to the repository); skips where a clone lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only the team's checkout has ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Bitwise-repeatable CPU runs for exact-resume tests: with two threads, some CPU kernels sum in an order that
    varies with load (two identical uninterrupted stylizations then differ by ~1e-7 relative)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
