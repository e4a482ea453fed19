"""The io layer is plain Python: it loads, laid out as in the zip, where bpy cannot be imported at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import addon_package

HERE = Path(__file__).resolve().parent
BLENDER_AND_ENGINE = ("bpy", "bpy_extras", "mathutils", "torch", "core")


def test_the_layer_loads_where_bpy_cannot_be_imported() -> None:
    """In a fresh process where importing bpy, Blender's other modules, torch or the engine fails (even where bpy
    is installed, as in the bpy 5.3 environment), every io module imports."""
    script = (f"import sys\nfor name in {BLENDER_AND_ENGINE!r}:\n    sys.modules[name] = None\n"
              "import addon_package, json\naddon = addon_package.load_addon()\n"
              "print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(addon_package.REPO_ROOT)])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout)
    io_modules = {name for name in loaded if name.startswith(f"{addon_package.install.ADDON_MODULE}.io.")}
    files = {path.stem for path in (addon_package.install.ADDON_SOURCE / "io").glob("*.py")} - {"__init__"}
    assert {name.rpartition(".")[2] for name in io_modules} == files
    assert not [name for name in loaded if name.split(".")[0] in BLENDER_AND_ENGINE]


def test_the_addons_error_type_is_its_interchange_copys(addon: ModuleType) -> None:
    """io's SplatInputError is the bundled interchange's InputError, so errors of the shared code are the add-on's
    own, as inside Blender."""
    assert addon.io.errors.SplatInputError is addon.interchange.errors.InputError
    assert addon.interchange.__name__ == f"{addon.__name__}.interchange"
