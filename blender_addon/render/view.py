"""One rendered view of the scene's splat objects, through the render worker: what the render engine and the
camera-render operator share.

Each visible splat object is sent as its PLY (data coordinates, a stylized result's colours at the frame's Mix)
plus its world matrix (row-major); the worker applies the matrix, SH rotation included, and renders all objects
together so depth order is right.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import bpy
import numpy as np

from ..cameras.objects import camera_intrinsics, stored_record
from ..cameras.pinhole import blender_camera_to_opencv
from ..errors import SplatInputError
from ..interchange.protocol import RenderObject, RenderRequest
from ..io.colour import linear_to_srgb
from ..io.pinhole import intrinsics_matrix
from ..io.render_worker import render_request
from ..splats.mix import mix_value
from ..splats.objects import is_gaussian_object
from ..worker.config import preferred_device, preferred_render_gpu, worker_python
from .cache import cache_dir, cached_ply, prune_cache


@dataclass(frozen=True)
class SplatInstance:
    """A splat object as the depsgraph shows it: the original object, its world matrix and its Mix (1 but for a
    stylized result), both at the depsgraph's frame."""

    obj: bpy.types.Object
    matrix: np.ndarray
    mix: float


@dataclass(frozen=True)
class View:
    """A pinhole view: world-to-camera (OpenCV axes), K in pixels, image size."""

    viewmat: np.ndarray
    K: np.ndarray
    width: int
    height: int


def scene_camera_view(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> View:
    """The active scene camera at the render resolution x percentage (what F12 renders)."""
    if scene.camera is None:
        raise SplatInputError("The scene has no active camera to render from")
    return View(*blender_camera_to_opencv(scene.camera.evaluated_get(depsgraph), scene))


def camera_view(camera: bpy.types.Object, scene: bpy.types.Scene) -> View:
    """A camera's view at its own 3DGS image size when it has one (imported cameras), else the render size."""
    viewmat, _, _, _ = blender_camera_to_opencv(camera, scene)
    intrinsics = camera_intrinsics(camera.data, scene, stored_record(camera))
    return View(viewmat, intrinsics_matrix(intrinsics), intrinsics.width, intrinsics.height)


def splat_objects(depsgraph: bpy.types.Depsgraph) -> list[SplatInstance]:
    """Every splat object (ours or Blender's own Gaussian splats) the depsgraph shows in renders."""
    return [SplatInstance(obj.original, np.array(obj.matrix_world), mix_value(obj)) for obj in depsgraph.objects
            if is_gaussian_object(obj.original) and not obj.original.hide_render]


def background_colour(scene: bpy.types.Scene) -> list[float] | None:
    """None for a transparent film, else the world colour in sRGB (the worker composites in sRGB)."""
    if scene.render.film_transparent:
        return None
    colour = np.array(scene.world.color) if scene.world is not None else np.zeros(3)
    return [float(c) for c in linear_to_srgb(colour)]


def empty_image(view: View, background: list[float] | None) -> np.ndarray:
    """What a view without splats shows: the background, or nothing."""
    image = np.zeros((view.height, view.width, 4), np.float32)
    if background is not None:
        image[..., :3], image[..., 3] = background, 1.0
    return image


def render_view(objects: list[SplatInstance], view: View, background: list[float] | None,
                should_stop: Callable[[], bool]) -> tuple[np.ndarray, str | None]:
    """(RGBA [H, W, 4] sRGB premultiplied, top row first; a worker warning or None)."""
    if not objects:
        return empty_image(view, background), None
    plys = [cached_ply(item.obj, item.mix) for item in objects]
    out = cache_dir() / f"view_{uuid.uuid4().hex}.npy"
    payload = RenderRequest(
        objects=tuple(RenderObject(str(path), tuple(item.matrix.ravel().tolist()), item.obj.name)
                      for path, item in zip(plys, objects)),
        viewmat=tuple(view.viewmat.ravel().tolist()), K=tuple(view.K.ravel().tolist()), width=view.width,
        height=view.height, out=str(out), background=None if background is None else tuple(background))
    try:
        _, warning = render_request(worker_python(), preferred_device(), payload, should_stop, preferred_render_gpu())
        image = np.load(out)
    finally:
        out.unlink(missing_ok=True)
    prune_cache(set(plys))
    if image.shape != (view.height, view.width, 4):
        raise SplatInputError(f"The render worker returned a {image.shape} image, expected "
                              f"{view.height}x{view.width} RGBA")
    return image, warning
