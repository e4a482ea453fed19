"""Preview and Stop and Keep with the real CPU worker: the instant preview as a '(preview)' object, the next
Preview or Stylize replacing it (and nothing else of the scene changing), a shared scene's preview timed, and a
running stylization stopped with its result kept."""

import json
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from stylize_helpers import positions, raw_column, set_up_stylize
from test_blender_stylize import run_ticks

DATA_KINDS = ("objects", "meshes", "cameras", "collections", "actions", "node_groups")


def data_names() -> dict[str, set[str]]:
    """The names of what a result is made of, by kind."""
    return {kind: {item.name for item in getattr(bpy.data, kind)} for kind in DATA_KINDS}


def job_arguments(session) -> list[str]:
    return (session.SESSION.last_job.folder / "args.txt").read_text().splitlines()


@pytest.mark.slow
def test_preview_makes_a_preview_object_that_the_next_preview_and_stylize_replace(worker_addon,
                                                                                 tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=2)
    session = worker_addon.stylize.session
    result = worker_addon.stylize.result
    before = data_names()
    capture = raw_column(obj, "f_dc_0")

    assert bpy.ops.sos.preview() == {'FINISHED'}
    arguments = job_arguments(session)
    assert arguments[arguments.index("--iterations") + 1] == "0"
    assert arguments[arguments.index("--init") + 1] == "preview"
    assert [e["event"] for e in session.SESSION.last_job.events] == ["start", "done"]
    message = session.SESSION.messages[-1]
    assert message.level == 'INFO' and message.text.startswith("Previewed tiny as tiny (preview) in "), message
    preview = bpy.data.objects["tiny (preview)"]
    assert preview[result.PREVIEW_KEY] and preview[result.SOURCE_KEY] == obj
    assert bpy.context.view_layer.objects.active == preview and not obj.visible_get()
    assert np.abs(raw_column(preview, "f_dc_0") - capture).max() > 1e-3  # the painting's palette
    np.testing.assert_array_equal(raw_column(preview, "sos_capture:f_dc_0"), capture)  # Mix 0: the capture
    one_preview = data_names()

    assert bpy.ops.sos.preview() == {'FINISHED'}  # the preview is active: the job works on its source
    assert data_names() == one_preview  # replaced, under the same names
    assert bpy.data.objects["tiny (preview)"][result.SOURCE_KEY] == obj

    assert bpy.ops.sos.stylize() == {'FINISHED'}
    assert [e["event"] for e in session.SESSION.last_job.events].count("progress") == 2
    stylized = bpy.data.objects["tiny (stylized)"]
    assert not stylized[result.PREVIEW_KEY] and stylized[result.SOURCE_KEY] == obj
    np.testing.assert_array_equal(raw_column(stylized, "sos_capture:f_dc_0"), capture)  # from the original
    np.testing.assert_array_equal(positions(stylized), positions(obj))
    after = data_names()
    for kind in DATA_KINDS:  # the preview and everything made for it are gone; only the stylized result's is new
        gone, new = before[kind] - after[kind], after[kind] - before[kind]
        assert not gone, (kind, gone)
        assert not any("(preview)" in name for name in after[kind]), (kind, new)
    cameras = bpy.data.collections["tiny (stylized) Render Cameras"]
    assert after["objects"] - before["objects"] == {stylized.name, *(o.name for o in cameras.objects)}
    assert after["collections"] - before["collections"] == {cameras.name}
    mix_group = worker_addon.splats.mix_nodes.mix_modifier(stylized).node_group
    assert after["node_groups"] - before["node_groups"] == {mix_group.name}
    assert stylized.modifiers[0] == worker_addon.splats.mix_nodes.mix_modifier(stylized)  # before the display
    assert bpy.context.view_layer.objects.active == stylized and not obj.visible_get()


@pytest.mark.slow
def test_stop_and_keep_brings_back_the_result_so_far(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=100_000)
    assert bpy.ops.sos.stylize(run_async=True) == {'FINISHED'}
    session = worker_addon.stylize.session
    job = session.SESSION.job
    run_ticks(session, lambda: job.progress.iteration >= 2)
    assert bpy.ops.sos.stop_and_keep() == {'FINISHED'}
    assert not bpy.ops.sos.stop_and_keep.poll()  # once
    run_ticks(session, lambda: False)
    assert job.phase is worker_addon.io.job.Phase.DONE
    message = session.SESSION.messages[-1]
    assert message.level == 'INFO' and message.text.startswith("Stopped at iteration "), message
    stylized = bpy.data.objects["tiny (stylized)"]
    assert worker_addon.splats.mix.has_mix(stylized) and not obj.visible_get()
    report = json.loads((job.folder / "out" / "report.json").read_text())
    assert report["stopped"]["iterations"] == 100_000 and report["stopped"]["iteration"] >= 2


@pytest.mark.slow
def test_preview_of_the_guitar_on_the_cpu(worker_addon, guitar: Path) -> None:
    """A real object scene (90 854 Gaussians, 12 cameras) previewed with the panel's defaults on the CPU; the time
    from the click to the object is printed (no timed assertion: it depends on the machine)."""
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(guitar / "point_cloud.ply")) == {'FINISHED'}
    obj = bpy.context.view_layer.objects.active
    painting = guitar.parents[1] / "styles" / "vangogh_the_starry_night.jpg"
    bpy.context.scene.sos_stylize.style_image = bpy.data.images.load(str(painting))
    started = time.monotonic()
    assert bpy.ops.sos.preview() == {'FINISHED'}
    seconds = time.monotonic() - started
    preview = bpy.data.objects["guitar (preview)"]
    assert len(preview.data.vertices) == len(obj.data.vertices) == 90_854
    report = json.loads((worker_addon.stylize.session.SESSION.last_job.folder / "out" / "report.json").read_text())
    print(f"\nguitar preview on the CPU: {seconds:.1f} s from the click to the object; engine: preview "
          f"{report['timings']['total_s']:.2f} s, writing {report['timings']['write_s']:.2f} s")
