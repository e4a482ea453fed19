"""Real spherical harmonics as 3DGS and gsplat use them: DC colour conversion and view-dependent colour.

The basis is the real SH basis with the (-1)^m sign on odd orders (the Inria / gsplat convention), in the
order m = -l..l within each band l. Constants are written from their closed forms so their origin is plain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_DEGREE = 4
C0 = 0.28209479177387814  # sqrt(1 / (4 pi)): the degree-0 basis value


def _c(numerator: float, denominator: float) -> float:
    """sqrt(numerator / (denominator * pi)), the form every normalisation constant below takes."""
    return math.sqrt(numerator / (denominator * math.pi))


def rgb_to_dc(rgb: Tensor) -> Tensor:
    """Degree-0 coefficient whose colour is ``rgb`` (colour = 0.5 + C0 * dc)."""
    return (rgb - 0.5) / C0


def dc_to_rgb(dc: Tensor) -> Tensor:
    """Colour of a degree-0 coefficient, before any clamping (colour = 0.5 + C0 * dc)."""
    return 0.5 + C0 * dc


def _band1(x: Tensor, y: Tensor, z: Tensor) -> list[Tensor]:
    c1 = _c(3, 4)
    return [-c1 * y, c1 * z, -c1 * x]


def _band2(x: Tensor, y: Tensor, z: Tensor) -> list[Tensor]:
    return [
        _c(15, 4) * x * y,
        -_c(15, 4) * y * z,
        _c(5, 16) * (3 * z * z - 1),
        -_c(15, 4) * x * z,
        _c(15, 16) * (x * x - y * y),
    ]


def _band3(x: Tensor, y: Tensor, z: Tensor) -> list[Tensor]:
    z2 = z * z
    return [
        -_c(35, 32) * y * (3 * x * x - y * y),
        _c(105, 4) * x * y * z,
        -_c(21, 32) * y * (5 * z2 - 1),
        _c(7, 16) * z * (5 * z2 - 3),
        -_c(21, 32) * x * (5 * z2 - 1),
        _c(105, 16) * z * (x * x - y * y),
        -_c(35, 32) * x * (x * x - 3 * y * y),
    ]


def _band4(x: Tensor, y: Tensor, z: Tensor) -> list[Tensor]:
    x2, y2, z2 = x * x, y * y, z * z
    return [
        _c(315, 16) * x * y * (x2 - y2),
        -_c(315, 32) * y * z * (3 * x2 - y2),
        _c(45, 16) * x * y * (7 * z2 - 1),
        -_c(45, 32) * y * z * (7 * z2 - 3),
        _c(9, 256) * (35 * z2 * z2 - 30 * z2 + 3),
        -_c(45, 32) * x * z * (7 * z2 - 3),
        _c(45, 64) * (x2 - y2) * (7 * z2 - 1),
        -_c(315, 32) * x * z * (x2 - 3 * y2),
        _c(315, 256) * (x2 * x2 - 6 * x2 * y2 + y2 * y2),
    ]


_BANDS = (_band1, _band2, _band3, _band4)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Basis values [..., (degree+1)^2] at directions ``dirs`` [..., 3] (normalised here, as gsplat does)."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree must be 0..{MAX_DEGREE}, got {degree}")
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    values = [torch.full_like(x, C0)]
    for band in _BANDS[:degree]:
        values.extend(band(x, y, z))
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
