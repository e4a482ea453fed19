"""Spherical-harmonics colour in torch (for rendering and gradients): the basis formulas of interchange.sh
evaluated on tensors, DC colour conversion and view-dependent colour.

The basis is the real SH basis with the (-1)^m sign on odd orders (the Inria / gsplat convention), in the
order m = -l..l within each band l (interchange/sh.py writes the constants from their closed forms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from interchange.sh import C0, MAX_DEGREE, band_terms, dc_to_rgb, rgb_to_dc

__all__ = ["C0", "MAX_DEGREE", "dc_to_rgb", "eval_sh", "rgb_to_dc", "sh_basis"]


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Basis values [..., (degree+1)^2] at directions ``dirs`` [..., 3] (normalised here, as gsplat does)."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree must be 0..{MAX_DEGREE}, got {degree}")
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    values = [torch.full_like(x, C0)]
    for band in range(1, degree + 1):
        values.extend(band_terms(band, x, y, z))
    return torch.stack(values, dim=-1)


def eval_sh(degree: int, coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Colour [..., 3] of SH ``coeffs`` [..., K >= (degree+1)^2, 3] seen along ``dirs`` [..., 3].

    Uses the first (degree+1)^2 coefficients; no 0.5 offset and no clamping (the renderer adds those).
    """
    count = (degree + 1) ** 2
    if coeffs.shape[-2] < count:
        raise ValueError(f"SH degree {degree} needs {count} coefficients, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, dirs).to(coeffs.dtype)
    return (basis[..., None] * coeffs[..., :count, :]).sum(dim=-2)
