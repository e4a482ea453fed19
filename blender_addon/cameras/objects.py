"""3DGS cameras as Blender cameras, and back.

Imported cameras are parented to a frame object, the splat object (or, for cameras imported alone, an
empty carrying the up-axis rotation), so their local matrices are poses in the scene's data coordinates and
they follow the splat wherever it is moved. Export gives poses in the frame's data coordinates.

Blender stores lens, shift and matrices in 32-bit floats, which would cost about 1e-7 relative precision.
So each imported camera also keeps its cameras.json entry (custom property, exact decimal text); export
writes that entry back unchanged while the camera's Blender settings still agree with it to 32-bit
precision, and the values derived from Blender as soon as the camera is edited.
"""

from __future__ import annotations

import json

import bpy
import numpy as np

from ..errors import SplatInputError
from ..interchange.cameras import CameraRecord, parse_record, record_to_json
from ..io.pinhole import (BlenderIntrinsics, blender_intrinsics, blender_matrix_from_opencv, intrinsics_matrix,
                         opencv_pose_from_blender)
from ..splats.objects import SPLAT_KEY
from .pinhole import render_size

CAMERA_KEY = "gaussian_splat_camera"
FRAME_KEY = "gaussian_splat_frame"
MATCH_TOLERANCE = 1e-5  # relative; 32-bit floats hold about 6e-8
CLIP_START, CLIP_END = 0.01, 1000.0


def to_blender_matrix(matrix: np.ndarray) -> list[list[float]]:
    """A 4x4 numpy matrix as Blender's matrix properties take it (a nested sequence read column by column)."""
    return np.asarray(matrix, float).T.tolist()


def create_camera_objects(records: list[CameraRecord], collection: bpy.types.Collection,
                          frame: bpy.types.Object) -> list[bpy.types.Object]:
    """One Blender camera per record, linked into collection and parented to frame."""
    objects = []
    for record in records:
        name = record.img_name or f"camera_{record.id}"
        data = bpy.data.cameras.new(name)
        apply_intrinsics(data, blender_intrinsics(record.fx, record.fy, *record.principal_point,
                                                  record.width, record.height))
        obj = bpy.data.objects.new(name, data)
        obj.parent = frame
        obj.matrix_basis = to_blender_matrix(blender_matrix_from_opencv(record.rotation, record.position))
        obj[CAMERA_KEY] = json.dumps(record_to_json(record))
        collection.objects.link(obj)
        objects.append(obj)
    return objects


def apply_intrinsics(data: bpy.types.Camera, intrinsics: BlenderIntrinsics) -> None:
    """Set lens, sensor and shift of a camera data-block."""
    data.sensor_fit = intrinsics.sensor_fit
    data.sensor_width = intrinsics.sensor_width
    data.sensor_height = intrinsics.sensor_height
    data.lens = intrinsics.lens
    data.shift_x = intrinsics.shift_x
    data.shift_y = intrinsics.shift_y
    data.clip_start, data.clip_end = CLIP_START, CLIP_END


def use_camera(scene: bpy.types.Scene, obj: bpy.types.Object) -> None:
    """Make obj the scene camera and set the render size and pixel aspect its 3DGS camera needs."""
    record = stored_record(obj)
    intrinsics = blender_intrinsics(record.fx, record.fy, *record.principal_point, record.width, record.height)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = record.width, record.height, 100
    render.pixel_aspect_x, render.pixel_aspect_y = intrinsics.pixel_aspect_x, intrinsics.pixel_aspect_y
    scene.camera = obj


def stored_record(obj: bpy.types.Object) -> CameraRecord | None:
    """The cameras.json entry kept on an imported camera, if any."""
    text = obj.get(CAMERA_KEY)
    if not isinstance(text, str):
        return None
    try:
        entry = json.loads(text)
    except ValueError as error:
        raise SplatInputError(f"{obj.name}: custom property {CAMERA_KEY!r} is not valid JSON ({error})") from error
    return parse_record(entry, 0, f"{obj.name}: custom property {CAMERA_KEY!r}: ")


def frame_object(obj: bpy.types.Object) -> bpy.types.Object | None:
    """The nearest ancestor that is a splat object or a camera frame: its data coordinates are the 3DGS world."""
    parent = obj.parent
    while parent is not None and SPLAT_KEY not in parent.keys() and FRAME_KEY not in parent.keys():
        parent = parent.parent
    return parent


def camera_record(obj: bpy.types.Object, scene: bpy.types.Scene, frame: np.ndarray, index: int) -> CameraRecord:
    """The cameras.json entry of a Blender camera, its pose in the coordinates that frame (4x4) maps to world."""
    if obj.type != 'CAMERA' or obj.data.type != 'PERSP':
        raise SplatInputError(f"{obj.name}: not a perspective camera")
    stored = stored_record(obj)
    intrinsics = camera_intrinsics(obj.data, scene, stored)
    k = intrinsics_matrix(intrinsics)
    rotation, position = opencv_pose_from_blender(np.linalg.inv(frame) @ np.array(obj.matrix_world))
    centred = np.allclose(k[:2, 2], (intrinsics.width / 2, intrinsics.height / 2),
                          rtol=0, atol=MATCH_TOLERANCE * max(intrinsics.width, intrinsics.height))
    keep_centre = stored is not None and stored.cx is not None
    derived = CameraRecord(
        id=stored.id if stored else index, img_name=stored.img_name if stored else obj.name,
        width=intrinsics.width, height=intrinsics.height, position=position, rotation=rotation,
        fx=k[0, 0], fy=k[1, 1], cx=None if centred and not keep_centre else k[0, 2],
        cy=None if centred and not keep_centre else k[1, 2], extra=stored.extra if stored else {})
    return stored if stored is not None and same_camera(derived, stored) else derived


def camera_intrinsics(data: bpy.types.Camera, scene: bpy.types.Scene, stored: CameraRecord | None) -> BlenderIntrinsics:
    """Intrinsics at the camera's own 3DGS image size when it has one, else at the scene's render size."""
    if stored is not None:
        own = blender_intrinsics(stored.fx, stored.fy, *stored.principal_point, stored.width, stored.height)
        width, height, aspect_x, aspect_y = stored.width, stored.height, own.pixel_aspect_x, own.pixel_aspect_y
    else:
        width, height = render_size(scene.render)
        aspect_x, aspect_y = scene.render.pixel_aspect_x, scene.render.pixel_aspect_y
    return BlenderIntrinsics(data.lens, data.sensor_width, data.sensor_height, data.sensor_fit,
                             data.shift_x, data.shift_y, width, height, aspect_x, aspect_y)


def same_camera(a: CameraRecord, b: CameraRecord) -> bool:
    """True when two entries agree to 32-bit float precision (so b is a's exact form)."""
    scale = max(a.width, a.height)
    return ((a.width, a.height) == (b.width, b.height) and close(a.fx, b.fx, b.fx) and close(a.fy, b.fy, b.fy)
            and close(a.principal_point, b.principal_point, scale) and close(a.rotation, b.rotation, 1.0)
            and close(a.position, b.position, 1.0 + float(np.linalg.norm(b.position))))


def close(x: float | np.ndarray, y: float | np.ndarray, size: float) -> bool:
    """|x - y| <= MATCH_TOLERANCE * size, elementwise."""
    return bool(np.all(np.abs(np.subtract(x, y)) <= MATCH_TOLERANCE * size))


def export_records(cameras: list[bpy.types.Object], scene: bpy.types.Scene, world_frame: bool) -> list[CameraRecord]:
    """Entries for cameras in file order (by id, then name); poses in each camera's frame unless world_frame."""
    records = []
    for index, obj in enumerate(sorted(cameras, key=export_order)):
        frame = frame_object(obj)
        matrix = np.eye(4) if world_frame or frame is None else np.array(frame.matrix_world)
        records.append(camera_record(obj, scene, matrix, index))
    return records


def export_order(obj: bpy.types.Object) -> tuple[float, str]:
    """Imported cameras in their original id order, then others by name."""
    record = stored_record(obj) if obj.type == 'CAMERA' else None
    identifier = record.id if record is not None and isinstance(record.id, (int, float)) else float("inf")
    return identifier, obj.name
