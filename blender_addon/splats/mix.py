"""Mix on a stylized result object: the capture's values kept as point attributes, the Mix custom property, and
the columns as Mix shows them (io/mix.py has the rule and why it is an approximation of a run at another
strength).

Mix is a plain custom property of the object (`sos_mix`, 0..2, soft 0..1.5, 1 = the result as the run wrote it),
so it can be keyframed, and a file opened where the add-on is not installed still shows it. The viewport follows it
through a driver on the result's Mix modifier (mix_nodes.py); export and the Gaussian Splats engine read it here.
Nothing of this calls the worker.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..interchange.ply import PlyHeader
from ..io.attributes import CAPTURE_PREFIX, capture_attribute
from ..io.mix import MIX_DEFAULT, MIX_MAX, MIX_MIN, MIX_SOFT_MAX, clamp_mix, mixed_columns
from .objects import is_splat_object, read_raw_columns, write_attribute

MIX_PROPERTY = "sos_mix"
MIX_PATH = f'["{MIX_PROPERTY}"]'  # its RNA path on the object (drivers, layout.prop)
MIX_DESCRIPTION = ("Strength of the stylization after the run: 0 shows the capture's colours, 1 the result, more "
                   "goes further the same way (an approximation of a run at another strength, no new run)")


def captured_names(obj: bpy.types.Object | None) -> list[str]:
    """The PLY columns whose capture values the object keeps (none: the object has no Mix)."""
    if not is_splat_object(obj):
        return []
    return [attr.name[len(CAPTURE_PREFIX):] for attr in obj.data.attributes if attr.name.startswith(CAPTURE_PREFIX)]


def has_mix(obj: bpy.types.Object | None) -> bool:
    """True for a stylized result that keeps its capture's colours (its Mix can be changed)."""
    return bool(captured_names(obj)) and MIX_PROPERTY in obj.keys()


def add_mix(obj: bpy.types.Object, captures: dict[str, np.ndarray]) -> None:
    """Keep the capture's values on a new result object and give it the Mix property, at 1 (the result)."""
    for name, values in captures.items():
        write_attribute(obj.data, capture_attribute(name), 'FLOAT', "value", values)
    obj[MIX_PROPERTY] = MIX_DEFAULT
    obj.id_properties_ui(MIX_PROPERTY).update(default=MIX_DEFAULT, min=MIX_MIN, max=MIX_MAX, soft_min=MIX_MIN,
                                              soft_max=MIX_SOFT_MAX, subtype='FACTOR', description=MIX_DESCRIPTION)


def mix_value(obj: bpy.types.Object) -> float:
    """The object's Mix property within its range (1 where it has none); also of an evaluated object, whose value
    is the animated one at the depsgraph's frame."""
    return clamp_mix(obj.get(MIX_PROPERTY, MIX_DEFAULT))


def set_mix(obj: bpy.types.Object, value: float) -> None:
    """Set the Mix from a script and update the viewport (the panel's slider does both by itself)."""
    obj[MIX_PROPERTY] = clamp_mix(value)
    obj.update_tag()


def read_captures(obj: bpy.types.Object) -> dict[str, np.ndarray]:
    """The kept capture values, keyed by PLY name."""
    captures = {}
    for name in captured_names(obj):
        values = np.empty(len(obj.data.vertices), np.float32)
        obj.data.attributes[capture_attribute(name)].data.foreach_get("value", values)
        captures[name] = values
    return captures


def shown_columns(obj: bpy.types.Object, header: PlyHeader, mix: float | None = None) -> dict[str, np.ndarray]:
    """Every raw column of the object (header's names) as Mix shows it: ``mix`` or the object's own. Objects without
    a Mix, and Mix 1, give the raw columns bit for bit."""
    columns = read_raw_columns(obj, header.names)
    mix = mix_value(obj) if mix is None else mix
    if not has_mix(obj) or mix == MIX_DEFAULT:
        return columns
    return mixed_columns(columns, read_captures(obj), mix)
