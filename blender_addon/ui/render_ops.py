"""Render every camera of a collection to PNG files through the render worker (one file per camera)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..cameras.objects import export_order
from ..errors import SplatInputError, run_reported
from ..io.colour import png_pixels
from ..io.png import write_png
from ..render.view import background_colour, camera_view, render_view, splat_objects


def collection_cameras(name: str) -> list[bpy.types.Object]:
    """Perspective cameras of a collection and its children, in file order (imported id, then name)."""
    collection = bpy.data.collections.get(name)
    if collection is None:
        raise SplatInputError(f"Collection {name!r} does not exist")
    cameras = [o for o in collection.all_objects if o.type == 'CAMERA' and o.data.type == 'PERSP']
    if not cameras:
        raise SplatInputError(f"Collection {name!r} holds no perspective camera")
    return sorted(cameras, key=export_order)


def render_cameras(context: bpy.types.Context, cameras: list[bpy.types.Object], folder: Path) -> list[Path]:
    """One PNG per camera (named after it) of what the Gaussian Splats engine would render; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = context.scene
    objects = splat_objects(context.evaluated_depsgraph_get())
    background = background_colour(scene)
    paths = []
    for camera in cameras:
        image, _ = render_view(objects, camera_view(camera, scene), background, lambda: False)
        path = folder / f"{bpy.path.clean_name(camera.name)}.png"
        write_png(path, png_pixels(image))
        paths.append(path)
    return paths


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
