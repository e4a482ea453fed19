"""Add-on preferences: where the stylization worker's Python lives (install.py --blender fills it in)."""

import bpy
from bpy.props import StringProperty


class SplatStylizerPreferences(bpy.types.AddonPreferences):
    """Settings shown under the add-on in Preferences."""

    bl_idname = __package__

    worker_python: StringProperty(
        name="Worker Python", subtype='FILE_PATH', default="",
        description="Python of the environment with torch and gsplat (made by install.py); "
                    "importing, displaying and exporting splats work without it")

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop(self, "worker_python")


CLASSES = (SplatStylizerPreferences,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
