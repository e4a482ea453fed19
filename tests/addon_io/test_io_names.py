"""Where an imported scene is named from and how its up axis turns it (blender_addon/io/scene_name.py,
io/up_axis.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from addon_package import load_addon

addon = load_addon()


@pytest.mark.parametrize("path, name", [
    ("/runs/garden/point_cloud/iteration_30000/point_cloud.ply", "garden"),  # 3DGS output folder
    ("/scans/bicycle/point_cloud.ply", "bicycle"),  # other point_cloud.ply: its folder
    ("/scans/bicycle/bike_edit.ply", "bike_edit"),  # anything else: the file name
    ("point_cloud.ply", "point_cloud"),  # no folder to name it after
])
def test_a_scene_is_named_after_its_3dgs_output_folder(path: str, name: str) -> None:
    assert addon.io.scene_name.scene_name(Path(path)) == name


@pytest.mark.parametrize("axis, data_up", [("-Y", (0, -1, 0)), ("Y", (0, 1, 0)), ("Z", (0, 0, 1))])
def test_the_up_axis_rotation_turns_the_datas_up_into_blenders_z(axis: str, data_up) -> None:
    angle_x, angle_y, angle_z = addon.io.up_axis.up_axis_rotation(axis)
    assert angle_y == angle_z == 0.0
    c, s = math.cos(angle_x), math.sin(angle_x)
    about_x = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    np.testing.assert_allclose(about_x @ np.array(data_up, float), [0, 0, 1], atol=1e-12)
    assert axis in [item[0] for item in addon.io.up_axis.UP_AXIS_ITEMS]
