"""The 'Gaussian Splats' panel in the 3D viewport sidebar's Stylize tab: import, display settings, a stylized
result's Mix, export."""

import bpy

from ..splats.display_nodes import display_input_names, display_modifier, input_property, is_native_display
from ..io.native import SH_DEGREE_BY_COEFFICIENTS
from ..splats.mix import MIX_PATH, has_mix
from ..splats.native_objects import is_native_splat, sh_coefficient_count
from ..splats.objects import SPLAT_KEY, is_gaussian_object
from .sidebar import SidebarPanel


def draw_mix(layout: bpy.types.UILayout, obj: bpy.types.Object | None) -> None:
    """The Mix slider of a stylized result (0 the capture's colours, 1 the result); nothing for other objects."""
    if has_mix(obj):
        layout.prop(obj, MIX_PATH, text="Mix", slider=True)


class VIEW3D_PT_gaussian_splats(SidebarPanel, bpy.types.Panel):
    """Import and export splat scenes; show the active splat's size and viewport display settings."""

    bl_label = "Gaussian Splats"
    bl_idname = "VIEW3D_PT_gaussian_splats"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row(align=True)
        row.operator("import_scene.gaussian_splat", text="Import Splat", icon='IMPORT')
        row.operator("import_scene.gaussian_splat_cameras", text="Cameras", icon='CAMERA_DATA')
        obj = context.view_layer.objects.active
        if not is_gaussian_object(obj):
            layout.label(text="Select a splat object to see its settings")
            return
        if is_native_splat(obj):
            degree = SH_DEGREE_BY_COEFFICIENTS.get(sh_coefficient_count(obj), "?")
            layout.label(text=f"{len(obj.data.points):,} Gaussians, SH degree {degree} (Blender splats)")
        else:
            layout.label(text=f"{len(obj.data.vertices):,} Gaussians, SH degree {obj[SPLAT_KEY]['sh_degree']}")
        modifier = display_modifier(obj)
        if is_native_display(modifier):
            layout.label(text="Shown as Blender Gaussian splats (EEVEE, Cycles)")
        elif modifier is not None and modifier.node_group is not None:
            column = layout.column(align=True)
            for name in display_input_names(modifier):
                column.prop(*input_property(modifier, name), text=name)
        draw_mix(layout, obj)
        row = layout.row(align=True)
        row.operator("export_scene.gaussian_splat", text="Export Splat", icon='EXPORT')
        row.operator("export_scene.gaussian_splat_cameras", text="Cameras", icon='CAMERA_DATA')


CLASSES = (VIEW3D_PT_gaussian_splats,)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
