"""Render farms: a saved .blend rendered as an animation by a fresh Blender process with no saved preferences, the
worker found only through SOS_STYLIZER_PYTHON or a sos_worker.json beside the add-on, as on a farm node.

bpy from PyPI has no `blender` binary, so `python -c` stands in for `blender -b shot.blend -a`: it enables the
add-on as the tests do, opens the file and calls render.render(animation=True), which runs the same per-frame
pipeline (frame change, the engine's render(), the output file of each frame). docs/render_farm.md is the guide.
"""

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_test_files import procedural_columns, write_ply
from mathutils import Vector
from stylize_helpers import REPO_ROOT, import_scene, reference_renders, worker_python, write_scene

FRAMES = (1, 2, 3)
SIZE = (40, 30)
WORLD_COLOUR = (0.05, 0.1, 0.2)  # scene-linear
CAMERA_PATH = ((2.2, -2.6, 1.4), (2.9, -1.2, 1.0), (3.0, 0.6, 1.6))
OBJECT_PATH = (((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), ((0.2, 0.0, 0.1), (0.0, 0.0, 0.3)),
               ((0.3, 0.1, 0.2), (0.2, 0.0, 0.6)))  # (location, rotation) per frame
TIMEOUT_S = 240

NODE_SCRIPT = """
import json, sys, time
from pathlib import Path
sys.path[:0] = [{tests!r}, {root!r}]
import conftest  # fresh throw-away Blender user folders: no saved preferences, set before bpy is imported
import bpy, importlib
conftest.register_repository()
bpy.ops.extensions.package_install_files(filepath={zip!r}, repo=conftest.REPO_MODULE, enable_on_install=True)
addon = importlib.import_module(conftest.ADDON_MODULE)
assert not bpy.context.preferences.addons[conftest.ADDON_MODULE].preferences.worker_python
if {settings_python!r}:
    (Path(addon.__file__).parent / "sos_worker.json").write_text(json.dumps({{"worker_python": {settings_python!r}}}))
bpy.ops.wm.open_mainfile(filepath={blend!r})
frames = []
def after_frame(scene, *_):
    worker = addon.io.render_worker.current_worker()
    frames.append({{"frame": scene.frame_current, "t": time.perf_counter(), "worker": worker.process.proc.pid}})
bpy.app.handlers.render_post.append(after_frame)
start = time.perf_counter()
try:
    bpy.ops.render.render(animation=True)
except RuntimeError as error:
    print("ERROR " + json.dumps(str(error)))
    sys.exit(1)
print("FRAMES " + json.dumps({{"start": start, "frames": frames}}))
"""


def srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def tree_worker(path: Path) -> Path:
    """A worker 'Python' running this checkout's engine: the add-on drops PYTHONPATH from workers' environments
    (Blender's must not leak into them), so a plain Python would run whichever engine is installed in it."""
    path.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO_ROOT))} exec {shlex.quote(worker_python())} "
                    '"$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def set_up_shot(scene: bpy.types.Scene) -> None:
    """The Gaussian Splats engine at a tiny size, frames 1-3 into PNGs beside the .blend (a relative path)."""
    scene.render.engine = "GAUSSIAN_SPLATS"
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.world = bpy.data.worlds.new("World")
    scene.world.color = WORLD_COLOUR
    scene.view_settings.view_transform = 'Standard'
    scene.render.dither_intensity = 0.0
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = 'PNG', 'RGB', '8'
    scene.render.filepath = "//frames/frame_"
    scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]


def animate(scene: bpy.types.Scene, obj: bpy.types.Object) -> bpy.types.Object:
    """A camera flying round the splat object, which moves and turns too, keyed on every frame."""
    camera = bpy.data.objects.new("shot", bpy.data.cameras.new("shot"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    for frame, position, (location, rotation) in zip(FRAMES, CAMERA_PATH, OBJECT_PATH):
        camera.location = position
        camera.rotation_euler = (Vector(location) - Vector(position)).to_track_quat('-Z', 'Y').to_euler()
        obj.location, obj.rotation_euler = location, rotation
        for target, path in ((camera, "location"), (camera, "rotation_euler"), (obj, "location"),
                             (obj, "rotation_euler")):
            target.keyframe_insert(path, frame=frame)
    return camera


def render_on_node(tmp_path: Path, addon_zip: Path, blend: Path, env_python: str | None = None,
                   settings_python: str | None = None) -> subprocess.CompletedProcess:
    """Render the animation of `blend` in a fresh process that finds the worker only as a farm node would."""
    env = {k: v for k, v in os.environ.items() if k != "SOS_STYLIZER_PYTHON"}
    env["XDG_DATA_HOME"] = str(tmp_path / "node_data")  # no per-user sos-stylizer folder on this "node"
    env["SOS_STYLIZER_VENV"] = str(tmp_path / "node_data" / "no_venv")  # and no install.py default environment
    if env_python is not None:
        env["SOS_STYLIZER_PYTHON"] = env_python
    tests = Path(__file__).resolve().parent
    script = NODE_SCRIPT.format(tests=str(tests), root=str(REPO_ROOT), zip=str(addon_zip), blend=str(blend),
                                settings_python=settings_python)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def read_png(path: Path) -> np.ndarray:
    """An 8-bit PNG's RGB in [0, 1], top row first."""
    image = bpy.data.images.load(str(path))
    width, height = image.size
    pixels = np.array(image.pixels[:], np.float32).reshape(height, width, 4)[::-1, :, :3]
    bpy.data.images.remove(image)
    return pixels


@pytest.mark.parametrize("found_by", ["SOS_STYLIZER_PYTHON", "sos_worker.json"])
@pytest.mark.slow
def test_an_animation_renders_headless_on_a_node_without_preferences(addon, addon_zip: Path, tmp_path: Path,
                                                                     found_by: str) -> None:
    """Each frame is written, at the render size, with that frame's camera and object transform (the engine's
    own render of those views, to 8-bit rounding), and every frame goes to the one worker started for the first."""
    ply = write_scene(tmp_path / "tiny")
    obj = import_scene(ply)
    scene = bpy.context.scene
    set_up_shot(scene)
    camera = animate(scene, obj)
    views = []
    for frame in FRAMES:
        scene.frame_set(frame)
        viewmat, k, width, height = addon.cameras.pinhole.blender_camera_to_opencv(camera, scene,
                                                                                   np.array(obj.matrix_world))
        views.append((viewmat, k, width, height, srgb(np.array(WORLD_COLOUR))))
    scene.frame_set(FRAMES[0])
    blend = tmp_path / "shot" / "shot.blend"
    blend.parent.mkdir()
    assert bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True) == {'FINISHED'}

    worker = str(tree_worker(tmp_path / "worker_python"))
    node = render_on_node(tmp_path, addon_zip, blend, **(
        {"env_python": worker} if found_by == "SOS_STYLIZER_PYTHON" else {"settings_python": worker}))
    assert node.returncode == 0, (node.stdout + node.stderr)[-3000:]
    run = json.loads(next(line[7:] for line in node.stdout.splitlines() if line.startswith("FRAMES ")))
    assert [f["frame"] for f in run["frames"]] == list(FRAMES)
    assert len({f["worker"] for f in run["frames"]}) == 1  # started once, reused for every frame

    files = sorted((blend.parent / "frames").iterdir())
    assert [f.name for f in files] == [f"frame_{frame:04d}.png" for frame in FRAMES]
    images = [read_png(f) for f in files]
    references = [rgb for rgb, _ in reference_renders(ply, views, tmp_path / "reference")]
    for image, reference in zip(images, references):
        assert image.shape == (SIZE[1], SIZE[0], 3)
        np.testing.assert_allclose(image, reference, atol=1 / 255 + 1e-4)
        assert reference.std() > 0.05  # the scene is in view, not just background
    for i, image in enumerate(images):  # each file is its own frame's view: the others' differ by far more
        for j, reference in enumerate(references):
            if i != j:
                assert np.abs(image - reference).max() > 0.2, (i, j)


def test_a_node_without_a_worker_fails_the_render_with_one_line_naming_the_setting(addon, addon_zip: Path,
                                                                                    tmp_path: Path) -> None:
    """Nothing names a worker on the node: the render stops at the first frame with one line that says what to
    set (Blender's -a then exits with failure, as an engine error breaks the render), and writes no frame."""
    import_scene(write_ply(tmp_path / "splats" / "point_cloud.ply", procedural_columns(40, 1)))
    scene = bpy.context.scene
    set_up_shot(scene)
    animate(scene, bpy.context.view_layer.objects.active)
    blend = tmp_path / "shot" / "shot.blend"
    blend.parent.mkdir()
    assert bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True) == {'FINISHED'}
    node = render_on_node(tmp_path, addon_zip, blend)
    assert node.returncode == 1, (node.stdout + node.stderr)[-3000:]
    message = json.loads(next(line[6:] for line in node.stdout.splitlines() if line.startswith("ERROR ")))
    assert len(message.strip().splitlines()) == 1, message
    assert message.startswith("Error: No worker Python is configured: ")
    assert "set SOS_STYLIZER_PYTHON to the worker's Python or put a sos_worker.json beside the add-on" in message
    assert not (blend.parent / "frames").exists()
