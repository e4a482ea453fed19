"""Rotating 3DGS spherical-harmonics colour coefficients (degrees 1-3) by an orthogonal 3x3 matrix.

A colour function f(d) = sum_k c_k Y_k(d) seen in a world rotated by Q becomes f'(d) = f(Q^T d). Rotation
keeps each SH band closed, so per band there is a matrix X with Y(Q^T d) = X^T Y(d); it is found by least
squares on a fixed set of directions (exact up to rounding, and simpler than Wigner-D recurrences).
The basis below is the real SH basis with the signs and order 3DGS uses (the f_rest coefficient order).
"""

from __future__ import annotations

import numpy as np

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)
MAX_ROTATABLE_DEGREE = 3
SAMPLE_COUNT = 64


def band_basis(directions: np.ndarray, band: int) -> np.ndarray:
    """Real SH basis functions of one band (1, 2 or 3) at unit directions [N, 3] -> [N, 2*band+1]."""
    x, y, z = directions[:, 0], directions[:, 1], directions[:, 2]
    if band == 1:
        return SH_C1 * np.stack([-y, z, -x], axis=1)
    if band == 2:
        terms = [x * y, y * z, 2 * z * z - x * x - y * y, x * z, x * x - y * y]
        return np.stack([c * t for c, t in zip(SH_C2, terms)], axis=1)
    terms = [y * (3 * x * x - y * y), x * y * z, y * (4 * z * z - x * x - y * y),
             z * (2 * z * z - 3 * x * x - 3 * y * y), x * (4 * z * z - x * x - y * y), z * (x * x - y * y),
             x * (x * x - 3 * y * y)]
    return np.stack([c * t for c, t in zip(SH_C3, terms)], axis=1)


def sample_directions(count: int = SAMPLE_COUNT) -> np.ndarray:
    """Evenly spread unit directions (Fibonacci sphere)."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (3 - np.sqrt(5)) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def band_rotation(rotation: np.ndarray, band: int) -> np.ndarray:
    """X such that the band's coefficients c become X @ c when the world is rotated by `rotation`."""
    directions = sample_directions()
    before = band_basis(directions, band)
    after = band_basis(directions @ rotation, band)  # rows are Q^T d
    solution, *_ = np.linalg.lstsq(before, after, rcond=None)
    return solution


def rotate_sh_rest(rest: np.ndarray, rotation: np.ndarray, degree: int) -> np.ndarray:
    """f_rest coefficients [N, 3 channels, (degree+1)^2 - 1] of a scene rotated by an orthogonal matrix."""
    rotated = np.empty_like(rest)
    for band in range(1, degree + 1):
        window = slice(band * band - 1, (band + 1) * (band + 1) - 1)
        rotated[:, :, window] = rest[:, :, window] @ band_rotation(rotation, band).T
    return rotated
