"""Cameras: cameras.json and COLMAP text loading, validation, resizing, projection, orbit rig."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.cameras import Camera, load_cameras, orbit_cameras, save_cameras_json
from core.errors import InputError
from interchange.ply import read_ply

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FLOWERS = SHARED_DATA / "scenes" / "flowers"


def shared_file(path: Path) -> Path:
    """A file of the shared test data, or skip the test when the data is not there."""
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


def axis_angle_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula: rotation by ``angle`` about ``axis`` (independent of the quaternion code)."""
    n = axis / np.linalg.norm(axis)
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def sample_camera(cx: float = 330.0, cy: float = 250.0) -> Camera:
    rotation = axis_angle_rotation(np.array([0.3, -1.0, 0.5]), 0.8)
    return Camera.from_pose("view", 640, 480, 500.0, 510.0, cx, cy, np.array([1.0, -2.0, 3.0]), rotation)


def json_entry(**overrides) -> dict:
    entry = {"id": 0, "img_name": "a", "width": 64, "height": 48, "position": [0.0, 0.0, -2.0],
             "rotation": np.eye(3).tolist(), "fx": 60.0, "fy": 60.0}
    entry.update(overrides)
    return entry


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


# --- cameras.json --------------------------------------------------------------------------------------

def test_shared_orbit_cameras_load_with_viewmat_from_pose():
    path = shared_file(FLOWERS / "orbit_cameras.json")
    entries = json.loads(path.read_text())
    cameras = load_cameras(path)
    assert len(cameras) == 12
    for camera, entry in zip(cameras, entries):
        rotation, position = np.array(entry["rotation"]), np.array(entry["position"])
        expected = np.eye(4)
        expected[:3, :3] = rotation.T
        expected[:3, 3] = -rotation.T @ position
        assert (camera.width, camera.height, camera.name) == (512, 512, entry["img_name"])
        assert (camera.cx, camera.cy, camera.fx, camera.fy) == (256.0, 256.0, entry["fx"], entry["fy"])
        np.testing.assert_allclose(camera.viewmat, expected, atol=1e-12)
        np.testing.assert_allclose(camera.position(), position, atol=1e-12)
        np.testing.assert_allclose(camera.cam_to_world_rotation(), rotation, atol=1e-12)


def test_json_round_trip_keeps_everything_and_writes_cx_cy_only_off_centre(tmp_path):
    cameras = [sample_camera(), sample_camera(cx=320.0, cy=240.0)]
    path = tmp_path / "cameras.json"
    path.write_text("old content")
    save_cameras_json(path, cameras)
    assert [p.name for p in tmp_path.iterdir()] == ["cameras.json"]
    entries = json.loads(path.read_text())
    assert (entries[0]["cx"], entries[0]["cy"]) == (330.0, 250.0)
    assert "cx" not in entries[1] and "cy" not in entries[1]
    assert list(entries[1]) == ["id", "img_name", "width", "height", "position", "rotation", "fy", "fx"]
    for original, loaded in zip(cameras, load_cameras(path)):
        assert (loaded.name, loaded.width, loaded.height) == (original.name, original.width, original.height)
        np.testing.assert_allclose(loaded.K(), original.K(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(loaded.viewmat, original.viewmat, rtol=0, atol=1e-9)


def test_save_into_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        save_cameras_json(tmp_path / "nowhere" / "cameras.json", [sample_camera()])


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"cameras": []}), "expected a list of cameras"),
    (json.dumps([]), "camera list is empty"),
    (json.dumps([json_entry(), 3]), "camera 1: expected a JSON object"),
    (json.dumps([json_entry(), {k: v for k, v in json_entry(img_name="b").items() if k != "fy"}]),
     "camera 1 \\('b'\\): missing fy"),
    (json.dumps([json_entry(rotation=[[1, 0, 0], [0, 1, 0.1], [0, 0, 1]])]), "not orthonormal"),
    (json.dumps([json_entry(rotation=[[1, 0, 0], [0, 1, 0], [0, 0, -1]])]), "reflection"),
    (json.dumps([json_entry(width=0)]), "width: expected a positive integer, found 0"),
    (json.dumps([json_entry(height=-48)]), "height: expected a positive integer, found -48"),
    (json.dumps([json_entry(width=64.5)]), "width: expected a positive integer, found 64.5"),
    (json.dumps([json_entry(fx=0.0)]), "fx: expected a positive number, found 0.0"),
    (json.dumps([json_entry(fy="60")]), "fy: expected a finite number, found '60'"),
    (json.dumps([json_entry(position=[0.0, float("nan"), 0.0])]), "position: expected 3 finite numbers"),
    (json.dumps([json_entry(fx=float("inf"))]), "fx: expected a finite number, found inf"),
    (json.dumps([json_entry(position=[0.0, 1.0])]), "position: expected 3 finite numbers"),
    (json.dumps([json_entry(rotation=[[1, 0, 0], [0, 1, 0]])]), "rotation: expected 3x3 finite numbers"),
    (json.dumps([json_entry(cx=30.0)]), "cx and cy must be given together"),
])
def test_bad_cameras_json_is_a_one_line_input_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "cams.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as raised:
        load_cameras(path)
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)


def test_missing_camera_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_cameras(tmp_path / "absent.json")


def test_loading_leaves_the_input_file_unchanged(tmp_path):
    path = write_json(tmp_path / "cameras.json", [json_entry()])
    before = path.read_bytes()
    load_cameras(path)
    assert path.read_bytes() == before


# --- projection and resizing ---------------------------------------------------------------------------

def test_point_on_optical_axis_projects_to_principal_point_at_its_depth():
    camera = sample_camera()
    rotation, position = camera.cam_to_world_rotation(), camera.position()
    points = np.stack([position + 3.0 * rotation[:, 2],
                       position + 2.0 * rotation[:, 2] + 1.0 * rotation[:, 0] - 0.5 * rotation[:, 1]])
    pixels, depth = camera.project(points)
    np.testing.assert_allclose(pixels, [[330.0, 250.0], [330.0 + 500.0 / 2, 250.0 - 0.5 * 510.0 / 2]], atol=1e-9)
    np.testing.assert_allclose(depth, [3.0, 2.0], atol=1e-12)


def test_points_behind_the_camera_have_nan_pixels_and_negative_depth():
    camera = sample_camera()
    pixels, depth = camera.project(camera.position()[None] - camera.cam_to_world_rotation()[:, 2][None])
    assert np.isnan(pixels).all() and depth[0] == pytest.approx(-1.0)


def test_rotation_is_orthonormal_and_k_has_intrinsics():
    camera = sample_camera()
    rotation = camera.cam_to_world_rotation()
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(camera.K(), [[500.0, 0, 330.0], [0, 510.0, 250.0], [0, 0, 1]])


def test_resized_scales_intrinsics_and_pixel_coordinates():
    camera = sample_camera()
    half = camera.resized(320, 240)
    assert (half.width, half.height, half.fx, half.fy, half.cx, half.cy) == (320, 240, 250.0, 255.0, 165.0, 125.0)
    np.testing.assert_array_equal(half.viewmat, camera.viewmat)
    points = camera.position() + np.random.default_rng(0).normal(size=(20, 3)) + 4 * camera.viewmat[2, :3]
    np.testing.assert_allclose(half.project(points)[0], 0.5 * camera.project(points)[0], atol=1e-9)


def test_camera_keeps_its_own_copy_of_the_viewmat():
    viewmat = np.eye(4)
    camera = Camera("c", 8, 8, 10.0, 10.0, 4.0, 4.0, viewmat)
    viewmat[0, 3] = 5.0
    assert camera.viewmat[0, 3] == 0.0 and camera.viewmat.dtype == np.float64


@pytest.mark.parametrize("size, long_side, expected", [
    ((1000, 750), 512, (512, 384)),
    ((750, 1000), 512, (384, 512)),
    ((1000, 333), 512, (512, 170)),
    ((333, 1000), 2048, (682, 2048)),
])
def test_with_long_side_keeps_aspect_and_scales_each_axis(size, long_side, expected):
    camera = Camera.from_pose("c", *size, 800.0, 810.0, size[0] / 2, size[1] / 2, np.zeros(3), np.eye(3))
    scaled = camera.with_long_side(long_side)
    assert (scaled.width, scaled.height) == expected
    assert scaled.fx == pytest.approx(800.0 * expected[0] / size[0])
    assert scaled.fy == pytest.approx(810.0 * expected[1] / size[1])
    assert (scaled.cx, scaled.cy) == pytest.approx((expected[0] / 2, expected[1] / 2))


# --- COLMAP text ---------------------------------------------------------------------------------------

def colmap_scene(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(quaternion w,x,y,z, world-to-camera rotation, translation) of random poses."""
    poses = []
    for _ in range(count):
        axis, angle = rng.normal(size=3), rng.uniform(0.1, 3.0)
        half = math.sin(angle / 2) * axis / np.linalg.norm(axis)
        qvec = np.array([math.cos(angle / 2), *half])
        poses.append((qvec, axis_angle_rotation(axis, angle), rng.normal(size=3)))
    return poses


def write_colmap_and_json(folder: Path) -> tuple[Path, Path]:
    """A COLMAP text model (two camera models, unsorted images, empty points lines) and its cameras.json."""
    folder.mkdir()
    (folder / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n"
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "1 PINHOLE 640 480 500.5 502.25 321.5 238.75\n"
        "2 SIMPLE_PINHOLE 300 200 280 150 100\n")
    poses = colmap_scene(np.random.default_rng(7), 4)
    intrinsics = {1: (640, 480, 500.5, 502.25, 321.5, 238.75), 2: (300, 200, 280.0, 280.0, 150.0, 100.0)}
    names, camera_ids = ["img_c.jpg", "img_a.jpg", "img_d.png", "img_b.jpg"], [1, 2, 1, 2]
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME"]
    entries = []
    for image_id, ((qvec, rotation, tvec), name, camera_id) in enumerate(zip(poses, names, camera_ids), 1):
        lines.append(f"{image_id} {' '.join(map(repr, [*qvec, *tvec]))} {camera_id} {name}")
        lines.append("12.5 3.25 -1" if image_id % 2 else "")
        width, height, fx, fy, cx, cy = intrinsics[camera_id]
        entries.append({"id": image_id, "img_name": Path(name).stem, "width": width, "height": height,
                        "position": (-rotation.T @ tvec).tolist(), "rotation": rotation.T.tolist(),
                        "fx": fx, "fy": fy, "cx": cx, "cy": cy})
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    entries.sort(key=lambda entry: entry["img_name"])
    return folder, write_json(folder.parent / "cameras.json", entries)


def assert_same_cameras(left: list[Camera], right: list[Camera]) -> None:
    assert [c.name for c in left] == [c.name for c in right]
    for a, b in zip(left, right):
        assert (a.width, a.height) == (b.width, b.height)
        np.testing.assert_allclose(a.K(), b.K(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.viewmat, b.viewmat, rtol=0, atol=1e-9)


def test_colmap_text_model_loads_like_the_equivalent_cameras_json(tmp_path):
    folder, json_path = write_colmap_and_json(tmp_path / "sparse")
    from_json = load_cameras(json_path)
    assert [c.name for c in from_json] == ["img_a", "img_b", "img_c", "img_d"]
    assert_same_cameras(load_cameras(folder), from_json)
    assert_same_cameras(load_cameras(folder / "images.txt"), from_json)


def test_colmap_distortion_is_ignored_with_a_warning(tmp_path):
    folder, json_path = write_colmap_and_json(tmp_path / "sparse")
    (folder / "cameras.txt").write_text("1 OPENCV 640 480 500.5 502.25 321.5 238.75 0.1 -0.02 0 0\n"
                                        "2 SIMPLE_RADIAL 300 200 280 150 100 0.05\n")
    with pytest.warns(UserWarning, match="distortion is ignored"):
        cameras = load_cameras(folder)
    assert_same_cameras(cameras, load_cameras(json_path))


@pytest.mark.parametrize("file, content, message", [
    ("cameras.txt", "1 FISHEYE_X 640 480 500 320 240\n", "unsupported camera model 'FISHEYE_X'"),
    ("cameras.txt", "1 PINHOLE 640 480 500 502\n", "wrong number of parameters for PINHOLE"),
    ("cameras.txt", "1 PINHOLE 640\n", "expected 'CAMERA_ID MODEL"),
    ("cameras.txt", "1 PINHOLE 640 480 abc 502 320 240\n", "expected numbers"),
    ("cameras.txt", "1 PINHOLE 640 0 500 502 320 240\n", "must be positive"),
    ("images.txt", "1 1 0 0 0 0 0 0 9 a.jpg\n\n", "camera 9 is not in cameras.txt"),
    ("images.txt", "1 0 0 0 0 0 0 0 1 a.jpg\n\n", "quaternion is zero"),
    ("images.txt", "1 1 0 0 nan 0 0 0 1 a.jpg\n\n", "non-finite"),
    ("images.txt", "1 1 0 0 0 0 0 1 a.jpg\n\n", "expected 'IMAGE_ID"),
    ("images.txt", "# no images\n", "no images"),
])
def test_bad_colmap_model_is_an_input_error_naming_the_file(tmp_path, file, content, message):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 640 480 500 502 320 240\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.jpg\n\n")
    (tmp_path / file).write_text(content)
    with pytest.raises(InputError, match=message) as raised:
        load_cameras(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / file}: ")


def test_colmap_folder_without_text_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no images.txt"):
        load_cameras(tmp_path)
    (tmp_path / "images.bin").write_bytes(b"\0")
    with pytest.raises(InputError, match="binary COLMAP model"):
        load_cameras(tmp_path)
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.jpg\n\n")
    with pytest.raises(InputError, match="cameras.txt: file not found"):
        load_cameras(tmp_path / "images.txt")


# --- orbit rig -----------------------------------------------------------------------------------------

def fraction_inside(camera: Camera, points: np.ndarray) -> float:
    pixels, depth = camera.project(points)
    inside = (depth > 0) & (pixels[:, 0] >= 0) & (pixels[:, 0] <= camera.width)
    inside &= (pixels[:, 1] >= 0) & (pixels[:, 1] <= camera.height)
    return float(inside.mean())


def assert_valid_rig(cameras: list[Camera], centre: np.ndarray, dense: np.ndarray, up: np.ndarray) -> None:
    """Orthonormal rotations, cameras above ``centre`` along ``up`` looking at it, dense points in view."""
    for camera in cameras:
        rotation = camera.cam_to_world_rotation()
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)
        assert np.dot(camera.position() - centre, up) > 0
        assert np.dot(rotation[:, 1], up) < 0, "image y (down) must point against world up"
        np.testing.assert_allclose(camera.project(centre[None])[0][0], [camera.cx, camera.cy], atol=1e-6)
        assert fraction_inside(camera, dense) >= 0.95


def synthetic_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense opaque cloud at (3, -1, 2), far opaque outliers and a big transparent haze elsewhere."""
    dense = rng.normal(size=(3000, 3)) * [0.6, 0.3, 0.4] + [3.0, -1.0, 2.0]
    directions = rng.normal(size=(120, 3))
    outliers = [3.0, -1.0, 2.0] + 80.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    haze = rng.normal(size=(5000, 3)) + [20.0, 5.0, -10.0]
    means = np.concatenate([dense, outliers, haze])
    logits = np.concatenate([rng.uniform(0.5, 5, 3120), rng.uniform(-6, -0.5, 5000)])
    return means, logits, dense


def test_orbit_looks_at_the_dense_part_and_frames_it():
    means, logits, dense = synthetic_scene(np.random.default_rng(3))
    cameras = orbit_cameras(means, logits, count=24, width=160, height=120)
    assert len(cameras) == 24 and len({c.name for c in cameras}) == 24
    centre = np.median(means[logits > 0], axis=0)
    assert np.linalg.norm(centre - [3.0, -1.0, 2.0]) < 0.05
    up = np.array([0.0, -1.0, 0.0])
    assert_valid_rig(cameras, centre, dense, up)
    elevations = [math.degrees(math.asin(np.dot(c.position() - centre, up) / np.linalg.norm(c.position() - centre)))
                  for c in cameras]
    assert sorted(np.round(elevations, 6)) == [15.0] * 12 + [35.0] * 12
    assert cameras[0].fx == pytest.approx(80.0 / math.tan(math.radians(25.0)))
    for camera in cameras:
        spread = np.ptp(np.quantile(camera.project(dense)[0][:, 1], [0.02, 0.98]))
        assert spread > 0.3 * camera.height, "the outliers must not shrink the dense part to a dot"


def test_orbit_without_opacities_uses_all_points_and_honours_a_custom_up():
    rng = np.random.default_rng(5)
    means = rng.normal(size=(2000, 3)) + [0.0, 0.0, 10.0]
    cameras = orbit_cameras(means, count=5, elevations_deg=(20.0,), width=64, height=96, up=(0.0, 0.0, 2.0))
    assert len(cameras) == 5
    assert_valid_rig(cameras, np.median(means, axis=0), means, np.array([0.0, 0.0, 1.0]))


def test_orbit_falls_back_to_all_points_when_none_is_opaque():
    means = np.random.default_rng(9).normal(size=(500, 3))
    transparent = orbit_cameras(means, np.full(500, -3.0), count=3, width=32, height=32)
    unweighted = orbit_cameras(means, count=3, width=32, height=32)
    for a, b in zip(transparent, unweighted):
        np.testing.assert_allclose(a.viewmat, b.viewmat)


def test_orbit_frames_the_flowers_scene():
    path = shared_file(FLOWERS / "point_cloud.ply")
    scene = read_ply(path)
    means, logits = scene.means().astype(np.float64), scene.opacity().astype(np.float64)
    cameras = orbit_cameras(means, logits, count=8, width=96, height=64)
    opaque = means[logits > 0]
    assert_valid_rig(cameras, np.median(opaque, axis=0), opaque, np.array([0.0, -1.0, 0.0]))
