"""File > Import operators: a 3DGS PLY (with the cameras.json found beside it) and a cameras.json alone.

Everything is read and validated before anything is created, so a bad file leaves the scene untouched.
"""

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..cameras.objects import FRAME_KEY, create_camera_objects, use_camera
from ..errors import SplatInputError
from ..interchange.cameras import CameraRecord, find_cameras_file, read_cameras_json
from ..interchange.ply import SplatData
from ..io.up_axis import UP_AXIS_ITEMS, up_axis_rotation
from ..outliner import new_collection
from ..splats.display_nodes import DISPLAY_INPUTS, add_display_modifier, add_native_display_modifier
from ..splats.native_objects import native_splats_supported
from ..splats.objects import create_splat_object, is_splat_object, read_splat_file

NATIVE_MODE = ('NATIVE', "Gaussian Splats", "Blender's own Gaussian splats: EEVEE and Cycles draw and render them "
                                             "with the rest of the scene")
DISPLAY_MODES = ([NATIVE_MODE] if native_splats_supported() else []) + [  # the first one is the default
    ('ELLIPSOIDS', "Ellipsoids", "Each shown Gaussian as an oriented ellipsoid"),
    ('POINTS', "Points", "Each shown Gaussian as a point (lighter)"),
]


def scene_name(ply_path: Path) -> str:
    """Name of the scene a PLY belongs to: the 3DGS output folder for <out>/point_cloud/iteration_N/point_cloud.ply,
    the folder for other point_cloud.ply files, else the file name."""
    parent = ply_path.parent
    if parent.name.startswith("iteration_") and parent.parent.name == "point_cloud" and parent.parent.parent.name:
        return parent.parent.parent.name
    if ply_path.stem == "point_cloud" and parent.name:
        return parent.name
    return ply_path.stem


def make_active(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Select obj alone and make it active, as importers do."""
    for other in context.view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def import_cameras(context: bpy.types.Context, records: list[CameraRecord], collection: bpy.types.Collection,
                   frame: bpy.types.Object) -> None:
    """Cameras linked into collection and parented to frame; the first becomes the scene camera."""
    cameras = create_camera_objects(records, collection, frame)
    use_camera(context.scene, cameras[0])


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
            ply = read_splat_file(path)
            cameras_path = find_cameras_file(path) if self.import_cameras else None
            records = read_cameras_json(cameras_path) if cameras_path else []
        except SplatInputError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        obj = self.create_scene(context, ply, path, records)
        self.report({'INFO'}, f"Imported {len(obj.data.vertices)} Gaussians (SH degree {ply.header.sh_degree})"
                              f" and {len(records)} cameras from {path.name}")
        return {'FINISHED'}

    def create_scene(self, context: bpy.types.Context, ply: SplatData, path: Path,
                     records: list[CameraRecord]) -> bpy.types.Object:
        """The '<scene>' collection with the splat object, its display, and its cameras."""
        name = scene_name(path)
        collection = new_collection(name, context.scene.collection)
        obj = create_splat_object(ply, name, path)
        obj.rotation_euler = up_axis_rotation(self.up_axis)
        collection.objects.link(obj)
        if self.display_mode == 'NATIVE':
            add_native_display_modifier(obj)
        else:
            add_display_modifier(obj, self.display_mode == 'POINTS', self.max_splats, self.splat_size)
        if records:
            import_cameras(context, records, new_collection(f"{name} Cameras", collection), obj)
        make_active(context, obj)
        return obj


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
        active = context.view_layer.objects.active
        name = path.parent.name or path.stem
        if is_splat_object(active):
            collection = new_collection(f"{name} Cameras", active.users_collection[0])
            frame = active
        else:
            collection = new_collection(f"{name} Cameras", context.scene.collection)
            frame = self.new_frame(collection, name)
        import_cameras(context, records, collection, frame)
        self.report({'INFO'}, f"Imported {len(records)} cameras from {path.name}")
        return {'FINISHED'}

    def new_frame(self, collection: bpy.types.Collection, name: str) -> bpy.types.Object:
        """An empty standing for the 3DGS world (rotated by the up axis), for cameras imported without a splat."""
        frame = bpy.data.objects.new(f"{name} Frame", None)
        frame.empty_display_type = 'ARROWS'
        frame.rotation_euler = up_axis_rotation(self.up_axis)
        frame[FRAME_KEY] = True
        collection.objects.link(frame)
        return frame


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
