"""Where the engine runs and how much GPU memory a run may use.

Light on purpose: the command line, the render worker and the bench scripts import it to pick a device without
loading the loss, VGG or densification.
"""

from __future__ import annotations

import torch

from core.errors import InputError
from core.planner import free_gpu_bytes
from interchange.settings import BY_NAME, mention

DEVICES = BY_NAME["device"].values
"""The device choices, as the settings schema declares them ("auto", "cuda", "cpu", "mps")."""


def resolve_device(requested: str) -> torch.device:
    """'auto' → CUDA when available, else Apple MPS, else CPU; an unavailable explicit choice is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested not in DEVICES:
        raise InputError(f"{mention('device')}: unknown device '{requested}' ({', '.join(DEVICES)})")
    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{mention('device')} cuda: no CUDA device is available to this PyTorch "
                         f"(torch {torch.__version__}); use {mention('device')} auto or cpu")
    return torch.device(requested)


def memory_budget(device: torch.device, cap_gib: float | None) -> float | None:
    """Bytes of GPU memory a run may use: what is free, at most the user's cap (``--max-gpu-mem``); None off CUDA,
    where nothing is planned against memory."""
    if device.type != "cuda":
        return None
    free = free_gpu_bytes(device)
    return free if cap_gib is None else min(free, cap_gib * 2**30)
