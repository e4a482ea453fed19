"""An orbit camera rig around a splat object, created as Blender cameras the user can see and adjust.

Same idea as the engine's orbit rig (core/cameras.orbit_cameras): the target is the median of the opaque
Gaussians (opacity logit > 0), and the sphere around it holding 95 % of them fits the image with a small
margin. Everything is computed in the splat object's data (PLY) coordinates, with "up" being Blender's +Z
seen from there, and the cameras are parented to the splat object so they follow it. The add-on cannot import
the engine (it pulls in torch), hence this small numpy twin of the engine's rule.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from ..errors import SplatInputError
from ..splats.objects import read_raw_columns
from .objects import CLIP_END, CLIP_START, to_blender_matrix
from .pinhole import blender_matrix_from_opencv, render_size, rotation_part

ORBIT_KEY = "sos_orbit_camera"
FOV_DEG = 50.0
ELEVATIONS_DEG = (15.0, 35.0)
COVERAGE = 0.95
FRAMING_MARGIN = 1.05
SENSOR_WIDTH = 36.0


def splat_points(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian centres [N, 3] and opacity logits [N] of a splat object, in its data coordinates."""
    columns = read_raw_columns(obj, ["x", "y", "z", "opacity"])
    return np.stack([columns[k] for k in "xyz"], axis=1).astype(float), columns["opacity"].astype(float)


def framing_sphere(points: np.ndarray, opacity_logits: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, radius): median of the opaque finite points and the radius holding COVERAGE of them."""
    finite = np.isfinite(points).all(axis=1)
    if not finite.any():
        raise SplatInputError("The splat object has no Gaussian with a finite position")
    opaque = finite & (opacity_logits > 0)
    dense = points[opaque] if opaque.any() else points[finite]
    centre = np.median(dense, axis=0)
    radius = float(np.quantile(np.linalg.norm(dense - centre, axis=1), COVERAGE))
    return centre, radius if radius > 0 else 1.0


def data_up(obj: bpy.types.Object) -> np.ndarray:
    """Blender's world +Z expressed in the object's data coordinates (unit vector)."""
    rotation = rotation_part(np.array(obj.matrix_world)[:3, :3])
    return rotation.T @ np.array([0.0, 0.0, 1.0])


def lens_for_fov(fov_deg: float = FOV_DEG) -> float:
    """Focal length (mm, 36 mm sensor, fit AUTO) whose field of view spans fov_deg across the longer side."""
    return SENSOR_WIDTH / 2 / math.tan(math.radians(fov_deg) / 2)


def framing_distance(radius: float, width: int, height: int, fov_deg: float = FOV_DEG) -> float:
    """Distance at which a sphere of `radius` fits the shorter image side, with a margin."""
    half_short = math.atan(math.tan(math.radians(fov_deg) / 2) * min(width, height) / max(width, height))
    return FRAMING_MARGIN * radius / math.sin(half_short)


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes: x right, y down, z forward) looking from position at target."""
    forward = (target - position) / np.linalg.norm(target - position)
    down = -up - np.dot(-up, forward) * forward
    down /= np.linalg.norm(down)
    return np.stack([np.cross(down, forward), down, forward], axis=1)


def ring_positions(centre: np.ndarray, distance: float, up: np.ndarray, count: int,
                   elevations_deg: tuple[float, ...] = ELEVATIONS_DEG) -> list[np.ndarray]:
    """Camera centres on one ring per elevation, rings staggered in azimuth so the views interleave."""
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


def new_camera(name: str, parent: bpy.types.Object, matrix: np.ndarray,
               collection: bpy.types.Collection) -> bpy.types.Object:
    """A perspective camera (FOV_DEG across the longer side) with a local matrix under parent."""
    data = bpy.data.cameras.new(name)
    data.sensor_fit, data.sensor_width, data.lens = 'AUTO', SENSOR_WIDTH, lens_for_fov()
    data.clip_start, data.clip_end = CLIP_START, CLIP_END
    camera = bpy.data.objects.new(name, data)
    camera.parent = parent
    camera.matrix_basis = to_blender_matrix(matrix)
    collection.objects.link(camera)
    return camera


def orbit_cameras_of(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The orbit rig cameras attached to a splat object."""
    return sorted((c for c in obj.children if c.type == 'CAMERA' and c.get(ORBIT_KEY)), key=lambda c: c.name)


def remove_orbit_rig(obj: bpy.types.Object) -> None:
    """Delete a splat object's orbit rig cameras and the rig collection when it is left empty."""
    collections = set()
    for camera in orbit_cameras_of(obj):
        collections.update(c for c in camera.users_collection if c.get(ORBIT_KEY))
        data = camera.data
        bpy.data.objects.remove(camera)
        if data.users == 0:
            bpy.data.cameras.remove(data)
    for collection in collections:
        if not collection.all_objects:
            bpy.data.collections.remove(collection)


def create_orbit_rig(obj: bpy.types.Object, scene: bpy.types.Scene, count: int) -> list[bpy.types.Object]:
    """Replace obj's orbit rig by `count` cameras in a '<name> Orbit Cameras' collection."""
    centre, radius = framing_sphere(*splat_points(obj))
    up = data_up(obj)
    distance = framing_distance(radius, *render_size(scene.render))
    remove_orbit_rig(obj)
    collection = bpy.data.collections.new(f"{obj.name} Orbit Cameras")
    collection[ORBIT_KEY] = True
    (obj.users_collection[0] if obj.users_collection else scene.collection).children.link(collection)
    cameras = []
    for index, position in enumerate(ring_positions(centre, distance, up, count)):
        matrix = blender_matrix_from_opencv(look_at(position, centre, up), position)
        camera = new_camera(f"orbit_{index:03d}", obj, matrix, collection)
        camera[ORBIT_KEY] = True
        cameras.append(camera)
    return cameras
