"""The render worker's GPUs: the count its --check reports, and which GPU `--serve --gpu K` renders on (CUDA is
stood in for by patching torch.cuda: the tests run without a GPU)."""

import pytest
import torch

from core import worker


@pytest.fixture
def two_gpus(monkeypatch):
    """torch.cuda as on a machine with two CUDA GPUs (only the calls that choosing a device makes)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"Fake GPU {index}")


def test_serve_renders_on_the_chosen_gpu(two_gpus) -> None:
    assert worker.serve_device("auto", 1) == (torch.device("cuda", 1), None)
    assert worker.serve_device("cuda", 0) == (torch.device("cuda", 0), None)


def test_a_gpu_the_worker_does_not_have_renders_on_the_first_with_a_warning(two_gpus) -> None:
    device, warning = worker.serve_device("cuda", 3)
    assert device == torch.device("cuda", 0)
    assert warning == "GPU 3 was asked for but this worker sees 2 CUDA GPUs (0 to 1); rendering on GPU 0"


def test_the_gpu_is_ignored_on_the_cpu() -> None:
    assert worker.serve_device("cpu", 5) == (torch.device("cpu"), None)


def test_check_reports_how_many_gpus_the_worker_sees(two_gpus) -> None:
    info = worker.check_environment()
    assert (info.cuda, info.gpu_count, info.gpu_names) == (True, 2, ("Fake GPU 0", "Fake GPU 1"))
