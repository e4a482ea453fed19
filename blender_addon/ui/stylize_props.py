"""The Stylize panel's settings, stored per scene (scene.sos_stylize), and the job's progress factor."""

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, PointerProperty

from ..stylize.job_folder import JobOptions

OPTIMIZE_ITEMS = [
    ('COLOR', "Colours", "Optimise the base (view-independent) colour of each Gaussian"),
    ('SH', "Colours + View-Dependent", "Also optimise the higher spherical-harmonics bands"),
    ('SH_OPACITY', "Colours + View-Dependent + Opacity", "Also optimise each Gaussian's opacity"),
]
OPTIMIZE_ARGUMENT = {'COLOR': "color", 'SH': "sh", 'SH_OPACITY': "sh+opacity"}
CAMERA_SOURCES = [
    ('IMPORTED', "Imported Cameras", "The cameras imported with the splat (cameras.json), attached to it"),
    ('SELECTED', "Selected Cameras", "The selected camera objects"),
    ('ORBIT', "Orbit Rig", "An orbit rig around the splat, created as cameras in the scene (Add Orbit Cameras)"),
]


class SOS_PG_stylize_settings(bpy.types.PropertyGroup):
    """What to stylize with and how."""

    style_image: PointerProperty(name="Style", type=bpy.types.Image,
                                 description="The painting whose style is transferred to the splat")
    resolution: IntProperty(name="Resolution", default=1024, min=16, max=8192,
                            description="Long side in pixels of the views the style loss sees (up to 8K; "
                                        "above about 2K the loss is computed in tiles)")
    iterations: IntProperty(name="Iterations", default=600, min=1, max=100_000,
                            description="Optimisation steps (one random view each)")
    style_strength: FloatProperty(name="Style Strength", default=1.0, min=0.0, soft_max=10.0,
                                  description="Weight of the painting's style against the scene's content")
    content_weight: FloatProperty(name="Content Weight", default=1.0, min=0.0, soft_max=10.0,
                                  description="How strongly the stylized views keep the original's structure")
    optimize: EnumProperty(name="Optimize", items=OPTIMIZE_ITEMS, default='COLOR')
    camera_source: EnumProperty(name="Cameras", items=CAMERA_SOURCES, default='IMPORTED')
    orbit_count: IntProperty(name="Views", default=24, min=1, max=512,
                             description="Number of cameras in the orbit rig")
    max_gpu_mem: FloatProperty(name="GPU Memory Cap", default=0.0, min=0.0, soft_max=80.0,
                               description="GiB of GPU memory the style loss may use (0: as much as is free); "
                                           "above it the loss is computed in tiles")
    preview_every: IntProperty(name="Preview Every", default=25, min=0,
                               description="Refresh the preview every N iterations (0: no preview)")

    def options(self, device: str) -> JobOptions:
        """The engine settings these properties stand for."""
        return JobOptions(resolution=self.resolution, iterations=self.iterations,
                          style_strength=self.style_strength, content_weight=self.content_weight,
                          optimize=OPTIMIZE_ARGUMENT[self.optimize], max_gpu_mem_gib=self.max_gpu_mem,
                          preview_every=self.preview_every, device=device)


def register() -> None:
    bpy.utils.register_class(SOS_PG_stylize_settings)
    bpy.types.Scene.sos_stylize = PointerProperty(type=SOS_PG_stylize_settings)
    bpy.types.WindowManager.sos_stylize_progress = FloatProperty(
        name="Stylize Progress", min=0.0, max=1.0, subtype='FACTOR', options={'SKIP_SAVE'})


def unregister() -> None:
    del bpy.types.WindowManager.sos_stylize_progress
    del bpy.types.Scene.sos_stylize
    bpy.utils.unregister_class(SOS_PG_stylize_settings)
