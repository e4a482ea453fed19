"""Writing a splat object back to a 3DGS PLY: its raw attributes as they are now (a stylized result's colours at
its Mix, mix.py), optionally with its object transform baked in (interchange.transform's rules, the same the
renderer applies)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..interchange.ply import POSITION, write_columns
from ..interchange.transform import transform_columns
from .edit_mode import object_mode
from .mix import shown_columns
from .objects import stored_header


def export_splat(obj: bpy.types.Object | None, path: Path, apply_transform: bool) -> int:
    """Write obj's Gaussians to path; returns how many. Raw attributes are written as they are now, with a
    stylized result's colours at its Mix (bit for bit at Mix 1)."""
    header = stored_header(obj)
    with object_mode(obj):  # in Edit mode the mesh's attribute values cannot be read
        columns = shown_columns(obj, header)
    if apply_transform:
        columns = transform_columns(columns, np.array(obj.matrix_world), header.sh_degree, obj.name)
    write_columns(path, header, columns)
    return len(columns[POSITION[0]])
