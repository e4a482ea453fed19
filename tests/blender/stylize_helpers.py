"""Helpers for the Stylize and render-engine tests: small scenes made with the engine, the CPU worker, and
reading what the add-on left in the scene.

The worker is a Python with torch and the engine: $SOS_TEST_WORKER_PYTHON, else this Python when it has torch.
The Blender tests' own Python may lack torch (bpy 5.3 needs Python 3.13, which has no torch wheel here), so
every engine-made file (scenes, paintings, reference renders) comes from engine_tool.py run by the worker.
"""

import atexit
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import bpy
import numpy as np
import pytest

from interchange.protocol import PROTOCOL_VERSION

SCENE_NAME = "tiny"
WORKER_ENV = "SOS_TEST_WORKER_PYTHON"
REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_TOOL = Path(__file__).resolve().parent / "engine_tool.py"
ENGINE_TIMEOUT_S = 300
_MADE = Path(tempfile.mkdtemp(prefix="sos_engine_files_"))  # engine-made files, made once per session
atexit.register(shutil.rmtree, _MADE, ignore_errors=True)


def worker_python() -> str:
    """The Python the add-on's worker runs in these tests (see the module docstring)."""
    python = os.environ.get(WORKER_ENV)
    if python:
        return python
    if importlib.util.find_spec("torch") is None:
        pytest.fail(f"this Python has no torch: set {WORKER_ENV} to the worker environment's Python "
                    "(e.g. .venv/bin/python; .ci/run does)")
    return sys.executable


def worker_env() -> dict[str, str]:
    """Environment for running the engine from this checkout."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def run_engine(*args: str) -> None:
    """Run engine_tool.py in the worker's Python."""
    done = subprocess.run([worker_python(), str(ENGINE_TOOL), *args], env=worker_env(), capture_output=True,
                          text=True, timeout=ENGINE_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]


def made_once(name: str, *args: str, suffix: str = "") -> Path:
    """The engine-made file or folder for these arguments (made on first use)."""
    path = _MADE / ("_".join((name,) + args) + suffix)
    if not path.exists():
        run_engine(name, str(path), *args)
    return path


def write_scene(folder: Path, count: int = 600, views: int = 3, size: tuple[int, int] = (48, 32)) -> Path:
    """A small sphere-on-a-disc scene (SH degree 1, y-down) with an orbit cameras.json beside it."""
    shutil.copytree(made_once("scene", str(count), str(views), *map(str, size)), folder, dirs_exist_ok=True)
    return folder / "point_cloud.ply"


def write_style(path: Path, size: int = 64) -> Path:
    """The engine's procedural painting as a PNG file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(made_once("style", str(size), suffix=".png"), path)
    return path


def reference_renders(ply: Path, views: list[tuple[np.ndarray, np.ndarray, int, int, object]],
                      folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """core.render (CPU) of each (viewmat, K, width, height, background or None): (RGB sRGB premultiplied
    [H, W, 3], alpha [H, W]) per view, in one run of the worker's Python."""
    folder.mkdir(parents=True, exist_ok=True)
    outs = [folder / f"reference_{i}.npy" for i in range(len(views))]
    request = {"ply": str(ply), "views": [
        {"viewmat": np.asarray(viewmat).tolist(), "K": np.asarray(k).tolist(), "width": width, "height": height,
         "background": None if background is None else [float(c) for c in background], "out": str(out)}
        for (viewmat, k, width, height, background), out in zip(views, outs)]}
    (folder / "request.json").write_text(json.dumps(request))
    run_engine("render", str(folder / "request.json"))
    images = [np.load(out) for out in outs]
    return [(image[..., :3], image[..., 3]) for image in images]


def import_scene(ply: Path) -> bpy.types.Object:
    """Import through the add-on's operator (with its cameras); returns the splat object."""
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(ply)) == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def configure(addon, python: str | None = None, device: str = 'CPU') -> None:
    """Point the add-on at a worker Python (default: worker_python()) and device."""
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.worker_python, prefs.device = worker_python() if python is None else python, device


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
