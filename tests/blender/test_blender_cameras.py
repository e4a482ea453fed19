"""Cameras: Blender's own projection (world_to_camera_view) agrees with the 3DGS pinhole model, and
cameras.json survives import and export."""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from blender_test_files import camera_entry, look_at, procedural_columns, read_ply_columns, write_cameras, write_ply

PIXEL_TOLERANCE = 0.5


def blender_pixels(camera: bpy.types.Object, world_points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (x right, y down, origin at the top-left corner) of world points through Blender."""
    scene = bpy.context.scene
    width = scene.render.resolution_x * scene.render.resolution_percentage // 100
    height = scene.render.resolution_y * scene.render.resolution_percentage // 100
    ndc = np.array([world_to_camera_view(scene, camera, Vector(p))[:] for p in world_points])
    return np.stack([ndc[:, 0] * width, (1 - ndc[:, 1]) * height], axis=1)


def pinhole_pixels(entry: dict, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates of points through a cameras.json entry (3DGS: world-to-camera, then K)."""
    rotation, position = np.array(entry["rotation"]), np.array(entry["position"])
    camera = (points - position) @ rotation
    cx, cy = entry.get("cx", entry["width"] / 2), entry.get("cy", entry["height"] / 2)
    return np.stack([entry["fx"] * camera[:, 0] / camera[:, 2] + cx, entry["fy"] * camera[:, 1] / camera[:, 2] + cy],
                    axis=1)


def in_front(entry: dict, points: np.ndarray) -> np.ndarray:
    depth = ((points - np.array(entry["position"])) @ np.array(entry["rotation"]))[:, 2]
    return points[depth > 0.1]


def to_world(obj: bpy.types.Object, points: np.ndarray) -> np.ndarray:
    matrix = np.array(obj.matrix_world)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def imported_cameras(collection: str) -> list[bpy.types.Object]:
    cameras = sorted((o for o in bpy.data.collections[collection].all_objects if o.type == 'CAMERA'),
                     key=lambda o: o.name)
    bpy.context.view_layer.update()
    return cameras


def check_projections(addon, splat: bpy.types.Object, entries: list[dict], cameras: list[bpy.types.Object],
                      points: np.ndarray) -> None:
    """For each camera, made the scene camera: Blender's projection = pinhole projection, and
    blender_camera_to_opencv(frame = splat) gives the entry's viewmat and K."""
    for entry, camera in zip(entries, cameras):
        addon.cameras.objects.use_camera(bpy.context.scene, camera)
        visible = in_front(entry, points)
        assert len(visible) > 10
        error = np.abs(blender_pixels(camera, to_world(splat, visible)) - pinhole_pixels(entry, visible))
        assert error.max() < PIXEL_TOLERANCE, (entry["img_name"], error.max())
        viewmat, k, width, height = addon.cameras.pinhole.blender_camera_to_opencv(
            camera, bpy.context.scene, np.array(splat.matrix_world))
        cx, cy = entry.get("cx", entry["width"] / 2), entry.get("cy", entry["height"] / 2)
        assert (width, height) == (entry["width"], entry["height"])
        np.testing.assert_allclose(k, [[entry["fx"], 0, cx], [0, entry["fy"], cy], [0, 0, 1]], rtol=1e-5)
        expected = np.eye(4)
        expected[:3, :3] = np.array(entry["rotation"]).T
        expected[:3, 3] = -expected[:3, :3] @ np.array(entry["position"])
        np.testing.assert_allclose(viewmat, expected, atol=1e-5 * (1 + np.abs(entry["position"]).max()))


def test_guitar_orbit_cameras_match_the_pinhole_model(addon, guitar: Path) -> None:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(guitar / "point_cloud.ply")) == {'FINISHED'}
    splat = bpy.data.objects["guitar"]
    columns = read_ply_columns(guitar / "point_cloud.ply")
    points = np.stack([columns[k] for k in "xyz"], axis=1).astype(float)[::300]
    entries = json.loads((guitar / "orbit_cameras.json").read_text())
    check_projections(addon, splat, entries, imported_cameras("guitar Cameras"), points)


def unusual_entries() -> list[dict]:
    """Non-square, portrait, shifted principal points, fx != fy both ways, far from the origin."""
    target = np.zeros(3)
    specs = [  # width, height, fx, fy, cx, cy, position
        (640, 360, 500.0, 500.0, None, None, [0.5, -1.0, -4.0]),
        (360, 640, 420.0, 420.0, 150.0, 350.0, [-3.0, -0.5, -2.0]),
        (800, 600, 700.0, 560.0, 420.5, 280.25, [2.0, -2.0, 3.0]),
        (500, 700, 380.0, 610.0, 240.0, 300.0, [3.5, 1.0, 1.0]),
        (512, 512, 900.0, 900.0, 300.0, 200.0, [0.1, -0.2, 5.0]),
    ]
    return [camera_entry(i, w, h, fx, fy, p, look_at(np.array(p, float), target), cx=cx, cy=cy)
            for i, (w, h, fx, fy, cx, cy, p) in enumerate(specs)]


def test_unusual_cameras_match_the_pinhole_model(addon, tmp_path: Path) -> None:
    columns = procedural_columns(400, 0)
    ply = write_ply(tmp_path / "odd" / "point_cloud.ply", columns)
    entries = unusual_entries()
    write_cameras(ply.parent / "cameras.json", entries)
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply)) == {'FINISHED'}
    points = np.stack([columns[k] for k in "xyz"], axis=1).astype(float)
    check_projections(addon, bpy.data.objects["odd"], entries, imported_cameras("odd Cameras"), points)


@pytest.mark.parametrize("fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize("resolution", [(640, 480), (480, 640)])
@pytest.mark.parametrize("aspect", [(1.0, 1.0), (2.0, 1.0), (1.0, 1.5)])
def test_blender_camera_settings_to_opencv(addon, fit: str, resolution, aspect) -> None:
    """Any Blender camera (sensor fit, portrait, pixel aspect, shift, resolution %) projects like its K, viewmat."""
    scene = bpy.context.scene
    render = scene.render
    render.resolution_x, render.resolution_y = resolution
    render.resolution_percentage = 50
    render.pixel_aspect_x, render.pixel_aspect_y = aspect
    data = bpy.data.cameras.new("camera")
    data.sensor_fit, data.sensor_width, data.sensor_height = fit, 32.0, 20.0
    data.lens, data.shift_x, data.shift_y = 40.0, 0.12, -0.07
    camera = bpy.data.objects.new("camera", data)
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler, camera.scale = (1.0, -6.0, 2.0), (1.3, 0.1, 0.4), (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    rng = np.random.default_rng(1)
    depth = rng.uniform(2, 10, 200)
    local = np.stack([rng.uniform(-0.4, 0.4, 200) * depth, rng.uniform(-0.4, 0.4, 200) * depth, -depth], axis=1)
    rotation = addon.interchange.rotations.nearest_rotation(np.array(camera.matrix_world)[:3, :3])
    world = local @ rotation.T + np.array(camera.matrix_world)[:3, 3]
    viewmat, k, width, height = addon.cameras.pinhole.blender_camera_to_opencv(camera, scene)
    assert (width, height) == (resolution[0] // 2, resolution[1] // 2)
    cam = world @ viewmat[:3, :3].T + viewmat[:3, 3]
    pinhole = (cam[:, :2] / cam[:, 2:]) * [k[0, 0], k[1, 1]] + k[:2, 2]
    error = np.abs(blender_pixels(camera, world) - pinhole)
    assert error.max() < 1e-3 * max(width, height)


def test_cameras_json_round_trip_is_exact(addon, tmp_path: Path, guitar: Path) -> None:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(guitar / "point_cloud.ply")) == {'FINISHED'}
    out = tmp_path / "cameras.json"
    assert bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out), collection="guitar Cameras") == {'FINISHED'}
    assert json.loads(out.read_text()) == json.loads((guitar / "orbit_cameras.json").read_text())


def test_round_trip_keeps_principal_points_and_extra_keys(addon, tmp_path: Path) -> None:
    entries = [dict(e, exposure=1.5 + i) for i, e in enumerate(unusual_entries())]
    ply = write_ply(tmp_path / "rt" / "point_cloud.ply", procedural_columns(50, 2))
    write_cameras(ply.parent / "cameras.json", entries)
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply), up_axis='Y') == {'FINISHED'}
    out = tmp_path / "out.json"
    assert bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out), collection="rt") == {'FINISHED'}
    exported = json.loads(out.read_text())
    assert exported == entries
    for got, want in zip(exported, entries):
        for key in {"position", "rotation", "fx", "fy", "cx", "cy"} & want.keys():
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)


def test_edited_camera_exports_its_new_pose_and_lens(addon, tmp_path: Path) -> None:
    entries = unusual_entries()[:2]
    ply = write_ply(tmp_path / "edit" / "point_cloud.ply", procedural_columns(50, 0))
    write_cameras(ply.parent / "cameras.json", entries)
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply)) == {'FINISHED'}
    first = imported_cameras("edit Cameras")[0]
    first.location = np.array(first.location) + np.array(entries[0]["rotation"])[:, 0] * 0.25  # along camera x
    first.data.lens *= 1.5
    out = tmp_path / "out.json"
    assert bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out)) == {'FINISHED'}
    edited, untouched = json.loads(out.read_text())
    assert untouched == entries[1]
    expected_position = np.array(entries[0]["position"]) + np.array(entries[0]["rotation"])[:, 0] * 0.25
    np.testing.assert_allclose(edited["position"], expected_position, atol=1e-5)
    np.testing.assert_allclose(edited["rotation"], entries[0]["rotation"], atol=1e-5)
    np.testing.assert_allclose([edited["fx"], edited["fy"]], [entries[0]["fx"] * 1.5] * 2, rtol=1e-5)
    assert (edited["width"], edited["height"], edited["img_name"]) == (640, 360, entries[0]["img_name"])
    assert "cx" not in edited


def test_cameras_alone_hang_from_an_up_axis_frame(addon, tmp_path: Path) -> None:
    entries = unusual_entries()
    path = write_cameras(tmp_path / "cameras.json", entries)
    assert bpy.ops.import_scene.gaussian_splat_cameras(filepath=str(path), up_axis='-Y') == {'FINISHED'}
    cameras = imported_cameras(f"{tmp_path.name} Cameras")
    frame = cameras[0].parent
    assert frame.type == 'EMPTY' and all(c.parent == frame for c in cameras)
    np.testing.assert_allclose(np.array(frame.matrix_world)[:3, :3] @ [0, -1, 0], [0, 0, 1], atol=1e-6)
    out = tmp_path / "splat.json"
    assert bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out)) == {'FINISHED'}
    assert json.loads(out.read_text()) == entries
    assert bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out), frame='WORLD') == {'FINISHED'}
    world = json.loads(out.read_text())
    rotate = np.array(frame.matrix_world)[:3, :3]
    for got, want in zip(world, entries):
        np.testing.assert_allclose(got["position"], rotate @ want["position"], atol=1e-5)


def test_cameras_alone_attach_to_the_active_splat(addon, tmp_path: Path) -> None:
    ply = write_ply(tmp_path / "scene.ply", procedural_columns(30, 0))
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply)) == {'FINISHED'}
    splat = bpy.context.view_layer.objects.active
    path = write_cameras(tmp_path / "views" / "my_cameras.json", unusual_entries()[:3])
    assert bpy.ops.import_scene.gaussian_splat_cameras(filepath=str(path)) == {'FINISHED'}
    cameras = imported_cameras("views Cameras")
    assert len(cameras) == 3 and all(c.parent == splat for c in cameras)
    assert bpy.data.collections["views Cameras"] in splat.users_collection[0].children.values()


def test_cameras_without_their_stored_entries_derive_the_same_values(addon, tmp_path: Path) -> None:
    """Cameras made or edited in Blender export what Blender's settings say: drop the exact copies kept at
    import and the export still matches the file to 32-bit float precision (scene resolution and pixel aspect
    are shared, so these cameras share them too)."""
    entries = [camera_entry(i, 800, 600, 700.0, 560.0, p, look_at(np.array(p), np.zeros(3)), cx=cx, cy=cy)
               for i, (p, cx, cy) in enumerate([([2.0, -2.0, 3.0], 420.5, 280.25), ([-3.0, 1.0, -20.0], 380.0, 330.0),
                                               ([150.0, -40.0, 75.0], 400.0, 300.0)])]
    ply = write_ply(tmp_path / "derive" / "point_cloud.ply", procedural_columns(20, 0))
    write_cameras(ply.parent / "cameras.json", entries)
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply)) == {'FINISHED'}
    for camera in imported_cameras("derive Cameras"):
        del camera[addon.cameras.objects.CAMERA_KEY]
    out = tmp_path / "out.json"
    assert bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out)) == {'FINISHED'}
    for got, want in zip(json.loads(out.read_text()), entries):
        assert (got["img_name"], got["width"], got["height"]) == (want["img_name"], 800, 600)
        np.testing.assert_allclose([got[k] for k in ("fx", "fy")], [want[k] for k in ("fx", "fy")], rtol=1e-5)
        np.testing.assert_allclose([got.get("cx", 400.0), got.get("cy", 300.0)], [want["cx"], want["cy"]], atol=1e-3)
        np.testing.assert_allclose(got["rotation"], want["rotation"], atol=1e-5)
        np.testing.assert_allclose(got["position"], want["position"], atol=1e-5 * (1 + np.abs(want["position"]).max()))
