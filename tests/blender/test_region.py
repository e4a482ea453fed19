"""Stylize part of a splat object from Blender (the Stylize panel's Region): the Edit-mode selection, a named
attribute or a vertex group becomes the job's region file, aligned with the exported rows, and the real CPU
worker changes only those Gaussians; bad regions are refused in one line with the scene left as it was."""

import subprocess
from pathlib import Path

import bmesh
import bpy
import numpy as np
import pytest
from stylize_helpers import (assert_unchanged, positions, raw_column, set_up_stylize, snapshot,
                             worker_env, worker_python, write_scene, write_style)
from test_blender_stylize import draw

from blender_test_files import read_ply_columns

POINTCLOUD_TYPE = bpy.types.PointCloud.bl_rna.properties.get("type")  # absent before 5.3
HAS_NATIVE = POINTCLOUD_TYPE is not None and "GAUSSIAN_SPLAT" in POINTCLOUD_TYPE.enum_items.keys()
COLOURS = [f"f_dc_{i}" for i in range(3)]
KEPT = COLOURS + [f"f_rest_{i}" for i in range(9)] + ["ply_opacity"]  # raw attributes of the tiny scene
TIMEOUT_S = 120


def random_half(count: int, seed: int = 7) -> np.ndarray:
    """A boolean mask with half the points chosen at random (so a shifted or reversed region would show)."""
    mask = np.zeros(count, bool)
    mask[np.random.default_rng(seed).permutation(count)[:count // 2]] = True
    return mask


def add_attribute(obj: bpy.types.Object, name: str, data_type: str, values, domain: str = 'POINT') -> None:
    attribute = obj.data.attributes.new(name, data_type, domain)
    attribute.data.foreach_set("value", np.asarray(values))


def job_region(job_folder: Path) -> np.ndarray:
    """The region file a job folder holds, checked to be named in its args.txt as the engine expects."""
    args = (job_folder / "args.txt").read_text().splitlines()
    assert args[args.index("--region") + 1] == "region.npy"
    region = np.load(job_folder / "region.npy", allow_pickle=False)
    assert region.dtype == np.float32 and region.ndim == 1
    return region


def reported(error: pytest.ExceptionInfo) -> str:
    """The one line an operator reported as its error."""
    text = str(error.value).strip()
    assert "\n" not in text and text.startswith("Error: "), text
    return text.removeprefix("Error: ")


def export_job(folder: Path) -> Path:
    assert bpy.ops.sos.export_job(directory=str(folder)) == {'FINISHED'}
    return folder


def assert_only_region_changed(source: dict, result: bpy.types.Object, region: np.ndarray) -> None:
    """Gaussians of weight 0 keep every raw value bit for bit; those in the region got new colours."""
    outside, inside = region == 0, region > 0
    for name in KEPT:
        np.testing.assert_array_equal(raw_column(result, name)[outside], source[name][outside], err_msg=name)
    change = np.max([np.abs(raw_column(result, name) - source[name]) for name in COLOURS], axis=0)
    assert (change[inside] > 1e-4).mean() > 0.5, (change[inside] > 1e-4).mean()


@pytest.mark.slow
def test_selected_points_in_edit_mode_are_the_only_ones_stylized(worker_addon, tmp_path: Path) -> None:
    """Half the points selected in Edit mode, after an older selection in Object mode: the job uses the latest
    selection, and the result object differs from the original only there."""
    obj = set_up_stylize(tmp_path, iterations=3)
    count = len(obj.data.vertices)
    chosen = random_half(count)
    obj.data.vertices.foreach_set("select", ~chosen)  # the stale selection the job must not use
    source = {name: raw_column(obj, name) for name in KEPT}
    before = positions(obj)
    bpy.context.scene.sos_stylize.region_source = 'SELECTED'
    assert bpy.ops.object.mode_set(mode='EDIT') == {'FINISHED'}
    edit = bmesh.from_edit_mesh(obj.data)
    edit.verts.ensure_lookup_table()
    for vertex in edit.verts:
        vertex.select = bool(chosen[vertex.index])
    bmesh.update_edit_mesh(obj.data)
    labels = [kwargs["text"] for name, _, kwargs in draw(bpy.types.VIEW3D_PT_sos_stylize) if name == "label"]
    assert f"{count // 2:,} of {count:,} points selected" in labels

    assert bpy.ops.sos.stylize() == {'FINISHED'}
    job = worker_addon.stylize.session.SESSION.last_job
    assert job.events[-1]["event"] == "done"
    np.testing.assert_array_equal(job_region(job.folder), chosen.astype(np.float32))
    result = bpy.data.objects["tiny (stylized)"]
    np.testing.assert_array_equal(positions(result), before)
    assert_only_region_changed(source, result, chosen.astype(np.float32))
    assert obj.mode == 'OBJECT' and not obj.visible_get()  # hidden, out of Edit mode (a hidden one stays in it)
    assert bpy.context.view_layer.objects.active == result
    for name in KEPT:
        np.testing.assert_array_equal(raw_column(obj, name), source[name], err_msg=name)  # the original as it was


@pytest.mark.slow
def test_a_named_float_attribute_stylizes_by_its_weights(worker_addon, tmp_path: Path) -> None:
    obj = set_up_stylize(tmp_path, iterations=3)
    count = len(obj.data.vertices)
    weights = np.where(random_half(count, seed=3), np.random.default_rng(1).uniform(0.3, 1.0, count), 0.0)
    add_attribute(obj, "paint here", 'FLOAT', weights.astype(np.float32))
    source = {name: raw_column(obj, name) for name in KEPT}
    props = bpy.context.scene.sos_stylize
    props.region_source, props.region_attribute = 'ATTRIBUTE', "paint here"
    calls = draw(bpy.types.VIEW3D_PT_sos_stylize)
    assert ("prop", (props, "region_attribute"), {"icon": 'GROUP_VERTEX'}) in calls
    assert bpy.ops.sos.stylize() == {'FINISHED'}
    job = worker_addon.stylize.session.SESSION.last_job
    np.testing.assert_array_equal(job_region(job.folder), weights.astype(np.float32))
    assert_only_region_changed(source, bpy.data.objects["tiny (stylized)"], weights.astype(np.float32))


def inverted_painting(path: Path, source: Path) -> bpy.types.Image:
    """A second painting: the first one's colours inverted, saved as its own PNG file."""
    image = bpy.data.images.load(str(source))
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(-1, 4)
    pixels[:, :3] = 1.0 - pixels[:, :3]
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw, image.file_format = str(path), 'PNG'
    image.save()
    return bpy.data.images.load(str(path))


@pytest.mark.slow
def test_two_paintings_for_two_regions_by_stylizing_the_result_again(worker_addon, tmp_path: Path) -> None:
    """docs/quality.md, "Two paintings": Stylize one selection with one painting, then the complementary
    selection of the stylized object with another. The second job paints with the second painting and leaves the
    first region exactly as the first job left it."""
    obj = set_up_stylize(tmp_path, iterations=3)
    props = bpy.context.scene.sos_stylize
    count = len(obj.data.vertices)
    first = random_half(count)
    source = {name: raw_column(obj, name) for name in KEPT}
    props.region_source = 'SELECTED'
    obj.data.vertices.foreach_set("select", first)
    assert bpy.ops.sos.stylize() == {'FINISHED'}
    once = bpy.context.view_layer.objects.active
    assert once.name == "tiny (stylized)"
    assert_only_region_changed(source, once, first.astype(np.float32))

    props.style_image = inverted_painting(tmp_path / "second.png", tmp_path / "style.png")
    once.data.vertices.foreach_set("select", ~first)
    painted = {name: raw_column(once, name) for name in KEPT}
    assert bpy.ops.sos.stylize() == {'FINISHED'}
    job = worker_addon.stylize.session.SESSION.last_job
    assert job.events[-1]["event"] == "done"
    twice = bpy.context.view_layer.objects.active
    assert twice not in (obj, once)
    assert_only_region_changed(painted, twice, (~first).astype(np.float32))
    for name in KEPT:  # the first region still has the first painting's colours, bit for bit
        np.testing.assert_array_equal(raw_column(twice, name)[first], painted[name][first], err_msg=name)
    style = (job.folder / "args.txt").read_text().splitlines()[1]
    assert (job.folder / style).read_bytes() == (tmp_path / "second.png").read_bytes()


def test_vertex_groups_and_boolean_attributes_become_the_jobs_region(addon, tmp_path: Path) -> None:
    """Export Stylize Job (no engine run): the region file holds the vertex group's weights (0 outside it) or
    the boolean attribute, and the search offers the object's own attributes and groups, not its splat data."""
    obj = set_up_stylize(tmp_path)
    count = len(obj.data.vertices)
    group = obj.vertex_groups.new(name="Face")
    members = np.flatnonzero(random_half(count, seed=5))
    group.add(members[::2].tolist(), 0.25, 'REPLACE')
    group.add(members[1::2].tolist(), 1.0, 'REPLACE')
    mask = random_half(count, seed=9)
    add_attribute(obj, "keep out", 'BOOLEAN', mask)
    add_attribute(obj, "not a weight", 'INT', np.zeros(count, np.int32))
    props = bpy.context.scene.sos_stylize
    props.region_source, props.region_attribute = 'ATTRIBUTE', "Face"
    expected = np.zeros(count, np.float32)
    expected[members[::2]], expected[members[1::2]] = 0.25, 1.0
    np.testing.assert_array_equal(job_region(export_job(tmp_path / "group")), expected)
    props.region_attribute = "keep out"
    job = export_job(tmp_path / "mask")
    np.testing.assert_array_equal(job_region(job), mask.astype(np.float32))
    exported = read_ply_columns(job / "scene.ply")  # the rows the region is aligned with: the object's points
    np.testing.assert_array_equal(np.stack([exported[c] for c in "xyz"], axis=1), positions(obj))
    search = props.bl_rna.properties["region_attribute"]
    assert search.name == "Attribute" and "vertex group" in search.description
    candidates = addon.ui.stylize_props.search_region_attributes(props, bpy.context, "")
    assert candidates == [("keep out", "Boolean attribute"), ("Face", "Vertex group")]
    assert addon.ui.stylize_props.search_region_attributes(props, bpy.context, "FA") == [("Face", "Vertex group")]
    props.region_source = 'WHOLE'
    job = export_job(tmp_path / "whole")
    assert "--region" not in (job / "args.txt").read_text() and not (job / "region.npy").exists()


@pytest.mark.parametrize("case, message", [
    ("nothing selected", "Region: no point is selected in tiny (select points in Edit mode, or set Region to "
                         "Whole Object)"),
    ("no name", "Region: choose the attribute or vertex group of tiny to stylize"),
    ("missing", "Region: tiny has no point attribute or vertex group named 'nowhere'"),
    ("integer", "Region: attribute 'count' of tiny holds INT values on its POINT domain; a region needs Float or "
                "Boolean values on points"),
    ("face domain", "Region: attribute 'faces' of tiny holds FLOAT values on its FACE domain; a region needs "
                    "Float or Boolean values on points"),
    ("above one", "Region: attribute 'weights' of tiny must be in 0..1; point 5 has 1.5"),
    ("all zero", "Region: 'weights' is 0 on every point in tiny (nothing would be stylized)"),
])
def test_bad_regions_are_refused_in_one_line_and_change_nothing(worker_addon, tmp_path: Path, case: str,
                                                                message: str) -> None:
    obj = set_up_stylize(tmp_path)
    count = len(obj.data.vertices)
    props = bpy.context.scene.sos_stylize
    props.camera_source = 'ORBIT'  # a rig made for the job must go again
    props.region_source = 'SELECTED' if case == "nothing selected" else 'ATTRIBUTE'
    props.region_attribute = {"no name": "", "missing": "nowhere", "integer": "count",
                              "face domain": "faces"}.get(case, "weights")
    add_attribute(obj, "count", 'INT', np.ones(count, np.int32))
    obj.data.attributes.new("faces", 'FLOAT', 'FACE')
    weights = np.zeros(count, np.float32)
    if case == "above one":
        weights[5] = 1.5
    add_attribute(obj, "weights", 'FLOAT', weights)
    obj.data.vertices.foreach_set("select", np.zeros(count, bool))
    before = snapshot(obj)
    jobs = set(worker_addon.stylize.job_folder.jobs_root().glob("job_*"))
    with pytest.raises(RuntimeError) as error:
        bpy.ops.sos.stylize()
    assert reported(error) == message
    assert_unchanged(before, obj)
    assert set(worker_addon.stylize.job_folder.jobs_root().glob("job_*")) == jobs


@pytest.mark.slow
def test_detail_inside_a_region_splits_only_there(worker_addon, tmp_path: Path) -> None:
    """Region and Detail together: the job carries both, and the engine splits and reshapes only the selected
    Gaussians; every unselected row comes back bit for bit."""
    obj = set_up_stylize(tmp_path, iterations=4)
    props = bpy.context.scene.sos_stylize
    props.region_source, props.detail, props.densify_every = 'SELECTED', 1.0, 2
    count = len(obj.data.vertices)
    selected = np.zeros(count, bool)
    selected[::2] = True
    obj.data.vertices.foreach_set("select", selected)
    job = export_job(tmp_path / "job")
    args = (job / "args.txt").read_text().split()
    assert args[args.index("--region") + 1] == "region.npy" and float(args[args.index("--detail") + 1]) == 1.0
    done = subprocess.run([worker_python(), "-m", "core", "@args.txt", "--json-progress"], cwd=job,
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=worker_env())
    assert done.returncode == 0, done.stderr[-2000:]
    source, result = read_ply_columns(job / "scene.ply"), read_ply_columns(job / "out" / "stylized.ply")
    names = sorted(source)
    rows_in = np.stack([source[n] for n in names], 1)
    rows_out = {row.tobytes() for row in np.stack([result[n] for n in names], 1)}
    assert len(result["x"]) > count  # split
    assert all(row.tobytes() in rows_out for row in rows_in[~selected])  # the unselected rows, untouched
    changed = [row.tobytes() not in rows_out for row in rows_in[selected]]
    assert np.mean(changed) > 0.5, np.mean(changed)  # the selected ones seen by the cameras changed


@pytest.mark.skipif(not HAS_NATIVE, reason=f"bpy {bpy.app.version_string} has no native Gaussian splats (5.3+)")
def test_a_blender_splat_uses_its_point_selection(addon, tmp_path: Path) -> None:
    """Blender 5.3's own splat point cloud: its Edit-mode .selection is the region, in the exported rows' order;
    one that was never selected in is refused."""
    assert bpy.ops.wm.ply_import(filepath=str(write_scene(tmp_path / "tiny"))) == {'FINISHED'}
    cloud = bpy.context.view_layer.objects.active
    props = bpy.context.scene.sos_stylize
    props.style_image = bpy.data.images.load(str(write_style(tmp_path / "style.png")))
    props.camera_source, props.region_source = 'ORBIT', 'SELECTED'
    with pytest.raises(RuntimeError, match=f"Region: {cloud.name} has no point selection yet"):
        bpy.ops.sos.export_job(directory=str(tmp_path / "refused"))
    assert bpy.ops.object.mode_set(mode='EDIT') == {'FINISHED'}
    assert bpy.ops.pointcloud.select_random(seed=2, probability=0.5) == {'FINISHED'}
    selection = np.zeros(len(cloud.data.points), bool)
    cloud.data.attributes[".selection"].data.foreach_get("value", selection)
    assert 0 < selection.sum() < len(selection)
    labels = [kwargs["text"] for name, _, kwargs in draw(bpy.types.VIEW3D_PT_sos_stylize) if name == "label"]
    assert f"{selection.sum():,} of {len(selection):,} points selected" in labels
    job = export_job(tmp_path / "job")
    np.testing.assert_array_equal(job_region(job), selection.astype(np.float32))
    exported = read_ply_columns(job / "scene.ply")
    points = np.empty(len(selection) * 3, np.float32)
    cloud.data.attributes["position"].data.foreach_get("vector", points)
    np.testing.assert_array_equal(np.stack([exported[c] for c in "xyz"], axis=1), points.reshape(-1, 3))


def test_edit_mode_edits_reach_the_job_and_the_export_and_edit_mode_stays(addon, tmp_path: Path) -> None:
    """Points deleted and selected in Edit mode, not yet flushed: Export Stylize Job (with an orbit rig, which
    reads the points too) and Export write the edited object, and the object is back in Edit mode after each."""
    obj = set_up_stylize(tmp_path)
    props = bpy.context.scene.sos_stylize
    props.camera_source, props.region_source = 'ORBIT', 'SELECTED'
    assert bpy.ops.object.mode_set(mode='EDIT') == {'FINISHED'}
    edit = bmesh.from_edit_mesh(obj.data)
    bmesh.ops.delete(edit, geom=[v for v in edit.verts if v.index % 4 == 0], context='VERTS')
    for vertex in edit.verts:
        vertex.select = vertex.index % 3 == 0
    bmesh.update_edit_mesh(obj.data)
    kept = 600 - 150
    job = export_job(tmp_path / "job")
    assert obj.mode == 'EDIT'
    np.testing.assert_array_equal(job_region(job), (np.arange(kept) % 3 == 0).astype(np.float32))
    assert len(read_ply_columns(job / "scene.ply")["x"]) == kept
    assert bpy.ops.export_scene.gaussian_splat(filepath=str(tmp_path / "edited.ply")) == {'FINISHED'}
    assert obj.mode == 'EDIT'
    exported = read_ply_columns(tmp_path / "edited.ply")
    np.testing.assert_array_equal(exported["f_dc_0"], read_ply_columns(job / "scene.ply")["f_dc_0"])
    assert len(exported["x"]) == kept
