"""Bad input: an error report naming the file and the problem, and the scene left exactly as it was."""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_test_files import camera_entry, ply_bytes, procedural_columns, write_cameras, write_ply


def scene_state() -> dict:
    """Everything an importer or exporter could create or change."""
    data = bpy.data
    render = bpy.context.scene.render
    return {
        "collections": sorted(c.name for c in data.collections), "objects": sorted(o.name for o in data.objects),
        "meshes": sorted(m.name for m in data.meshes), "cameras": sorted(c.name for c in data.cameras),
        "node_groups": sorted(g.name for g in data.node_groups), "materials": sorted(m.name for m in data.materials),
        "scene_objects": sorted(o.name for o in bpy.context.scene.objects),
        "render": (render.resolution_x, render.resolution_y, render.pixel_aspect_x, render.pixel_aspect_y),
        "camera": bpy.context.scene.camera.name if bpy.context.scene.camera else None,
        "active": bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
    }


def good_ply(**changes) -> bytes:
    columns = procedural_columns(20, 1)
    columns.update(changes)
    return ply_bytes(columns)


def without(name: str) -> bytes:
    columns = procedural_columns(20, 0)
    del columns[name]
    return ply_bytes(columns)


VALID = good_ply()
BAD_PLYS = {
    "not a PLY": (b"hello world\n" * 10, "not a PLY file"),
    "empty file": (b"", "not a PLY file"),
    "ascii PLY": (ply_bytes(procedural_columns(5, 0), fmt="ascii"), "unsupported format 'ascii'"),
    "big-endian PLY": (ply_bytes(procedural_columns(5, 0), fmt="binary_big_endian"),
                       "unsupported format 'binary_big_endian'"),
    "missing opacity": (without("opacity"), "missing required properties: opacity"),
    "missing rotation": (without("rot_3"), "missing required properties: rot_3"),
    "truncated": (VALID[:-7], "truncated"),
    "trailing bytes": (VALID + b"\0" * 8, "8 unexpected bytes after the vertex data"),
    "NaN": (good_ply(scale_1=np.where(np.arange(20) == 13, np.nan, 0.0)),
            "non-finite values .* in: scale_1 \\(1\\); the first at Gaussian 13"),
    "infinity": (good_ply(x=np.full(20, np.inf)), "non-finite values .* in: x \\(20\\)"),
    "f_rest count": (ply_bytes({**procedural_columns(5, 0), "f_rest_0": np.zeros(5), "f_rest_1": np.zeros(5)}),
                     "2 f_rest properties match no SH degree"),
    "no end_header": (VALID.split(b"end_header")[0], "no 'end_header' line"),
    "zero Gaussians": (ply_bytes({k: v[:0] for k, v in procedural_columns(5, 0).items()}), "no Gaussians"),
    "mesh faces": (VALID.replace(b"end_header\n", b"element face 3\nproperty list uchar int vertex_indices\n"
                                                  b"end_header\n"),
                   "expected a single 'vertex' element, found: vertex, face"),
    "list property": (VALID.replace(b"property float x\n", b"property list uchar float x\n"),
                      "unsupported list properties in 'vertex': x"),
    "integer opacity": (ply_bytes(procedural_columns(5, 0), types={"opacity": "int"}),
                        "must be float, found: opacity \\(int\\)"),
    "duplicate property": (VALID.replace(b"property float y\n", b"property float x\n"),
                           "duplicate vertex property 'x'"),
    "long property name": (good_ply(**{"n" * 60: np.zeros(20)}), "'nnnn.*is longer than 59 characters"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLYS))
def test_bad_ply_reports_an_error_and_changes_nothing(addon, tmp_path: Path, case: str) -> None:
    content, message = BAD_PLYS[case]
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    before = scene_state()
    with pytest.raises(RuntimeError, match=message) as error:
        bpy.ops.import_scene.gaussian_splat(filepath=str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value).strip()
    assert scene_state() == before


def test_missing_ply_reports_an_error(addon, tmp_path: Path) -> None:
    before = scene_state()
    with pytest.raises(RuntimeError, match="nowhere.ply: file not found"):
        bpy.ops.import_scene.gaussian_splat(filepath=str(tmp_path / "nowhere.ply"))
    assert scene_state() == before


def entry(**changes) -> dict:
    return {**camera_entry(0, 64, 48, 50.0, 50.0, [0, 0, -3], np.eye(3)), **changes}


BAD_CAMERAS = {
    "not JSON": ("{cameras", "not valid JSON"),
    "not a list": ('{"id": 0}', "expected a list of cameras"),
    "empty list": ("[]", "the camera list is empty"),
    "missing fx": (json.dumps([{k: v for k, v in entry().items() if k != "fx"}]), "camera 0 .*: missing fx"),
    "negative width": (json.dumps([entry(), entry(width=-5)]), "camera 1 .*: width: expected a positive integer"),
    "zero focal length": (json.dumps([entry(fy=0.0)]), "fy: expected a positive number"),
    "not a rotation": (json.dumps([entry(rotation=[[1, 0, 0], [0, 2, 0], [0, 0, 1]])]), "not a rotation matrix"),
    "mirror rotation": (json.dumps([entry(rotation=[[-1, 0, 0], [0, 1, 0], [0, 0, 1]])]), "not a rotation matrix"),
    "NaN position": ('[' + json.dumps(entry()).replace('"position": [0.0, 0.0, -3.0]', '"position": [NaN, 0, 0]')
                     + ']', "position: expected 3 finite numbers"),
    "short position": (json.dumps([entry(position=[1, 2])]), "position: expected 3 finite numbers"),
    "cx without cy": (json.dumps([entry(cx=30.0)]), "cx and cy must be given together"),
}


@pytest.mark.parametrize("case", sorted(BAD_CAMERAS))
def test_bad_cameras_beside_a_good_ply_cancel_the_whole_import(addon, tmp_path: Path, case: str) -> None:
    text, message = BAD_CAMERAS[case]
    ply = write_ply(tmp_path / "scene" / "point_cloud.ply", procedural_columns(20, 0))
    (ply.parent / "cameras.json").write_text(text)
    before = scene_state()
    with pytest.raises(RuntimeError, match=message) as error:
        bpy.ops.import_scene.gaussian_splat(filepath=str(ply))
    assert "cameras.json" in str(error.value)
    assert scene_state() == before


@pytest.mark.parametrize("case", ["not JSON", "missing fx", "not a rotation"])
def test_bad_cameras_file_alone_changes_nothing(addon, tmp_path: Path, case: str) -> None:
    text, message = BAD_CAMERAS[case]
    path = tmp_path / "cameras.json"
    path.write_text(text)
    before = scene_state()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.import_scene.gaussian_splat_cameras(filepath=str(path))
    assert scene_state() == before


def test_export_of_a_non_splat_object_is_refused(addon, tmp_path: Path) -> None:
    mesh = bpy.data.objects.new("plain", bpy.data.meshes.new("plain"))
    bpy.context.scene.collection.objects.link(mesh)
    bpy.context.view_layer.objects.active = mesh
    out = tmp_path / "out.ply"
    with pytest.raises(RuntimeError, match="plain: not a Gaussian splat object"):
        bpy.ops.export_scene.gaussian_splat(filepath=str(out))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_with_a_removed_raw_attribute_is_refused(addon, tmp_path: Path) -> None:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(write_ply(tmp_path / "s.ply", procedural_columns(9, 0))))
    obj = bpy.context.view_layer.objects.active
    obj.data.attributes.remove(obj.data.attributes["f_dc_1"])
    out = tmp_path / "out.ply"
    with pytest.raises(RuntimeError, match="s: point attribute 'f_dc_1' .* is missing"):
        bpy.ops.export_scene.gaussian_splat(filepath=str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ply"]


def test_export_into_a_missing_folder_reports_the_path(addon, tmp_path: Path) -> None:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(write_ply(tmp_path / "s.ply", procedural_columns(9, 0))))
    with pytest.raises(RuntimeError, match="out.ply: folder .*missing does not exist"):
        bpy.ops.export_scene.gaussian_splat(filepath=str(tmp_path / "missing" / "out.ply"))


def test_camera_export_of_an_unknown_collection_is_refused(addon, tmp_path: Path) -> None:
    path = write_cameras(tmp_path / "cams" / "cameras.json", [entry()])
    assert bpy.ops.import_scene.gaussian_splat_cameras(filepath=str(path)) == {'FINISHED'}
    out = tmp_path / "out.json"
    with pytest.raises(RuntimeError, match="collection 'nope' does not exist"):
        bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out), collection="nope")
    empty = bpy.data.collections.new("no cameras here")
    with pytest.raises(RuntimeError, match="no cameras to export in no cameras here"):
        bpy.ops.export_scene.gaussian_splat_cameras(filepath=str(out), collection=empty.name)
    assert not out.exists()
