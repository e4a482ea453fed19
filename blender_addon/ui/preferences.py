"""Add-on preferences: where the stylization worker's Python lives (install.py --blender fills it in)."""

import bpy
from bpy.props import EnumProperty, StringProperty

from ..worker.config import ADDON_PACKAGE


class SplatStylizerPreferences(bpy.types.AddonPreferences):
    """Settings shown under the add-on in Preferences."""

    bl_idname = ADDON_PACKAGE

    worker_python: StringProperty(
        name="Worker Python", subtype='FILE_PATH', default="",
        description="Python of the environment with torch and gsplat (made by install.py); "
                    "importing, displaying and exporting splats work without it")
    device: EnumProperty(
        name="Device", default='AUTO',
        items=[('AUTO', "Auto", "The CUDA GPU when the worker has one, else the CPU"),
               ('CUDA', "CUDA GPU", "The CUDA GPU (falls back to the CPU with a warning when there is none)"),
               ('CPU', "CPU", "The CPU (slow; small scenes and sizes)")],
        description="Where the worker stylizes and renders")

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop(self, "worker_python")
        self.layout.prop(self, "device")
        self.layout.operator("sos.check_worker", icon='CHECKMARK')


CLASSES = (SplatStylizerPreferences,)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
