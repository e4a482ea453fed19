"""The scene's up axis, applied as an object rotation only (the Gaussians' data is never rewritten)."""

from __future__ import annotations

import math

UP_AXIS_ITEMS = [
    ('-Y', "-Y (3DGS, COLMAP)", "World +Y points down, as in COLMAP-based 3DGS training: rotate -90 degrees about X"),
    ('Y', "Y", "World +Y points up (glTF-style y-up data): rotate +90 degrees about X"),
    ('Z', "Z", "World +Z points up, as in Blender: no rotation"),
]
ROTATION_ABOUT_X = {'-Y': -math.pi / 2, 'Y': math.pi / 2, 'Z': 0.0}


def up_axis_rotation(axis: str) -> tuple[float, float, float]:
    """Euler XYZ rotation that turns the data's up axis into Blender's +Z."""
    return (ROTATION_ABOUT_X[axis], 0.0, 0.0)
