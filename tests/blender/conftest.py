"""Headless Blender (bpy) fixtures: the add-on installed from its zip into a throw-away extension repository.

Blender's user folders point at a temporary directory before bpy is imported, so the tests never read or
write the user's real Blender configuration. `read_factory_settings` also resets the preferences (the
repository and the enabled add-on with them), so each reset registers the repository again and re-enables
the already-installed extension.
"""

import atexit
import importlib
import os
import pkgutil
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

USER_DIRS = tempfile.mkdtemp(prefix="sos_blender_user_")
atexit.register(shutil.rmtree, USER_DIRS, ignore_errors=True)
if "bpy" not in sys.modules:
    for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS", "DATAFILES"):
        os.environ[f"BLENDER_USER_{kind}"] = os.path.join(USER_DIRS, kind.lower())

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed: install.py --dev")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REPO_MODULE = "sos_test_repo"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.sos_stylizer"
REPO_DIRECTORY = os.path.join(USER_DIRS, "extension_repo")

sys.path.insert(0, str(REPO_ROOT))
import install  # noqa: E402  (the repository's installer builds the zip under test)


def register_repository() -> None:
    """Register the temporary extension repository (again, after a preferences reset)."""
    repos = bpy.context.preferences.extensions.repos
    if REPO_MODULE not in {r.module for r in repos}:
        repos.new(name="sos tests", module=REPO_MODULE, custom_directory=REPO_DIRECTORY, source='USER')


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The add-on zip exactly as users get it."""
    return install.build_addon_zip(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_addon(addon_zip: Path) -> str:
    """Install the zip as an extension (Install from Disk) once per session; returns the add-on module name."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    register_repository()
    result = bpy.ops.extensions.package_install_files(filepath=str(addon_zip), repo=REPO_MODULE,
                                                      enable_on_install=True)
    assert result == {'FINISHED'}
    assert ADDON_MODULE in bpy.context.preferences.addons
    return ADDON_MODULE


@pytest.fixture
def addon(installed_addon: str):
    """A factory-fresh empty scene with the add-on enabled; yields the add-on package (its modules are attributes)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    register_repository()
    assert bpy.ops.preferences.addon_enable(module=installed_addon) == {'FINISHED'}
    package = importlib.import_module(installed_addon)
    for module in pkgutil.walk_packages(package.__path__, f"{installed_addon}."):
        importlib.import_module(module.name)  # every module, so tests reach them as attributes (addon.splats.objects)
    yield package


def shared_scene(name: str) -> Path:
    """A real scene folder from the shared data, or skip the test when this checkout has none."""
    folder = SHARED_DATA / "scenes" / name
    if not (folder / "point_cloud.ply").is_file():
        pytest.skip(f"shared scene {name!r} not found at {folder} (the shared data folder is optional)")
    return folder


@pytest.fixture
def worker_addon(addon):
    """The add-on with the CPU worker (stylize_helpers.worker_python()); stops any job or render worker left
    running."""
    from stylize_helpers import configure
    configure(addon)
    yield addon
    addon.stylize.session.shutdown()
    addon.io.render_worker.shutdown()
    if bpy.app.timers.is_registered(addon.stylize.session.tick):
        bpy.app.timers.unregister(addon.stylize.session.tick)


@pytest.fixture
def guitar() -> Path:
    return shared_scene("guitar")


@pytest.fixture
def flowers() -> Path:
    return shared_scene("flowers")
