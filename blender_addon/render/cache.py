"""Splat objects as PLY files for the render worker, written once per distinct content.

Each file is named by a hash of the object's Gaussians as shown (a stylized result's colours at its Mix of the
frame), so rendering the same object again (every frame of an animation, camera after camera) reuses the file, and
the worker reuses the scene it already loaded.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import bpy

from ..interchange.ply import write_columns
from ..splats.mix import shown_columns
from ..splats.objects import stored_header

MAX_FILES = 8


def cache_dir() -> Path:
    """The render cache folder inside the Blender session's temporary folder."""
    path = Path(bpy.app.tempdir or tempfile.gettempdir()) / "sos_render"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_ply(obj: bpy.types.Object, mix: float | None = None) -> Path:
    """A PLY of obj's Gaussians in its data coordinates, a stylized result's at ``mix`` (None: its Mix now);
    raises SplatInputError for unusable objects."""
    header = stored_header(obj)
    columns = shown_columns(obj, header, mix)
    digest = hashlib.blake2b(header.text.encode("latin-1"), digest_size=16)
    for name in header.names:
        digest.update(columns[name].tobytes())
    path = cache_dir() / f"{digest.hexdigest()}.ply"
    if not path.is_file():
        write_columns(path, header, columns)
    return path


def prune_cache(in_use: set[Path]) -> None:
    """Delete cached files beyond the newest MAX_FILES, never those in use."""
    files = sorted(cache_dir().glob("*.ply"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files[MAX_FILES:]:
        if path not in in_use:
            path.unlink(missing_ok=True)
