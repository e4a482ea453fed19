"""Blender camera <-> OpenCV pinhole camera (3DGS / gsplat), as plain numpy functions.

Blender cameras look down local -Z with +Y up; OpenCV cameras look down +Z with +Y down, so
OpenCV axes = Blender camera axes x diag(1, -1, -1). Intrinsics follow Blender's view plane
(BKE_camera_params_compute_viewplane), with W x H the render size after the resolution percentage:

    fit     = camera sensor_fit, AUTO resolving to HORIZONTAL when aspx*W >= aspy*H, else VERTICAL
    sensor  = sensor_height if sensor_fit is VERTICAL else sensor_width   (AUTO uses the width)
    ycor    = pixel_aspect_y / pixel_aspect_x
    viewfac = W if fit is HORIZONTAL else ycor * H
    fx = lens / sensor * viewfac           fy = fx / ycor
    cx = W/2 - shift_x * viewfac           cy = H/2 + shift_y * viewfac / ycor

cameras/pinhole.py reads these settings from a Blender camera and scene and calls the functions here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..interchange.cameras import viewmat_from_pose
from ..interchange.rotations import nearest_rotation

BLENDER_TO_OPENCV_AXES = np.diag([1.0, -1.0, -1.0])
IMPORT_SENSOR_WIDTH = 36.0


@dataclass(frozen=True)
class BlenderIntrinsics:
    """The Blender camera and render settings that decide the projection."""

    lens: float
    sensor_width: float
    sensor_height: float
    sensor_fit: str
    shift_x: float
    shift_y: float
    width: int
    height: int
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0


def effective_fit(b: BlenderIntrinsics) -> str:
    """HORIZONTAL or VERTICAL: the direction the sensor spans, after resolving AUTO like Blender."""
    if b.sensor_fit != 'AUTO':
        return b.sensor_fit
    horizontal = b.pixel_aspect_x * b.width >= b.pixel_aspect_y * b.height
    return 'HORIZONTAL' if horizontal else 'VERTICAL'


def intrinsics_matrix(b: BlenderIntrinsics) -> np.ndarray:
    """OpenCV K (pixels, at width x height) of a Blender perspective camera."""
    ycor = b.pixel_aspect_y / b.pixel_aspect_x
    viewfac = b.width if effective_fit(b) == 'HORIZONTAL' else ycor * b.height
    sensor = b.sensor_height if b.sensor_fit == 'VERTICAL' else b.sensor_width
    fx = b.lens / sensor * viewfac
    return np.array([[fx, 0.0, b.width / 2 - b.shift_x * viewfac],
                     [0.0, fx / ycor, b.height / 2 + b.shift_y * viewfac / ycor],
                     [0.0, 0.0, 1.0]])


def blender_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> BlenderIntrinsics:
    """Blender settings reproducing K: horizontal sensor fit, fx != fy by pixel aspect, cx, cy by shift."""
    ycor = fx / fy
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1 else (1 / ycor, 1.0)
    return BlenderIntrinsics(
        lens=fx * IMPORT_SENSOR_WIDTH / width, sensor_width=IMPORT_SENSOR_WIDTH,
        sensor_height=IMPORT_SENSOR_WIDTH * height / width, sensor_fit='HORIZONTAL',
        shift_x=(width / 2 - cx) / width, shift_y=(cy - height / 2) * ycor / width,
        width=width, height=height, pixel_aspect_x=aspect_x, pixel_aspect_y=aspect_y)


def blender_matrix_from_opencv(rotation: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Blender camera matrix (4x4) from a camera-to-world rotation in OpenCV axes and a camera centre."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(rotation, float) @ BLENDER_TO_OPENCV_AXES
    matrix[:3, 3] = position
    return matrix


def opencv_pose_from_blender(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(camera-to-world rotation in OpenCV axes, camera centre) from a Blender camera matrix, scale removed."""
    matrix = np.asarray(matrix, float)
    return nearest_rotation(matrix[:3, :3]) @ BLENDER_TO_OPENCV_AXES, matrix[:3, 3].copy()


def opencv_view(matrix: np.ndarray, intrinsics: BlenderIntrinsics,
                frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(viewmat 4x4, K 3x3, width, height) of a Blender camera with world matrix `matrix` (scale ignored).

    viewmat maps world coordinates, or with `frame` (a 4x4 data-to-world matrix such as a splat object's
    matrix_world) that object's data coordinates, to OpenCV camera coordinates.
    """
    rotation, position = opencv_pose_from_blender(matrix)
    viewmat = viewmat_from_pose(position, rotation)
    if frame is not None:
        viewmat = viewmat @ np.asarray(frame, float)
    return viewmat, intrinsics_matrix(intrinsics), intrinsics.width, intrinsics.height
