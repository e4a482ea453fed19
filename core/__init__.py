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
exist: reach those modules with ``from core.stylization import ...`` / ``from core.renderer import ...``.
Command lines: ``sos-stylize`` / ``python -m core``; the Blender add-on's worker: ``python -m core.worker``.
See docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "stylize": "core.stylization", "StylizeSettings": "core.stylization", "StylizeResult": "core.stylization",
    "render_views": "core.views",
    "render": "core.renderer", "RenderOutput": "core.renderer", "Gaussians": "core.gaussians",
    "read_ply": "interchange.ply", "write_ply": "interchange.ply", "SplatData": "interchange.ply",
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
    from interchange.ply import SplatData, read_ply, write_ply
    from core.renderer import RenderOutput, render
    from core.stylization import StylizeResult, StylizeSettings, stylize
    from core.views import render_views


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
