"""A Blender camera as the OpenCV pinhole camera it renders: its settings and the scene's render settings read
into io/pinhole.py's maths (which holds the formulas)."""

from __future__ import annotations

import numpy as np

from ..errors import SplatInputError
from ..io.pinhole import BlenderIntrinsics, opencv_view


def render_size(render) -> tuple[int, int]:
    """Rendered image size in pixels: resolution x percentage, with Blender's integer rounding."""
    return (render.resolution_x * render.resolution_percentage // 100,
            render.resolution_y * render.resolution_percentage // 100)


def scene_intrinsics(camera, render) -> BlenderIntrinsics:
    """BlenderIntrinsics of a camera data-block rendered with a scene's render settings."""
    width, height = render_size(render)
    return BlenderIntrinsics(camera.lens, camera.sensor_width, camera.sensor_height, camera.sensor_fit,
                             camera.shift_x, camera.shift_y, width, height,
                             render.pixel_aspect_x, render.pixel_aspect_y)


def blender_camera_to_opencv(cam_obj, scene,
                             frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(viewmat 4x4, K 3x3, width, height) of what cam_obj renders in scene.

    viewmat maps world coordinates, or with `frame` (a 4x4 data-to-world matrix such as a splat object's
    matrix_world) that object's data coordinates, to OpenCV camera coordinates.
    """
    if cam_obj.type != 'CAMERA' or cam_obj.data.type != 'PERSP':
        raise SplatInputError(f"{cam_obj.name}: not a perspective camera")
    return opencv_view(np.array(cam_obj.matrix_world), scene_intrinsics(cam_obj.data, scene.render), frame)
