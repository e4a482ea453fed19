"""Bring a finished job back: the stylized splat as a new object next to the original, its render cameras
and a turntable camera. The original object is hidden, never changed; if anything fails half-way, what was
created is removed again and the original stays as it was.

A result keeps its capture's colours for Mix (splats/mix.py, mix_nodes.py), from the job's scene.ply and the
engine's origin.npy. A preview (Preview: the closed-form preview, 0 iterations) is named '<name> (preview)'; the
next result of the same source, preview or stylized, replaces it: the preview, its cameras and their data are
removed once the new result is in place.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import bpy
import numpy as np
from bpy_extras import anim_utils

from ..cameras.objects import create_camera_objects, to_blender_matrix
from ..cameras.orbit import data_up, new_camera, splat_points
from ..cameras.pinhole import render_size
from ..interchange import orbit
from ..interchange.cameras import look_at_rotation, read_cameras_json
from ..interchange.ply import SplatData, read_ply
from ..interchange.protocol import ORIGIN_FILE, OUTPUT_CAMERAS_FILE, STYLIZED_FILE
from ..io.mix import MixLayout, capture_columns, read_origin
from ..io.pinhole import blender_matrix_from_opencv
from ..outliner import new_collection
from ..splats.display_nodes import (DISPLAY_INPUTS, add_display_modifier, add_native_display_modifier,
                                    display_modifier, get_display_input, is_native_display, set_display_input)
from ..splats.edit_mode import leave_edit_mode
from ..splats.mix import add_mix
from ..splats.mix_nodes import add_mix_modifier
from ..splats.native_objects import native_splats_supported
from ..splats.objects import create_splat_object, is_gaussian_object, read_splat_file

STYLIZED_SUFFIX = " (stylized)"
PREVIEW_SUFFIX = " (preview)"
RESULT_KEY = "sos_stylized_from"  # the source's name when the result was made
SOURCE_KEY = "sos_source"  # the source object itself (follows renames; None once it is deleted)
PREVIEW_KEY = "sos_preview"  # True on a preview result
CAMERAS_KEY = "sos_render_cameras"  # the result's Render Cameras collection
TURNTABLE_ELEVATION_DEG = 20.0
BLENDER_SUFFIX = re.compile(r"\.\d{3,}$")  # what Blender appends to a name already taken (".001")


def display_settings(source: bpy.types.Object) -> dict[str, bool | int | float]:
    """The source's display inputs (defaults where it has no display modifier)."""
    modifier = display_modifier(source)
    if modifier is None or modifier.node_group is None:
        return {name: default for name, (_, default) in DISPLAY_INPUTS.items()}
    return {name: get_display_input(modifier, name) for name in DISPLAY_INPUTS}


def native_display_of(source: bpy.types.Object) -> bool:
    """Whether a result of source shows as native splats: for a native display, or for a source without a display
    modifier (Blender's own splat objects) where Blender has them."""
    modifier = display_modifier(source)
    return is_native_display(modifier) or (modifier is None and native_splats_supported())


def copy_display(source: bpy.types.Object, target: bpy.types.Object) -> None:
    """Give target the same display as source: native splats (native_display_of), else the same ellipsoids or
    points."""
    if native_display_of(source):
        add_native_display_modifier(target)
        return
    values = display_settings(source)
    modifier = add_display_modifier(target, bool(values["Points Only"]), int(values["Max Splats"]),
                                    float(values["Size"]))
    set_display_input(modifier, "Every Nth", int(values["Every Nth"]))


def copy_transform(source: bpy.types.Object, target: bpy.types.Object) -> None:
    """Same parent, parent inverse, rotation mode and local transform."""
    target.parent = source.parent
    target.matrix_parent_inverse = source.matrix_parent_inverse.copy()
    target.rotation_mode = source.rotation_mode
    target.matrix_basis = source.matrix_basis.copy()


def fcurves_of(obj: bpy.types.Object):
    """The F-curves animating obj (slotted actions in Blender 4.4+, the action's own list before)."""
    animation = obj.animation_data
    get_channelbag = getattr(anim_utils, "action_get_channelbag_for_slot", None)
    if get_channelbag is None:
        return animation.action.fcurves
    channelbag = get_channelbag(animation.action, animation.action_slot)
    return channelbag.fcurves if channelbag is not None else []


def spin(pivot: bpy.types.Object, scene: bpy.types.Scene) -> None:
    """One linear turn of pivot about its local Z over the scene's frame range (frame_end + 1 = full turn)."""
    pivot.rotation_mode = 'ZYX'  # Z applied first: a turn about the pivot's own Z axis
    start_angle = pivot.rotation_euler[2]
    pivot.keyframe_insert("rotation_euler", index=2, frame=scene.frame_start)
    pivot.rotation_euler[2] = start_angle + 2 * math.pi
    pivot.keyframe_insert("rotation_euler", index=2, frame=scene.frame_end + 1)
    pivot.rotation_euler[2] = start_angle
    for curve in fcurves_of(pivot):
        for point in curve.keyframe_points:
            point.interpolation = 'LINEAR'


def add_turntable(obj: bpy.types.Object, up: np.ndarray, scene: bpy.types.Scene,
                  collection: bpy.types.Collection) -> list[bpy.types.Object]:
    """An empty at the scene's centre, turning about `up` (data coordinates) over the frame range, carrying a
    camera."""
    centre, radius = orbit.framing_sphere(*splat_points(obj))
    side = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    frame = np.eye(4)
    frame[:3, :3] = np.stack([side, np.cross(up, side), up], axis=1)
    frame[:3, 3] = centre
    pivot = bpy.data.objects.new(f"{obj.name} Turntable", None)
    pivot.empty_display_type = 'CIRCLE'
    pivot.empty_display_size = radius
    pivot.parent = obj
    pivot.rotation_mode = 'ZYX'
    pivot.matrix_basis = to_blender_matrix(frame)
    collection.objects.link(pivot)
    spin(pivot, scene)
    elevation = math.radians(TURNTABLE_ELEVATION_DEG)
    distance = orbit.framing_distance(radius, *render_size(scene.render))
    position = distance * np.array([math.cos(elevation), 0.0, math.sin(elevation)])
    matrix = blender_matrix_from_opencv(look_at_rotation(position, np.zeros(3), np.array([0.0, 0.0, 1.0])), position)
    return [pivot, new_camera(f"{obj.name} Turntable Camera", pivot, matrix, collection)]


def remove_created(items: list[bpy.types.ID]) -> None:
    """Delete objects (with their data, animation and Mix node group where nothing else uses them) and
    collections made for a result, in reverse order of making."""
    for item in reversed(items):
        if isinstance(item, bpy.types.Collection):
            bpy.data.collections.remove(item)
            continue
        data = item.data
        action = item.animation_data.action if item.animation_data is not None else None
        groups = [m.node_group for m in item.modifiers if m.type == 'NODES' and m.node_group is not None]
        bpy.data.objects.remove(item)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)
        elif isinstance(data, bpy.types.Camera) and data.users == 0:
            bpy.data.cameras.remove(data)
        if action is not None and action.users == 0:
            bpy.data.actions.remove(action)
        for group in groups:
            if group.users == 0:
                bpy.data.node_groups.remove(group)


def preview_source(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The object a preview result was made from, while it exists; None for anything else."""
    source = obj.get(SOURCE_KEY) if obj is not None and obj.get(PREVIEW_KEY) else None
    return source if isinstance(source, bpy.types.Object) and is_gaussian_object(source) else None


def previews_of(source: bpy.types.Object) -> list[bpy.types.Object]:
    """The preview results made from source."""
    return [obj for obj in bpy.data.objects if obj.get(PREVIEW_KEY) and obj.get(SOURCE_KEY) == source]


def remove_result(obj: bpy.types.Object) -> None:
    """Delete a result object with what was made for it: its render and turntable cameras (those still in its
    Render Cameras collection), that collection when nothing else is left in it, and their data."""
    cameras = obj.get(CAMERAS_KEY)
    children = obj.children_recursive
    made = [o for o in cameras.objects if o in children] if cameras is not None else []
    remove_created([obj, *made])
    if cameras is not None and not cameras.objects and not cameras.children:
        bpy.data.collections.remove(cameras)


def rename_result(obj: bpy.types.Object, name: str) -> None:
    """Give a result the names it would have had without the preview it replaced (which held them while it was
    made): what is named after it (its mesh, Render Cameras, turntable and their data and action) starts with
    ``name``, and its render cameras take back the lowest free suffix of their own names."""
    old = obj.name
    if old != name and name in bpy.data.objects:
        return  # taken by something else: the result keeps the name Blender gave it
    cameras = obj.get(CAMERAS_KEY)
    objects = [obj, *(cameras.objects if cameras is not None else ())]
    actions = [o.animation_data.action for o in objects if o.animation_data and o.animation_data.action]
    for item in [*objects, *(o.data for o in objects if o.data is not None), *actions,
                 *([cameras] if cameras is not None else [])]:
        if old != name and item.name.startswith(old):
            item.name = name + item.name[len(old):]
        elif isinstance(item, (bpy.types.Object, bpy.types.Camera)):
            item.name = BLENDER_SUFFIX.sub("", item.name)  # Blender adds the lowest free suffix again


def keep_capture(obj: bpy.types.Object, ply: SplatData, capture_path: Path | None,
                 origin_path: Path) -> MixLayout | None:
    """Keep the capture's colours on a new result for Mix; the layout its Mix modifier needs, or None when the job
    folder cannot tell which capture row each result row comes from."""
    if capture_path is None or not capture_path.is_file():
        return None
    capture = read_ply(capture_path)
    origin = read_origin(origin_path, capture.count, ply.count)
    if origin is None:
        return None
    captures = capture_columns(capture.columns(), ply.columns(), origin)
    add_mix(obj, captures)
    return MixLayout.of(captures)


def hide_original(source: bpy.types.Object, scene: bpy.types.Scene) -> None:
    """Hide the original in the viewport (every view layer holding it) and in renders; one in Edit mode (a region
    selected there) goes back to Object mode first, with its edits, as hidden objects stay in their mode."""
    leave_edit_mode(source)
    source.hide_render = True
    for view_layer in scene.view_layers:
        if source.name in view_layer.objects:
            source.hide_set(True, view_layer=view_layer)


def make_active(obj: bpy.types.Object, scene: bpy.types.Scene) -> None:
    """Select obj alone and make it active in every view layer that holds it."""
    for view_layer in scene.view_layers:
        if obj.name not in view_layer.objects:
            continue
        for other in view_layer.objects:
            if other.select_get(view_layer=view_layer):
                other.select_set(False, view_layer=view_layer)
        obj.select_set(True, view_layer=view_layer)
        view_layer.objects.active = obj


def import_result(output: Path, source: bpy.types.Object, scene: bpy.types.Scene, capture: Path | None = None,
                  preview: bool = False) -> bpy.types.Object:
    """Create '<name> (stylized)' (or '<name> (preview)') from output/stylized.ply with its render and turntable
    cameras and, from ``capture`` (the job's scene.ply) and output/origin.npy, its capture colours for Mix; then
    remove the source's earlier previews."""
    ply_path = output / STYLIZED_FILE
    ply = read_splat_file(ply_path)
    records = read_cameras_json(output / OUTPUT_CAMERAS_FILE)
    replaced = previews_of(source)
    created: list[bpy.types.ID] = []
    try:
        obj = create_splat_object(ply, source.name + (PREVIEW_SUFFIX if preview else STYLIZED_SUFFIX), ply_path)
        created.append(obj)
        obj[RESULT_KEY], obj[SOURCE_KEY], obj[PREVIEW_KEY] = source.name, source, preview
        home = source.users_collection[0] if source.users_collection else scene.collection
        home.objects.link(obj)
        copy_transform(source, obj)
        layout = keep_capture(obj, ply, capture, output / ORIGIN_FILE)
        if layout is not None:
            add_mix_modifier(obj, layout, native_display_of(source))
        copy_display(source, obj)
        cameras = new_collection(f"{obj.name} Render Cameras", home)
        created.append(cameras)
        obj[CAMERAS_KEY] = cameras
        created.extend(create_camera_objects(records, cameras, obj))
        created.extend(add_turntable(obj, data_up(source), scene, cameras))
    except Exception:
        remove_created(created)
        raise
    for old in replaced:
        remove_result(old)
    if replaced:
        rename_result(obj, source.name + (PREVIEW_SUFFIX if preview else STYLIZED_SUFFIX))
    hide_original(source, scene)
    make_active(obj, scene)
    return obj
