"""The engine's front door: ``import core`` is cheap and gives the public API by name."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("stylize", "StylizeSettings", "StylizeResult", "render_views", "render", "RenderOutput", "Gaussians",
          "read_ply", "write_ply", "SplatData", "load_cameras", "save_cameras_json", "Camera", "orbit_cameras",
          "load_image", "save_png", "InputError")


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_core_does_not_load_torch():
    assert run_python("import sys, core; print('torch' in sys.modules, core.__version__)") == "False 0.1.0"


def test_public_names_resolve_to_their_implementations():
    import core
    from core import cameras, errors, gaussians, images
    from interchange import ply
    from core import stylize as stylize_function
    from core.renderer import render
    from core.stylization import StylizeResult, StylizeSettings, stylize
    from core.views import render_views
    assert set(core.__all__) == {"__version__", *PUBLIC} == {"__version__", *core._EXPORTS}
    assert set(PUBLIC) <= set(dir(core))
    assert (core.stylize, core.StylizeSettings, core.StylizeResult, core.render_views) == \
        (stylize, StylizeSettings, StylizeResult, render_views)
    assert stylize_function is stylize and core.render is render
    assert (core.read_ply, core.write_ply, core.SplatData) == (ply.read_ply, ply.write_ply, ply.SplatData)
    assert (core.load_cameras, core.Camera, core.orbit_cameras) == \
        (cameras.load_cameras, cameras.Camera, cameras.orbit_cameras)
    assert (core.load_image, core.save_png, core.Gaussians, core.InputError) == \
        (images.load_image, images.save_png, gaussians.Gaussians, errors.InputError)


def test_public_functions_stay_functions_after_every_engine_module_loads():
    out = run_python("import core, pkgutil, importlib; "
                     "[importlib.import_module('core.' + m.name) for m in pkgutil.iter_modules(core.__path__) "
                     "if not m.name.startswith('_')]; "
                     "print(callable(core.stylize), callable(core.render), type(core.stylize).__name__)")
    assert out == "True True function"


def test_no_engine_module_is_named_after_a_public_name():
    import pkgutil

    import core
    modules = {m.name for m in pkgutil.iter_modules(core.__path__)}
    assert not modules & set(core.__all__)

