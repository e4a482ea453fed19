"""SOS stylizer engine: style transfer for 3D Gaussian Splatting scenes (SGSST, Galerne et al. CVPR 2025).

The public API, importable from ``core`` directly::

    import core
    scene = core.read_ply("point_cloud.ply")
    style = core.load_image("painting.jpg")
    cameras = core.load_cameras("cameras.json")            # or core.orbit_cameras(scene.means(), ...)
    result = core.stylize(scene, style, cameras, core.StylizeSettings(iterations=300))
    core.write_ply("stylized.ply", result.splat)

- stylization: ``stylize``, ``StylizeSettings`` (the one settings schema, ``interchange.settings``),
  ``StylizeResult``, ``render_views`` (plain renders of a scene)
- rendering: ``render`` (one view of ``Gaussians``; gsplat on CUDA, PyTorch elsewhere), ``RenderOutput``,
  ``Gaussians``
- files: ``read_ply``, ``write_ply``, ``SplatData``; ``load_cameras``, ``save_cameras_json``, ``Camera``,
  ``orbit_cameras``; ``load_image``, ``save_png``
- errors: ``InputError`` (a user mistake, one line naming the file or setting)

Names load on first use, so ``import core`` (and the command line's start) stays cheap: torch loads only when an
engine name is touched. ``core.stylize`` and ``core.render`` are the functions, although modules of the same names
exist: reach those modules with ``from core.stylize import ...`` / ``from core.render import ...``.
Command lines: ``sos-stylize`` / ``python -m core``; the Blender add-on's worker: ``python -m core.worker``.
See docs/architecture.md.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "stylize": "core.stylize", "StylizeSettings": "core.stylize", "StylizeResult": "core.stylize",
    "render_views": "core.stylize",
    "render": "core.render", "RenderOutput": "core.render", "Gaussians": "core.gaussians",
    "read_ply": "core.ply", "write_ply": "core.ply", "SplatData": "core.ply",
    "load_cameras": "core.cameras", "save_cameras_json": "core.cameras", "Camera": "core.cameras",
    "orbit_cameras": "core.cameras",
    "load_image": "core.images", "save_png": "core.images",
    "InputError": "core.errors",
}
__all__ = ["__version__", "stylize", "StylizeSettings", "StylizeResult", "render_views", "render", "RenderOutput",
           "Gaussians", "read_ply", "write_ply", "SplatData", "load_cameras", "save_cameras_json", "Camera",
           "orbit_cameras", "load_image", "save_png", "InputError"]  # = _EXPORTS (tests/test_public_api.py)

if TYPE_CHECKING:
    from core.cameras import Camera, load_cameras, orbit_cameras, save_cameras_json
    from core.errors import InputError
    from core.gaussians import Gaussians
    from core.images import load_image, save_png
    from core.ply import SplatData, read_ply, write_ply
    from core.render import RenderOutput, render
    from core.stylize import StylizeResult, StylizeSettings, render_views, stylize


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package ``core``: importing its submodule ``core.stylize`` (or ``core.render``) must not replace the
    public function of that name, which the import system would do by binding the submodule on the package."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
