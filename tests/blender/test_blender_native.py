"""Blender 5.3's native Gaussian splats: PLYs imported by Blender's own importer go through Export, Stylize and the
Gaussian Splats engine; this add-on's objects and stylized results show, and render in Cycles, as native splats.
Before 5.3 (no GAUSSIAN_SPLAT point clouds) the add-on keeps its own display, which is checked too."""

from pathlib import Path

import bmesh
import bpy
import numpy as np
import pytest
from blender_test_files import C0, procedural_columns, read_ply_columns, write_ply
from stylize_helpers import write_scene, write_style

POINTCLOUD_TYPE = bpy.types.PointCloud.bl_rna.properties.get("type")  # absent before 5.3
HAS_NATIVE = POINTCLOUD_TYPE is not None and "GAUSSIAN_SPLAT" in POINTCLOUD_TYPE.enum_items.keys()
needs_native = pytest.mark.skipif(not HAS_NATIVE, reason=f"bpy {bpy.app.version_string} has no native Gaussian "
                                                         "splats (Blender 5.3+)")
RADIANCE = {"radiance:base": ("vector", 4), "scale": ("vector", 3), "rotation": ("value", 4)}


def blender_import(path: Path) -> bpy.types.Object:
    """File > Import > Stanford PLY, Blender's own importer."""
    assert bpy.ops.wm.ply_import(filepath=str(path)) == {'FINISHED'}
    obj = bpy.context.view_layer.objects.active
    assert obj.type == 'POINTCLOUD' and obj.data.type == 'GAUSSIAN_SPLAT'
    return obj


def our_import(path: Path, **options) -> bpy.types.Object:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(path), **options) == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def cloud_attribute(cloud, name: str) -> np.ndarray:
    """A point-cloud attribute as [N, width] (radiance:sh_<i> are float3)."""
    field, width = RADIANCE.get(name, ("vector", 3))
    values = np.empty(len(cloud.points) * width, np.float32)
    cloud.attributes[name].data.foreach_get(field, values)
    return values.reshape(-1, width)


def evaluated_clouds(obj: bpy.types.Object) -> list:
    """The point clouds the depsgraph makes of obj (its display modifier's output)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return [inst.object.data for inst in depsgraph.object_instances
            if inst.object.type == 'POINTCLOUD' and inst.object.original == obj]


def ulp(values: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(values.astype(np.float32))).astype(np.float64)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def look_from(scene: bpy.types.Scene, location, rotation) -> None:
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = location, rotation
    scene.camera = camera


def cycles_render(path: Path, size: int, samples: int) -> np.ndarray:
    """A Cycles CPU render of the scene camera as scene-linear RGBA [H, W, 4], top row first."""
    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = 'CPU', samples, False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = 'OPEN_EXR'
    scene.render.filepath = str(path)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], np.float32).reshape(size, size, 4)[::-1]
    bpy.data.images.remove(image)
    return pixels


@needs_native
def test_a_blender_import_exports_every_recoverable_property(addon, tmp_path: Path, capfd) -> None:
    """Blender's own import of a 3DGS PLY (normals, SH degree 3, three saturating opacities), exported by the
    add-on: a valid Inria PLY whose positions and colours are bit for bit the source's, opacities and scales to
    float32's precision, rotations normalised, and one warning naming the losses."""
    columns = procedural_columns(400, 3, seed=4, normals=True)
    columns["opacity"][:3] = [17.5, 25.0, 60.0]
    source = write_ply(tmp_path / "scan.ply", columns)
    obj = blender_import(source)
    stored = cloud_attribute(obj.data, "radiance:base")[:, 3]
    assert bpy.ops.export_scene.gaussian_splat(filepath=str(tmp_path / "out.ply")) == {'FINISHED'}
    output = capfd.readouterr()
    warnings = [line for line in (output.out + output.err).splitlines() if "is a Blender Gaussian splat" in line]
    assert len(warnings) == 1 and "3 opacities saturated to 1.0" in warnings[0] and "normals" in warnings[0]

    exported = read_ply_columns(tmp_path / "out.ply")
    assert list(exported) == list(columns)  # the Inria layout, normals included
    for name in ["x", "y", "z", "nx", "ny", "nz"] + [n for n in columns if n.startswith("f_")]:
        np.testing.assert_array_equal(exported[name], columns[name], err_msg=name)
    logits = columns["opacity"].astype(np.float64)
    a = stored.astype(np.float64)
    with np.errstate(divide="ignore"):
        bound = 3 * ulp(stored) / (a * (1 - a)) + ulp(columns["opacity"])
    error = np.abs(exported["opacity"] - logits)
    assert (error[3:] <= bound[3:]).all(), error[3:].max()
    assert (stored[:3] == 1.0).all() and (exported["opacity"][:3] > 16.0).all()
    for i in range(3):
        scale = np.exp(columns[f"scale_{i}"].astype(np.float64)).astype(np.float32)
        error = np.abs(exported[f"scale_{i}"] - columns[f"scale_{i}"].astype(np.float64))
        assert (error <= 3 * ulp(scale) / scale + ulp(columns[f"scale_{i}"])).all()
    quats = np.stack([columns[f"rot_{i}"] for i in range(4)], axis=1).astype(np.float64)
    np.testing.assert_allclose(np.stack([exported[f"rot_{i}"] for i in range(4)], axis=1),
                               quats / np.linalg.norm(quats, axis=1, keepdims=True), rtol=0, atol=3e-7)
    again = our_import(tmp_path / "out.ply")  # the add-on's strict 3DGS reader accepts it
    assert len(again.data.vertices) == 400


@needs_native
def test_a_blender_import_renders_through_the_gaussian_splats_engine(worker_addon, tmp_path: Path) -> None:
    """The same scene as Blender's own splat object and as the add-on's object gives the same F12 image."""
    ply = write_scene(tmp_path / "tiny")
    ours = our_import(ply, import_cameras=False)
    ours.rotation_euler = (0.0, 0.0, 0.0)
    native = blender_import(ply)
    scene = bpy.context.scene
    look_from(scene, (0.0, -2.6, 0.0), (np.pi / 2, 0.0, 0.0))
    scene.render.engine = 'GAUSSIAN_SPLATS'
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 40, 30, 100
    scene.render.film_transparent = True
    images = []
    for shown, hidden in ((native, ours), (ours, native)):
        shown.hide_render, hidden.hide_render = False, True
        scene.render.filepath = str(tmp_path / f"{shown.type}.exr")
        scene.render.image_settings.file_format = 'OPEN_EXR'
        assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
        image = bpy.data.images.load(scene.render.filepath)
        images.append(np.array(image.pixels[:]).reshape(30, 40, 4))
    assert images[0][..., 3].max() > 0.9 and (images[0][..., 3] > 0.5).mean() > 0.1  # the splats are in view
    assert np.abs(images[0] - images[1]).max() < 1e-3


@needs_native
@pytest.mark.slow
def test_stylize_a_blender_import_in_background_mode(worker_addon, tmp_path: Path) -> None:
    """A PLY imported by Blender's own importer is stylized (an orbit rig, as it has no cameras); the result is the
    add-on's splat object shown as native splats, with a warning about the conversion, and Cycles renders it
    where the exact engine does, in its colours."""
    source = blender_import(write_scene(tmp_path / "tiny"))
    positions = cloud_attribute(source.data, "position")
    props = bpy.context.scene.sos_stylize
    props.style_image = bpy.data.images.load(str(write_style(tmp_path / "style.png")))
    props.iterations, props.resolution, props.camera_source = 2, 32, 'ORBIT'
    assert bpy.ops.sos.stylize() == {'FINISHED'}
    messages = worker_addon.stylize.session.SESSION.messages
    assert sum("is a Blender Gaussian splat" in m.text for m in messages if m.level == 'WARNING') == 1
    result = bpy.data.objects[f"{source.name} (stylized)"]
    assert result.type == 'MESH' and worker_addon.splats.objects.is_splat_object(result)
    nodes = worker_addon.splats.display_nodes
    assert nodes.is_native_display(nodes.display_modifier(result))
    assert not source.visible_get() and source.hide_render
    clouds = evaluated_clouds(result)
    assert len(clouds) == 1 and clouds[0].type == 'GAUSSIAN_SPLAT' and len(clouds[0].points) == len(positions)
    np.testing.assert_array_equal(cloud_attribute(clouds[0], "position"), positions)
    dc = cloud_attribute(clouds[0], "radiance:base")[:, :3]
    assert np.abs(dc - cloud_attribute(source.data, "radiance:base")[:, :3]).max() > 1e-3  # stylized colours
    assert not result.material_slots
    scene = bpy.context.scene
    look_from(scene, (0.0, -2.6, 0.0), (np.pi / 2, 0.0, 0.0))
    cycles = cycles_render(tmp_path / "cycles.exr", size=32, samples=16)
    scene.render.engine = 'GAUSSIAN_SPLATS'
    scene.render.filepath = str(tmp_path / "exact.exr")
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    image = bpy.data.images.load(scene.render.filepath)
    exact = np.array(image.pixels[:]).reshape(32, 32, 4)[::-1]
    drawn, covered = cycles[..., 3] > 0.5, exact[..., 3] > 0.5
    assert drawn.sum() > 0.7 * covered.sum() > 100 and (drawn & covered).sum() > 0.95 * drawn.sum()
    both = (cycles[..., 3] > 0.9) & (exact[..., 3] > 0.9)
    difference = np.abs(cycles[both, :3] / cycles[both, 3:] - exact[both, :3] / exact[both, 3:]).mean()
    assert difference < 0.05  # linear-light blending and 16 samples; a colour-space mix-up would be ~0.2


@needs_native
def test_cycles_renders_our_splats_with_their_colour(addon, tmp_path: Path) -> None:
    """One nearly opaque Gaussian imported by the add-on: Cycles draws it as a native splat, in its DC colour
    (Blender decodes splat colours as sRGB to scene-linear), where the camera sees it, with no material."""
    colour = np.array([0.8, 0.45, 0.15])
    columns = {"x": [0.0], "y": [0.0], "z": [0.0], **{f"f_dc_{i}": [(colour[i] - 0.5) / C0] for i in range(3)},
               "opacity": [5.0], "scale_0": [np.log(0.3)], "scale_1": [np.log(0.3)], "scale_2": [np.log(0.3)],
               "rot_0": [1.0], "rot_1": [0.0], "rot_2": [0.0], "rot_3": [0.0]}
    obj = our_import(write_ply(tmp_path / "one.ply", {k: np.array(v) for k, v in columns.items()}), up_axis='Z')
    assert not obj.material_slots and all(not c.materials for c in evaluated_clouds(obj))
    look_from(bpy.context.scene, (0.0, -3.0, 0.0), (np.pi / 2, 0.0, 0.0))
    pixels = cycles_render(tmp_path / "one.exr", size=16, samples=32)
    centre = pixels[7:9, 7:9].reshape(-1, 4)  # stochastic coverage, lower off the Gaussian's centre
    assert (centre[:, 3] > 0.5).all(), centre[:, 3]
    np.testing.assert_allclose(centre[:, :3] / centre[:, 3:], np.tile(srgb_to_linear(colour), (4, 1)), rtol=1e-3)
    assert pixels[0, 0, 3] == pixels[0, -1, 3] == pixels[-1, 0, 3] == pixels[-1, -1, 3] == 0.0


def test_display_is_native_where_blender_has_native_splats(addon, tmp_path: Path) -> None:
    """5.3+: the import shows native splats whose attributes equal Blender's own import of the file, and deleting
    Gaussians keeps raw data and display in step. Before: the ellipsoid display, no radiance attributes."""
    columns = procedural_columns(300, 2, seed=8)
    path = write_ply(tmp_path / "s.ply", columns)
    obj = our_import(path)
    modes = bpy.ops.import_scene.gaussian_splat.get_rna_type().properties["display_mode"].enum_items.keys()
    nodes = addon.splats.display_nodes
    if not HAS_NATIVE:
        assert "NATIVE" not in modes and not nodes.is_native_display(nodes.display_modifier(obj))
        assert not any(name.startswith("radiance:") for name in obj.data.attributes.keys())
        return
    assert modes[0] == "NATIVE" and nodes.is_native_display(nodes.display_modifier(obj))
    [cloud] = evaluated_clouds(obj)
    reference = blender_import(path).data
    assert cloud.type == 'GAUSSIAN_SPLAT' and len(cloud.points) == 300
    np.testing.assert_array_equal(cloud_attribute(cloud, "position"), cloud_attribute(reference, "position"))
    for i in range(8):
        name = f"radiance:sh_{i}"
        np.testing.assert_array_equal(cloud_attribute(cloud, name), cloud_attribute(reference, name), err_msg=name)
    np.testing.assert_array_equal(cloud_attribute(cloud, "radiance:base")[:, :3],
                                  cloud_attribute(reference, "radiance:base")[:, :3])
    for name in ("radiance:base", "scale", "rotation"):
        np.testing.assert_allclose(cloud_attribute(cloud, name), cloud_attribute(reference, name), rtol=3e-7,
                                   atol=1e-7, err_msg=name)
    mesh = bmesh.new()
    mesh.from_mesh(obj.data)
    bmesh.ops.delete(mesh, geom=[v for v in mesh.verts if v.index % 3 == 0], context='VERTS')
    mesh.to_mesh(obj.data)
    mesh.free()
    obj.data.update()
    [cloud] = evaluated_clouds(obj)
    kept = np.arange(300) % 3 != 0
    np.testing.assert_array_equal(cloud_attribute(cloud, "radiance:sh_5"),
                                  cloud_attribute(reference, "radiance:sh_5")[kept])
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.export_scene.gaussian_splat(filepath=str(tmp_path / "out.ply")) == {'FINISHED'}
    exported = read_ply_columns(tmp_path / "out.ply")
    for name, values in columns.items():
        np.testing.assert_array_equal(exported[name], values[kept], err_msg=name)


@needs_native
def test_the_panel_shows_a_blender_import(addon, tmp_path: Path) -> None:
    blender_import(write_ply(tmp_path / "scan.ply", procedural_columns(25, 1)))
    calls: list = []
    recorder = type("Layout", (), {"__getattr__": lambda self, name: lambda *a, **k: calls.append((name, a, k))
                                   or self})
    bpy.types.VIEW3D_PT_gaussian_splats.draw(type("Panel", (), {"layout": recorder()})(), bpy.context)
    assert ("label", (), {"text": "25 Gaussians, SH degree 1 (Blender splats)"}) in calls
    assert "export_scene.gaussian_splat" in [args[0] for name, args, _ in calls if name == "operator"]
