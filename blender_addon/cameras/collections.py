"""Which cameras a file operation works on: those of a collection (its children included) or of the whole scene."""

from __future__ import annotations

import bpy

from ..errors import SplatInputError
from .objects import export_order


def scene_cameras(scene: bpy.types.Scene, collection_name: str) -> list[bpy.types.Object]:
    """Cameras of the named collection (children included), or of the whole scene when the name is empty."""
    if not collection_name:
        return [o for o in scene.objects if o.type == 'CAMERA']
    collection = bpy.data.collections.get(collection_name)
    if collection is None:
        raise SplatInputError(f"collection {collection_name!r} does not exist")
    return [o for o in collection.all_objects if o.type == 'CAMERA']


def collection_cameras(name: str) -> list[bpy.types.Object]:
    """Perspective cameras of a collection and its children, in file order (imported id, then name)."""
    collection = bpy.data.collections.get(name)
    if collection is None:
        raise SplatInputError(f"Collection {name!r} does not exist")
    cameras = [o for o in collection.all_objects if o.type == 'CAMERA' and o.data.type == 'PERSP']
    if not cameras:
        raise SplatInputError(f"Collection {name!r} holds no perspective camera")
    return sorted(cameras, key=export_order)
