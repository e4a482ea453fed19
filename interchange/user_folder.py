"""The per-user sos-stylizer folder: install.py puts the worker environment and its settings file there, and the
Blender add-on looks there for the worker's Python. Standard library only (install.py runs before numpy exists).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_FOLDER = "sos-stylizer"
SETTINGS_FILE = "sos_worker.json"  # {"worker_python": PATH}, written by install.py
PYTHON_ENV_VAR = "SOS_STYLIZER_PYTHON"  # the worker's Python, for the add-on
VENV_ENV_VAR = "SOS_STYLIZER_VENV"  # where install.py makes the worker environment


def user_data_dir() -> Path:
    """The per-user application-data folder of sos-stylizer (LOCALAPPDATA, Application Support, XDG_DATA_HOME)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / APP_FOLDER


def default_venv() -> Path:
    """Where install.py makes the worker environment (SOS_STYLIZER_VENV overrides the per-user folder)."""
    if os.environ.get(VENV_ENV_VAR):
        return Path(os.environ[VENV_ENV_VAR]).expanduser()
    return user_data_dir() / "venv"


def venv_python(venv: Path) -> Path:
    """The Python executable of a virtual environment."""
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
