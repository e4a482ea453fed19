"""Mix on a stylized result: the capture's colours kept per row (each child with its parent's), the display
geometry, the Gaussian Splats engine's PLY and export all following the Mix property, with no worker call.

The results here are made from job folders written by the test (scene.ply, out/stylized.ply, out/origin.npy,
out/cameras.json) and brought in by the add-on's own import_result, as a finished job's are; the worker Python
is a stand-in that leaves a mark if anything starts it.
"""

from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_test_files import C0, camera_entry, look_at, procedural_columns, read_ply_columns, write_cameras, write_ply
from stylize_helpers import configure, fake_worker
from test_blender_stylize import draw

POINTCLOUD_TYPE = bpy.types.PointCloud.bl_rna.properties.get("type")  # absent before 5.3
HAS_NATIVE = POINTCLOUD_TYPE is not None and "GAUSSIAN_SPLAT" in POINTCLOUD_TYPE.enum_items.keys()
COUNT = 40
ORIGIN = np.concatenate([np.arange(COUNT), [3, 3, 17]])  # rows 40..42 are children of rows 3, 3 and 17
REST = [f"f_rest_{i}" for i in range(9)]


def stylized_columns(capture: dict[str, np.ndarray], opacity: bool) -> dict[str, np.ndarray]:
    """What a detail run could write: each row its origin row's, new colours (all SH bands), moved children."""
    rng = np.random.default_rng(5)
    result = {name: values[ORIGIN].copy() for name, values in capture.items()}
    for name in ("f_dc_0", "f_dc_1", "f_dc_2", *REST):
        result[name] = (result[name] + rng.normal(0, 0.8, len(ORIGIN))).astype(np.float32)
    if opacity:
        result["opacity"] = (result["opacity"] - 1.5).astype(np.float32)
    result["x"][COUNT:] += 0.01
    return result


def job_folder(folder: Path, opacity: bool = False) -> tuple[Path, dict, dict]:
    """(the job folder, capture columns, result columns) of a finished SH-degree-1 job with detail."""
    capture = procedural_columns(COUNT, 1, seed=4)
    write_ply(folder / "scene.ply", capture)
    result = stylized_columns(capture, opacity)
    write_ply(folder / "out" / "stylized.ply", result)
    np.save(folder / "out" / "origin.npy", ORIGIN.astype(np.int32))
    position = np.array([0.0, 0.0, -4.0])
    write_cameras(folder / "out" / "cameras.json",
                  [camera_entry(0, 64, 48, 60.0, 60.0, position, look_at(position, np.zeros(3)))])
    return folder, capture, result


def make_result(addon, tmp_path: Path, opacity: bool = False, **options) -> tuple[bpy.types.Object, dict, dict]:
    """Import the job's scene as the source, then bring its result in as a finished job does."""
    folder, capture, result = job_folder(tmp_path / "job", opacity)
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(folder / "scene.ply"), **options) == {'FINISHED'}
    source = bpy.context.view_layer.objects.active
    obj = addon.stylize.result.import_result(folder / "out", source, bpy.context.scene, folder / "scene.ply")
    return obj, capture, result


@pytest.fixture
def no_worker(addon, tmp_path: Path) -> Path:
    """A worker Python that leaves a mark if anything runs it; returns the mark's path."""
    mark = tmp_path / "worker_ran"
    configure(addon, python=str(fake_worker(tmp_path / "marking", f"open({str(mark)!r}, 'w').close()\n")))
    return mark


def exported(obj: bpy.types.Object, path: Path) -> dict[str, np.ndarray]:
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.export_scene.gaussian_splat(filepath=str(path)) == {'FINISHED'}
    return read_ply_columns(path)


def display_point_colours(obj: bpy.types.Object) -> np.ndarray:
    """RGBA per point of the display geometry the depsgraph made of obj: the points display's splat_color (which
    its material shows), or on Blender's native splats radiance:base (f_dc and opacity, which EEVEE and Cycles
    draw)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    clouds = [inst.object.data for inst in depsgraph.object_instances
              if inst.object.type == 'POINTCLOUD' and inst.object.original == obj]
    assert len(clouds) == 1, clouds
    name = "radiance:base" if HAS_NATIVE else "splat_color"
    attribute = clouds[0].attributes[name]  # FLOAT4 as imported, a colour once mixed
    values = np.empty(len(clouds[0].points) * 4, np.float32)
    attribute.data.foreach_get("vector" if attribute.data_type == 'FLOAT4' else "color", values)
    return values.reshape(-1, 4)


def expected_display(columns: dict[str, np.ndarray]) -> np.ndarray:
    dc = np.stack([columns[f"f_dc_{i}"] for i in range(3)], axis=1)
    alpha = 1 / (1 + np.exp(-columns["opacity"].astype(np.float64)))
    rgb = dc if HAS_NATIVE else np.maximum(0.5 + C0 * dc, 0)
    return np.concatenate([rgb, alpha[:, None]], axis=1)


def blend(capture: dict, result: dict, names, mix: float) -> dict[str, np.ndarray]:
    return {name: capture[name][ORIGIN] * (1 - mix) + result[name] * mix if name in names else result[name]
            for name in result}


@pytest.mark.parametrize("opacity", [False, True])
def test_mix_changes_the_displayed_and_exported_colours_without_a_worker(addon, tmp_path: Path, no_worker: Path,
                                                                         opacity: bool) -> None:
    obj, capture, result = make_result(addon, tmp_path, opacity, display_mode='NATIVE' if HAS_NATIVE else 'POINTS')
    mix = addon.splats.mix
    mixed = ["f_dc_0", "f_dc_1", "f_dc_2", *REST] + (["opacity"] if opacity else [])
    assert sorted(mix.captured_names(obj)) == sorted(mixed) and mix.has_mix(obj)
    for name in mixed:  # each row keeps its origin row's capture value: children their parent's
        np.testing.assert_array_equal(np.array([v.value for v in obj.data.attributes[f"sos_capture:{name}"].data]),
                                      capture[name][ORIGIN], err_msg=name)
    assert obj[mix.MIX_PROPERTY] == 1.0
    np.testing.assert_allclose(display_point_colours(obj), expected_display(result), atol=2e-6)
    for name, values in exported(obj, tmp_path / "at_1.ply").items():
        np.testing.assert_array_equal(values, result[name], err_msg=name)  # Mix 1: the result bit for bit

    for value in (0.0, 0.5, 1.6):
        mix.set_mix(obj, value)
        expected = blend(capture, result, mixed, value)
        np.testing.assert_allclose(display_point_colours(obj), expected_display(expected), atol=1e-5,
                                   err_msg=f"display at Mix {value}")
        for name, values in exported(obj, tmp_path / f"at_{value}.ply").items():
            np.testing.assert_allclose(values, expected[name], atol=1e-5, err_msg=f"{name} at Mix {value}")
    assert not no_worker.exists(), "changing Mix or exporting started the worker"


def test_the_render_engine_sends_the_mix_of_the_frame(addon, tmp_path: Path, no_worker: Path) -> None:
    """The Gaussian Splats engine's PLY of a result holds its colours at the Mix of the rendered frame, which can
    be animated; the source and Mix 1 are sent unchanged."""
    obj, capture, result = make_result(addon, tmp_path)
    scene = bpy.context.scene
    obj["sos_mix"] = 0.0
    obj.keyframe_insert('["sos_mix"]', frame=1)
    obj["sos_mix"] = 1.0
    obj.keyframe_insert('["sos_mix"]', frame=11)
    view, cache = addon.render.view, addon.render.cache
    for frame, value in ((1, 0.0), (6, 0.5), (11, 1.0)):
        scene.frame_set(frame)
        [item] = view.splat_objects(bpy.context.evaluated_depsgraph_get())  # the source is hidden in renders
        assert item.obj == obj and item.mix == pytest.approx(value, abs=1e-6)
        sent = read_ply_columns(cache.cached_ply(item.obj, item.mix))
        expected = blend(capture, result, ["f_dc_0", "f_dc_1", "f_dc_2", *REST], item.mix)
        for name, values in sent.items():
            np.testing.assert_allclose(values, expected[name], atol=1e-6, err_msg=f"{name} at frame {frame}")
    assert cache.cached_ply(obj, 1.0).read_bytes() == (tmp_path / "job" / "out" / "stylized.ply").read_bytes()
    assert not no_worker.exists()


def test_the_panels_show_mix_only_for_a_stylized_result(addon, tmp_path: Path) -> None:
    obj, _, _ = make_result(addon, tmp_path)
    source = bpy.data.objects["scene"]
    for active, shown in ((obj, True), (source, False)):
        bpy.context.view_layer.objects.active = active
        for panel in (bpy.types.VIEW3D_PT_gaussian_splats, bpy.types.VIEW3D_PT_sos_stylize):
            drawn = [(args, kwargs) for name, args, kwargs in draw(panel)
                     if name == "prop" and args[1] == '["sos_mix"]']
            assert drawn == ([((obj, '["sos_mix"]'), {"text": "Mix", "slider": True})] if shown else []), panel


def test_a_result_without_origin_of_another_size_has_no_mix(addon, tmp_path: Path) -> None:
    """An engine from before origin.npy with detail: the result comes in without Mix (rather than a wrong one)."""
    folder, _, _ = job_folder(tmp_path / "job")
    (folder / "out" / "origin.npy").unlink()
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(folder / "scene.ply")) == {'FINISHED'}
    source = bpy.context.view_layer.objects.active
    obj = addon.stylize.result.import_result(folder / "out", source, bpy.context.scene, folder / "scene.ply")
    assert not addon.splats.mix.has_mix(obj) and addon.splats.mix_nodes.mix_modifier(obj) is None


@pytest.mark.skipif(not HAS_NATIVE, reason=f"bpy {bpy.app.version_string} has no native Gaussian splats (5.3+)")
def test_cycles_renders_a_native_result_at_its_mix(addon, tmp_path: Path) -> None:
    """One nearly opaque Gaussian, captured orange and stylized blue: Cycles draws it in the capture's colour at
    Mix 0 and the result's at Mix 1, through the Mix modifier's radiance:base."""
    from test_blender_native import cycles_render, look_from, srgb_to_linear

    captured, stylized = np.array([0.8, 0.45, 0.15]), np.array([0.15, 0.45, 0.8])
    columns = {"x": [0.0], "y": [0.0], "z": [0.0], **{f"f_dc_{i}": [(captured[i] - 0.5) / C0] for i in range(3)},
               "opacity": [5.0], "scale_0": [np.log(0.3)], "scale_1": [np.log(0.3)], "scale_2": [np.log(0.3)],
               "rot_0": [1.0], "rot_1": [0.0], "rot_2": [0.0], "rot_3": [0.0]}
    capture = write_ply(tmp_path / "job" / "scene.ply", {k: np.array(v, np.float32) for k, v in columns.items()})
    columns.update({f"f_dc_{i}": [(stylized[i] - 0.5) / C0] for i in range(3)})
    write_ply(tmp_path / "job" / "out" / "stylized.ply", {k: np.array(v, np.float32) for k, v in columns.items()})
    write_cameras(tmp_path / "job" / "out" / "cameras.json",
                  [camera_entry(0, 16, 16, 20.0, 20.0, [0, 0, -3], look_at(np.array([0, 0, -3.0]), np.zeros(3)))])
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(capture), up_axis='Z') == {'FINISHED'}
    source = bpy.context.view_layer.objects.active
    obj = addon.stylize.result.import_result(tmp_path / "job" / "out", source, bpy.context.scene, capture)
    look_from(bpy.context.scene, (0.0, -3.0, 0.0), (np.pi / 2, 0.0, 0.0))
    for value, colour in ((0.0, captured), (1.0, stylized)):
        addon.splats.mix.set_mix(obj, value)
        pixels = cycles_render(tmp_path / f"mix_{value}.exr", size=16, samples=32)
        centre = pixels[7:9, 7:9].reshape(-1, 4)
        assert (centre[:, 3] > 0.5).all(), centre[:, 3]
        np.testing.assert_allclose(centre[:, :3] / centre[:, 3:], np.tile(srgb_to_linear(colour), (4, 1)), rtol=1e-3,
                                   err_msg=f"Mix {value}")
