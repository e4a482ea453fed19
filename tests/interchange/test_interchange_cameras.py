"""interchange.cameras and interchange.colmap: cameras.json records, pose maths, finding a scene's cameras."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from interchange.cameras import (CameraRecord, find_cameras_file, look_at_rotation, pose_from_viewmat,
                                 read_cameras_json, viewmat_from_pose, write_cameras_json)
from interchange.colmap import read_colmap
from interchange.errors import InputError


def rotation_about(axis, angle: float) -> np.ndarray:
    """Rodrigues' formula, independent of the quaternion code."""
    n = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def test_viewmat_and_pose_are_inverse_and_map_the_centre_to_the_origin() -> None:
    rotation, position = rotation_about((1, 2, 3), 0.7), np.array([0.3, -2.0, 5.0])
    viewmat = viewmat_from_pose(position, rotation)
    np.testing.assert_allclose(viewmat[:3, :3] @ position + viewmat[:3, 3], 0, atol=1e-12)
    back_position, back_rotation = pose_from_viewmat(viewmat)
    np.testing.assert_allclose(back_position, position, atol=1e-12)
    np.testing.assert_allclose(back_rotation, rotation, atol=1e-12)


def test_look_at_puts_the_target_straight_ahead_with_up_up() -> None:
    rotation = look_at_rotation(np.array([3.0, 1.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    forward, down = rotation[:, 2], rotation[:, 1]
    np.testing.assert_allclose(forward, -np.array([3.0, 1.0, 2.0]) / np.sqrt(14), atol=1e-12)
    assert down[2] < 0 and math.isclose(np.linalg.det(rotation), 1.0)


def test_records_round_trip_exactly_keeping_other_tools_keys(tmp_path: Path) -> None:
    entries = [{"id": 7, "img_name": "a", "width": 640, "height": 480, "position": [0.1, 0.2, 1 / 3],
                "rotation": rotation_about((0, 1, 0), 0.2).tolist(), "fy": 500.5, "fx": 501.25, "exposure": 2},
               {"img_name": "b", "width": 64.0, "height": 48, "position": [0, 0, 0],
                "rotation": np.eye(3).tolist(), "fy": 50, "fx": 50, "cx": 30.5, "cy": 20}]
    (tmp_path / "in.json").write_text(json.dumps(entries))
    records = read_cameras_json(tmp_path / "in.json")
    assert [r.id for r in records] == [7, 1] and records[1].width == 64 and records[0].extra == {"exposure": 2}
    assert records[0].principal_point == (320.0, 240.0) and records[1].principal_point == (30.5, 20.0)
    write_cameras_json(tmp_path / "out.json", records)
    written = json.loads((tmp_path / "out.json").read_text())
    assert written[0] == entries[0]
    assert list(written[1]) == ["id", "img_name", "width", "height", "position", "rotation", "fy", "fx", "cx", "cy"]
    again = read_cameras_json(tmp_path / "out.json")
    for a, b in zip(records, again):
        np.testing.assert_array_equal(a.viewmat(), b.viewmat())


def test_a_camera_without_a_name_is_accepted(tmp_path: Path) -> None:
    entry = {"width": 8, "height": 8, "position": [0, 0, 0], "rotation": np.eye(3).tolist(), "fx": 5, "fy": 5}
    (tmp_path / "c.json").write_text(json.dumps([entry]))
    assert read_cameras_json(tmp_path / "c.json")[0].img_name == ""


def test_bad_entries_name_the_file_the_camera_and_the_problem(tmp_path: Path) -> None:
    entry = {"img_name": "x", "width": 8, "height": 8, "position": [0, 0, 0], "fx": 5, "fy": 5,
             "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(InputError, match=r"c\.json: camera 0 \('x'\): rotation: not a rotation matrix: a reflection"):
        read_cameras_json(path)
    with pytest.raises(InputError, match="folder .* does not exist"):
        write_cameras_json(tmp_path / "none" / "c.json", [])


def test_find_cameras_file_looks_beside_the_ply_then_two_folders_up(tmp_path: Path) -> None:
    ply = tmp_path / "out" / "point_cloud" / "iteration_30000" / "point_cloud.ply"
    ply.parent.mkdir(parents=True)
    assert find_cameras_file(ply) is None
    (tmp_path / "out" / "cameras.json").write_text("[]")
    assert find_cameras_file(ply) == tmp_path / "out" / "cameras.json"
    (ply.parent / "my_cameras.json").write_text("[]")
    assert find_cameras_file(ply) == ply.parent / "my_cameras.json"
    (ply.parent / "cameras.json").write_text("[]")
    assert find_cameras_file(ply) == ply.parent / "cameras.json"


def test_colmap_model_reads_as_records_sorted_by_image_name(tmp_path: Path) -> None:
    (tmp_path / "cameras.txt").write_text("# comment\n1 PINHOLE 640 480 500 502 320 240\n2 SIMPLE_PINHOLE 64 48 40 "
                                          "32 24\n")
    half = math.sqrt(0.5)
    (tmp_path / "images.txt").write_text(f"1 {half} {half} 0 0 1 2 3 1 b/z.jpg\n\n2 1 0 0 0 0 0 5 2 a.png\n1 2 3\n")
    records = read_colmap(tmp_path / "images.txt")
    assert [(r.id, r.img_name, r.width) for r in records] == [(0, "a", 64), (1, "b/z", 640)]
    assert (records[0].fx, records[0].fy, records[0].cx, records[0].cy) == (40.0, 40.0, 32.0, 24.0)
    viewmat = records[1].viewmat()
    np.testing.assert_allclose(viewmat[:3, :3], rotation_about((1, 0, 0), math.pi / 2), atol=1e-12)
    np.testing.assert_allclose(viewmat[:3, 3], [1, 2, 3], atol=1e-12)
    with pytest.raises(InputError, match="binary COLMAP models are not supported"):
        read_colmap(tmp_path / "images.bin")


def test_record_viewmat_matches_its_pose() -> None:
    record = CameraRecord(0, "x", 8, 8, np.array([1.0, 2.0, 3.0]), rotation_about((0, 0, 1), 0.3), 5.0, 5.0)
    np.testing.assert_array_equal(record.viewmat(), viewmat_from_pose(record.position, record.rotation))
