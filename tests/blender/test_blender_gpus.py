"""Several GPUs from the add-on's preferences: how many GPUs Stylize uses (the engine's --gpus, on the job's command
line) and which GPU the render engine uses (the render worker's --gpu), with the count the worker's Check reports."""

import json
import stat
import sys
import time
from pathlib import Path

import bpy
import pytest
from stylize_helpers import configure, import_scene, set_up_stylize, write_scene
from test_blender_addon_package import LayoutRecorder
from test_render_farm import tree_worker

from interchange.protocol import PROTOCOL_VERSION

TIMEOUT_S = 120
ENGINE_PREFIX = ["-m", "core", "@args.txt", "--json-progress", "--cancel-file", "cancel"]


def gpu_worker(path: Path, gpus: int, engine: str | None = None) -> Path:
    """A worker 'Python' whose --check reports `gpus` CUDA GPUs. Other commands run `engine` (a Python) when given;
    else their arguments are written to <path>.argv and the job fails with an error event."""
    check = {"python": "fake", "python_version": "3", "torch": "fake", "cuda": gpus > 0, "device": "Fake GPU",
             "gsplat": "fake", "vgg_weights": "fake", "renderer": "gsplat", "engine_version": "9.9.9",
             "protocol": PROTOCOL_VERSION, "gpu_count": gpus, "gpu_names": ["Fake GPU"] * gpus}
    run = (f"os.execv({engine!r}, [{engine!r}] + sys.argv[1:])" if engine else
           f"open({str(path) + '.argv'!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
           "print(json.dumps({'event': 'error', 'message': 'fake engine'}), flush=True)\nsys.exit(2)")
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\nif '--check' in sys.argv:\n"
                    f"    print({json.dumps(check)!r})\n    sys.exit(0)\n{run}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def set_gpus(addon, count: int = 1, use_all: bool = False, render_gpu: int = 0) -> None:
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.stylize_gpus, prefs.use_all_gpus, prefs.render_gpu = count, use_all, render_gpu


def started_job(session):
    """Start Stylize without waiting; returns the job once its process has ended."""
    assert bpy.ops.sos.stylize(run_async=True) == {'FINISHED'}
    job = session.SESSION.job
    job.process.proc.wait(timeout=TIMEOUT_S)
    return job


@pytest.mark.parametrize("device, count, use_all, passed, warning", [
    ('CUDA', 1, False, [], None),
    ('CUDA', 2, False, ["--gpus", "2"], None),
    ('AUTO', 1, True, ["--gpus", "all"], None),
    ('CUDA', 8, False, ["--gpus", "4"], "Stylize GPUs: 8 asked for in the preferences, but the worker sees 4 CUDA "
                                        "GPUs: using 4"),
    ('CPU', 3, False, [], "Stylize GPUs: 3 GPUs asked for in the preferences, but the job runs on the CPU: one "
                          "process"),
], ids=["one", "two", "all", "more-than-the-worker-has", "cpu"])
def test_stylize_gpus_reach_the_engines_command_line(worker_addon, tmp_path: Path, device: str, count: int,
                                                     use_all: bool, passed: list[str], warning: str | None) -> None:
    """The preference arrives in the engine's own argv (after the job's arguments file); more GPUs than the worker
    has, or several on the CPU, run on what there is, with a warning that says so."""
    set_up_stylize(tmp_path)
    worker = gpu_worker(tmp_path / "four_gpus", 4)
    configure(worker_addon, python=str(worker), device=device)
    set_gpus(worker_addon, count, use_all)
    job = started_job(worker_addon.stylize.session)
    assert json.loads(Path(str(worker) + ".argv").read_text()) == ENGINE_PREFIX + passed
    assert [w for w in job.target.warnings if w.startswith("Stylize GPUs")] == ([warning] if warning else [])
    assert (job.folder / "args.txt").is_file() and "--gpus" not in (job.folder / "args.txt").read_text()


def test_the_real_engine_receives_the_gpu_count(worker_addon, tmp_path: Path) -> None:
    """End to end with this checkout's engine behind a check that reports two GPUs: the engine itself reads --gpus
    from the job's command and, finding no CUDA GPU here, refuses with its one-line message."""
    set_up_stylize(tmp_path)
    worker = gpu_worker(tmp_path / "two_gpus", 2, engine=str(tree_worker(tmp_path / "engine_python")))
    configure(worker_addon, python=str(worker), device='AUTO')
    set_gpus(worker_addon, 2)
    with pytest.raises(RuntimeError, match=r"--gpus 2: no CUDA GPU is available to this PyTorch"):
        bpy.ops.sos.stylize()


def test_check_reports_the_gpu_count_and_the_preferences_show_it(worker_addon, tmp_path: Path) -> None:
    config = worker_addon.io.worker_config
    real = str(tree_worker(tmp_path / "engine_python"))
    info = config.check_worker(real)
    assert isinstance(info.gpu_count, int) and len(info.gpu_names) == info.gpu_count
    assert (info.gpu_count > 0) == info.cuda
    four = str(gpu_worker(tmp_path / "four_gpus", 4))
    configure(worker_addon, python=four)
    assert bpy.ops.sos.check_worker() == {'FINISHED'}
    assert "4 CUDA GPUs (Fake GPU)" in config.describe_check(config.cached_check(four))
    labels = [kwargs["text"] for name, _, kwargs in draw_preferences(worker_addon).calls if name == "label"]
    assert "The worker sees 4 CUDA GPUs (last Check)" in labels


def draw_preferences(addon) -> LayoutRecorder:
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    stand_in = type("PreferencesStandIn", (), {"layout": LayoutRecorder()})()
    for name in ("worker_python", "device", "stylize_gpus", "use_all_gpus", "render_gpu"):
        setattr(stand_in, name, getattr(prefs, name))
    type(prefs).draw(stand_in, bpy.context)
    return stand_in.layout


@pytest.mark.parametrize("device, render_gpu, passed", [('AUTO', 1, ["--gpu", "1"]), ('AUTO', 0, []),
                                                        ('CPU', 1, [])])
def test_render_gpu_reaches_the_render_worker(worker_addon, tmp_path: Path, device: str, render_gpu: int,
                                              passed: list[str]) -> None:
    """F12 starts the render worker with the chosen GPU (only a GPU other than the first is named, and none on the
    CPU); this checkout's worker, without CUDA, renders on the CPU either way."""
    obj = import_scene(write_scene(tmp_path / "tiny"))
    configure(worker_addon, python=str(tree_worker(tmp_path / "engine_python")), device=device)
    set_gpus(worker_addon, render_gpu=render_gpu)
    scene = bpy.context.scene
    scene.render.engine = "GAUSSIAN_SPLATS"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 24, 16, 100
    camera = bpy.data.objects.new("view", bpy.data.cameras.new("view"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -3.0, 0.0), (1.5708, 0.0, 0.0)
    scene.camera = camera
    obj.location = (0.0, 0.0, 0.0)
    started = time.monotonic()
    assert bpy.ops.render.render() == {'FINISHED'}
    assert time.monotonic() - started < TIMEOUT_S
    worker = worker_addon.io.render_worker.current_worker()
    assert worker.process.proc.args[-len(passed) - 3:] == ["--serve", "--device", device.lower()] + passed
    assert worker.device == "cpu"
