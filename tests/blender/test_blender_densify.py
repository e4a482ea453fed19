"""Stylize with Detail on through the add-on (the real CPU worker): the result object has the engine's larger
Gaussian count and exports back to exactly the PLY the engine wrote."""

from pathlib import Path

import bpy
from stylize_helpers import set_up_stylize


def test_detail_makes_a_larger_result_object_that_exports_losslessly(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=4)
    props = bpy.context.scene.sos_stylize
    props.detail, props.densify_every = 1.0, 2
    assert bpy.ops.sos.stylize() == {'FINISHED'}

    job = worker_addon.stylize.session.SESSION.last_job
    done = job.events[-1]
    assert done["event"] == "done"
    written = (Path(job.folder) / done["ply"]).read_bytes()  # the job folder's out/stylized.ply
    result = bpy.data.objects["tiny (stylized)"]
    assert len(result.data.vertices) == done["gaussians"] > len(obj.data.vertices)

    bpy.context.view_layer.objects.active = result
    out = tmp_path / "exported.ply"
    assert bpy.ops.export_scene.gaussian_splat(filepath=str(out)) == {'FINISHED'}
    assert out.read_bytes() == written
