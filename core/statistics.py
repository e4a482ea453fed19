"""Feature statistics of the SOS loss: weighted Gram, mean and std of VGG-19 features (docs/sos_loss.md).

Every statistic is a weighted average over feature positions, Gram = Σ w F Fᵀ / Σ w, mean = Σ w F / Σ w, with
σ from those two. Without weights (w = 1) these are SGSST's frame statistics; with the render's coverage pooled
to each layer's grid (``pool_to_layers``) they are the object's statistics. The sums are what tiles accumulate
(core.tiled), so this module holds the sufficient statistics and the few layout helpers both routes share.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.vgg import LAYER_STRIDES

STD_EPS = 1e-8
"""Added to the variance before the square root (the released code has none): keeps d(std) finite."""

MIN_MASS = 1e-6
"""Floor of Σ w: a view in which nothing is covered gets zero statistics and no gradient instead of 0/0."""

CHUNK_ELEMENTS = 1 << 26
"""Features are turned into float32 this many elements at a time (statistics and dL/dF): 256 MB blocks."""


@dataclass
class LayerSums:
    """Sufficient statistics of one layer's features: Σ w F Fᵀ [n, n], Σ w F [n] and the mass Σ w.

    Without weights the mass is the number of positions (an int); with weights a 0-dim tensor.
    """

    outer: torch.Tensor
    total: torch.Tensor
    mass: int | torch.Tensor

    def __add__(self, other: LayerSums) -> LayerSums:
        return LayerSums(self.outer + other.outer, self.total + other.total, self.mass + other.mass)


@dataclass
class LayerStats:
    """Style statistics of one layer: uncentred Gram [n, n], mean [n], std [n] (float32 or wider)."""

    gram: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def layer_sums(feats: torch.Tensor, weights: torch.Tensor | None = None) -> LayerSums:
    """Σ w F Fᵀ, Σ w F and Σ w over the positions of [1, n, h, w] features, in float32 or wider.

    `weights` [h, w] (None: every position weighs 1) are constants here: autograd flows through the features only.
    """
    matrix = channel_matrix(feats)
    dtype = torch.promote_types(feats.dtype, torch.float32)
    n, positions = matrix.shape
    flat = None
    if weights is not None:
        _check_weights(feats, weights)
        flat = weights.reshape(-1).to(dtype)
    mass = positions if flat is None else flat.sum()
    if positions == 0:
        return LayerSums(feats.new_zeros((n, n), dtype=dtype), feats.new_zeros((n,), dtype=dtype), mass)
    if flat is None and _direct_float32_products(matrix, dtype):
        return LayerSums(torch.mm(matrix, matrix.T, out_dtype=torch.float32),
                         matrix.sum(dim=1, dtype=torch.float32), positions)
    outer = total = None
    with no_autocast(feats):
        for block in column_blocks(matrix):
            chunk = matrix[:, block].to(dtype)
            weighted = chunk if flat is None else chunk * flat[block]
            ones = chunk.new_ones(chunk.shape[1])
            if outer is None:
                outer, total = weighted @ chunk.T, torch.mv(weighted, ones)
            else:
                outer, total = torch.addmm(outer, weighted, chunk.T), torch.addmv(total, weighted, ones)
    return LayerSums(outer, total, mass)


def stats_from_sums(sums: LayerSums) -> LayerStats:
    """Gram, mean and std (σ = sqrt(max(diag G − μ², 0) + ε)) from accumulated sums."""
    mass = sums.mass.clamp_min(MIN_MASS) if isinstance(sums.mass, torch.Tensor) else max(sums.mass, MIN_MASS)
    gram = sums.outer / mass
    mean = sums.total / mass
    variance = torch.clamp(torch.diagonal(gram) - mean * mean, min=0.0)
    return LayerStats(gram, mean, torch.sqrt(variance + STD_EPS))


def layer_stats(feats: torch.Tensor, weights: torch.Tensor | None = None) -> LayerStats:
    """Style statistics of one layer's features [1, n, h, w] (float32 even for bf16 features), optionally weighted."""
    return stats_from_sums(layer_sums(feats, weights))


def squared_error_sum(feats: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ w (F − F_c)² over positions and channels, in at least float32 (w = 1 without weights)."""
    with no_autocast(feats):
        error = (feats.to(target.dtype) - target) ** 2
        if weights is not None:
            error = error * weights.to(target.dtype)
        return torch.sum(error)


def content_count(target: torch.Tensor, weights: torch.Tensor | None) -> int | torch.Tensor:
    """The number of entries the content mean divides by: n · Σ w (n · positions without weights)."""
    if weights is None:
        return target.numel()
    return target.shape[1] * weights.to(target.dtype).sum().clamp_min(MIN_MASS)


def pool_to_layers(coverage: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Coverage [1, 1, H, W] of an image averaged over each layer's stride × stride blocks → {layer: [h, w]}.

    A feature of a layer with stride k sits over the k × k pixel block it was pooled from (VGG's max-pools
    halve with floor, as average pooling with kernel = stride = k does, so the grids match exactly). Its weight
    is the fraction of that block the render covers: 1 inside the object, 0 on the background, in between on
    the silhouette (docs/sos_loss.md, "Object-aware statistics").
    """
    if coverage.dim() != 4 or coverage.shape[:2] != (1, 1):
        raise ValueError(f"coverage must be [1, 1, H, W], got {list(coverage.shape)}")
    pooled: dict[int, torch.Tensor] = {}
    out = {}
    for layer in layers:
        stride = LAYER_STRIDES[layer]
        if stride not in pooled:
            pooled[stride] = coverage if stride == 1 else F.avg_pool2d(coverage, stride, stride)
        out[layer] = pooled[stride][0, 0]
    return out


def no_autocast(feats: torch.Tensor) -> AbstractContextManager:
    """Autocast off on the features' device: statistics and dL/dF are computed in float32 or wider."""
    return torch.autocast(device_type=feats.device.type, enabled=False)


def channel_matrix(feats: torch.Tensor) -> torch.Tensor:
    """[1, n, h, w] features as an [n, h·w] view (a transposed view for channels_last), copying only if neither.

    Column j is position j in row-major (y, x) order in both layouts, as ``weights.reshape(-1)`` is.
    """
    if feats.shape[0] != 1:
        raise ValueError(f"features must have batch size 1, got {list(feats.shape)}")
    n, h, w = feats.shape[1:]
    if feats.is_contiguous():
        return feats.view(n, h * w)
    if feats.is_contiguous(memory_format=torch.channels_last):
        return feats.permute(0, 2, 3, 1).reshape(h * w, n).T
    return feats.contiguous().view(n, h * w)


def column_blocks(matrix: torch.Tensor) -> list[slice]:
    """Column ranges of an [n, N] matrix holding about CHUNK_ELEMENTS each."""
    step = max(1, CHUNK_ELEMENTS // matrix.shape[0])
    return [slice(start, start + step) for start in range(0, matrix.shape[1], step)]


def _check_weights(feats: torch.Tensor, weights: torch.Tensor) -> None:
    if tuple(weights.shape) != tuple(feats.shape[-2:]):
        raise ValueError(f"position weights {list(weights.shape)} do not match features {list(feats.shape)}")


def _direct_float32_products(matrix: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether cuBLAS can take bf16/fp16 features and return float32 sums itself (no upcast copy, one launch).

    Products of two bf16 numbers are exact in float32 and cuBLAS accumulates in float32, so this gives the same
    sums as upcasting first. torch.mm's out_dtype exists on CUDA only (and only in recent PyTorch). Weighted sums
    take the float32 blocks instead: a bf16 copy of w·F would round every product.
    """
    return (matrix.is_cuda and matrix.dtype in (torch.bfloat16, torch.float16) and dtype == torch.float32
            and _MM_OUT_DTYPE)


def _mm_out_dtype_supported() -> bool:
    try:
        return "out_dtype" in str(torch.ops.aten.mm.dtype._schema)
    except (AttributeError, RuntimeError):
        return False


_MM_OUT_DTYPE = _mm_out_dtype_supported()
