"""The Gaussian Splats render engine and sos.render_cameras, against the engine's own renderer (core.render, run
in the worker's Python) and Blender's own camera projection."""

import math
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_test_files import read_cameras, write_ply
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from stylize_helpers import configure, fake_worker, import_scene, positions, reference_renders, write_scene


WORLD_COLOUR = (0.05, 0.1, 0.2)  # scene-linear


def srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def add_camera(scene: bpy.types.Scene, location, target, shift=(0.06, -0.04)) -> bpy.types.Object:
    """A perspective camera looking at target, with lens shift, made the scene camera."""
    data = bpy.data.cameras.new("view")
    data.lens, data.sensor_fit, (data.shift_x, data.shift_y) = 28.0, 'AUTO', shift
    camera = bpy.data.objects.new("view", data)
    scene.collection.objects.link(camera)
    camera.location = location
    direction = Vector(target) - Vector(location)
    camera.rotation_euler = direction.to_track_quat('-Z', 'Y').to_euler()
    scene.camera = camera
    return camera


def set_up_render(scene: bpy.types.Scene, size=(64, 40), percentage=75, transparent=False) -> None:
    scene.render.engine = "GAUSSIAN_SPLATS"
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = percentage
    scene.render.film_transparent = transparent
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = WORLD_COLOUR
    scene.view_settings.view_transform = 'Standard'
    scene.render.dither_intensity = 0.0


def render_to(path: Path, file_format: str) -> np.ndarray:
    """F12 into a file, read back as float RGBA [H, W, 4] top row first (EXR: scene-linear; PNG: its bytes/255)."""
    settings = bpy.context.scene.render.image_settings
    settings.file_format, settings.color_mode = file_format, 'RGBA'
    settings.color_depth = '32' if file_format == 'OPEN_EXR' else '8'
    bpy.context.scene.render.filepath = str(path)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    image = bpy.data.images.load(str(path))
    width, height = image.size
    pixels = np.array(image.pixels[:], np.float32).reshape(height, width, 4)[::-1]
    bpy.data.images.remove(image)
    return pixels


def engine_render(ply: Path, viewmat: np.ndarray, k: np.ndarray, width: int, height: int,
                  background=None) -> tuple[np.ndarray, np.ndarray]:
    """core.render of a PLY on the CPU: (RGB [H, W, 3] sRGB, alpha [H, W])."""
    return reference_renders(ply, [(viewmat, k, width, height, background)], ply.parent / "reference")[0]


@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.slow
def test_f12_matches_the_engines_render_of_the_same_camera(worker_addon, tmp_path: Path, moved: bool) -> None:
    ply = write_scene(tmp_path / "tiny")
    obj = import_scene(ply)
    scene = bpy.context.scene
    if moved:  # a rigid transform, passed to the worker as matrix_world
        obj.rotation_euler = (-1.2, 0.3, 0.8)
        obj.location = (0.4, -0.3, 0.2)
    bpy.context.view_layer.update()
    set_up_render(scene)
    add_camera(scene, (2.2, -2.6, 1.4), np.array(obj.matrix_world.translation))
    bpy.context.view_layer.update()
    linear = render_to(tmp_path / "frame.exr", 'OPEN_EXR')
    viewmat, k, width, height = worker_addon.cameras.pinhole.blender_camera_to_opencv(
        scene.camera, scene, np.array(obj.matrix_world))
    assert linear.shape == (height, width, 4) == (30, 48, 4)
    reference, _ = engine_render(ply, viewmat, k, width, height, background=srgb(np.array(WORLD_COLOUR)))
    np.testing.assert_allclose(linear[..., 3], 1.0)
    difference = np.abs(srgb(linear[..., :3]) - reference)
    assert difference.mean() < 1e-3, difference.mean()
    assert reference.std() > 0.05  # the scene is in view, not just background


@pytest.mark.parametrize("scale", [(-1.0, 1.0, 1.0), (1.0, 1.8, 0.6)], ids=["mirrored", "non-uniform"])
@pytest.mark.slow
def test_transformed_object_renders_as_its_baked_export(worker_addon, tmp_path: Path, scale) -> None:
    """A mirrored or non-uniformly scaled splat (SH degree 1) both exports with Apply Transform and renders with
    F12, and the two agree: F12 of the object equals the engine's render of the exported PLY."""
    obj = import_scene(write_scene(tmp_path / "tiny"))
    obj.scale, obj.rotation_euler, obj.location = scale, (-1.2, 0.3, 0.8), (0.4, -0.3, 0.2)
    scene = bpy.context.scene
    set_up_render(scene)
    add_camera(scene, (2.2, -2.6, 1.4), np.array(obj.matrix_world.translation))
    bpy.context.view_layer.update()
    baked = tmp_path / "baked.ply"
    assert bpy.ops.export_scene.gaussian_splat(filepath=str(baked), apply_transform=True) == {'FINISHED'}
    linear = render_to(tmp_path / "frame.exr", 'OPEN_EXR')
    viewmat, k, width, height = worker_addon.cameras.pinhole.blender_camera_to_opencv(scene.camera, scene)
    reference, _ = engine_render(baked, viewmat, k, width, height, background=srgb(np.array(WORLD_COLOUR)))
    difference = np.abs(srgb(linear[..., :3]) - reference)
    assert difference.mean() < 1e-3, difference.mean()
    assert reference.std() > 0.05


def test_silhouette_lands_where_blender_projects_the_points(worker_addon, tmp_path: Path) -> None:
    """Seven small opaque Gaussians, a scaled, rotated, moved object and a shifted camera: alpha is high where
    Blender's world_to_camera_view puts each centre and zero far from all of them."""
    means = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [-0.4, 0.3, 0.2], [0.3, -0.4, -0.3],
                      [-0.3, -0.3, 0.4]], float)
    count = len(means)
    columns = {**{k: means[:, i] for i, k in enumerate("xyz")}, **{f"f_dc_{i}": np.full(count, 1.0) for i in range(3)},
               "opacity": np.full(count, 6.0), **{f"scale_{i}": np.full(count, math.log(0.03)) for i in range(3)},
               "rot_0": np.ones(count), **{f"rot_{i}": np.zeros(count) for i in range(1, 4)}}
    ply = write_ply(tmp_path / "dots" / "point_cloud.ply", columns)
    obj = import_scene(ply)
    obj.rotation_euler, obj.location, obj.scale = (0.4, -0.7, 1.9), (1.0, 2.0, -0.5), (1.5, 1.5, 1.5)
    scene = bpy.context.scene
    set_up_render(scene, size=(96, 72), percentage=100, transparent=True)
    bpy.context.view_layer.update()
    camera = add_camera(scene, (4.0, 0.5, 2.5), np.array(obj.matrix_world.translation), shift=(0.1, 0.05))
    bpy.context.view_layer.update()
    alpha = render_to(tmp_path / "dots.exr", 'OPEN_EXR')[..., 3]
    world = positions(obj) @ np.array(obj.matrix_world)[:3, :3].T + np.array(obj.matrix_world)[:3, 3]
    ndc = np.array([world_to_camera_view(scene, camera, Vector(p))[:2] for p in world])
    pixels = np.stack([ndc[:, 0] * 96, (1 - ndc[:, 1]) * 72], axis=1)
    assert ((pixels > 2) & (pixels < [94, 70])).all(), pixels
    for x, y in pixels:
        assert alpha[int(y), int(x)] > 0.5, (x, y)
    rows, columns = np.mgrid[0:72, 0:96]
    distance = np.min(np.hypot(columns[..., None] + 0.5 - pixels[:, 0], rows[..., None] + 0.5 - pixels[:, 1]),
                      axis=-1)
    assert alpha[distance > 8].max() < 1e-3


def test_standard_view_png_holds_the_workers_srgb_colours(worker_addon, tmp_path: Path) -> None:
    ply = write_scene(tmp_path / "tiny")
    obj = import_scene(ply)
    scene = bpy.context.scene
    set_up_render(scene, size=(48, 32), percentage=100, transparent=True)
    add_camera(scene, (0.3, -2.4, 0.9), np.array(obj.matrix_world.translation), shift=(0.0, 0.0))
    bpy.context.view_layer.update()
    png = render_to(tmp_path / "frame.png", 'PNG')
    viewmat, k, width, height = worker_addon.cameras.pinhole.blender_camera_to_opencv(
        scene.camera, scene, np.array(obj.matrix_world))
    premultiplied, alpha = engine_render(ply, viewmat, k, width, height)
    np.testing.assert_allclose(png[..., 3], alpha, atol=0.5 / 255 + 1e-4)
    solid = alpha > 0.2
    straight = premultiplied[solid] / alpha[solid, None]
    assert solid.sum() > 100
    np.testing.assert_allclose(png[..., :3][solid], np.clip(straight, 0, 1), atol=1 / 255 + 1e-4)


@pytest.mark.slow
def test_render_cameras_writes_one_png_per_camera_through_one_worker(worker_addon, tmp_path: Path) -> None:
    ply = write_scene(tmp_path / "tiny", size=(40, 30))
    import_scene(ply)
    scene = bpy.context.scene
    set_up_render(scene, transparent=True)
    out = tmp_path / "renders"
    assert bpy.ops.sos.render_cameras(collection="tiny Cameras", directory=str(out)) == {'FINISHED'}
    worker = worker_addon.io.render_worker.current_worker()
    cameras = read_cameras(ply.parent / "cameras.json")
    files = sorted(out.glob("*.png"))
    assert [f.stem for f in files] == sorted(c["name"] for c in cameras)
    references = reference_renders(ply, [(c["viewmat"], c["K"], 40, 30, None) for c in cameras], tmp_path / "ref")
    for camera, (_, reference) in zip(cameras, references):
        png = bpy.data.images.load(str(out / f"{camera['name']}.png"))
        assert tuple(png.size) == (40, 30)
        alpha = np.array(png.pixels[:]).reshape(30, 40, 4)[::-1, :, 3]
        assert np.abs(alpha - reference).max() <= 0.5 / 255 + 1e-4
    assert not list(out.glob(".*.tmp"))
    set_up_render(scene, size=(40, 30), percentage=100)
    scene.camera = bpy.data.objects[cameras[0]["name"]]
    render_to(tmp_path / "f12.png", 'PNG')
    assert worker_addon.io.render_worker.current_worker() is worker  # reused by F12, not restarted
    assert worker.alive()


BAD_WORKERS = {
    "cannot start": ("""
        print("ModuleNotFoundError: No module named 'torch'", file=sys.stderr)
        sys.exit(1)
        """, "render worker stopped: ModuleNotFoundError: No module named 'torch'"),
    "older than the add-on": ("""
        print(json.dumps({"event": "ready", "device": "cpu"}), flush=True)  # no protocol: an older engine
        sys.stdin.readline()
        """, "worker's engine is older than this add-on .*run python install.py again"),
}


@pytest.mark.parametrize("case", BAD_WORKERS)
def test_a_render_worker_that_cannot_serve_is_an_error_report(worker_addon, tmp_path: Path, case: str) -> None:
    """A worker that dies at start, or one of an older release (it says how to update), fails F12 with one line;
    the scene stays and no worker is left running."""
    body, message = BAD_WORKERS[case]
    obj = import_scene(write_scene(tmp_path / "tiny"))
    scene = bpy.context.scene
    set_up_render(scene)
    add_camera(scene, (0.3, -2.4, 0.9), np.array(obj.matrix_world.translation))
    configure(worker_addon, python=str(fake_worker(tmp_path / "worker", body, protocol=None)))
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.render.render()
    assert obj.name in bpy.data.objects
    assert worker_addon.io.render_worker.current_worker() is None


def test_the_engine_offers_blenders_output_and_colour_panels(worker_addon) -> None:
    scene = bpy.context.scene
    scene.render.engine = "GAUSSIAN_SPLATS"
    for panel in (bpy.types.RENDER_PT_format, bpy.types.RENDER_PT_output, bpy.types.RENDER_PT_color_management,
                  bpy.types.RENDER_PT_gaussian_splats):
        assert "GAUSSIAN_SPLATS" in panel.COMPAT_ENGINES, panel
    assert bpy.types.RENDER_PT_gaussian_splats.poll(bpy.context)
