"""Helpers for the Stylize and render-engine tests: small scenes made with the engine, the CPU worker
(this test Python), and reading what the add-on left in the scene."""

import json
import stat
import sys
import textwrap
from pathlib import Path

import bpy
import numpy as np

from core.cameras import orbit_cameras, save_cameras_json
from core.demo import demo_scene, demo_style
from core.images import save_png
from interchange.ply import write_ply
from interchange.protocol import PROTOCOL_VERSION

SCENE_NAME = "tiny"


def write_scene(folder: Path, count: int = 600, views: int = 3, size: tuple[int, int] = (48, 32)) -> Path:
    """A small sphere-on-a-disc scene (SH degree 1, y-down) with an orbit cameras.json beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = demo_scene(count=count)
    write_ply(folder / "point_cloud.ply", scene)
    cameras = orbit_cameras(scene.means(), scene.opacity_logits(), count=views, width=size[0], height=size[1])
    save_cameras_json(folder / "cameras.json", cameras)
    return folder / "point_cloud.ply"


def write_style(path: Path, size: int = 64) -> Path:
    """The engine's procedural painting as a PNG file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(path, demo_style(size))


def import_scene(ply: Path) -> bpy.types.Object:
    """Import through the add-on's operator (with its cameras); returns the splat object."""
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply)) == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def configure(addon, python: str = sys.executable, device: str = 'CPU') -> None:
    """Point the add-on at a worker Python and device."""
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.worker_python, prefs.device = python, device


def set_up_stylize(tmp_path: Path, iterations: int = 3, resolution: int = 32) -> bpy.types.Object:
    """Import a small scene, choose a style image and small settings; returns the splat object."""
    obj = import_scene(write_scene(tmp_path / SCENE_NAME))
    props = bpy.context.scene.sos_stylize
    props.style_image = bpy.data.images.load(str(write_style(tmp_path / "style.png")))
    props.iterations, props.resolution, props.preview_every = iterations, resolution, 1
    return obj


def raw_column(obj: bpy.types.Object, name: str) -> np.ndarray:
    """A float point attribute of a splat object."""
    values = np.empty(len(obj.data.vertices), np.float32)
    obj.data.attributes[name].data.foreach_get("value", values)
    return values


def positions(obj: bpy.types.Object) -> np.ndarray:
    values = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", values)
    return values.reshape(-1, 3)


def snapshot(obj: bpy.types.Object) -> dict:
    """Everything a failed or cancelled job must leave unchanged about the user's splat object."""
    return {"name": obj.name, "visible": obj.visible_get(), "hide_render": obj.hide_render,
            "matrix": np.array(obj.matrix_world), "positions": positions(obj), "f_dc_0": raw_column(obj, "f_dc_0"),
            "objects": sorted(o.name for o in bpy.data.objects),
            "collections": sorted(c.name for c in bpy.data.collections)}


def assert_unchanged(before: dict, obj: bpy.types.Object) -> None:
    after = snapshot(obj)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        else:
            assert after[key] == value, key


def fake_worker(path: Path, body: str, protocol: int | None = PROTOCOL_VERSION) -> Path:
    """An executable 'worker Python' that answers --check like the engine (speaking ``protocol``; None: like an
    engine from before versions were reported) and otherwise runs body."""
    check = {"python": "fake", "python_version": "3", "torch": "fake", "cuda": False, "device": "cpu",
             "gsplat": None, "vgg_weights": "fake", "renderer": "torch"}
    if protocol is not None:
        check.update(engine_version="9.9.9", protocol=protocol)
    check = json.dumps(check)
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""\
        import json, sys
        if "--check" in sys.argv:
            print({check!r})
            sys.exit(0)
        """) + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
