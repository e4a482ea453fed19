"""The Stylize panel's settings, stored per scene (scene.sos_stylize), and the job's progress factor.

The stylization settings are not declared here: each property is built from the one settings schema
(interchange.settings, bundled in the add-on's zip), with its label, tooltip, default, bounds and choices.
Only what the add-on adds (the style image, which part of the object, where the cameras come from) is declared
here.
"""

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty,
                       PointerProperty, StringProperty)

from ..errors import SplatInputError
from ..interchange.settings import ADVANCED, MAIN, SETTINGS, Setting, StylizeSettings, settings_from_ui
from ..splats.selection import ATTRIBUTE, SELECTED, WHOLE, region_candidates

CAMERA_SOURCES = [
    ('IMPORTED', "Imported Cameras", "The cameras imported with the splat (cameras.json), attached to it"),
    ('SELECTED', "Selected Cameras", "The selected camera objects"),
    ('ORBIT', "Orbit Rig", "An orbit rig around the splat, created as cameras in the scene (Add Orbit Cameras)"),
]
REGION_SOURCES = [
    (WHOLE, "Whole Object", "Stylize every Gaussian of the splat object"),
    (SELECTED, "Selected Points", "Stylize only the points selected in Edit mode; the others keep their colours "
                                  "and still count as content"),
    (ATTRIBUTE, "Attribute", "Stylize by a Float or Boolean point attribute or a vertex group: each Gaussian "
                             "takes its weight (0..1) of the change; 0 keeps its colours"),
]
PANEL_SETTINGS = tuple(item for item in SETTINGS if item.spec.group in (MAIN, ADVANCED))
PROPERTY_TYPES = {"int": IntProperty, "float": FloatProperty, "bool": BoolProperty, "choice": EnumProperty,
                  "text": StringProperty, "colour": FloatVectorProperty}


def setting_property(item: Setting):
    """The bpy property of one schema setting."""
    options = {"name": item.spec.label, "description": item.description, "default": item.ui_default()}
    if item.kind == "choice":
        options["items"] = item.ui_items()
    elif item.kind == "text":
        options["subtype"] = 'FILE_PATH'
    else:
        options.update(item.ui_range())
    if item.kind == "colour":
        options.update(size=3, subtype='COLOR_GAMMA')  # display-referred sRGB, as the engine's renders
    if item.spec.digits is not None:
        options["precision"] = item.spec.digits
    return PROPERTY_TYPES[item.kind](**options)


def search_region_attributes(self, context: bpy.types.Context, edit_text: str) -> list[tuple[str, str]]:
    """The active splat object's Float and Boolean point attributes and vertex groups, for the Attribute field."""
    obj = context.view_layer.objects.active if context.view_layer else None
    text = edit_text.lower()
    return [(name, kind) for name, kind in region_candidates(obj) if text in name.lower()]


class SOS_PG_stylize_settings(bpy.types.PropertyGroup):
    """What to stylize with and how (the schema's settings are added below)."""

    style_image: PointerProperty(name="Style", type=bpy.types.Image,
                                 description="The painting whose style is transferred to the splat")
    region_source: EnumProperty(
        name="Region", items=REGION_SOURCES, default=WHOLE,
        description="Which part of the splat object is stylized; the rest keeps its colours and still counts as "
                    "content (with Detail, only this part is split)")
    region_attribute: StringProperty(
        name="Attribute", search=search_region_attributes,
        description="The point attribute (Float or Boolean) or vertex group whose values, 0..1, say how much of "
                    "the change each Gaussian takes (0 keeps its colours)")
    camera_source: EnumProperty(name="Cameras", items=CAMERA_SOURCES, default='IMPORTED')
    orbit_count: IntProperty(name="Views", default=24, min=1, max=512,
                             description="Number of cameras in the orbit rig")

    def settings(self, device: str) -> StylizeSettings:
        """The engine settings these properties stand for; raises SplatInputError naming an unusable one."""
        values = {item.name: getattr(self, item.name) for item in PANEL_SETTINGS}
        for item in PANEL_SETTINGS:
            if item.kind == "text" and values[item.name]:
                values[item.name] = bpy.path.abspath(values[item.name])
        settings = settings_from_ui({**values, "device": device})
        for item, problem in settings.problems():
            raise SplatInputError(f"Stylize settings: {item.spec.label} {problem}")
        return settings


SOS_PG_stylize_settings.__annotations__.update({item.name: setting_property(item) for item in PANEL_SETTINGS})


def register() -> None:
    bpy.utils.register_class(SOS_PG_stylize_settings)
    bpy.types.Scene.sos_stylize = PointerProperty(type=SOS_PG_stylize_settings)
    bpy.types.WindowManager.sos_stylize_progress = FloatProperty(
        name="Stylize Progress", min=0.0, max=1.0, subtype='FACTOR', options={'SKIP_SAVE'})


def unregister() -> None:
    del bpy.types.WindowManager.sos_stylize_progress
    del bpy.types.Scene.sos_stylize
    bpy.utils.unregister_class(SOS_PG_stylize_settings)
