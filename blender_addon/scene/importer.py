"""Importing a 3DGS scene: a PLY (with the cameras.json found beside it) as a '<scene>' collection holding the splat
object, its display and its cameras; or a cameras.json alone, attached to the active splat object or to a new
frame empty.

Everything is read and validated (read_scene, read_cameras_json) before anything is created, so a bad file
leaves the Blender scene untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy

from ..cameras.objects import FRAME_KEY, create_camera_objects, use_camera
from ..interchange.cameras import CameraRecord, find_cameras_file, read_cameras_json
from ..interchange.ply import SplatData
from ..io.scene_name import scene_name
from ..io.up_axis import up_axis_rotation
from ..outliner import new_collection
from ..splats.display_nodes import add_display_modifier, add_native_display_modifier
from ..splats.objects import create_splat_object, is_splat_object, read_splat_file

NATIVE = 'NATIVE'  # the display mode that shows Blender's own Gaussian splats (5.3+)
POINTS = 'POINTS'


@dataclass(frozen=True)
class SceneOptions:
    """How an imported scene is placed and shown: the data's up axis (io/up_axis.py) and the display mode
    (NATIVE, ELLIPSOIDS or POINTS) with the ellipsoid and point displays' Max Splats and Size."""

    up_axis: str
    display_mode: str
    max_splats: int
    size: float


def read_scene(path: Path, with_cameras: bool) -> tuple[SplatData, list[CameraRecord]]:
    """The PLY and, when asked for, the cameras found beside it (interchange.cameras.find_cameras_file), both
    validated; raises SplatInputError before anything is created."""
    ply = read_splat_file(path)
    cameras_path = find_cameras_file(path) if with_cameras else None
    return ply, read_cameras_json(cameras_path) if cameras_path else []


def create_scene(context: bpy.types.Context, ply: SplatData, path: Path, records: list[CameraRecord],
                 options: SceneOptions) -> bpy.types.Object:
    """The '<scene>' collection with the splat object, its display, and its cameras; the splat becomes the
    active object and its first camera the scene camera."""
    name = scene_name(path)
    collection = new_collection(name, context.scene.collection)
    obj = create_splat_object(ply, name, path)
    obj.rotation_euler = up_axis_rotation(options.up_axis)
    collection.objects.link(obj)
    if options.display_mode == NATIVE:
        add_native_display_modifier(obj)
    else:
        add_display_modifier(obj, options.display_mode == POINTS, options.max_splats, options.size)
    if records:
        import_cameras(context, records, new_collection(f"{name} Cameras", collection), obj)
    make_active(context, obj)
    return obj


def attach_cameras(context: bpy.types.Context, records: list[CameraRecord], path: Path, up_axis: str) -> None:
    """Cameras of a cameras.json imported alone: attached to the active splat object, or else to a new frame
    empty (rotated by up_axis) that stands for the 3DGS world."""
    active = context.view_layer.objects.active
    name = path.parent.name or path.stem
    if is_splat_object(active):
        collection = new_collection(f"{name} Cameras", active.users_collection[0])
        frame = active
    else:
        collection = new_collection(f"{name} Cameras", context.scene.collection)
        frame = new_frame(collection, name, up_axis)
    import_cameras(context, records, collection, frame)


def import_cameras(context: bpy.types.Context, records: list[CameraRecord], collection: bpy.types.Collection,
                   frame: bpy.types.Object) -> None:
    """Cameras linked into collection and parented to frame; the first becomes the scene camera."""
    cameras = create_camera_objects(records, collection, frame)
    use_camera(context.scene, cameras[0])


def new_frame(collection: bpy.types.Collection, name: str, up_axis: str) -> bpy.types.Object:
    """An empty standing for the 3DGS world (rotated by the up axis), for cameras imported without a splat."""
    frame = bpy.data.objects.new(f"{name} Frame", None)
    frame.empty_display_type = 'ARROWS'
    frame.rotation_euler = up_axis_rotation(up_axis)
    frame[FRAME_KEY] = True
    collection.objects.link(frame)
    return frame


def make_active(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Select obj alone and make it active, as importers do."""
    for other in context.view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
