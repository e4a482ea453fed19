"""Real spherical harmonics as 3DGS and gsplat use them (degrees 0-4), and how SH colour coefficients change when
the Gaussians are moved by a linear map.

The basis is the real SH basis with the (-1)^m sign on odd orders (the Inria / gsplat convention), in the order
m = -l..l within each band l; this is also the order of a 3DGS file's f_rest coefficients. Constants are written
from their closed forms so their origin is plain. ``band_terms`` only multiplies and adds its inputs, so the
engine evaluates the same formulas on torch tensors (core/sh.py) for rendering and gradients.
"""

from __future__ import annotations

import math

import numpy as np

MAX_DEGREE = 4
C0 = 0.28209479177387814  # sqrt(1 / (4 pi)): the degree-0 basis value
SAMPLE_COUNT = 256  # directions for fitting coefficient maps (25 coefficients at degree 4)


def _c(numerator: float, denominator: float) -> float:
    """sqrt(numerator / (denominator * pi)), the form every normalisation constant below takes."""
    return math.sqrt(numerator / (denominator * math.pi))


def rgb_to_dc(rgb):
    """Degree-0 coefficient whose colour is ``rgb`` (colour = 0.5 + C0 * dc); arrays or tensors."""
    return (rgb - 0.5) / C0


def dc_to_rgb(dc):
    """Colour of a degree-0 coefficient, before any clamping (colour = 0.5 + C0 * dc); arrays or tensors."""
    return 0.5 + C0 * dc


def band_terms(band: int, x, y, z) -> list:
    """The 2*band+1 basis functions of one band (1..4) at unit directions (x, y, z): arrays or tensors."""
    if band == 1:
        c1 = _c(3, 4)
        return [-c1 * y, c1 * z, -c1 * x]
    if band == 2:
        return [_c(15, 4) * x * y, -_c(15, 4) * y * z, _c(5, 16) * (3 * z * z - 1), -_c(15, 4) * x * z,
                _c(15, 16) * (x * x - y * y)]
    if band == 3:
        z2 = z * z
        return [-_c(35, 32) * y * (3 * x * x - y * y), _c(105, 4) * x * y * z, -_c(21, 32) * y * (5 * z2 - 1),
                _c(7, 16) * z * (5 * z2 - 3), -_c(21, 32) * x * (5 * z2 - 1), _c(105, 16) * z * (x * x - y * y),
                -_c(35, 32) * x * (x * x - 3 * y * y)]
    if band == 4:
        x2, y2, z2 = x * x, y * y, z * z
        return [_c(315, 16) * x * y * (x2 - y2), -_c(315, 32) * y * z * (3 * x2 - y2),
                _c(45, 16) * x * y * (7 * z2 - 1), -_c(45, 32) * y * z * (7 * z2 - 3),
                _c(9, 256) * (35 * z2 * z2 - 30 * z2 + 3), -_c(45, 32) * x * z * (7 * z2 - 3),
                _c(45, 64) * (x2 - y2) * (7 * z2 - 1), -_c(315, 32) * x * z * (x2 - 3 * y2),
                _c(315, 256) * (x2 * x2 - 6 * x2 * y2 + y2 * y2)]
    raise ValueError(f"SH band must be 1..{MAX_DEGREE}, got {band}")


def sh_basis(degree: int, directions: np.ndarray) -> np.ndarray:
    """Basis values [..., (degree+1)^2] at ``directions`` [..., 3] (normalised here, as gsplat does)."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree must be 0..{MAX_DEGREE}, got {degree}")
    d = np.asarray(directions, dtype=np.float64)
    x, y, z = np.moveaxis(d / np.linalg.norm(d, axis=-1, keepdims=True), -1, 0)
    values = [np.full_like(x, C0)]
    for band in range(1, degree + 1):
        values.extend(band_terms(band, x, y, z))
    return np.stack(values, axis=-1)


def sample_directions(count: int = SAMPLE_COUNT) -> np.ndarray:
    """Evenly spread unit directions [count, 3] (Fibonacci sphere)."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (3 - np.sqrt(5)) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def is_similarity(linear: np.ndarray, tolerance: float = 1e-6) -> bool:
    """True when a 3x3 map is a uniform scale times a rotation or mirror (its singular values are equal)."""
    singular = np.linalg.svd(np.asarray(linear, dtype=np.float64), compute_uv=False)
    return bool(singular.max() - singular.min() <= tolerance * singular.max())


def sh_transform(linear: np.ndarray, degree: int) -> np.ndarray:
    """The [(d+1)^2, (d+1)^2] matrix M with coefficients_after = M @ coefficients_before when Gaussians are
    moved by an invertible 3x3 map A (per colour channel, coefficients in basis order, DC first).

    A colour f(d) seen along world direction d after the move is the colour seen before along A^-1 d, so
    f'(d) = f(normalize(A^-1 d)). Under a rotation or mirror Q times a uniform scale this is exactly Q acting
    on each band (each band is closed under orthogonal maps): M is block-diagonal and exact, the DC untouched.
    Under a non-uniform scale or shear f' leaves the span of degree d, and M is its least-squares projection
    back onto it over evenly spread directions (the closest view-dependent colour the file can hold).
    """
    linear = np.asarray(linear, dtype=np.float64)
    directions = sample_directions()
    before = sh_basis(degree, directions)
    after = sh_basis(degree, directions @ np.linalg.inv(linear).T)  # rows: A^-1 d
    fit = np.linalg.lstsq(before, after, rcond=None)[0]  # before @ fit = after, so M = fit
    fit[:, 0] = 0.0
    fit[0, 0] = 1.0  # a constant colour stays exactly that colour
    if is_similarity(linear):
        band = np.repeat(np.arange(degree + 1), [2 * b + 1 for b in range(degree + 1)])
        fit[band[:, None] != band[None, :]] = 0.0  # exact zeros between bands, so DC stays bit-exact
    return fit
