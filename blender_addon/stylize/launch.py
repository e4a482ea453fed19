"""Preparing a stylization: the splat object, its cameras, the worker, and the job folder.

Everything that can be checked is checked before the engine starts; a failure removes what was made for the
job (its folder, an orbit rig created for it), so the scene stays as it was.

Preview runs the same job with the panel's settings but 0 iterations from the closed-form preview (no VGG, no
optimisation: seconds). With a preview result active, Stylize and Preview work on the object it was made from,
whose result then replaces the preview (result.py).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import bpy

from ..cameras.objects import CAMERA_KEY
from ..cameras.orbit import ORBIT_KEY, create_orbit_rig, orbit_cameras_of, remove_orbit_rig
from ..errors import SplatInputError
from ..io.job import JobTarget, StylizeJob
from ..io.job_files import new_job_folder
from ..interchange.settings import START_FROM_PREVIEW, StylizeSettings
from ..io.worker_config import check_worker, effective_device, require_compatible, stylize_gpus
from ..splats.objects import conversion_warning, is_gaussian_object
from ..worker.config import preferred_device, requested_gpus, worker_python
from .job_folder import jobs_root, write_job
from .result import preview_source


def active_splat(context: bpy.types.Context) -> bpy.types.Object:
    """The active object, which must be a splat object (ours, or Blender's own Gaussian splats)."""
    obj = context.view_layer.objects.active if context.view_layer else None
    if not is_gaussian_object(obj):
        name = f"{obj.name!r} is not a splat object" if obj is not None else "no active object"
        raise SplatInputError(f"Select a splat object to stylize ({name}; File > Import > Gaussian Splat)")
    return obj


def job_source(obj: bpy.types.Object) -> bpy.types.Object:
    """What a job started on obj works on: for a preview result, the object it was made from (so Stylize after
    Preview stylizes the original and replaces the preview); anything else is itself."""
    return preview_source(obj) or obj


def job_settings(context: bpy.types.Context, device: str, preview: bool) -> StylizeSettings:
    """The panel's settings; for Preview, 0 iterations from the closed-form preview."""
    settings = context.scene.sos_stylize.settings(device)
    return replace(settings, iterations=0, init=START_FROM_PREVIEW) if preview else settings


def imported_cameras(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """Cameras imported from a cameras.json and attached to the splat object."""
    return [c for c in obj.children_recursive
            if c.type == 'CAMERA' and CAMERA_KEY in c.keys() and not c.get(ORBIT_KEY)]


def job_cameras(context: bpy.types.Context, obj: bpy.types.Object) -> tuple[list[bpy.types.Object], bool]:
    """(cameras for the chosen source, whether an orbit rig was created for them)."""
    props = context.scene.sos_stylize
    if props.camera_source == 'SELECTED':
        cameras = [o for o in context.selected_objects if o.type == 'CAMERA']
        if not cameras:
            raise SplatInputError("Cameras: Selected Cameras is chosen but no camera is selected")
        return cameras, False
    if props.camera_source == 'ORBIT':
        existing = orbit_cameras_of(obj)
        if existing:
            return existing, False
        return create_orbit_rig(obj, context.scene, props.orbit_count), True
    cameras = imported_cameras(obj)
    if not cameras:
        raise SplatInputError(f"{obj.name} has no imported cameras: import its cameras.json, or choose "
                              "Selected Cameras or Orbit Rig")
    return cameras, False


def fill_job(context: bpy.types.Context, obj: bpy.types.Object, folder: Path, device: str,
             preview: bool = False) -> bool:
    """Write the job folder for obj; returns whether an orbit rig was created. Leaves nothing behind on failure."""
    cameras, created_rig = job_cameras(context, obj)
    props = context.scene.sos_stylize
    try:
        write_job(folder, obj, cameras, context.scene, props.style_image, job_settings(context, device, preview))
    except (SplatInputError, OSError) as error:
        if created_rig:
            remove_orbit_rig(obj)
        if isinstance(error, OSError):
            raise SplatInputError(f"Cannot write the job folder {folder}: {error.strerror or error}") from error
        raise
    return created_rig


def export_job(context: bpy.types.Context, folder: Path) -> None:
    """Write a self-contained job folder to run elsewhere (python -m core @args.txt, cwd = the folder)."""
    obj = job_source(active_splat(context))
    folder.mkdir(parents=True, exist_ok=True)
    fill_job(context, obj, folder, "auto")


def start_job(context: bpy.types.Context, preview: bool = False) -> StylizeJob:
    """Check the worker, write a job folder and start the engine on it (on as many GPUs as the preferences ask
    for and the worker has); ``preview``: the instant preview instead of the full run."""
    obj = job_source(active_splat(context))
    python = worker_python()
    info = check_worker(python)
    require_compatible(info)
    device, warning = effective_device(preferred_device(), info)
    gpus, gpu_warning = stylize_gpus(requested_gpus(), device, info) if not preview else (None, None)
    folder = new_job_folder(jobs_root())
    created_rig = False
    try:
        created_rig = fill_job(context, obj, folder, device, preview)
        warnings = [text for text in (warning, gpu_warning, conversion_warning(obj)) if text]
        target = JobTarget(obj.session_uid, obj.name, context.scene.name, created_rig, warnings, preview)
        return StylizeJob(folder, python, target, gpus)
    except SplatInputError:
        if created_rig:
            remove_orbit_rig(obj)
        shutil.rmtree(folder, ignore_errors=True)
        raise
