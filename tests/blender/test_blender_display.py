"""Viewport display: the Geometry Nodes modifier's evaluated instances, density options, points mode, materials."""

from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_test_files import C0, covariances, procedural_columns, write_ply


def import_splat(path: Path, **options) -> bpy.types.Object:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(path), **options) == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def evaluated_instances(obj: bpy.types.Object) -> dict[int, np.ndarray]:
    """World matrices of the instances the depsgraph generates for obj, keyed by instance index."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return {inst.persistent_id[1]: np.array(inst.matrix_world) for inst in depsgraph.object_instances
            if inst.is_instance and inst.parent.original == obj and inst.object.type == 'MESH'}


def evaluated_points(obj: bpy.types.Object) -> int:
    """Number of points in the point cloud the display modifier outputs (points mode)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    clouds = [inst.object.data for inst in depsgraph.object_instances
              if inst.object.type == 'POINTCLOUD' and inst.parent is not None and inst.parent.original == obj]
    return sum(len(cloud.points) for cloud in clouds)


@pytest.fixture
def splat(addon, tmp_path: Path) -> bpy.types.Object:
    return import_splat(write_ply(tmp_path / "dense.ply", procedural_columns(10_000, 1)), max_splats=1000,
                        display_mode='ELLIPSOIDS')


@pytest.mark.parametrize("every_nth, max_splats, expected", [
    (1, 1000, 1000), (1, 0, 10_000), (7, 0, 1429), (3, 1000, 1000), (20, 1000, 500), (1, 3000, 2500)])
def test_density_options_bound_the_evaluated_instances(addon, splat, every_nth, max_splats, expected) -> None:
    modifier = addon.splats.display_nodes.display_modifier(splat)
    addon.splats.display_nodes.set_display_input(modifier, "Every Nth", every_nth)
    addon.splats.display_nodes.set_display_input(modifier, "Max Splats", max_splats)
    assert len(evaluated_instances(splat)) == expected


def test_display_inputs_read_back_what_was_set(addon, splat) -> None:
    """get/set_display_input agree on every Blender (5.2 moved the values to modifier.properties), which is
    how a stylized result copies its source's display."""
    nodes = addon.splats.display_nodes
    modifier = nodes.display_modifier(splat)
    values = {"Points Only": True, "Every Nth": 4, "Max Splats": 777, "Size": 1.5}
    for name, value in values.items():
        nodes.set_display_input(modifier, name, value)
    assert {name: nodes.get_display_input(modifier, name) for name in values} == values
    assert addon.stylize.result.display_settings(splat) == values


def test_ellipsoids_sit_on_each_gaussian_rotated_and_scaled(addon, tmp_path: Path) -> None:
    """Each instance is the unit icosphere mapped by T(mean) R(q) diag(size * scale): its matrix M satisfies
    M M^T = size^2 * covariance, with the object's own transform applied on top."""
    columns = procedural_columns(300, 0, seed=3)
    obj = import_splat(write_ply(tmp_path / "s.ply", columns), max_splats=100, splat_size=2.5,
                       display_mode='ELLIPSOIDS')
    instances = evaluated_instances(obj)
    stride = 3
    assert len(instances) == 100
    world = np.array(obj.matrix_world)
    cov = covariances(columns)
    for index, matrix in instances.items():
        point = index * stride
        local = np.linalg.inv(world) @ matrix
        mean = np.array([columns[k][point] for k in "xyz"], float)
        np.testing.assert_allclose(local[:3, 3], mean, atol=1e-5)
        np.testing.assert_allclose(local[:3, :3] @ local[:3, :3].T, 2.5 ** 2 * cov[point], rtol=1e-4, atol=1e-9)


def test_points_mode_outputs_a_point_cloud_with_the_same_density(addon, splat) -> None:
    modifier = addon.splats.display_nodes.display_modifier(splat)
    addon.splats.display_nodes.set_display_input(modifier, "Points Only", True)
    assert evaluated_points(splat) == 1000 and not evaluated_instances(splat)


def test_display_group_and_materials_are_shared_between_splats(addon, tmp_path: Path) -> None:
    first = import_splat(write_ply(tmp_path / "a.ply", procedural_columns(20, 0)), display_mode='ELLIPSOIDS')
    second = import_splat(write_ply(tmp_path / "b.ply", procedural_columns(20, 0)), display_mode='POINTS')
    groups = {addon.splats.display_nodes.display_modifier(o).node_group for o in (first, second)}
    assert len(groups) == 1 and len(bpy.data.node_groups) == 1
    assert {m.name for m in bpy.data.materials} == {"Gaussian Splat Ellipsoid", "Gaussian Splat Point"}


@pytest.mark.parametrize("points_only", [False, True])
def test_cycles_renders_the_dc_colour_with_its_opacity(addon, tmp_path: Path, points_only: bool) -> None:
    """One large Gaussian in front of a camera on black: the pixel is opacity x colour (sRGB decoded by the
    material, encoded again by the Standard view transform)."""
    colour, alpha = np.array([0.8, 0.3, 0.1]), 0.5
    columns = {"x": [0.0], "y": [0.0], "z": [0.0], **{f"f_dc_{i}": [(colour[i] - 0.5) / C0] for i in range(3)},
               "opacity": [0.0], "scale_0": [0.0], "scale_1": [0.0], "scale_2": [0.0],
               "rot_0": [1.0], "rot_1": [0.0], "rot_2": [0.0], "rot_3": [0.0]}
    obj = import_splat(write_ply(tmp_path / "one.ply", {k: np.array(v) for k, v in columns.items()}),
                       up_axis='Z', display_mode='POINTS' if points_only else 'ELLIPSOIDS')
    scene = bpy.context.scene
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -10.0, 0.0), (np.pi / 2, 0.0, 0.0)
    scene.camera = camera
    scene.render.engine = 'CYCLES'
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = 'CPU', 4, False
    scene.render.resolution_x = scene.render.resolution_y = 16
    scene.view_settings.view_transform = 'Standard'
    scene.render.image_settings.file_format = 'OPEN_EXR'
    scene.render.filepath = str(tmp_path / "render.exr")
    assert obj.name == "one"
    bpy.ops.render.render(write_still=True)
    pixels = np.array(bpy.data.images.load(scene.render.filepath).pixels[:]).reshape(16, 16, 4)
    expected = alpha * colour ** addon.splats.display_nodes.SRGB_GAMMA
    np.testing.assert_allclose(pixels[8, 8, :3], expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(pixels[0, 0, :3], 0.0, atol=1e-6)
