"""Blender camera settings <-> OpenCV pinhole camera (blender_addon/io/pinhole.py), on plain numpy.

Blender's own projection of the same settings is checked in tests/blender/test_blender_cameras.py; here the
maths alone: the settings import makes reproduce K, the axes flip, and a view in a splat object's frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from addon_package import load_addon

pinhole = load_addon().io.pinhole
rotations = load_addon().interchange.rotations


@pytest.mark.parametrize("fx, fy, cx, cy, width, height", [
    (500.0, 500.0, 320.0, 240.0, 640, 480),  # centred, square pixels
    (800.0, 600.0, 300.5, 260.25, 640, 480),  # fy < fx: pixel aspect, off-centre principal point
    (400.0, 700.0, 100.0, 500.0, 480, 640),  # portrait, fy > fx
])
def test_settings_made_for_an_opencv_camera_give_back_its_k(fx, fy, cx, cy, width, height) -> None:
    settings = pinhole.blender_intrinsics(fx, fy, cx, cy, width, height)
    assert settings.sensor_fit == 'HORIZONTAL' and min(settings.pixel_aspect_x, settings.pixel_aspect_y) == 1.0
    expected = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    np.testing.assert_allclose(pinhole.intrinsics_matrix(settings), expected, rtol=1e-12, atol=1e-9)


def test_auto_fit_follows_the_longer_side_after_pixel_aspect() -> None:
    wide = pinhole.BlenderIntrinsics(50.0, 36.0, 24.0, 'AUTO', 0.0, 0.0, 640, 480)
    tall = pinhole.BlenderIntrinsics(50.0, 36.0, 24.0, 'AUTO', 0.0, 0.0, 480, 640)
    squeezed = pinhole.BlenderIntrinsics(50.0, 36.0, 24.0, 'AUTO', 0.0, 0.0, 480, 640, pixel_aspect_x=2.0)
    assert [pinhole.effective_fit(b) for b in (wide, tall, squeezed)] == ['HORIZONTAL', 'VERTICAL', 'HORIZONTAL']
    # AUTO spans the sensor width across the longer side: fx = lens / width * longer side
    assert pinhole.intrinsics_matrix(tall)[0, 0] == pytest.approx(50.0 / 36.0 * 640)


def test_a_blender_camera_looking_down_minus_z_looks_down_plus_z_in_opencv() -> None:
    """Blender's default camera (identity rotation) looks down -Z with +Y up; OpenCV's axes are x right, y down,
    z forward, so its world-to-camera rotation maps world -Z to +z and world +Y to -y."""
    matrix = np.eye(4)
    matrix[:3, 3] = [1.0, 2.0, 3.0]
    rotation, position = pinhole.opencv_pose_from_blender(matrix)
    np.testing.assert_array_equal(position, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(rotation.T @ [0.0, 0.0, -1.0], [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(rotation.T @ [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], atol=1e-12)


def test_pose_round_trip_drops_scale() -> None:
    rng = np.random.default_rng(3)
    rotation = rotations.nearest_rotation(rng.normal(size=(3, 3)))
    rotation *= np.linalg.det(rotation)  # a proper rotation
    matrix = pinhole.blender_matrix_from_opencv(rotation, np.array([0.5, -1.0, 2.0]))
    scaled = matrix.copy()
    scaled[:3, :3] *= 2.5
    back_rotation, back_position = pinhole.opencv_pose_from_blender(scaled)
    np.testing.assert_allclose(back_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(back_position, [0.5, -1.0, 2.0])


def test_a_view_in_an_objects_frame_maps_its_data_coordinates() -> None:
    """With a frame (data -> world), viewmat maps data coordinates: the same camera-space point as the world
    point the frame puts them at."""
    settings = pinhole.BlenderIntrinsics(35.0, 36.0, 24.0, 'AUTO', 0.1, -0.05, 320, 200)
    camera = pinhole.blender_matrix_from_opencv(np.eye(3), np.array([0.0, 0.0, -5.0]))
    frame = np.diag([2.0, 2.0, 2.0, 1.0])
    frame[:3, 3] = [0.3, 0.0, 1.0]
    world_view, k, width, height = pinhole.opencv_view(camera, settings)
    data_view, k_again, _, _ = pinhole.opencv_view(camera, settings, frame)
    point = np.array([0.1, -0.2, 0.4, 1.0])
    np.testing.assert_allclose(data_view @ point, world_view @ (frame @ point))
    np.testing.assert_array_equal(k, k_again)
    assert (width, height) == (320, 200)
