"""The "Gaussian Splats" render engine: F12 and Render Animation through the worker (gsplat on a CUDA GPU).

Every visible splat object (this add-on's, and Blender 5.3's own Gaussian splat point clouds) is rendered with
its world transform from the active camera at the render resolution x percentage, with the camera's focal
length, sensor fit and shift. Film Transparent gives a
transparent background, otherwise the world colour. Colour: the worker renders display-referred sRGB, as
3DGS trains on; pixels are decoded to scene-linear for the render result, so with the Standard view
transform saved images hold exactly the worker's colours (see colour.py). The viewport uses EEVEE, which
draws the splat objects' display geometry.

Animations (Render Animation, `blender -b file.blend -a` or `-f a..b` on a render farm): each frame renders the
evaluated camera and object transforms of that frame, through the one render worker the first frame started.
A failure (no worker Python on the node, a worker that cannot start) is reported as an error, which makes
Blender stop the render; docs/render_farm.md.
"""

from __future__ import annotations

import bpy

from ..cameras.pinhole import render_size
from ..errors import SplatInputError
from ..io import render_worker
from ..io.colour import blender_pixels
from ..render.view import background_colour, render_view, scene_camera_view, splat_objects
from .stylize_panel import COLOUR_NOTE, wrapped_label

ENGINE_ID = "GAUSSIAN_SPLATS"
GENERIC_ENGINE = 'BLENDER_RENDER'  # Blender's panels that any engine may reuse list this one


class GaussianSplatsRenderEngine(bpy.types.RenderEngine):
    """Renders splat objects exactly as a 3DGS viewer does."""

    bl_idname = ENGINE_ID
    bl_label = "Gaussian Splats"
    bl_use_preview = False
    bl_use_postprocess = True
    bl_use_eevee_viewport = True

    def render(self, depsgraph: bpy.types.Depsgraph) -> None:
        scene = depsgraph.scene
        width, height = render_size(scene.render)
        try:
            view = scene_camera_view(scene, depsgraph)
            image, warning = render_view(splat_objects(depsgraph), view, background_colour(scene), self.test_break)
        except SplatInputError as error:
            self.report({'ERROR'}, str(error))
            return
        if warning:
            self.report({'WARNING'}, warning)
        result = self.begin_result(0, 0, width, height)
        result.layers[0].passes["Combined"].rect.foreach_set(blender_pixels(image))
        self.end_result(result)


class RENDER_PT_gaussian_splats(bpy.types.Panel):
    """Render Properties of the Gaussian Splats engine."""

    bl_label = "Gaussian Splats"
    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_context = "render"
    COMPAT_ENGINES = {ENGINE_ID}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.engine in cls.COMPAT_ENGINES

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        layout.prop(scene.render, "film_transparent", text="Transparent Background")
        if scene.world is not None and not scene.render.film_transparent:
            layout.prop(scene.world, "color", text="Background")
        layout.prop(scene.view_settings, "view_transform", text="View")
        if scene.view_settings.view_transform != 'Standard':
            wrapped_label(layout, COLOUR_NOTE, 'INFO')


def compatible_panels() -> list[type]:
    """Blender's generic render/output panels (those open to every engine)."""
    return [panel for panel in bpy.types.Panel.__subclasses__()
            if GENERIC_ENGINE in getattr(panel, "COMPAT_ENGINES", ())]


CLASSES = (GaussianSplatsRenderEngine, RENDER_PT_gaussian_splats)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    for panel in compatible_panels():
        panel.COMPAT_ENGINES.add(ENGINE_ID)


def unregister() -> None:
    for panel in compatible_panels():
        panel.COMPAT_ENGINES.discard(ENGINE_ID)
    _unregister_classes()
    render_worker.shutdown()
