"""Bring a finished job back: the stylized splat as a new object next to the original, its render cameras
and a turntable camera. The original object is hidden, never changed; if anything fails half-way, what was
created is removed again and the original stays as it was.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from bpy_extras import anim_utils

from ..cameras.objects import create_camera_objects, to_blender_matrix
from ..cameras.orbit import data_up, new_camera, splat_points
from ..cameras.pinhole import render_size
from ..interchange import orbit
from ..interchange.cameras import look_at_rotation, read_cameras_json
from ..interchange.protocol import OUTPUT_CAMERAS_FILE, STYLIZED_FILE
from ..io.pinhole import blender_matrix_from_opencv
from ..outliner import new_collection
from ..splats.display_nodes import (DISPLAY_INPUTS, add_display_modifier, add_native_display_modifier,
                                    display_modifier, get_display_input, is_native_display, set_display_input)
from ..splats.edit_mode import leave_edit_mode
from ..splats.native_objects import native_splats_supported
from ..splats.objects import create_splat_object, read_splat_file

STYLIZED_SUFFIX = " (stylized)"
RESULT_KEY = "sos_stylized_from"
TURNTABLE_ELEVATION_DEG = 20.0


def display_settings(source: bpy.types.Object) -> dict[str, bool | int | float]:
    """The source's display inputs (defaults where it has no display modifier)."""
    modifier = display_modifier(source)
    if modifier is None or modifier.node_group is None:
        return {name: default for name, (_, default) in DISPLAY_INPUTS.items()}
    return {name: get_display_input(modifier, name) for name in DISPLAY_INPUTS}


def copy_display(source: bpy.types.Object, target: bpy.types.Object) -> None:
    """Give target the same display as source: native splats for a native display, or for a source without a
    display modifier (Blender's own splat objects) where Blender has them; else the same ellipsoids or points."""
    modifier = display_modifier(source)
    if is_native_display(modifier) or (modifier is None and native_splats_supported()):
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
    """Delete objects (with their data) and collections made by a failed import."""
    for item in reversed(items):
        if isinstance(item, bpy.types.Collection):
            bpy.data.collections.remove(item)
            continue
        data = item.data
        bpy.data.objects.remove(item)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)
        elif isinstance(data, bpy.types.Camera) and data.users == 0:
            bpy.data.cameras.remove(data)


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


def import_result(output: Path, source: bpy.types.Object, scene: bpy.types.Scene) -> bpy.types.Object:
    """Create '<name> (stylized)' from output/stylized.ply with its render and turntable cameras."""
    ply_path = output / STYLIZED_FILE
    ply = read_splat_file(ply_path)
    records = read_cameras_json(output / OUTPUT_CAMERAS_FILE)
    created: list[bpy.types.ID] = []
    try:
        obj = create_splat_object(ply, source.name + STYLIZED_SUFFIX, ply_path)
        created.append(obj)
        obj[RESULT_KEY] = source.name
        home = source.users_collection[0] if source.users_collection else scene.collection
        home.objects.link(obj)
        copy_transform(source, obj)
        copy_display(source, obj)
        cameras = new_collection(f"{obj.name} Render Cameras", home)
        created.append(cameras)
        created.extend(create_camera_objects(records, cameras, obj))
        created.extend(add_turntable(obj, data_up(source), scene, cameras))
    except Exception:
        remove_created(created)
        raise
    hide_original(source, scene)
    make_active(obj, scene)
    return obj
