"""The settings schema in Blender: every setting is an add-on property with the schema's label, default, bounds and
choices, drawn in its panel group, and what the panels hold reaches the engine unchanged through args.txt."""

import argparse
import importlib
from dataclasses import asdict
from pathlib import Path

import bpy
import pytest
from stylize_helpers import set_up_stylize
from test_blender_stylize import draw

from interchange.settings import ADVANCED, MAIN, SETTINGS, add_arguments, rows, settings_from_namespace

PANEL_SETTINGS = [item for item in SETTINGS if item.spec.group in (MAIN, ADVANCED)]


def other_ui_value(item):
    """A usable add-on value that is not the default (as the property holds it)."""
    value = {"bool": lambda: not item.default,
             "choice": lambda: next(v for v in item.values if v != item.default),
             "text": lambda: "/weights/vgg19 custom.pth", "colour": lambda: (0.25, 0.5, 0.75),
             "int": lambda: item.default + 1,
             "float": lambda: 1.5 if item.default is None else item.default * 0.5 + 0.125}[item.kind]()
    return value, item.to_ui(value)


@pytest.mark.parametrize("item", PANEL_SETTINGS, ids=lambda item: item.name)
def test_every_setting_is_a_property_with_the_schemas_metadata(addon, item) -> None:
    rna = bpy.context.scene.sos_stylize.bl_rna.properties[item.name]
    assert (rna.name, rna.description) == (item.spec.label, item.description)
    default = tuple(rna.default_array) if item.kind == "colour" else rna.default
    assert default == pytest.approx(item.ui_default()) if item.kind in ("float", "colour") \
        else default == item.ui_default()
    bounds = item.ui_range()
    for key in ("min", "max"):
        if key in bounds:
            assert getattr(rna, f"hard_{key}") == pytest.approx(bounds[key])
            assert getattr(rna, f"soft_{key}") == pytest.approx(bounds.get(f"soft_{key}", bounds[key]))
    if item.kind == "choice":
        assert [(e.identifier, e.name, e.description) for e in rna.enum_items] == item.ui_items()


def test_panels_draw_every_setting_in_its_group(addon) -> None:
    main = [args[1] for name, args, _ in draw(bpy.types.VIEW3D_PT_sos_stylize) if name == "prop"]
    advanced = [args[1] for name, args, _ in draw(bpy.types.VIEW3D_PT_sos_advanced) if name == "prop"]
    assert main == rows(MAIN) + ["region_source", "camera_source"] and advanced == rows(ADVANCED)
    assert set(main) | set(advanced) >= {item.name for item in PANEL_SETTINGS}


def test_panel_values_reach_the_engine_through_the_job_arguments(addon, tmp_path: Path) -> None:
    set_up_stylize(tmp_path)
    props = bpy.context.scene.sos_stylize
    expected = {}
    for item in PANEL_SETTINGS:
        value, ui_value = other_ui_value(item)
        setattr(props, item.name, ui_value)
        expected[item.name] = value
    bundled = importlib.import_module(f"{addon.__name__}.interchange.settings")
    assert asdict(props.settings("cpu")) == asdict(bundled.StylizeSettings(**expected, device="cpu"))
    job = tmp_path / "job"
    assert bpy.ops.sos.export_job(directory=str(job)) == {'FINISHED'}
    lines = (job / "args.txt").read_text().splitlines()
    parser = argparse.ArgumentParser()  # the engine's options, as core.cli derives them (torch-free here)
    add_arguments(parser)
    engine = settings_from_namespace(parser.parse_known_args(lines)[0])
    assert asdict(engine) == asdict(bundled.StylizeSettings(**expected, device="auto"))


def test_an_unusable_panel_value_is_refused_naming_its_label(addon, tmp_path: Path) -> None:
    set_up_stylize(tmp_path)
    bpy.context.scene.sos_stylize.learning_rate = 0.0
    with pytest.raises(RuntimeError, match="Stylize settings: Learning Rate must be > 0.0"):
        bpy.ops.sos.export_job(directory=str(tmp_path / "job"))


def test_the_device_preference_offers_the_schemas_device_choices(addon) -> None:
    """Declared once: the preferences' Device items are the engine's device setting's choices."""
    from interchange.settings import BY_NAME
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    items = [(item.identifier, item.name, item.description) for item in prefs.bl_rna.properties["device"].enum_items]
    assert items == BY_NAME["device"].ui_items() and prefs.device == BY_NAME["device"].ui_default()
