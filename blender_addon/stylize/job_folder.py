"""Stylization job folders filled from the Blender scene: the splat object as scene.ply, its cameras, the painting
and, for part of the object, the region. The folder's layout and what needs no Blender (the arguments, the region
file, new and old folders) are io/job_files.py's."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np

from ..cameras.objects import camera_record, export_order
from ..errors import SplatInputError
from ..interchange.atomic import write_atomically
from ..interchange.cameras import write_cameras_json
from ..interchange.protocol import ARGS_FILE, CAMERAS_FILE, REGION_FILE, SCENE_FILE, STYLE_STEM
from ..interchange.settings import StylizeSettings
from ..io.job_files import job_arguments, write_region
from ..splats.export import export_splat
from ..splats.selection import region_weights

IMAGE_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp",
                  "OPEN_EXR": ".exr", "TARGA": ".tga"}


def job_region(splat: bpy.types.Object, scene: bpy.types.Scene) -> np.ndarray | None:
    """The weights of the Stylize panel's Region for splat (None: the whole object); raises SplatInputError."""
    props = scene.sos_stylize
    return region_weights(splat, props.region_source, props.region_attribute)


def jobs_root() -> Path:
    """Where the add-on keeps job folders: the Blender session's temporary folder (removed when Blender quits)."""
    return Path(bpy.app.tempdir or tempfile.gettempdir()) / "sos_jobs"


def style_image_file(image: bpy.types.Image | None) -> tuple[Path | None, bytes | None, str]:
    """(file to copy, or packed bytes, and the suffix) of the style image; raises SplatInputError."""
    if image is None:
        raise SplatInputError("Choose a style image (a painting) in the Stylize panel first")
    suffix = Path(image.filepath).suffix.lower() or IMAGE_SUFFIXES.get(image.file_format, ".png")
    if image.packed_file is not None:
        return None, bytes(image.packed_file.data), suffix
    path = Path(bpy.path.abspath(image.filepath, library=image.library))
    if not image.filepath or not path.is_file():
        raise SplatInputError(f"Style image {image.name!r}: its file {str(path) or '(none)'} does not exist")
    return path, None, suffix


def write_style(folder: Path, image: bpy.types.Image | None) -> str:
    """Copy the style image into the job folder; returns its file name there."""
    source, data, suffix = style_image_file(image)
    name = STYLE_STEM + suffix
    if source is not None:
        shutil.copyfile(source, folder / name)
    else:
        (folder / name).write_bytes(data)
    return name


def write_job_cameras(path: Path, splat: bpy.types.Object, cameras: list[bpy.types.Object],
                      scene: bpy.types.Scene) -> int:
    """cameras.json with poses in the splat object's local (PLY) coordinates; returns the count."""
    if not cameras:
        raise SplatInputError("No cameras to stylize from")
    frame = np.array(splat.matrix_world)
    records = [camera_record(cam, scene, frame, index) for index, cam in enumerate(sorted(cameras, key=export_order))]
    write_cameras_json(path, records)
    return len(records)


def write_job(folder: Path, splat: bpy.types.Object, cameras: list[bpy.types.Object], scene: bpy.types.Scene,
              style: bpy.types.Image | None, settings: StylizeSettings) -> None:
    """Fill a job folder: scene, cameras, style image, the region (Stylize panel's Region, if not the whole
    object), args.txt. Raises SplatInputError or OSError; the region is checked before anything is written."""
    region = job_region(splat, scene)
    style_name = write_style(folder, style)
    write_job_cameras(folder / CAMERAS_FILE, splat, cameras, scene)
    count = export_splat(splat, folder / SCENE_FILE, apply_transform=False)
    if region is not None:
        if len(region) != count:  # both read the object's points in order; a mismatch would misplace the region
            raise SplatInputError(f"Region: {len(region)} weights for {count} Gaussians in {splat.name}")
        write_region(folder / REGION_FILE, region)
    text = "\n".join(job_arguments(settings, style_name, region is not None)) + "\n"
    write_atomically(folder / ARGS_FILE, lambda handle: handle.write(text.encode("utf-8")))
