"""File > Import operators: a 3DGS PLY (with the cameras.json found beside it) and a cameras.json alone, over
scene/importer.py (which reads and validates everything before it creates anything).
"""

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..errors import SplatInputError
from ..interchange.cameras import read_cameras_json
from ..io.up_axis import UP_AXIS_ITEMS
from ..scene.importer import NATIVE, POINTS, SceneOptions, attach_cameras, create_scene, read_scene
from ..splats.display_nodes import DISPLAY_INPUTS
from ..splats.native_objects import native_splats_supported

NATIVE_MODE = (NATIVE, "Gaussian Splats", "Blender's own Gaussian splats: EEVEE and Cycles draw and render them "
                                          "with the rest of the scene")
DISPLAY_MODES = ([NATIVE_MODE] if native_splats_supported() else []) + [  # the first one is the default
    ('ELLIPSOIDS', "Ellipsoids", "Each shown Gaussian as an oriented ellipsoid"),
    (POINTS, "Points", "Each shown Gaussian as a point (lighter)"),
]


class IMPORT_SCENE_OT_gaussian_splat(bpy.types.Operator, ImportHelper):
    """Import a 3D Gaussian Splatting PLY as a splat object, with the cameras.json found next to it"""

    bl_idname = "import_scene.gaussian_splat"
    bl_label = "Import Gaussian Splat"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={'HIDDEN'})
    up_axis: EnumProperty(name="Up Axis", items=UP_AXIS_ITEMS, default='-Y',
                          description="The data's up direction, applied as the object's rotation only")
    import_cameras: BoolProperty(
        name="Import Cameras", default=True,
        description="Also import cameras.json from the PLY's folder (or the one *cameras*.json there), "
                    "or from up to two folders above it, as 3DGS output folders hold it")
    display_mode: EnumProperty(name="Display", items=DISPLAY_MODES, default=DISPLAY_MODES[0][0])
    max_splats: IntProperty(name="Max Splats", default=DISPLAY_INPUTS["Max Splats"][1], min=0,
                            description="Ellipsoids and Points: show at most this many Gaussians (0: all)")
    splat_size: FloatProperty(name="Size", default=DISPLAY_INPUTS["Size"][1], min=0.0,
                              description="Ellipsoids and Points: radius in standard deviations")

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))
        try:
            ply, records = read_scene(path, self.import_cameras)
        except SplatInputError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        options = SceneOptions(self.up_axis, self.display_mode, self.max_splats, self.splat_size)
        obj = create_scene(context, ply, path, records, options)
        self.report({'INFO'}, f"Imported {len(obj.data.vertices)} Gaussians (SH degree {ply.header.sh_degree})"
                              f" and {len(records)} cameras from {path.name}")
        return {'FINISHED'}


class IMPORT_SCENE_OT_gaussian_splat_cameras(bpy.types.Operator, ImportHelper):
    """Import 3DGS cameras (Inria cameras.json) as Blender cameras, attached to the active splat object"""

    bl_idname = "import_scene.gaussian_splat_cameras"
    bl_label = "Import Gaussian Splat Cameras"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})
    up_axis: EnumProperty(name="Up Axis", items=UP_AXIS_ITEMS, default='-Y',
                          description="The data's up direction, used when no splat object is active")

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))
        try:
            records = read_cameras_json(path)
        except SplatInputError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        attach_cameras(context, records, path, self.up_axis)
        self.report({'INFO'}, f"Imported {len(records)} cameras from {path.name}")
        return {'FINISHED'}


def menu_import(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(IMPORT_SCENE_OT_gaussian_splat.bl_idname, text="Gaussian Splat (.ply)")
    self.layout.operator(IMPORT_SCENE_OT_gaussian_splat_cameras.bl_idname, text="Gaussian Splat Cameras (.json)")


CLASSES = (IMPORT_SCENE_OT_gaussian_splat, IMPORT_SCENE_OT_gaussian_splat_cameras)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    _unregister_classes()
