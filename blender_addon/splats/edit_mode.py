"""Reading a splat object that is in Edit mode.

In Edit mode a mesh's attributes are those of its edit mesh, whose values Python cannot read (their data is
empty), and its vertex selection is only written back to the mesh on leaving Edit mode. So whatever reads an
object's Gaussians, selection or attributes for a job leaves Edit mode first and returns to it afterwards: the
job gets the latest edits and selection, and the user stays in the mode they were in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy


@contextmanager
def object_mode(obj: bpy.types.Object) -> Iterator[None]:
    """Object mode for obj during the block (its edits flushed to its data), then Edit mode again if it was in it.

    Example:
        >>> with object_mode(obj):
        ...     columns = read_raw_columns(obj)
    """
    if obj.mode != 'EDIT':
        yield
        return
    with mode_context(obj):
        bpy.ops.object.mode_set(mode='OBJECT')
    try:
        yield
    finally:
        with mode_context(obj):
            bpy.ops.object.mode_set(mode='EDIT')


def leave_edit_mode(obj: bpy.types.Object) -> None:
    """Object mode for obj, its edits kept, where Blender allows it now (before obj is hidden: a hidden object
    cannot leave Edit mode); otherwise it stays in Edit mode, which loses nothing."""
    if obj.mode != 'EDIT':
        return
    with mode_context(obj):
        if bpy.ops.object.mode_set.poll():
            bpy.ops.object.mode_set(mode='OBJECT')


def mode_context(obj: bpy.types.Object):
    """A context in which the mode operator acts on obj, whichever object is active (also from a timer, which
    has no window of its own)."""
    window_manager = bpy.context.window_manager
    window = bpy.context.window or (window_manager.windows[0] if window_manager and window_manager.windows
                                    else None)
    override = {"active_object": obj, "object": obj} | ({"window": window} if window is not None else {})
    return bpy.context.temp_override(**override)
