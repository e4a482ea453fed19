"""Names and values of a splat object's attributes: raw PLY properties and the activated display attributes.

Raw properties keep their PLY names (lossless export reads them back). Display attributes are named like
Blender 5.3's native splat import: `opacity` (sigmoid of the logit), `scale` (exp of the log scales),
`rotation` (unit quaternion w, x, y, z) and `color` (DC colour 0.5 + C0 * f_dc, alpha = opacity); Blender
5.3's `radiance:*` attributes are derived too (native.py). A PLY property whose name collides with one of
these or with Blender's `position`, or starts with `ply_`, `radiance:` or `sos_capture:`, is stored as `ply_<name>`
(a one-to-one renaming); in a 3DGS file that is only `opacity`, whose logit lives in `ply_opacity`. A stylized
result also keeps the capture's values of the columns its run changed, as `sos_capture:<PLY name>` (mix.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..interchange.ply import OPACITY, ROTATION, SCALE, SH_DC
from ..interchange.sh import dc_to_rgb
from .errors import SplatInputError

DISPLAY_ATTRIBUTES = ("opacity", "scale", "rotation", "color")
RESERVED_NAMES = frozenset(DISPLAY_ATTRIBUTES) | {"position"}
MAX_NAME_LENGTH = 59  # Blender attribute names hold 63 characters; a stored name may gain a "ply_" prefix
CAPTURE_PREFIX = "sos_capture:"  # a result's capture values of a PLY column (mix.py)
RESERVED_PREFIXES = ("ply_", "radiance:", CAPTURE_PREFIX)


def attribute_name(ply_name: str) -> str:
    """The Blender attribute holding a raw PLY property."""
    return f"ply_{ply_name}" if ply_name in RESERVED_NAMES or ply_name.startswith(RESERVED_PREFIXES) else ply_name


def capture_attribute(ply_name: str) -> str:
    """The Blender attribute holding the capture's values of a PLY column on a stylized result (mix.py)."""
    return CAPTURE_PREFIX + ply_name


def check_attribute_names(names: list[str], source: object) -> None:
    """Every PLY property must fit a Blender attribute name (Blender's limit, not the file format's)."""
    for name in names:
        if len(name) > MAX_NAME_LENGTH:
            raise SplatInputError(f"{source}: vertex property name {name[:20]!r}... is longer than "
                                  f"{MAX_NAME_LENGTH} characters")


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function written with tanh so large |logits| never overflow."""
    return (0.5 + 0.5 * np.tanh(0.5 * logits)).astype(np.float32)


def unit_quaternions(wxyz: np.ndarray) -> np.ndarray:
    """Normalised quaternions (w, x, y, z); a zero quaternion becomes the identity, as renderers treat it."""
    norms = np.linalg.norm(wxyz, axis=1, keepdims=True)
    unit = np.where(norms > 0, wxyz / np.where(norms > 0, norms, 1), np.array([1, 0, 0, 0], np.float32))
    return unit.astype(np.float32)


def dc_colors(f_dc: np.ndarray) -> np.ndarray:
    """Degree-0 colour of each Gaussian, clamped at 0 like the 3DGS rasterizer."""
    return np.maximum(dc_to_rgb(f_dc), 0.0).astype(np.float32)


def display_values(raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Display attributes computed from raw PLY columns (keyed by PLY name)."""
    opacity = sigmoid(raw[OPACITY])
    f_dc = np.stack([raw[name] for name in SH_DC], axis=1)
    return {
        "opacity": opacity,
        "scale": np.exp(np.stack([raw[name] for name in SCALE], axis=1)).astype(np.float32),
        "rotation": unit_quaternions(np.stack([raw[name] for name in ROTATION], axis=1)),
        "color": np.concatenate([dc_colors(f_dc), opacity[:, None]], axis=1),
    }


def raw_attribute_type(dtype: np.dtype) -> str:
    """FLOAT for float properties, INT for integer ones."""
    return 'FLOAT' if dtype.kind == "f" else 'INT'


def to_attribute_values(column: np.ndarray) -> np.ndarray:
    """float32 or int32 for Blender; uint32 keeps its bit pattern as int32 so export restores it exactly.
    double becomes float32 (Blender has no 64-bit attributes): the one lossy case, absent from 3DGS files."""
    if column.dtype.kind == "f":
        return column.astype(np.float32, copy=False)
    if column.dtype == np.uint32:
        return column.view(np.int32)
    return column.astype(np.int32)
