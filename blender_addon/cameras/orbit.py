"""An orbit camera rig around a splat object, created as Blender cameras the user can see and adjust.

The ring is interchange.orbit's, the one the engine uses too: computed in the splat object's data (PLY)
coordinates, with "up" being Blender's +Z seen from there; the cameras are parented to the splat object so they
follow it.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from ..interchange import orbit
from ..interchange.cameras import look_at_rotation
from ..interchange.ply import OPACITY, POSITION
from ..interchange.rotations import nearest_rotation
from ..io.pinhole import blender_matrix_from_opencv
from ..splats.objects import read_raw_columns
from .objects import CLIP_END, CLIP_START, to_blender_matrix
from .pinhole import render_size

ORBIT_KEY = "sos_orbit_camera"
SENSOR_WIDTH = 36.0


def splat_points(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian centres [N, 3] and opacity logits [N] of a splat object, in its data coordinates."""
    columns = read_raw_columns(obj, [*POSITION, OPACITY])
    return np.stack([columns[k] for k in POSITION], axis=1).astype(float), columns[OPACITY].astype(float)


def data_up(obj: bpy.types.Object) -> np.ndarray:
    """Blender's world +Z expressed in the object's data coordinates (unit vector)."""
    rotation = nearest_rotation(np.array(obj.matrix_world)[:3, :3])
    return rotation.T @ np.array([0.0, 0.0, 1.0])


def lens_for_fov(fov_deg: float = orbit.FOV_DEG) -> float:
    """Focal length (mm, 36 mm sensor, fit AUTO) whose field of view spans fov_deg across the longer side."""
    return SENSOR_WIDTH / 2 / math.tan(math.radians(fov_deg) / 2)


def new_camera(name: str, parent: bpy.types.Object, matrix: np.ndarray,
               collection: bpy.types.Collection) -> bpy.types.Object:
    """A perspective camera (the orbit field of view across the longer side) with a local matrix under parent."""
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
    centre, radius = orbit.framing_sphere(*splat_points(obj))
    up = data_up(obj)
    distance = orbit.framing_distance(radius, *render_size(scene.render))
    remove_orbit_rig(obj)
    collection = bpy.data.collections.new(f"{obj.name} Orbit Cameras")
    collection[ORBIT_KEY] = True
    (obj.users_collection[0] if obj.users_collection else scene.collection).children.link(collection)
    cameras = []
    for index, position in enumerate(orbit.ring_positions(centre, distance, up, count)):
        matrix = blender_matrix_from_opencv(look_at_rotation(position, centre, up), position)
        camera = new_camera(f"orbit_{index:03d}", obj, matrix, collection)
        camera[ORBIT_KEY] = True
        cameras.append(camera)
    return cameras
