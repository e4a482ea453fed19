"""Blender 5.3's native Gaussian splats <-> raw 3DGS values, in numpy only (no Blender: tested on plain Python).

Blender 5.3 imports a 3DGS PLY as a point cloud of type GAUSSIAN_SPLAT holding *activated* values:
`radiance:base` = (f_dc_0, f_dc_1, f_dc_2, sigmoid(opacity)), `scale` = exp(scale_*), `rotation` = the
normalised quaternion (w, x, y, z), and `radiance:sh_<i>` = (f_rest[i], f_rest[K+i], f_rest[2K+i]) for the K
higher SH coefficients per channel (the PLY's f_rest is channel-major). Positions and SH coefficients are kept
bit for bit; opacity and scale go back through logit and log, exact to float32 rounding except where float32
saturated (a logit above ~16.6 becomes an opacity of exactly 1.0). Normals and extra or integer properties
are not kept by Blender's importer, and the quaternions' lengths are gone. `native_values` goes the other way,
so that this add-on's own splat objects also carry the attributes Blender draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..interchange.ply import NORMAL, OPACITY, POSITION, ROTATION, SCALE, SH_DC, rest_names
from .attributes import sigmoid

RADIANCE_BASE = "radiance:base"
SH_PREFIX = "radiance:sh_"
SH_DEGREE_BY_COEFFICIENTS = {0: 0, 3: 1, 8: 2, 15: 3, 24: 4}  # higher SH coefficients per channel -> degree
FLOAT32 = np.finfo(np.float32)
ALPHA_BELOW_ONE = np.nextafter(np.float32(1), np.float32(0))  # the largest float32 opacity short of 1.0


def sh_attribute(index: int) -> str:
    """Name of the native attribute holding higher SH coefficient `index` (R, G, B)."""
    return f"{SH_PREFIX}{index}"


def rest_count(sh_degree: int) -> int:
    """Higher SH coefficients per colour channel at an SH degree: (degree + 1)^2 - 1."""
    return (sh_degree + 1) ** 2 - 1


def inria_names(sh_degree: int) -> list[str]:
    """Vertex properties of a 3DGS PLY in the order the reference implementation writes them (normals included,
    as zeros, so readers that expect the Inria layout byte by byte load it)."""
    return [*POSITION, *NORMAL, *SH_DC, *rest_names(3 * rest_count(sh_degree)), OPACITY, *SCALE, *ROTATION]


def inria_header(count: int, sh_degree: int) -> str:
    """The text of a binary little-endian 3DGS PLY header for count Gaussians (all properties float)."""
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    lines += [f"property float {name}" for name in inria_names(sh_degree)] + ["end_header"]
    return "\n".join(lines) + "\n"


def native_values(raw: Mapping[str, np.ndarray], sh_degree: int) -> dict[str, np.ndarray]:
    """The radiance attributes of Blender's native splats from raw PLY columns (keyed by PLY name):
    radiance:base [N, 4] and radiance:sh_<i> [N, 3]. (`scale` and `rotation` are the display attributes.)"""
    base = np.stack([raw[name] for name in SH_DC] + [sigmoid(raw[OPACITY])], axis=1)
    values = {RADIANCE_BASE: base.astype(np.float32)}
    per_channel = rest_count(sh_degree)
    rest = rest_names(3 * per_channel)
    for i in range(per_channel):
        coefficient = [raw[rest[channel * per_channel + i]] for channel in range(3)]
        values[sh_attribute(i)] = np.stack(coefficient, axis=1).astype(np.float32)
    return values


@dataclass(frozen=True)
class NativeSplats:
    """A native splat point cloud's attributes as Blender stores them (float32)."""

    position: np.ndarray  # [N, 3]
    base: np.ndarray  # [N, 4]: f_dc_0..2, sigmoid(opacity)
    scale: np.ndarray  # [N, 3]: exp(log scale)
    rotation: np.ndarray  # [N, 4]: unit quaternion w, x, y, z
    sh: tuple[np.ndarray, ...]  # K arrays [N, 3]: coefficient i for R, G, B

    @property
    def sh_degree(self) -> int:
        return SH_DEGREE_BY_COEFFICIENTS[len(self.sh)]


@dataclass(frozen=True)
class Recovered:
    """Raw 3DGS columns (Inria order) recovered from native splats, and what could not be recovered."""

    columns: dict[str, np.ndarray]
    sh_degree: int
    opaque_saturated: int  # opacities of exactly 1.0: their logits (above ~16.6) are lost
    transparent_saturated: int  # opacities of exactly 0.0 (logits below ~-88)
    scales_out_of_range: int  # scales of 0, inf or below 0: their logs are lost


def logit(alpha: np.ndarray) -> np.ndarray:
    """Inverse sigmoid in float64, for opacities clamped into float32's open interval (0, 1)."""
    clamped = np.clip(alpha.astype(np.float64), FLOAT32.tiny, ALPHA_BELOW_ONE)
    return np.log(clamped) - np.log1p(-clamped)


def raw_from_native(native: NativeSplats) -> Recovered:
    """Raw 3DGS columns of native splats: log scales, logit opacities, DC and f_rest in PLY order; the normals,
    which Blender does not keep, are zeros (as 3DGS itself writes them)."""
    count, per_channel = len(native.position), len(native.sh)
    columns = {name: np.zeros(count, np.float32) for name in inria_names(native.sh_degree)}
    columns.update(zip(POSITION, native.position.T))
    columns.update(zip(SH_DC, native.base[:, :3].T))
    rest = rest_names(3 * per_channel)
    for i, coefficient in enumerate(native.sh):
        columns.update((rest[channel * per_channel + i], coefficient[:, channel]) for channel in range(3))
    alpha = native.base[:, 3]
    columns[OPACITY] = logit(alpha)
    usable = np.isfinite(native.scale) & (native.scale >= FLOAT32.tiny)
    log_scale = np.log(np.clip(native.scale.astype(np.float64), FLOAT32.tiny, FLOAT32.max))
    columns.update(zip(SCALE, log_scale.T))
    columns.update(zip(ROTATION, native.rotation.T))
    columns = {name: np.ascontiguousarray(values, np.float32) for name, values in columns.items()}
    return Recovered(columns, native.sh_degree, int((alpha >= 1).sum()), int((alpha <= 0).sum()),
                     int((~usable).any(axis=1).sum()))


def loss_warning(name: str, recovered: Recovered) -> str:
    """The one warning for a converted native splat object: what could not be recovered, and how to avoid it."""
    lost = []
    if recovered.opaque_saturated:
        lost.append(f"{recovered.opaque_saturated} opacities saturated to 1.0 (logits above ~16.6; written as "
                    f"{float(logit(np.ones(1))[0]):.2f})")
    if recovered.transparent_saturated:
        lost.append(f"{recovered.transparent_saturated} opacities of 0.0 (written as "
                    f"{float(logit(np.zeros(1))[0]):.1f})")
    if recovered.scales_out_of_range:
        lost.append(f"{recovered.scales_out_of_range} Gaussians' scales outside float32's range (clamped)")
    lost.append("normals and any extra or integer PLY properties (Blender's importer drops them; normals are "
                "written as zeros)")
    lost.append("quaternion lengths (rotations are written normalised)")
    return (f"{name} is a Blender Gaussian splat, which keeps only activated values; not recoverable: "
            f"{'; '.join(lost)}. Positions and colours (f_dc, f_rest) are exact, opacities and scales to float32 "
            "rounding. For lossless data import the PLY with File > Import > Gaussian Splat (.ply)")
