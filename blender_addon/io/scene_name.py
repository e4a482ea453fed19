"""The name a scene gets in Blender (its collection and splat object), from where its PLY lies in the 3DGS output
layout."""

from __future__ import annotations

from pathlib import Path


def scene_name(ply_path: Path) -> str:
    """Name of the scene a PLY belongs to: the 3DGS output folder for <out>/point_cloud/iteration_N/point_cloud.ply,
    the folder for other point_cloud.ply files, else the file name."""
    parent = ply_path.parent
    if parent.name.startswith("iteration_") and parent.parent.name == "point_cloud" and parent.parent.parent.name:
        return parent.parent.parent.name
    if ply_path.stem == "point_cloud" and parent.name:
        return parent.name
    return ply_path.stem
