"""Blender's own Gaussian splat objects (5.3+): whether this Blender has them, and reading one as raw 3DGS data.

A native splat object is a point cloud whose `type` is GAUSSIAN_SPLAT, as Blender 5.3's PLY importer makes
(its attributes and their conversion are described in native.py). Features are detected, not versions
compared, so a Blender that has the point-cloud type and the *Set Point Cloud Type* node gets native display.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..errors import SplatInputError
from ..interchange.ply import PlyHeader, parse_header
from ..io.native import (RADIANCE_BASE, SH_DEGREE_BY_COEFFICIENTS, NativeSplats, Recovered, inria_header,
                      raw_from_native, sh_attribute)

NATIVE_TYPE = 'GAUSSIAN_SPLAT'
SET_TYPE_NODE = 'GeometryNodePointsSetType'
NATIVE_ATTRIBUTES = {  # name: (data type, foreach field, width)
    "position": ('FLOAT_VECTOR', "vector", 3),
    RADIANCE_BASE: ('FLOAT4', "vector", 4),
    "scale": ('FLOAT_VECTOR', "vector", 3),
    "rotation": ('QUATERNION', "value", 4),
}
SH_ATTRIBUTE = ('FLOAT_VECTOR', "vector", 3)


def native_splats_supported() -> bool:
    """True where Blender has Gaussian splat point clouds and the node that makes them (Blender 5.3+)."""
    pointcloud = getattr(bpy.types, "PointCloud", None)
    kind = pointcloud.bl_rna.properties.get("type") if pointcloud is not None else None
    return kind is not None and NATIVE_TYPE in kind.enum_items.keys() and hasattr(bpy.types, SET_TYPE_NODE)


def is_native_splat(obj: bpy.types.Object | None) -> bool:
    """True for a point cloud of type GAUSSIAN_SPLAT (Blender's own PLY import of a 3DGS file)."""
    return (obj is not None and obj.type == 'POINTCLOUD'
            and getattr(obj.data, "type", None) == NATIVE_TYPE)


def point_attribute(cloud: bpy.types.PointCloud, name: str, spec: tuple[str, str, int], owner: str) -> np.ndarray:
    """One point attribute as float32 [N, width]; a missing or retyped one is a user error naming it."""
    data_type, field, width = spec
    attr = cloud.attributes.get(name)
    if attr is None or attr.domain != 'POINT' or attr.data_type != data_type:
        raise SplatInputError(f"{owner}: Gaussian splat attribute {name!r} ({data_type}) is missing or was "
                              "changed; it is needed to read the splats")
    values = np.empty(len(cloud.points) * width, np.float32)
    attr.data.foreach_get(field, values)
    return values.reshape(-1, width)


def sh_coefficient_count(obj: bpy.types.Object) -> int:
    """How many radiance:sh_<i> attributes (higher SH coefficients per channel), counted from i = 0."""
    count = 0
    while sh_attribute(count) in obj.data.attributes:
        count += 1
    return count


def native_sh_count(obj: bpy.types.Object) -> int:
    """sh_coefficient_count, checked to be that of an SH degree (0 to 4)."""
    count = sh_coefficient_count(obj)
    if count not in SH_DEGREE_BY_COEFFICIENTS:
        raise SplatInputError(f"{obj.name}: {count} radiance:sh_* attributes do not form SH degree 0-4 "
                              "(expected 0, 3, 8, 15 or 24)")
    return count


def read_native(obj: bpy.types.Object) -> NativeSplats:
    """A native splat object's attributes as Blender stores them."""
    cloud = obj.data
    values = {name: point_attribute(cloud, name, spec, obj.name) for name, spec in NATIVE_ATTRIBUTES.items()}
    sh = tuple(point_attribute(cloud, sh_attribute(i), SH_ATTRIBUTE, obj.name) for i in range(native_sh_count(obj)))
    return NativeSplats(values["position"], values[RADIANCE_BASE], values["scale"], values["rotation"], sh)


def recover_native(obj: bpy.types.Object) -> Recovered:
    """Raw 3DGS columns of a native splat object, with what could not be recovered."""
    return raw_from_native(read_native(obj))


def native_header(obj: bpy.types.Object) -> PlyHeader:
    """The 3DGS PLY header a native splat object exports with (the Inria layout at its SH degree)."""
    degree = SH_DEGREE_BY_COEFFICIENTS[native_sh_count(obj)]
    return parse_header(inria_header(len(obj.data.points), degree), obj.name)
