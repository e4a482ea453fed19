"""The splat object: a vertices-only mesh with one point per Gaussian and per-point attributes.

A mesh, not a point cloud: Blender 4.2 cannot size a point cloud from Python (PointCloud.resize arrived
later), while meshes work everywhere and keep their attributes through edits such as deleting points.
x, y, z are the vertex positions; every other PLY property is a point attribute (splat_attributes.py names
them). Raw values are the source of truth for export; display attributes are derived from them, so after
changing raw values (e.g. new f_dc from the stylizer) call update_display_attributes. Where Blender has native
Gaussian splats (5.3+), the derived attributes include Blender's radiance attributes, so a Geometry Nodes
modifier can show the mesh as native splats that EEVEE and Cycles render.

Blender's own splat objects (point clouds of type GAUSSIAN_SPLAT) are read too: stored_header and
read_raw_columns convert their activated values back to raw 3DGS columns (native_objects.py), and
conversion_warning says what that conversion could not recover.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..errors import SplatInputError
from ..interchange.ply import (OPACITY, POSITION, ROTATION, SCALE, SH_DC, PlyHeader, SplatData, parse_header, read_ply,
                               rest_names)
from ..io.attributes import (attribute_name, check_attribute_names, display_values, raw_attribute_type,
                             to_attribute_values)
from ..io.native import RADIANCE_BASE, SH_PREFIX, loss_warning, native_values, rest_count
from .native_objects import is_native_splat, native_header, native_splats_supported, recover_native

SPLAT_KEY = "gaussian_splat"
DISPLAY_TYPES = {"opacity": ("FLOAT", "value"), "scale": ("FLOAT_VECTOR", "vector"),
                 "rotation": ("QUATERNION", "value"), "color": ("FLOAT_COLOR", "color"),
                 RADIANCE_BASE: ("FLOAT4", "vector")}
SH_TYPE = ("FLOAT_VECTOR", "vector")  # radiance:sh_<i>


def is_splat_object(obj: bpy.types.Object | None) -> bool:
    """True for objects made by the splat importer (they carry the PLY header)."""
    return obj is not None and obj.type == 'MESH' and SPLAT_KEY in obj.keys()


def read_splat_file(path: Path) -> SplatData:
    """A 3DGS PLY checked for a splat object: interchange's validation, then Blender's attribute-name limit."""
    data = read_ply(path)
    check_attribute_names(data.header.names, path)
    return data


def is_gaussian_object(obj: bpy.types.Object | None) -> bool:
    """True for any object whose Gaussians can be read: this add-on's splat objects and Blender's own."""
    return is_splat_object(obj) or is_native_splat(obj)


def create_splat_object(ply: SplatData, name: str, source: Path) -> bpy.types.Object:
    """A new (unlinked) object holding every Gaussian of ply; the caller links it into a collection."""
    columns = ply.columns()
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(ply.count)
    positions = np.stack([columns[n] for n in POSITION], axis=1).astype(np.float32, copy=False)
    mesh.vertices.foreach_set("co", positions.ravel())
    for prop in ply.header.properties:
        if prop.name not in POSITION:
            write_attribute(mesh, attribute_name(prop.name), raw_attribute_type(prop.dtype),
                            "value", to_attribute_values(columns[prop.name]))
    write_display_attributes(mesh, derived_values(columns, ply.header.sh_degree))
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj[SPLAT_KEY] = {
        "header": ply.header.text,
        "properties": [f"{p.ply_type} {p.name}" for p in ply.header.properties],
        "comments": list(ply.header.comments),
        "attributes": {n: attribute_name(n) for n in ply.header.names if n not in POSITION},
        "sh_degree": ply.header.sh_degree,
        "source": str(source),
    }
    return obj


def write_attribute(mesh: bpy.types.Mesh, name: str, data_type: str, field: str, values: np.ndarray) -> None:
    """Create or overwrite a point attribute with values (flattened as foreach_set expects)."""
    attr = mesh.attributes.get(name)
    if attr is not None and (attr.data_type != data_type or attr.domain != 'POINT'):
        mesh.attributes.remove(attr)
        attr = None
    if attr is None:
        attr = mesh.attributes.new(name, data_type, 'POINT')
    attr.data.foreach_set(field, np.ascontiguousarray(values).ravel())


def derived_values(raw: dict[str, np.ndarray], sh_degree: int) -> dict[str, np.ndarray]:
    """Display attributes from raw columns, plus Blender's radiance attributes where it has native splats."""
    values = display_values(raw)
    if native_splats_supported():
        values.update(native_values(raw, sh_degree))
    return values


def derived_inputs(sh_degree: int) -> list[str]:
    """The raw PLY columns derived_values reads."""
    names = [OPACITY, *SH_DC, *SCALE, *ROTATION]
    if native_splats_supported():
        names += rest_names(3 * rest_count(sh_degree))
    return names


def write_display_attributes(mesh: bpy.types.Mesh, values: dict[str, np.ndarray]) -> None:
    """Write opacity, scale, rotation and color (and radiance:base, radiance:sh_<i> when given)."""
    for name, array in values.items():
        data_type, field = SH_TYPE if name.startswith(SH_PREFIX) else DISPLAY_TYPES[name]
        write_attribute(mesh, name, data_type, field, array)


def stored_header(obj: bpy.types.Object) -> PlyHeader:
    """The PLY header kept on a splat object at import (the Inria layout for Blender's own splat objects)."""
    if is_native_splat(obj):
        return native_header(obj)
    if not is_splat_object(obj):
        raise SplatInputError(f"{obj.name if obj else 'nothing'}: not a Gaussian splat object "
                              "(import one with File > Import > Gaussian Splat)")
    return parse_header(obj[SPLAT_KEY]["header"], obj.name)


def conversion_warning(obj: bpy.types.Object) -> str | None:
    """For Blender's own splat objects, what reading them as 3DGS data cannot recover; None for ours (lossless)."""
    return loss_warning(obj.name, recover_native(obj)) if is_native_splat(obj) else None


def read_raw_columns(obj: bpy.types.Object, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Raw PLY columns of a splat object keyed by PLY name: x, y, z from vertex positions, others from attributes
    (Blender's own splat objects: converted from their activated values)."""
    if is_native_splat(obj):
        columns = recover_native(obj).columns
        return {name: columns[name] for name in names} if names else columns
    header = stored_header(obj)
    attribute_names = obj[SPLAT_KEY]["attributes"]
    mesh = obj.data
    count = len(mesh.vertices)
    columns: dict[str, np.ndarray] = {}
    wanted = names or header.names
    if any(n in POSITION for n in wanted):
        positions = np.empty(count * 3, np.float32)
        mesh.vertices.foreach_get("co", positions)
        columns.update(zip(POSITION, positions.reshape(count, 3).T.copy()))
    for prop in header.properties:
        if prop.name in wanted and prop.name not in POSITION:
            columns[prop.name] = read_attribute(obj, attribute_names[prop.name], raw_attribute_type(prop.dtype))
    return columns


def read_attribute(obj: bpy.types.Object, name: str, data_type: str) -> np.ndarray:
    """One scalar point attribute as a numpy array; a missing or retyped attribute is a user error."""
    attr = obj.data.attributes.get(name)
    if attr is None or attr.domain != 'POINT' or attr.data_type != data_type:
        raise SplatInputError(f"{obj.name}: point attribute {name!r} ({data_type}) is missing or was changed; "
                              "it is needed to write the PLY")
    values = np.empty(len(obj.data.vertices), np.float32 if data_type == 'FLOAT' else np.int32)
    attr.data.foreach_get("value", values)
    return values


def update_display_attributes(obj: bpy.types.Object) -> None:
    """Recompute the derived attributes from the raw ones (after e.g. new f_dc values)."""
    degree = stored_header(obj).sh_degree
    write_display_attributes(obj.data, derived_values(read_raw_columns(obj, derived_inputs(degree)), degree))
    obj.data.update()
