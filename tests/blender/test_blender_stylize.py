"""The Stylize workflow with the real CPU worker (this Python): synchronous runs in background mode, the
timer-driven path with Cancel, worker failures, orbit rigs, job folders and the panel."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from blender_test_files import read_cameras
from stylize_helpers import (assert_unchanged, configure, fake_worker, positions, raw_column, set_up_stylize,
                             snapshot, worker_env, worker_python)

import install
from interchange.protocol import PROTOCOL_VERSION

TIMEOUT_S = 120


def run_ticks(session, until, timeout_s: float = TIMEOUT_S) -> None:
    """Call the session's timer callback as Blender's timer would, until `until()` holds or the job ended."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "the job did not get there in time"
        if session.tick() is None:
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_stylize_in_background_mode_creates_the_stylized_object_and_cameras(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=3)
    obj.location = (1.0, 2.0, 3.0)
    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    before = snapshot(obj)
    configure(worker_addon, device='CUDA')  # this worker has no CUDA GPU: CPU with a warning
    assert bpy.ops.sos.stylize() == {'FINISHED'}

    session = worker_addon.stylize.session.SESSION
    assert session.job is None
    levels = [(m.level, m.text) for m in session.messages]
    assert any(level == 'WARNING' and "no CUDA GPU" in text for level, text in levels), levels
    assert levels[-1][0] == 'INFO' and "3 iterations" in levels[-1][1], levels
    events = [e["event"] for e in session.last_job.events]
    assert events[0] == "start" and events.count("progress") == 3 and events[-1] == "done"
    assert events.count("preview") == 3 and session.preview_seen == 3

    result = bpy.data.objects["tiny (stylized)"]
    bpy.context.view_layer.update()
    assert len(result.data.vertices) == len(obj.data.vertices)
    np.testing.assert_array_equal(positions(result), before["positions"])
    assert np.abs(raw_column(result, "f_dc_0") - before["f_dc_0"]).max() > 1e-3  # the colours changed
    np.testing.assert_allclose(np.array(result.matrix_world), before["matrix"], atol=1e-6)
    nodes = worker_addon.splats.display_nodes
    assert nodes.display_modifier(result).node_group == nodes.display_modifier(obj).node_group
    assert [m.name for m in result.modifiers] == ["Gaussian Splat Mix", "Gaussian Splat Display"]  # Mix first
    assert bpy.context.view_layer.objects.active == result

    # The original: hidden in viewport and render, data and transform untouched.
    assert not obj.visible_get() and obj.hide_render
    np.testing.assert_array_equal(raw_column(obj, "f_dc_0"), before["f_dc_0"])
    np.testing.assert_allclose(np.array(obj.matrix_world), before["matrix"])

    cameras = bpy.data.collections["tiny (stylized) Render Cameras"]
    views = [c for c in cameras.objects if c.type == 'CAMERA' and c.parent == result]
    assert len(views) == 3
    turntable = bpy.data.objects["tiny (stylized) Turntable Camera"]
    scene = bpy.context.scene
    scene.frame_set(scene.frame_start)
    start = np.array(turntable.matrix_world.translation)
    scene.frame_set((scene.frame_start + scene.frame_end) // 2)
    middle = np.array(turntable.matrix_world.translation)
    centre = np.array(turntable.parent.matrix_world.translation)
    assert np.linalg.norm(start - middle) > 0.5 * np.linalg.norm(start - centre)  # it turns around the scene
    assert abs(np.linalg.norm(start - centre) - np.linalg.norm(middle - centre)) < 1e-4
    job_folder = worker_addon.stylize.job_folder
    assert len(list(job_folder.jobs_root().glob("job_*"))) <= worker_addon.io.job_files.KEEP_JOBS


@pytest.mark.slow
def test_cancel_stops_the_worker_and_leaves_the_scene_as_it_was(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=100_000)
    bpy.context.scene.sos_stylize.camera_source = 'ORBIT'  # the job creates a rig; cancelling removes it
    before = snapshot(obj)
    assert bpy.ops.sos.stylize(run_async=True) == {'FINISHED'}
    session = worker_addon.stylize.session
    assert bpy.app.timers.is_registered(session.tick)
    job = session.SESSION.job
    assert len(worker_addon.cameras.orbit.orbit_cameras_of(obj)) == 24
    run_ticks(session, lambda: job.progress.iteration >= 1)
    assert bpy.ops.sos.cancel() == {'FINISHED'}
    run_ticks(session, lambda: False)
    assert job.process.proc.poll() is not None
    assert job.phase is worker_addon.io.job.Phase.CANCELLED
    assert "cancelled" in session.SESSION.messages[-1].text
    assert not job.folder.exists()
    assert_unchanged(before, obj)


def test_cancel_terminates_a_worker_that_does_not_stop_by_itself(worker_addon, tmp_path: Path,
                                                                monkeypatch) -> None:
    obj = set_up_stylize(tmp_path)
    before = snapshot(obj)
    configure(worker_addon, python=str(fake_worker(tmp_path / "deaf", """
        import time
        print(json.dumps({"event": "progress", "iteration": 1, "iterations": 9, "style": 1.0, "content": 0.5,
                          "it_per_s": 1.0, "eta_s": 8.0}), flush=True)
        time.sleep(60)  # never looks at the cancel file
        """)))
    monkeypatch.setattr(worker_addon.io.job, "CANCEL_GRACE_S", 0.3)
    bpy.ops.sos.stylize(run_async=True)
    session = worker_addon.stylize.session
    job = session.SESSION.job
    run_ticks(session, lambda: job.progress.iteration >= 1)
    started = time.monotonic()
    bpy.ops.sos.cancel()
    run_ticks(session, lambda: False, timeout_s=10)
    assert time.monotonic() - started < 5
    assert job.process.proc.returncode == -signal.SIGTERM
    assert job.phase is worker_addon.io.job.Phase.CANCELLED
    assert_unchanged(before, obj)


@pytest.mark.slow
def test_a_killed_worker_is_an_error_and_the_scene_is_intact(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=100_000)
    before = snapshot(obj)
    bpy.ops.sos.stylize(run_async=True)
    session = worker_addon.stylize.session
    job = session.SESSION.job
    run_ticks(session, lambda: job.progress.iteration >= 1)
    os.kill(job.process.proc.pid, signal.SIGKILL)
    run_ticks(session, lambda: False)
    message = session.SESSION.messages[-1]
    assert message.level == 'ERROR' and "stopped unexpectedly (signal 9)" in message.text, message
    assert_unchanged(before, obj)


def test_a_crashing_worker_is_reported_with_its_message(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path)
    before = snapshot(obj)
    configure(worker_addon, python=str(fake_worker(tmp_path / "crash", """
        print(json.dumps({"event": "start", "iterations": 5, "gaussians": 600, "sh_degree": 1, "views": 3,
                          "cameras": "cameras.json"}), flush=True)
        print(json.dumps({"event": "progress", "iteration": 1, "iterations": 5, "style": 1.0, "content": 0.5,
                          "it_per_s": 1.0, "eta_s": 1.0}), flush=True)
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: the GPU driver went away", file=sys.stderr)
        sys.exit(1)
        """)))
    with pytest.raises(RuntimeError, match=r"exit code 1\) at iteration 1/5: RuntimeError: the GPU driver went away"):
        bpy.ops.sos.stylize()
    assert_unchanged(before, obj)


def test_gpu_out_of_memory_shows_the_workers_message_and_the_fix(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path)
    before = snapshot(obj)
    configure(worker_addon, python=str(fake_worker(tmp_path / "oom", """
        print(json.dumps({"event": "error", "message": "GPU out of memory: lower --resolution"}), flush=True)
        sys.exit(3)
        """)))
    with pytest.raises(RuntimeError, match="GPU out of memory: lower --resolution .*GPU Memory Cap"):
        bpy.ops.sos.stylize()
    assert_unchanged(before, obj)


def test_an_unreadable_style_image_reports_the_workers_message(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path)
    before = snapshot(obj)
    (tmp_path / "style.png").write_bytes(b"this is not a painting")
    with pytest.raises(RuntimeError, match=r"style\.png: not a readable image"):
        bpy.ops.sos.stylize()
    assert_unchanged(before, obj)


def test_missing_worker_python_says_how_to_fix_it(worker_addon, tmp_path: Path, monkeypatch) -> None:
    obj = set_up_stylize(tmp_path)
    before = snapshot(obj)
    monkeypatch.delenv("SOS_STYLIZER_PYTHON", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no_install"))
    configure(worker_addon, python="")
    with pytest.raises(RuntimeError, match="No worker Python is configured: set the worker Python in the add-on "
                                           "preferences, or run python install.py"):
        bpy.ops.sos.stylize()
    configure(worker_addon, python=str(tmp_path / "nowhere" / "python"))
    with pytest.raises(RuntimeError, match="Worker Python not found: .*nowhere.*run python install.py"):
        bpy.ops.sos.stylize()
    bare = fake_worker(tmp_path / "bare", "")  # a Python without the engine: --check fails
    bare.write_text(f"#!{sys.executable}\nimport sys\nprint(\"ModuleNotFoundError: No module named 'core'\", "
                    "file=sys.stderr)\nsys.exit(1)\n")
    configure(worker_addon, python=str(bare))
    with pytest.raises(RuntimeError, match="No module named 'core'.*run python install.py"):
        bpy.ops.sos.check_worker()
    assert_unchanged(before, obj)


@pytest.mark.parametrize("protocol, says", [(None, "older"), (0, "older"), (PROTOCOL_VERSION + 1, "newer")])
def test_a_worker_of_another_release_is_named_with_how_to_update(worker_addon, tmp_path: Path, protocol,
                                                                  says: str) -> None:
    """Check shows the engine and protocol versions; a worker older (or newer) than the add-on is refused, plainly,
    by Check and by Stylize, with the fix: run install.py again. Nothing in the scene changes."""
    obj = set_up_stylize(tmp_path)
    before = snapshot(obj)
    configure(worker_addon, python=str(fake_worker(tmp_path / "other", "", protocol=protocol)))
    message = f"The worker's engine.* is {says} than this add-on .*run python install.py again"
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.sos.check_worker()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.sos.stylize()
    assert_unchanged(before, obj)
    config = worker_addon.io.worker_config
    configure(worker_addon, python=str(fake_worker(tmp_path / "same", "")))
    assert bpy.ops.sos.check_worker() == {'FINISHED'}
    info = config.cached_check(str(tmp_path / "same"))
    assert config.describe_check(info).startswith(f"engine 9.9.9, protocol {PROTOCOL_VERSION}, Python 3")
    assert config.protocol_problem(info) is None


def test_worker_python_from_the_environment_and_install_settings(worker_addon, tmp_path: Path,
                                                                 monkeypatch) -> None:
    config = worker_addon.worker.config
    configure(worker_addon, python="")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("SOS_STYLIZER_PYTHON", sys.executable)
    assert config.configured_python() == (sys.executable, "SOS_STYLIZER_PYTHON")
    monkeypatch.delenv("SOS_STYLIZER_PYTHON")
    settings = tmp_path / "sos-stylizer" / "sos_worker.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"worker_python": "/opt/worker/bin/python"}))
    assert config.configured_python() == ("/opt/worker/bin/python", str(settings))
    assert install.user_data_dir() == worker_addon.io.worker_config.user_data_dir()  # where install.py writes it
    assert bpy.ops.sos.check_worker.poll()
    configure(worker_addon)
    assert bpy.ops.sos.check_worker() == {'FINISHED'}
    info = worker_addon.io.worker_config.cached_check(worker_python())
    assert info.cuda is False and info.python == worker_python()


def test_add_orbit_cameras_frames_the_scene_and_replaces_the_rig(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path)
    obj.location = (3.0, -2.0, 1.0)
    scene = bpy.context.scene
    assert bpy.ops.sos.add_orbit_cameras(count=6) == {'FINISHED'}
    assert bpy.ops.sos.add_orbit_cameras(count=5) == {'FINISHED'}
    cameras = worker_addon.cameras.orbit.orbit_cameras_of(obj)
    assert len(cameras) == 5 and all(c.parent == obj for c in cameras)
    bpy.context.view_layer.update()
    world = positions(obj) @ np.array(obj.matrix_world)[:3, :3].T + np.array(obj.matrix_world)[:3, 3]
    centre = np.median(world, axis=0)
    for camera in cameras:
        assert np.allclose(world_to_camera_view(scene, camera, Vector(centre))[:2], (0.5, 0.5), atol=0.05)
        ndc = np.array([world_to_camera_view(scene, camera, Vector(p))[:2] for p in world[::10]])
        inside = ((ndc > 0) & (ndc < 1)).all(axis=1).mean()
        assert inside > 0.9, inside
        up = np.array(camera.matrix_world)[:3, 1]  # Blender camera +Y is image up
        assert up[2] > 0.5  # upright: the image's up is Blender's +Z


@pytest.mark.slow
def test_export_job_writes_a_self_contained_folder(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=2)
    obj.rotation_euler = (0.3, 0.2, 1.0)  # cameras.json must still hold the PLY-frame poses
    obj.location = (5.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    job = tmp_path / "job"
    assert bpy.ops.sos.export_job(directory=str(job)) == {'FINISHED'}
    args = (job / "args.txt").read_text().splitlines()
    assert args[:6] == ["scene.ply", "style.png", "--output", "out", "--cameras", "cameras.json"]
    assert args[args.index("--resolution") + 1] == "32" and args[args.index("--iterations") + 1] == "2"
    original = read_cameras(tmp_path / "tiny" / "cameras.json")
    exported = read_cameras(job / "cameras.json")
    assert len(exported) == len(original) == 3
    for a, b in zip(original, exported):
        np.testing.assert_allclose(b["viewmat"], a["viewmat"], atol=1e-5)
    moved = tmp_path / "elsewhere"
    job.rename(moved)
    done = subprocess.run([worker_python(), "-m", "core", "@args.txt"], cwd=moved, capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=worker_env())
    assert done.returncode == 0, done.stderr
    assert (moved / "out" / "stylized.ply").is_file()


class CheckedLayout:
    """A stand-in panel layout that records calls and checks them against Blender's UILayout API."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def __setattr__(self, name, value) -> None:
        if name != "calls":
            assert name in bpy.types.UILayout.bl_rna.properties, name
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        function = bpy.types.UILayout.bl_rna.functions.get(name)
        assert function is not None, f"UILayout has no {name}()"

        def call(*args, **kwargs):
            unknown = set(kwargs) - set(function.parameters.keys())
            assert not unknown, f"{name}() has no parameters {unknown}"
            self.calls.append((name, args, kwargs))
            return CheckedLayout(self.calls)
        return call


def draw(panel: type) -> list:
    calls: list = []
    stand_in = type("PanelStandIn", (), {"layout": CheckedLayout(calls)})()
    panel.draw(stand_in, bpy.context)
    return calls


@pytest.mark.slow
def test_panels_draw_settings_buttons_progress_and_preview(worker_addon, tmp_path: Path) -> None:
    set_up_stylize(tmp_path, iterations=100_000)
    calls = draw(bpy.types.VIEW3D_PT_sos_stylize)
    assert ("template_ID_preview", (bpy.context.scene.sos_stylize, "style_image"),
            {"open": "image.open", "rows": 3, "cols": 6}) in calls
    operators = [args[0] for name, args, _ in calls if name == "operator"]
    assert operators == ["sos.stylize", "sos.preview", "sos.cancel"]
    props = [args[1] for name, args, _ in calls if name == "prop"]
    assert props == ["resolution", "iterations", "style_strength", "content_weight", "optimize", "statistics",
                     "preserve_colors", "stroke_scale", "detail", "max_gpu_mem_gib", "region_source",
                     "camera_source"]
    bpy.context.scene.sos_stylize.camera_source = 'ORBIT'
    assert "sos.add_orbit_cameras" in [args[0] for name, args, _ in draw(bpy.types.VIEW3D_PT_sos_stylize)
                                       if name == "operator"]
    bpy.ops.sos.stylize(run_async=True)
    session = worker_addon.stylize.session
    job = session.SESSION.job
    run_ticks(session, lambda: job.progress.iteration >= 1 and session.SESSION.preview_seen >= 1)
    calls = draw(bpy.types.VIEW3D_PT_sos_stylize)
    assert [args[0] for name, args, _ in calls if name == "operator"][-4:] == ["sos.stylize", "sos.preview",
                                                                               "sos.cancel", "sos.stop_and_keep"]
    progress = [kwargs for name, _, kwargs in calls if name == "progress"]
    assert progress and progress[0]["text"].startswith(f"{job.progress.iteration}/100000 · ETA")
    assert any(name == "template_icon" for name, _, _ in calls)
    status: list = []
    worker_addon.ui.stylize_panel.draw_status(type("Header", (), {"layout": CheckedLayout(status)})(), bpy.context)
    assert status[0][0] == "progress" and status[0][2]["text"].startswith("Stylize ")
    for panel in (bpy.types.VIEW3D_PT_sos_advanced, bpy.types.VIEW3D_PT_sos_worker, bpy.types.VIEW3D_PT_sos_render):
        assert draw(panel)
    bpy.ops.sos.cancel()
    run_ticks(session, lambda: False)


@pytest.mark.slow
def test_loading_another_file_stops_the_running_job(worker_addon, tmp_path: Path) -> None:
    set_up_stylize(tmp_path, iterations=100_000)
    other = tmp_path / "other.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(other), copy=True)
    bpy.ops.sos.stylize(run_async=True)
    session = worker_addon.stylize.session
    job = session.SESSION.job
    run_ticks(session, lambda: job.progress.iteration >= 1)
    bpy.ops.wm.open_mainfile(filepath=str(other))
    assert job.process.proc.poll() is not None
    assert session.SESSION.job is None and not job.folder.exists()


QUIT_DURING_A_RUN = """
import sys, time
from pathlib import Path
sys.path[:0] = [{tests!r}, {root!r}]
import conftest  # throw-away Blender user folders, set before bpy is imported
import bpy, importlib, install
from stylize_helpers import configure, fake_worker, set_up_stylize
tmp = Path({tmp!r})
bpy.ops.wm.read_factory_settings(use_empty=True)
conftest.register_repository()
bpy.ops.extensions.package_install_files(filepath=str(install.build_addon_zip(tmp)), repo=conftest.REPO_MODULE,
                                         enable_on_install=True)
addon = importlib.import_module(conftest.ADDON_MODULE)
configure(addon, python=str(fake_worker(tmp / "slow", '''
    import time
    print(json.dumps({{"event": "progress", "iteration": 1, "iterations": 9, "style": 1.0, "content": 0.5,
                      "it_per_s": 1.0, "eta_s": 8.0}}), flush=True)
    time.sleep(60)  # silent: only being terminated ends it early
    ''')))
set_up_stylize(tmp)
bpy.ops.sos.stylize(run_async=True)
job = addon.stylize.session.SESSION.job
while job.progress.iteration < 1 and job.advance() is job.phase.RUNNING:
    time.sleep(0.05)
print("worker", job.process.proc.pid, flush=True)
"""


@pytest.mark.slow
def test_quitting_during_a_run_ends_the_worker(tmp_path: Path) -> None:
    """Blender (here: Python with bpy) exits during a run: the worker, silent in a long step, is terminated
    (Blender disables add-ons on exit; atexit backs that up)."""
    tests = Path(__file__).resolve().parent
    script = QUIT_DURING_A_RUN.format(tests=str(tests), root=str(tests.parents[1]), tmp=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    pid = int(next(line for line in done.stdout.splitlines() if line.startswith("worker ")).split()[1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the worker outlived the Blender session")
