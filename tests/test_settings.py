"""The one settings schema: every setting reaches the command line (flag, parsing, one-line errors), validation,
the job arguments (round trip through the engine's parser) and the add-on's property mapping.
(tests/blender/test_blender_settings.py checks the real bpy properties and panel rows.)"""

import ast
import math
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from core.checks import divergence_hint
from core.cli import DEMO_SETTINGS, build_parser, settings_from_args
from core.errors import InputError
from interchange import settings as schema
from interchange.settings import ADVANCED, ENGINE_ONLY, MAIN, SETTINGS, StylizeSettings

ROOT = Path(__file__).resolve().parents[1]
PANEL_SETTINGS = [item for item in SETTINGS if item.spec.group in (MAIN, ADVANCED)]


def other_value(item: schema.Setting):
    """A usable value that is not the default."""
    if item.kind == "bool":
        return not item.default
    if item.kind == "choice":
        return next(v for v in item.values if v != item.default)
    if item.kind == "text":
        return "/weights/vgg19 custom.pth"
    if item.kind == "colour":
        return (0.25, 0.5, 0.75)
    if item.kind == "int":
        return item.default + 1
    return 1.5 if item.default is None else item.default * 0.5 + 0.125


def bad_texts(item: schema.Setting) -> list[str]:
    """Command-line values the option must refuse: wrong type, non-finite, out of bounds."""
    spec = item.spec
    texts = {"int": ["1.5", "x"], "float": ["nan", "inf", "x"], "choice": ["nope"], "text": [""],
             "colour": ["2,0,0", "0,0", "pink", "nan,0,0"], "bool": []}[item.kind]
    if item.kind in ("int", "float"):
        texts += [str(bound) for bound in (spec.low - 1 if spec.low is not None else None, spec.above,
                                           spec.high + 1 if spec.high is not None else None) if bound is not None]
    return texts


def parse(argv: list[str]) -> StylizeSettings:
    return settings_from_args(build_parser().parse_args(["--demo", "-o", "out", *argv]))


def test_schema_is_the_engines_settings_class():
    import core
    from core.stylization import StylizeSettings as engine_settings
    assert engine_settings is StylizeSettings and core.StylizeSettings is StylizeSettings
    assert [f.name for f in fields(StylizeSettings)] == [item.name for item in SETTINGS]


def test_defaults_are_the_engines():
    s = StylizeSettings()
    assert (s.iterations, s.resolution, s.learning_rate, s.optimize, s.preview_every) == (600, 1024, 0.1, "color", 0)
    assert (schema.BY_NAME["resolution"].spec.low, schema.BY_NAME["resolution"].spec.high) == (16, 16384)
    s.validate()


@pytest.mark.parametrize("item", SETTINGS, ids=lambda item: item.name)
def test_every_setting_has_a_flag_help_and_a_group(item):
    assert item.flag.startswith("--") and item.spec.help and item.spec.label
    assert item.spec.group in (MAIN, ADVANCED, ENGINE_ONLY)
    assert item.problem(item.default) is None and item.problem(other_value(item)) is None
    assert item.flag in build_parser().format_help()


def test_only_the_device_stays_out_of_the_addon():
    """The add-on takes the device from its preferences; any other setting must be a property in a panel."""
    assert [item.name for item in SETTINGS if item.spec.group == ENGINE_ONLY] == ["device"]


def test_job_arguments_of_defaults_parse_back_to_the_defaults():
    assert parse(schema.arguments(StylizeSettings())) == StylizeSettings()


@pytest.mark.parametrize("item", SETTINGS, ids=lambda item: item.name)
def test_every_setting_round_trips_through_job_arguments_and_the_command_line(item):
    settings = StylizeSettings(**{item.name: other_value(item)})
    assert parse(schema.arguments(settings)) == settings
    alone = StylizeSettings(**{**DEMO_SETTINGS, item.name: other_value(item)})  # parse() runs with --demo
    assert parse(item.to_arguments(other_value(item))) == alone


def test_a_64_bit_seed_round_trips_and_a_larger_one_is_refused():
    settings = StylizeSettings(seed=2**64 - 1)
    assert parse(schema.arguments(settings)).seed == 2**64 - 1
    with pytest.raises(schema.SettingsError, match="seed must be in 0..18446744073709551615"):
        StylizeSettings(seed=2**64).validate()


@pytest.mark.parametrize("item, text", [(item, text) for item in SETTINGS for text in bad_texts(item)],
                         ids=lambda value: value.name if isinstance(value, schema.Setting) else repr(value))
def test_bad_values_are_one_line_errors_naming_the_option(item, text, capsys):
    with pytest.raises(SystemExit) as exited:
        parse([item.flag, text])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {item.flag}: "), lines


@pytest.mark.parametrize("name, value", [("resolution", 0), ("resolution", 16385), ("iterations", -1),
                                         ("learning_rate", 0.0), ("learning_rate", math.nan), ("seed", -1),
                                         ("style_strength", math.inf), ("background", (0.0, 0.0)),
                                         ("background", "black"), ("optimize", "geometry"), ("bf16", "yes"),
                                         ("iterations", 2.0), ("preview_every", True), ("vgg_weights", ""),
                                         ("max_gpu_mem_gib", 0.0)])
def test_validation_names_the_setting(name, value):
    with pytest.raises(schema.SettingsError, match=f"^settings: {name} must be"):
        StylizeSettings(**{name: value}).validate()


def test_resolution_zero_is_refused_not_replaced_by_the_default(capsys):
    with pytest.raises(SystemExit):
        parse(["--resolution", "0"])
    assert "error: --resolution: must be in 16..16384 (got 0)" in capsys.readouterr().err


def test_demo_defaults_apply_only_to_options_not_given():
    assert parse([]) == StylizeSettings(iterations=120, resolution=128)
    args = build_parser().parse_args(["-o", "out", "x.ply", "y.jpg"])
    assert settings_from_args(args) == StylizeSettings()


@pytest.mark.parametrize("item", PANEL_SETTINGS, ids=lambda item: item.name)
def test_addon_values_map_back_to_the_setting(item):
    for value in (item.default, other_value(item)):
        assert item.from_ui(item.to_ui(value)) == value
    bounds = item.ui_range()
    default = item.ui_default()
    for component in (default if item.kind == "colour" else [default]):
        if item.kind in ("int", "float", "colour"):
            assert bounds.get("min", -math.inf) <= component <= bounds.get("max", math.inf)
    if item.kind == "choice":
        identifiers = [identifier for identifier, _, _ in item.ui_items()]
        assert len(set(identifiers)) == len(item.values) and default in identifiers


def test_addon_values_give_the_settings():
    values = {item.name: item.to_ui(other_value(item)) for item in PANEL_SETTINGS}
    expected = StylizeSettings(**{item.name: other_value(item) for item in PANEL_SETTINGS}, device="cuda")
    assert schema.settings_from_ui({**values, "device": "cuda"}) == expected
    assert schema.settings_from_ui({"max_gpu_mem_gib": 0.0, "vgg_weights": ""}) == StylizeSettings()


def test_panel_groups_list_every_addon_setting_once():
    assert schema.rows(MAIN) + schema.rows(ADVANCED) == [item.name for item in PANEL_SETTINGS]
    assert schema.rows(MAIN)[:5] == ["resolution", "iterations", "style_strength", "content_weight", "optimize"]


def test_settings_module_imports_only_the_standard_library():
    tree = ast.parse((ROOT / "interchange" / "settings.py").read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert roots <= set(sys.stdlib_module_names), roots


@pytest.mark.parametrize("item", SETTINGS, ids=lambda item: item.name)
def test_help_and_tooltips_cite_no_repository_file(item):
    """Users of the add-on have no docs/ folder: help says what was measured, not where."""
    texts = [item.spec.help, item.description, *(text for _, _, text in item.spec.choices)]
    assert not [text for text in texts if "docs/" in text or ".md" in text], texts


@pytest.mark.parametrize("item", SETTINGS, ids=lambda item: item.name)
def test_a_mentioned_setting_reads_as_each_front_end_names_it(item):
    text = f"lower {schema.mention(item.name)} (now 3)"
    assert schema.for_command_line(text) == f"lower {item.flag} (now 3)"
    assert schema.for_panel(text) == f"lower {item.spec.label} (now 3)"
    assert str(InputError(text)) == f"lower {item.name} (now 3)"  # Python callers: StylizeSettings' spelling
    assert InputError(text).template == text


def test_mentions_are_only_the_schemas_settings():
    with pytest.raises(KeyError):
        schema.mention("learning_rte")
    untouched = "{setting:nothing_here} and {'setting': 1} and {}"
    assert schema.for_command_line(untouched) == schema.for_panel(untouched) == untouched


def test_a_divergence_names_the_setting_for_each_front_end():
    """The engine's hint reaches the command line and the add-on: each names the setting its own way."""
    hint = divergence_hint(StylizeSettings(learning_rate=5.0))
    assert schema.for_command_line(hint) == "likely cause: the learning rate 5 (--lr, default 0.1); lower it"
    assert schema.for_panel(hint) == "likely cause: the learning rate 5 (Learning Rate, default 0.1); lower it"
    hint = divergence_hint(StylizeSettings(style_strength=math.inf))
    assert schema.for_panel(hint) == "likely cause: the style strength inf (Style Strength, default 30); lower it"


def test_the_device_choices_are_declared_once(capsys):
    """The render worker's --device takes exactly the schema's choices (the add-on's preferences too:
    tests/blender/test_blender_settings.py)."""
    from core import worker
    with pytest.raises(SystemExit):
        worker.main(["--device", "quantum"])
    choices = ", ".join(repr(value) for value in schema.BY_NAME["device"].values)
    assert f"(choose from {choices})" in capsys.readouterr().err
    assert "--device {" + ",".join(schema.BY_NAME["device"].values) + "}" in build_parser().format_help()


def test_engine_refusals_name_their_setting_for_each_front_end():
    """The device, the settings check and the VGG preprocessing check mention the setting they refuse, so the
    command line names its flag, the add-on its label and Python callers the schema's name."""
    from core.device import resolve_device
    from core.stylization import check_settings
    from core.vgg import check_vgg_weights
    with pytest.raises(InputError) as device:
        resolve_device("quantum")
    assert schema.for_command_line(device.value.template).startswith("--device: unknown device 'quantum' (")
    assert schema.for_panel(device.value.template).startswith("Device: unknown device 'quantum' (")
    assert str(device.value).startswith("device: unknown device 'quantum' (")
    with pytest.raises(InputError) as settings:
        check_settings(StylizeSettings(learning_rate=0.0))
    assert schema.for_command_line(settings.value.template) == "settings: --lr must be > 0.0 and <= 10.0 (got 0.0)"
    assert schema.for_panel(settings.value.template) == "settings: Learning Rate must be > 0.0 and <= 10.0 (got 0.0)"
    assert str(settings.value) == "settings: learning_rate must be > 0.0 and <= 10.0 (got 0.0)"
    with pytest.raises(InputError) as vgg:
        check_vgg_weights(None, "torch")
    assert schema.for_command_line(vgg.value.template) == (
        "--vgg-preprocess torch: the default VGG-19 weights are Caffe weights; torch preprocessing needs "
        "--vgg-weights")
    assert schema.for_panel(vgg.value.template).startswith("VGG Preprocessing torch: ")
