"""Where created objects go: new collections in the scene's outliner tree."""

from __future__ import annotations

import bpy


def new_collection(name: str, parent: bpy.types.Collection) -> bpy.types.Collection:
    """A new collection linked under parent."""
    collection = bpy.data.collections.new(name)
    parent.children.link(collection)
    return collection
