"""The worker as the add-on preferences configure it: which Python (io/worker_config.py's lookup, the
preference first), on which device and GPUs. The half of the worker's configuration that reads Blender's
preferences; everything else about the worker needs no Blender and lives in io/.
"""

from __future__ import annotations

import bpy

from ..interchange.settings import BY_NAME
from ..io.worker_config import existing_python, find_python

ADDON_PACKAGE = __package__.rpartition(".")[0]  # the add-on's module: its preferences are stored under it


def addon_preferences() -> bpy.types.AddonPreferences | None:
    """This add-on's preferences, or None where it is not enabled (e.g. imported by a script)."""
    addon = bpy.context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def configured_python() -> tuple[str, str]:
    """(worker Python, where that setting came from); raises SplatInputError when nothing names one."""
    prefs = addon_preferences()
    preference = bpy.path.abspath(prefs.worker_python) if prefs is not None and prefs.worker_python else ""
    return find_python(preference)


def worker_python() -> str:
    """The worker's Python executable, checked to exist."""
    return existing_python(*configured_python())


def preferred_device() -> str:
    """The engine's device setting (one of the schema's ``device`` choices) chosen in the preferences."""
    prefs = addon_preferences()
    device = BY_NAME["device"]
    return device.from_ui(prefs.device) if prefs is not None else device.default


def preferred_render_gpu() -> int:
    """Which CUDA GPU the render worker uses (0, the first, without preferences)."""
    prefs = addon_preferences()
    return prefs.render_gpu if prefs is not None else 0


def requested_gpus() -> str:
    """How many GPUs a stylization should use, as the preferences say: "1".."N" or "all"."""
    prefs = addon_preferences()
    if prefs is None:
        return "1"
    return "all" if prefs.use_all_gpus else str(prefs.stylize_gpus)
