"""Stylization job folders: everything `sos-stylize @args.txt` needs, with paths relative to the folder.

    job_<time>_<id>/
        args.txt        one argument per line (python -m core @args.txt, run with the folder as cwd)
        scene.ply       the splat object's Gaussians in its own (local, PLY) coordinates
        cameras.json    the views, in the same coordinates
        style.<ext>     the painting
        region.npy      only when part of the object is stylized: one weight per Gaussian, in scene.ply's order
        out/            written by the engine (stylized.ply, cameras.json, previews, report.json)

So a folder can be copied to another machine (a GPU server) and run there unchanged. This module holds what needs
no Blender (the arguments, the region file, new and old folders); stylize/job_folder.py fills a folder from the
scene.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..interchange.atomic import write_atomically
from ..interchange.protocol import CAMERAS_FILE, OUTPUT_FOLDER, REGION_FILE, SCENE_FILE
from ..interchange.settings import StylizeSettings, arguments

JOB_PREFIX = "job_"
KEEP_JOBS = 3


def job_arguments(settings: StylizeSettings, style_name: str, region: bool = False) -> list[str]:
    """sos-stylize's arguments for a job folder, one list item per args.txt line: the files (with the region
    file when part of the object is stylized), then every setting (interchange.settings.arguments, which the
    engine's command line parses back to the same settings)."""
    files = [SCENE_FILE, style_name, "--output", OUTPUT_FOLDER, "--cameras", CAMERAS_FILE]
    return files + (["--region", REGION_FILE] if region else []) + arguments(settings)


def write_region(path: Path, weights: np.ndarray) -> None:
    """The region file: float32 [N] as a NumPy .npy array (the engine's --region format)."""
    write_atomically(path, lambda handle: np.save(handle, weights.astype(np.float32), allow_pickle=False))


def new_job_folder(root: Path) -> Path:
    """A new, empty job folder under root."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{JOB_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}_", dir=root))


def prune_jobs(root: Path, keep: int = KEEP_JOBS) -> None:
    """Delete all but the `keep` newest job folders under root."""
    if not root.is_dir():
        return
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(JOB_PREFIX)),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)
