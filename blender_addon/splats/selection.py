"""Regions of a splat object: which of its Gaussians a stylization may change, as one weight in 0..1 per Gaussian.

The weights are in the object's point order, which is the row order of the PLY the object exports
(export.py reads vertices, or a native splat's points, in that order), so they stay aligned with the job's
scene.ply and with the stylized result read back from it. The engine (core/regions.py) blends each Gaussian's
stylized change by its weight: 0 keeps it exactly, yet it is still rendered and so still counts as content.

Where a region comes from:
- Selected Points: the Edit-mode vertex selection of this add-on's splat mesh, or the ``.selection`` point
  attribute that Edit mode keeps on Blender 5.3's own splat point clouds (boolean, or float weights).
- Attribute: a Float or Boolean point attribute, or (splat meshes) a vertex group, by name.
An object in Edit mode leaves it while its region is read (edit_mode.py), so the latest selection and attribute
values are used.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..errors import SplatInputError
from ..io.attributes import DISPLAY_ATTRIBUTES
from ..io.native import RADIANCE_BASE, SH_PREFIX
from .edit_mode import object_mode
from .native_objects import NATIVE_ATTRIBUTES, is_native_splat
from .objects import SPLAT_KEY, is_splat_object

WHOLE = 'WHOLE'
SELECTED = 'SELECTED'
ATTRIBUTE = 'ATTRIBUTE'
POINT_SELECTION = ".selection"  # the point selection Edit mode keeps on point clouds
WEIGHT_TYPES = {'FLOAT': "Float attribute", 'BOOLEAN': "Boolean attribute"}
VERTEX_GROUP = "Vertex group"


def region_weights(obj: bpy.types.Object, source: str, name: str = "") -> np.ndarray | None:
    """The region of a splat object as float32 weights [N] in export row order, or None for the whole object.

    Args:
        obj: this add-on's splat object or a Blender 5.3 Gaussian splat point cloud.
        source: WHOLE, SELECTED (the Edit-mode selection) or ATTRIBUTE (``name``: a point attribute or a
            vertex group).
        name: the attribute or vertex group, for ATTRIBUTE.

    Returns:
        None for WHOLE; else [N] float32 in 0..1 with at least one weight above 0.

    Raises SplatInputError (one line naming the object and the attribute) for an empty selection or region,
    and for a missing attribute, one of another type or domain, or weights outside 0..1.
    """
    if source == WHOLE:
        return None
    with object_mode(obj):
        weights = selected_points(obj) if source == SELECTED else named_weights(obj, name)
    if source == SELECTED:
        what, hint = "no point is selected", "select points in Edit mode, or set Region to Whole Object"
    else:
        what, hint = f"{name!r} is 0 on every point", "nothing would be stylized"
    if not weights.any():
        raise SplatInputError(f"Region: {what} in {obj.name} ({hint})")
    return weights


def point_count(obj: bpy.types.Object) -> int:
    """Gaussians in a splat object (vertices of a splat mesh, points of a native splat point cloud)."""
    return len(obj.data.points) if is_native_splat(obj) else len(obj.data.vertices)


def selected_points(obj: bpy.types.Object) -> np.ndarray:
    """The point selection as weights: a splat mesh's vertex selection, a native splat's .selection attribute."""
    if not is_native_splat(obj):
        selected = np.zeros(point_count(obj), bool)
        obj.data.vertices.foreach_get("select", selected)
        return selected.astype(np.float32)
    attribute = obj.data.attributes.get(POINT_SELECTION)
    if attribute is None:
        raise SplatInputError(f"Region: {obj.name} has no point selection yet (select points in Edit mode, or "
                              "set Region to Whole Object)")
    return attribute_weights(obj, attribute, "its point selection")


def selected_count(obj: bpy.types.Object) -> int | None:
    """How many points are selected, for the panel (cheap: no Edit-mode flush); None where a native splat has
    no usable selection attribute."""
    if is_native_splat(obj):
        attribute = obj.data.attributes.get(POINT_SELECTION)
        if attribute is None or attribute.domain != 'POINT' or attribute.data_type not in WEIGHT_TYPES:
            return None
        values = np.zeros(point_count(obj), bool if attribute.data_type == 'BOOLEAN' else np.float32)
        attribute.data.foreach_get("value", values)
        return int(np.count_nonzero(values > 0))
    if obj.mode == 'EDIT':
        return obj.data.total_vert_sel  # the edit mesh's count (the mesh's own selection is flushed on exit)
    selected = np.zeros(point_count(obj), bool)
    obj.data.vertices.foreach_get("select", selected)
    return int(np.count_nonzero(selected))


def named_weights(obj: bpy.types.Object, name: str) -> np.ndarray:
    """Weights from a Float or Boolean point attribute, or from a splat mesh's vertex group, called name."""
    if not name:
        raise SplatInputError(f"Region: choose the attribute or vertex group of {obj.name} to stylize")
    attribute = obj.data.attributes.get(name)
    if attribute is not None:
        return attribute_weights(obj, attribute, f"attribute {name!r}")
    group = obj.vertex_groups.get(name) if obj.type == 'MESH' else None
    if group is not None:
        return vertex_group_weights(obj, group.index)
    kinds = "point attribute or vertex group" if obj.type == 'MESH' else "point attribute"
    raise SplatInputError(f"Region: {obj.name} has no {kinds} named {name!r}")


def attribute_weights(obj: bpy.types.Object, attribute: bpy.types.Attribute, what: str) -> np.ndarray:
    """A Float or Boolean point attribute as weights, checked to lie in 0..1."""
    if attribute.domain != 'POINT' or attribute.data_type not in WEIGHT_TYPES:
        raise SplatInputError(f"Region: {what} of {obj.name} holds {attribute.data_type} values on its "
                              f"{attribute.domain} domain; a region needs Float or Boolean values on points")
    values = np.zeros(point_count(obj), bool if attribute.data_type == 'BOOLEAN' else np.float32)
    attribute.data.foreach_get("value", values)
    bad = ~((values >= 0) & (values <= 1))
    if bad.any():
        index = int(np.argmax(bad))
        raise SplatInputError(f"Region: {what} of {obj.name} must be in 0..1; point {index} has {values[index]}")
    return values.astype(np.float32)


def vertex_group_weights(obj: bpy.types.Object, group: int) -> np.ndarray:
    """A vertex group's weights per vertex (0 where a vertex is not in it). Blender has no bulk read of
    vertex-group weights, so this walks the vertices (about 0.7 s per million)."""
    weights = np.zeros(point_count(obj), np.float32)
    for vertex in obj.data.vertices:
        for element in vertex.groups:
            if element.group == group:
                weights[vertex.index] = element.weight
    return weights


def region_candidates(obj: bpy.types.Object | None) -> list[tuple[str, str]]:
    """(name, kind) of what an Attribute region can use on obj, for the panel's search: its Float and Boolean
    point attributes except the Gaussians' own data and Blender's internal ones, then its vertex groups."""
    if obj is None or not (is_splat_object(obj) or is_native_splat(obj)):
        return []
    own = splat_data_names(obj)
    found = [(a.name, WEIGHT_TYPES[a.data_type]) for a in obj.data.attributes
             if a.domain == 'POINT' and a.data_type in WEIGHT_TYPES and not a.name.startswith(".")
             and a.name not in own and not a.name.startswith(SH_PREFIX)]
    groups = [(group.name, VERTEX_GROUP) for group in obj.vertex_groups] if obj.type == 'MESH' else []
    return sorted(found) + sorted(groups)


def splat_data_names(obj: bpy.types.Object) -> set[str]:
    """Attributes that hold the Gaussians themselves (raw PLY values, display and radiance values)."""
    names = {"position", RADIANCE_BASE, *DISPLAY_ATTRIBUTES, *NATIVE_ATTRIBUTES}
    if is_splat_object(obj):
        names.update(obj[SPLAT_KEY]["attributes"].values())
    return names
