"""File > Export operators: the active splat object as a 3DGS PLY, and cameras as an Inria cameras.json."""

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..cameras.collections import scene_cameras
from ..cameras.objects import export_records
from ..errors import SplatInputError, run_reported
from ..interchange.cameras import write_cameras_json
from ..splats.export import export_splat
from ..splats.objects import conversion_warning

CAMERA_FRAMES = [
    ('SPLAT', "Splat Data", "Poses in the data coordinates of the splat object the cameras are attached to, "
                            "as in the original 3DGS scene"),
    ('WORLD', "Blender World", "Poses in Blender world coordinates (pairs with a PLY exported with Apply Transform)"),
]


class EXPORT_SCENE_OT_gaussian_splat(bpy.types.Operator, ExportHelper):
    """Export the active splat object (or a Blender Gaussian splat object) as a 3D Gaussian Splatting PLY"""

    bl_idname = "export_scene.gaussian_splat"
    bl_label = "Export Gaussian Splat"

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={'HIDDEN'})
    apply_transform: BoolProperty(
        name="Apply Transform", default=False,
        description="Bake the object's transform into positions, rotations, scales and view-dependent colour "
                    "(rotation and uniform scale; non-uniform scale only for SH degree 0)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))
        context.view_layer.update()  # current matrix_world for the transform and camera poses

        def export() -> str:
            obj = context.view_layer.objects.active
            count = export_splat(obj, path, self.apply_transform)
            warning = conversion_warning(obj)
            if warning:
                self.report({'WARNING'}, warning)
            return f"Exported {count} Gaussians to {path.name}"

        return run_reported(self, export, path)


class EXPORT_SCENE_OT_gaussian_splat_cameras(bpy.types.Operator, ExportHelper):
    """Export Blender cameras as a 3DGS cameras.json (Inria format)"""

    bl_idname = "export_scene.gaussian_splat_cameras"
    bl_label = "Export Gaussian Splat Cameras"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})
    collection: StringProperty(name="Collection", default="",
                               description="Export the cameras of this collection and its children "
                                           "(empty: every camera in the scene)")
    frame: EnumProperty(name="Coordinates", items=CAMERA_FRAMES, default='SPLAT')

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop_search(self, "collection", bpy.data, "collections")
        self.layout.prop(self, "frame")

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))
        context.view_layer.update()  # current matrix_world for the transform and camera poses

        def export() -> str:
            cameras = scene_cameras(context.scene, self.collection)
            if not cameras:
                raise SplatInputError(f"no cameras to export in {self.collection or 'the scene'}")
            write_cameras_json(path, export_records(cameras, context.scene, self.frame == 'WORLD'))
            return f"Exported {len(cameras)} cameras to {path.name}"

        return run_reported(self, export, path)


def menu_export(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(EXPORT_SCENE_OT_gaussian_splat.bl_idname, text="Gaussian Splat (.ply)")
    self.layout.operator(EXPORT_SCENE_OT_gaussian_splat_cameras.bl_idname, text="Gaussian Splat Cameras (.json)")


CLASSES = (EXPORT_SCENE_OT_gaussian_splat, EXPORT_SCENE_OT_gaussian_splat_cameras)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.TOPBAR_MT_file_export.append(menu_export)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(menu_export)
    _unregister_classes()
