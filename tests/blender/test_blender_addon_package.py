"""Packaging: the zip installs as an extension and as a legacy add-on (import boundaries: tests/test_boundaries.py)."""

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import bpy
import pytest
from blender_test_files import procedural_columns, write_ply

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
import install  # noqa: E402  (the repository's installer, at the repository root)


def test_zip_holds_the_addon_folder_with_manifest_and_bl_info(addon_zip: Path) -> None:
    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
        init = archive.read("sos_stylizer/__init__.py").decode()
        manifest = archive.read("sos_stylizer/blender_manifest.toml").decode()
    assert all(name.startswith("sos_stylizer/") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert 'id = "sos_stylizer"' in manifest and 'blender_version_min = "4.2.0"' in manifest
    assert "bl_info" in init and '"blender": (4, 2, 0)' in init


def test_blender_strict_manifest_validation_accepts_the_zip(addon_zip: Path) -> None:
    """Blender's own extension validator (what `blender --command extension validate` runs), in strict mode."""
    script = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    spec = importlib.util.spec_from_file_location("sos_blender_ext_validator", script)
    validator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(validator)
    manifest = validator.pkg_manifest_from_archive_and_validate(str(addon_zip), strict=True)
    assert not isinstance(manifest, str), manifest
    assert (manifest.id, manifest.name) == ("sos_stylizer", "Gaussian Splat Stylizer")
    assert validator.pkg_is_legacy_addon(str(addon_zip)) is False  # Install from Disk takes the extension path


def test_enabled_extension_registers_operators_menus_and_panel(addon) -> None:
    for category, name in (("import_scene", "gaussian_splat"), ("import_scene", "gaussian_splat_cameras"),
                           ("export_scene", "gaussian_splat"), ("export_scene", "gaussian_splat_cameras")):
        assert hasattr(getattr(bpy.ops, category), name)
        assert getattr(getattr(bpy.ops, category), name).get_rna_type().name
    panel = bpy.types.VIEW3D_PT_gaussian_splats
    assert (panel.bl_category, panel.bl_label) == ("Stylize", "Gaussian Splats")
    assert addon.ui.import_ops.menu_import in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    assert addon.ui.export_ops.menu_export in bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize()


class LayoutRecorder:
    """Stands in for a panel's layout: records every call, returns itself for rows and columns."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return record


def draw_panel() -> LayoutRecorder:
    panel = type("PanelStandIn", (), {"layout": LayoutRecorder()})()
    bpy.types.VIEW3D_PT_gaussian_splats.draw(panel, bpy.context)
    return panel.layout


def test_panel_shows_import_buttons_and_the_active_splats_display_inputs(addon, tmp_path: Path) -> None:
    operators = [args[0] for name, args, _ in draw_panel().calls if name == "operator"]
    assert operators == ["import_scene.gaussian_splat", "import_scene.gaussian_splat_cameras"]
    bpy.ops.import_scene.gaussian_splat(filepath=str(write_ply(tmp_path / "s.ply", procedural_columns(30, 2))),
                                        display_mode='ELLIPSOIDS')
    calls = draw_panel().calls
    assert ("label", (), {"text": "30 Gaussians, SH degree 2"}) in calls
    props = [(args, kwargs["text"]) for name, args, kwargs in calls if name == "prop"]
    assert [text for _, text in props] == ["Points Only", "Every Nth", "Max Splats", "Size"]
    modifier = addon.splats.display_nodes.display_modifier(bpy.context.view_layer.objects.active)
    assert modifier is not None
    assert [owner.path_resolve(path) for (owner, path), _ in props] == [False, 1, 200_000, 2.0]
    assert [addon.splats.display_nodes.input_property(modifier, name) for name in ("Points Only", "Size")] == \
        [args for args, text in props if text in ("Points Only", "Size")]
    assert "export_scene.gaussian_splat" in [args[0] for name, args, _ in calls if name == "operator"]


@pytest.mark.parametrize("legacy, module, folder", [
    (False, "bl_ext.user_default.sos_stylizer", "extensions/user_default/sos_stylizer"),
    (True, "sos_stylizer", "scripts/addons/sos_stylizer")])
def test_install_script_installs_enables_and_saves_preferences(addon_zip: Path, tmp_path: Path, legacy: bool,
                                                               module: str, folder: str) -> None:
    """install.py's in-Blender script, run in a fresh Blender process with throw-away user folders: the add-on
    lands where Blender installs it, is enabled, and the saved preferences name it and the worker's Python.
    (The saved file is read as bytes: bpy 4.2 as a module crashes in wm.read_userpref, Blender itself does not.)"""
    env = dict(os.environ)
    for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS", "DATAFILES"):
        env[f"BLENDER_USER_{kind}"] = str(tmp_path / kind.lower())
    worker = tmp_path / "venv" / "bin" / "python"
    script = "import bpy\n" + install.blender_install_script(addon_zip, worker, legacy=legacy)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"installed and enabled {module}" in run.stdout
    assert (tmp_path / folder / "__init__.py").is_file() and (tmp_path / folder / "blender_manifest.toml").is_file()
    saved = (tmp_path / "config" / "userpref.blend").read_bytes()
    assert module.encode() in saved and str(worker).encode() in saved
