"""The orbit camera ring: cameras on rings around the dense part of a scene, all looking at its centre.

The target is the median of the opaque Gaussians (opacity logit > 0, i.e. sigmoid > 0.5; all finite ones if
none is); the sphere around it holding ``COVERAGE`` of them fits the shorter image side with a small margin.
The field of view spans the longer image side (Blender's sensor fit AUTO). The engine makes pinhole cameras of
the ring (core.cameras.orbit_cameras), the add-on makes Blender cameras (cameras/orbit.py).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

FOV_DEG = 50.0
ELEVATIONS_DEG = (15.0, 35.0)
COVERAGE = 0.95
FRAMING_MARGIN = 1.05  # cameras stand this much farther than where the sphere touches the image
DEFAULT_COUNT = 24


def framing_sphere(means: np.ndarray, opacity_logits: np.ndarray | None = None,
                   coverage: float = COVERAGE) -> tuple[np.ndarray, float]:
    """(centre, radius) of the scene's dense part; raises InputError when no Gaussian has a finite position."""
    means = np.asarray(means, dtype=np.float64)
    finite = np.isfinite(means).all(axis=1)
    if not finite.any():
        raise InputError("the scene has no Gaussian with a finite position")
    opaque = finite if opacity_logits is None else finite & (np.asarray(opacity_logits).reshape(-1) > 0)
    dense = means[opaque] if opaque.any() else means[finite]
    centre = np.median(dense, axis=0)
    radius = float(np.quantile(np.linalg.norm(dense - centre, axis=1), coverage))
    return centre, radius if radius > 0 else 1.0  # all points coincide: any distance frames them


def focal_for_fov(width: int, height: int, fov_deg: float = FOV_DEG) -> float:
    """Focal length in pixels whose field of view spans fov_deg across the longer image side."""
    return 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)


def framing_distance(radius: float, width: int, height: int, fov_deg: float = FOV_DEG) -> float:
    """Distance at which a sphere of ``radius`` fits the shorter image side, with the margin."""
    half_short = math.atan(0.5 * min(width, height) / focal_for_fov(width, height, fov_deg))
    return FRAMING_MARGIN * radius / math.sin(half_short)


def ring_positions(centre: np.ndarray, distance: float, up: np.ndarray, count: int,
                   elevations_deg: tuple[float, ...] = ELEVATIONS_DEG) -> list[np.ndarray]:
    """Camera centres on one ring per elevation around ``up``, ``count`` split evenly over the rings, rings
    staggered in azimuth so the views interleave."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    side_a = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    side_a /= np.linalg.norm(side_a)
    side_b = np.cross(up, side_a)
    rings = len(elevations_deg)
    positions = []
    for ring, elevation_deg in enumerate(elevations_deg):
        ring_count = count // rings + (1 if ring < count % rings else 0)
        elevation = math.radians(elevation_deg)
        for k in range(ring_count):
            azimuth = 2 * math.pi * (k + ring / rings) / ring_count
            horizontal = math.cos(azimuth) * side_a + math.sin(azimuth) * side_b
            positions.append(centre + distance * (math.cos(elevation) * horizontal + math.sin(elevation) * up))
    return positions
