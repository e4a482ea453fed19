"""Rendering many cameras to PNG files, one per camera (named after it), through the one render worker."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..io.colour import png_pixels
from ..io.png import write_png
from .view import background_colour, camera_view, render_view, splat_objects


def render_cameras(context: bpy.types.Context, cameras: list[bpy.types.Object], folder: Path) -> list[Path]:
    """One PNG per camera of what the Gaussian Splats engine would render; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = context.scene
    objects = splat_objects(context.evaluated_depsgraph_get())
    background = background_colour(scene)
    paths = []
    for camera in cameras:
        image, _ = render_view(objects, camera_view(camera, scene), background, lambda: False)
        path = folder / f"{bpy.path.clean_name(camera.name)}.png"
        write_png(path, png_pixels(image))
        paths.append(path)
    return paths
