"""Render Cameras: every camera of a collection to PNG files through the render worker (render/batch.py)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..cameras.collections import collection_cameras
from ..errors import run_reported
from ..render.batch import render_cameras


class SOS_OT_render_cameras(bpy.types.Operator):
    """Render the splat objects from every camera of a collection into PNG files"""

    bl_idname = "sos.render_cameras"
    bl_label = "Render Cameras"

    collection: StringProperty(name="Collection", description="Render each camera of this collection")
    directory: StringProperty(name="Folder", subtype='DIR_PATH', description="Folder for the PNG files")

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop_search(self, "collection", bpy.data, "collections")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self.directory:
            self.report({'ERROR'}, "Choose a folder for the images")
            return {'CANCELLED'}
        folder = Path(bpy.path.abspath(self.directory))

        def render_all() -> str:
            paths = render_cameras(context, collection_cameras(self.collection), folder)
            return f"Rendered {len(paths)} cameras of {self.collection} to {folder}"

        return run_reported(self, render_all, folder)


CLASSES = (SOS_OT_render_cameras,)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
