"""Importing 3DGS PLY files: one object, one point per Gaussian, raw and display attributes, up axis."""

from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_test_files import C0, camera_entry, procedural_columns, read_ply_columns, write_cameras, write_ply

DISPLAY_FIELDS = {"opacity": ("FLOAT", "value", 1), "scale": ("FLOAT_VECTOR", "vector", 3),
                  "rotation": ("QUATERNION", "value", 4), "color": ("FLOAT_COLOR", "color", 4)}


def attribute_values(obj: bpy.types.Object, name: str) -> np.ndarray:
    """A point attribute as [N] or [N, k] (independent of the add-on's own reader)."""
    attr = obj.data.attributes[name]
    data_type, field, width = DISPLAY_FIELDS.get(name, (attr.data_type, "value", 1))
    dtype = np.int32 if attr.data_type == 'INT' else np.float32
    values = np.empty(len(obj.data.vertices) * width, dtype)
    attr.data.foreach_get(field, values)
    return values.reshape(-1, width) if width > 1 else values


def import_splat(path: Path, **options) -> bpy.types.Object:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(path), **options) == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def positions(obj: bpy.types.Object) -> np.ndarray:
    values = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", values)
    return values.reshape(-1, 3)


def check_attributes(obj: bpy.types.Object, columns: dict[str, np.ndarray]) -> None:
    """Raw properties stored bit-exactly under their PLY names (opacity as ply_opacity); display values activated."""
    count = len(columns["x"])
    assert len(obj.data.vertices) == count and len(obj.data.edges) == 0 and len(obj.data.polygons) == 0
    np.testing.assert_array_equal(positions(obj), np.stack([columns[k] for k in "xyz"], axis=1))
    for name, values in columns.items():
        if name not in "xyz":
            stored = "ply_opacity" if name == "opacity" else name
            assert obj.data.attributes[stored].domain == 'POINT'
            np.testing.assert_array_equal(attribute_values(obj, stored), values)
    opacity = 1 / (1 + np.exp(-columns["opacity"].astype(float)))
    np.testing.assert_allclose(attribute_values(obj, "opacity"), opacity, rtol=1e-6, atol=1e-7)
    scales = np.exp(np.stack([columns[f"scale_{i}"] for i in range(3)], axis=1).astype(float))
    np.testing.assert_allclose(attribute_values(obj, "scale"), scales, rtol=1e-6)
    quats = np.stack([columns[f"rot_{i}"] for i in range(4)], axis=1).astype(float)
    np.testing.assert_allclose(attribute_values(obj, "rotation"),
                               quats / np.linalg.norm(quats, axis=1, keepdims=True), atol=1e-6)
    dc = np.stack([columns[f"f_dc_{i}"] for i in range(3)], axis=1).astype(float)
    colour = attribute_values(obj, "color")
    np.testing.assert_allclose(colour[:, :3], np.maximum(0.5 + C0 * dc, 0), atol=1e-6)
    np.testing.assert_allclose(colour[:, 3], opacity, atol=1e-6)
    for name, (data_type, _, _) in DISPLAY_FIELDS.items():
        assert obj.data.attributes[name].data_type == data_type


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_procedural_scene_of_each_sh_degree(addon, tmp_path: Path, degree: int) -> None:
    columns = procedural_columns(500, degree, seed=degree, normals=degree == 1)
    obj = import_splat(write_ply(tmp_path / "scene" / "splats.ply", columns, comments=("made by a test",)))
    check_attributes(obj, columns)
    assert obj.name == "splats" and obj.users_collection[0].name == "splats"
    info = obj["gaussian_splat"]
    assert info["sh_degree"] == degree
    assert info["header"].startswith("ply\nformat binary_little_endian 1.0\ncomment made by a test\n")
    assert list(info["comments"]) == ["made by a test"]
    assert list(info["properties"]) == [f"float {name}" for name in columns]
    assert sum(name.startswith("f_rest_") for name in info["attributes"]) == 3 * ((degree + 1) ** 2 - 1)
    assert len([o for o in bpy.data.objects if o.type == 'MESH']) == 1


def test_extra_integer_and_double_properties_are_kept(addon, tmp_path: Path) -> None:
    columns = procedural_columns(300, 0)
    columns["segment"] = np.arange(300) % 200
    columns["label"] = np.arange(300) * 11_000_000
    columns["weight"] = np.linspace(0, 1, 300)
    types = {"segment": "uchar", "label": "uint", "weight": "double"}
    obj = import_splat(write_ply(tmp_path / "extra.ply", columns, types=types))
    assert obj.data.attributes["segment"].data_type == 'INT'
    np.testing.assert_array_equal(attribute_values(obj, "segment"), columns["segment"])
    np.testing.assert_array_equal(attribute_values(obj, "label").view(np.uint32), columns["label"])
    np.testing.assert_allclose(attribute_values(obj, "weight"), columns["weight"], rtol=1e-7)


def test_guitar_imports_with_its_orbit_cameras(addon, guitar: Path) -> None:
    obj = import_splat(guitar / "point_cloud.ply")
    columns = read_ply_columns(guitar / "point_cloud.ply")
    assert len(columns["x"]) == 90854
    check_attributes(obj, columns)
    assert obj.name == "guitar" and obj["gaussian_splat"]["sh_degree"] == 0
    cameras = [o for o in bpy.data.collections["guitar Cameras"].objects if o.type == 'CAMERA']
    assert len(cameras) == 12 and all(c.parent == obj for c in cameras)
    assert bpy.context.scene.camera.name == "orbit_000"
    assert (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y) == (512, 512)


def test_flowers_imports_sh_degree_2(addon, flowers: Path) -> None:
    obj = import_splat(flowers / "point_cloud.ply", import_cameras=False)
    check_attributes(obj, read_ply_columns(flowers / "point_cloud.ply"))
    assert len(obj.data.vertices) == 210422
    assert obj["gaussian_splat"]["sh_degree"] == 2
    assert not any(o.type == 'CAMERA' for o in bpy.data.objects)


@pytest.mark.parametrize("axis, up_in_data", [("-Y", (0, -1, 0)), ("Y", (0, 1, 0)), ("Z", (0, 0, 1))])
def test_up_axis_is_the_object_rotation_only(addon, tmp_path: Path, axis: str, up_in_data) -> None:
    columns = procedural_columns(50, 0)
    obj = import_splat(write_ply(tmp_path / "up.ply", columns), up_axis=axis)
    bpy.context.view_layer.update()
    world = np.array(obj.matrix_world)
    np.testing.assert_allclose(world[:3, :3] @ np.array(up_in_data, float), [0, 0, 1], atol=1e-6)
    np.testing.assert_array_equal(positions(obj), np.stack([columns[k] for k in "xyz"], axis=1))


def test_three_dgs_output_folder_finds_cameras_two_levels_up(addon, tmp_path: Path) -> None:
    out = tmp_path / "bicycle_run"
    ply = write_ply(out / "point_cloud" / "iteration_30000" / "point_cloud.ply", procedural_columns(40, 1))
    write_cameras(out / "cameras.json", [camera_entry(i, 64, 48, 50.0, 50.0, [0, 0, -3 - i], np.eye(3))
                                         for i in range(3)])
    obj = import_splat(ply)
    assert obj.name == "bicycle_run"
    assert len(bpy.data.collections["bicycle_run Cameras"].objects) == 3


def test_two_candidate_camera_files_next_to_the_ply_import_none(addon, tmp_path: Path) -> None:
    ply = write_ply(tmp_path / "scene" / "point_cloud.ply", procedural_columns(40, 0))
    for name in ("train_cameras.json", "test_cameras.json"):
        write_cameras(ply.parent / name, [camera_entry(0, 64, 48, 50.0, 50.0, [0, 0, -3], np.eye(3))])
    import_splat(ply)
    assert not any(o.type == 'CAMERA' for o in bpy.data.objects)
