"""Gaussian Splat Stylizer: import, display, export and stylize 3D Gaussian Splatting scenes in Blender.

One source tree installs both ways: as an extension (blender_manifest.toml, Blender 4.2+) and as a legacy
add-on (bl_info). Only bpy, numpy and the standard library are imported; stylization runs in a separate
worker process, so importing, displaying and exporting splats work without it.
"""

from .ui import (export_ops, import_ops, preferences, render_engine, render_ops, splat_panel, stylize_ops,
                 stylize_panel, stylize_props)

bl_info = {
    "name": "Gaussian Splat Stylizer",
    "author": "sos-stylizer contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "File > Import/Export > Gaussian Splat; 3D Viewport > Sidebar > Stylize",
    "description": "Import, display, export and stylize 3D Gaussian Splatting scenes",
    "category": "Import-Export",
}

MODULES = (preferences, import_ops, export_ops, splat_panel, stylize_props, stylize_ops, stylize_panel,
           render_engine, render_ops)


def register() -> None:
    for module in MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(MODULES):
        module.unregister()
