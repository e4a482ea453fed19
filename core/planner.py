"""Per-scale choice between plain autograd and exact tiles, from free GPU memory and a user cap.

Memory is modelled as bytes per pixel (sos.md / gpu.md); the constants below are the one place to refine
from GPU measurements (bench/sos_grad.py prints measured peaks per pixel).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch

from core.tiled import axis_spans

AUTOGRAD_BYTES_PER_PX = {False: 2300, True: 1400}
"""Peak memory of the SOS gradient by autograd per pixel of a scale: float32/TF32, bf16 autocast.

Measured with bench/sos_grad.py on an H200 (torch 2.11, channels_last), all scales, above what was allocated
before: 2105 B/px (TF32, 1080p to 8K), 1207-1364 B/px (bf16); ~10 % added. sos.md's 2.5 KB/px is the
released code's figure."""
SCALE_BYTES_PER_PX = 48
"""Per pixel of a scale run by tiles: its image, its gradient and the downsampling's backward."""
RESIDENT_BYTES_PER_PX = 96
"""Per full-resolution pixel, held through the whole iteration: render, its gradient, pyramid, content targets."""
FIXED_BYTES = 1 << 30
"""Weights, CUDA context slack, cuDNN workspaces."""
MARGIN = 0.10
"""Fraction of the available memory left unplanned (fragmentation, estimate error)."""
TILE_CHOICES = (4096, 3072, 2048, 1536, 1024, 768, 512, 384, 256)
MIN_TILE = 128
TILE_HALO = 160
"""The halo core.tiled uses by default (pass 2 regions are tile + 2 halo wide)."""

T = TypeVar("T")


@dataclass
class ScalePlan:
    """How one pyramid scale's gradient is computed: "autograd" over the whole image, or "tiled" with `tile` px."""

    size: tuple[int, int]
    method: Literal["autograd", "tiled"]
    tile: int | None = None


def autograd_bytes(height: int, width: int, bf16: bool) -> int:
    """Estimated peak bytes of plain autograd through VGG-19 on a height x width image."""
    return AUTOGRAD_BYTES_PER_PX[bf16] * height * width


def tiled_bytes(height: int, width: int, tile: int, bf16: bool, halo: int = TILE_HALO) -> int:
    """Estimated peak bytes of the tiled gradient: the largest tile-plus-halo region core.tiled makes under
    autograd, plus the scale.

    core.tiled spreads an axis evenly over ceil(length / tile) tiles (``axis_spans``), so its regions are often
    much smaller than tile + 2 halo: 7680 x 4320 with 3072-px tiles runs 3 x 2 tiles of 2560 x 2160 px. Sizing by
    the regions it really makes lets a cap take larger tiles (fewer halos to recompute); measured on an H100, the
    3072-px plan of that scale peaked at 12.2 GiB under a 24 GiB cap (docs/benchmarks.md).
    """
    region = _largest_region(height, tile, halo) * _largest_region(width, tile, halo)
    return AUTOGRAD_BYTES_PER_PX[bf16] * region + SCALE_BYTES_PER_PX * height * width


def _largest_region(length: int, tile: int, halo: int) -> int:
    return max(span.end - span.start for span in axis_spans(length, tile, halo))


def plan_scales(sizes: Sequence[tuple[int, int]], *, free_bytes: int, cap_bytes: int | None,
                bf16: bool) -> list[ScalePlan]:
    """Autograd for every scale that fits in min(free, cap) less a margin, else the largest tile that fits."""
    limit = free_bytes if cap_bytes is None else min(free_bytes, cap_bytes)
    full_h, full_w = sizes[0]
    budget = limit * (1 - MARGIN) - FIXED_BYTES - RESIDENT_BYTES_PER_PX * full_h * full_w
    return [_plan_scale(tuple(size), budget, bf16) for size in sizes]


def _plan_scale(size: tuple[int, int], budget: float, bf16: bool) -> ScalePlan:
    height, width = size
    if autograd_bytes(height, width, bf16) <= budget:
        return ScalePlan(size, "autograd")
    for tile in TILE_CHOICES:
        if tile < max(height, width) and tiled_bytes(height, width, tile, bf16) <= budget:
            return ScalePlan(size, "tiled", tile)
    need = tiled_bytes(height, width, MIN_TILE, bf16) / 2**30
    warnings.warn(f"scale {width}x{height}: even {MIN_TILE}-px tiles need about {need:.1f} GiB, more than the "
                  f"{max(budget, 0) / 2**30:.1f} GiB available; trying them anyway", stacklevel=3)
    return ScalePlan(size, "tiled", MIN_TILE)


def free_gpu_bytes(device: str | torch.device) -> int:
    """Bytes a computation on `device` can still allocate: free GPU memory plus PyTorch's unused cache.

    Off CUDA: available system memory."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def smaller_plan(plan: ScalePlan, min_tile: int = MIN_TILE) -> ScalePlan | None:
    """The next plan to try after running out of memory: half the tile (autograd: half the long side), or None."""
    current = max(plan.size) if plan.method == "autograd" else plan.tile
    tile = current // 2 // 16 * 16
    if tile < min_tile:
        return None
    return ScalePlan(plan.size, "tiled", tile)


def run_with_oom_retry(run: Callable[[ScalePlan], T], plan: ScalePlan, *,
                       min_tile: int = MIN_TILE) -> tuple[T, ScalePlan]:
    """run(plan); on CUDA out-of-memory, retry with half the tile until it works; returns (result, plan used).

    Warns once (after success) when a smaller plan was needed; re-raises below `min_tile`.
    """
    current = plan
    while True:
        try:
            result = run(current)
            break
        except torch.cuda.OutOfMemoryError:
            retry = smaller_plan(current, min_tile)
            if retry is None:
                raise
        _release_cached_memory()
        current = retry
    if current != plan:
        height, width = plan.size
        warnings.warn(f"out of GPU memory at scale {width}x{height} with "
                      f"{plan.method if plan.tile is None else f'{plan.tile}-px tiles'}; "
                      f"using {current.tile}-px tiles from now on", stacklevel=3)
    return result, current


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
