"""The add-on's bpy-free layer (blender_addon/io/) as plain Python: the add-on package laid out as its zip lays it
out, in memory, without bpy and without building the zip.

The add-on reaches the shared package relatively, as its own subpackage (``from ..interchange.ply import ...``):
install.build_addon_zip puts interchange/ inside the zip's ``sos_stylizer/`` folder, so the source tree is not
importable as it stands. load_addon() makes the same package layout:

- the package ``install.ADDON_MODULE`` is a bare package module whose search path is blender_addon/
  (install.ADDON_SOURCE). The add-on's own ``__init__.py`` is not run: it registers the ui/ modules, which import
  bpy, and nothing in io/ needs it;
- its subpackage ``interchange`` is loaded from interchange/ (install.SHARED_SOURCE) under that name, so the io
  modules' relative imports resolve to it, as in the zip. It is a copy apart from the top-level ``interchange``
  (as the add-on's is inside Blender): compare with ``addon.interchange.errors.InputError``, not the top-level one;
- every module of io/ is imported, so tests reach them as attributes (``addon.io.colour``), as the Blender tests
  reach the installed add-on's (tests/blender/conftest.py).

Only io/ can be imported this way; every other add-on module imports bpy (tests/test_boundaries.py keeps io/ so).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
import install  # noqa: E402  (the installer's names for the zip's layout)

LAYER = "io"
LAID_OUT = "__sos_laid_out_from__"  # marks the package made here, so a real installed add-on is never mistaken for it


def load_addon() -> ModuleType:
    """The add-on package with its interchange subpackage and every io module imported (made once per process)."""
    package = sys.modules.get(install.ADDON_MODULE)
    if package is None:
        package = bare_package()
    elif getattr(package, LAID_OUT, None) != str(install.ADDON_SOURCE):
        raise RuntimeError(f"{install.ADDON_MODULE} is already imported from {getattr(package, '__file__', '?')}; "
                           "the add-on's io layer cannot be laid out beside it in this process")
    layer = importlib.import_module(f"{install.ADDON_MODULE}.{LAYER}")
    for module in pkgutil.iter_modules(layer.__path__, f"{layer.__name__}."):
        importlib.import_module(module.name)
    return package


def bare_package() -> ModuleType:
    """The add-on's top package without its __init__, and the shared package as its interchange subpackage."""
    package = ModuleType(install.ADDON_MODULE, "The add-on folder as a package (its __init__.py not run).")
    package.__path__ = [str(install.ADDON_SOURCE)]
    setattr(package, LAID_OUT, str(install.ADDON_SOURCE))
    sys.modules[package.__name__] = package
    name = f"{package.__name__}.interchange"
    spec = importlib.util.spec_from_file_location(name, install.SHARED_SOURCE / "__init__.py",
                                                  submodule_search_locations=[str(install.SHARED_SOURCE)])
    shared = importlib.util.module_from_spec(spec)
    sys.modules[name] = shared
    spec.loader.exec_module(shared)
    package.interchange = shared
    return package
