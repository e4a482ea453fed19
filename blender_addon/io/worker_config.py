"""Which Python runs the worker, and what that Python can do (its `--check` answer): the half of the worker's
configuration that needs no Blender (worker/config.py reads the add-on preferences and calls these).

The worker's Python is looked up in this order: the add-on preference, the SOS_STYLIZER_PYTHON environment
variable, a sos_worker.json written by install.py (in the add-on folder or the per-user sos-stylizer folder),
and finally install.py's default environment. Only the first needs saved preferences, so `blender -b` on a
render farm node finds the worker through the other three (docs/render_farm.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..interchange.protocol import (PROTOCOL_VERSION, ProtocolError, ReadyLine, WorkerCheck, parse_check,
                                    worker_command)
from ..interchange.user_folder import PYTHON_ENV_VAR, SETTINGS_FILE, default_venv, user_data_dir, venv_python
from .errors import SplatInputError

ADDON_FOLDER = Path(__file__).resolve().parents[1]
PREFERENCES = "the add-on preferences"
INSTALL_HINT = "set the worker Python in the add-on preferences, or run python install.py"
FARM_HINT = (f"without saved preferences (blender -b, a render farm node) set {PYTHON_ENV_VAR} to the worker's "
             f"Python or put a {SETTINGS_FILE} beside the add-on")
UPDATE_HINT = "run python install.py again from the sos-stylizer folder this add-on came from"
CHECK_TIMEOUT_S = 180
_CHECKS: dict[tuple[str, int], WorkerCheck] = {}


def settings_file_python() -> tuple[str, str] | None:
    """(worker Python, file) from the first readable sos_worker.json."""
    for folder in (ADDON_FOLDER, user_data_dir()):
        path = folder / SETTINGS_FILE
        try:
            python = json.loads(path.read_text(encoding="utf-8")).get("worker_python")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(python, str) and python:
            return python, str(path)
    return None


def find_python(preference: str = "") -> tuple[str, str]:
    """(worker Python, where that setting came from): the preference (an absolute path, or "" when unset), else
    the environment variable, sos_worker.json, install.py's default environment; raises SplatInputError when
    nothing names one."""
    if preference:
        return preference, PREFERENCES
    if os.environ.get(PYTHON_ENV_VAR):
        return os.environ[PYTHON_ENV_VAR], PYTHON_ENV_VAR
    from_file = settings_file_python()
    if from_file is not None:
        return from_file
    default = venv_python(default_venv())
    if default.is_file():
        return str(default), "install.py's default environment"
    raise SplatInputError(f"No worker Python is configured: {INSTALL_HINT}; {FARM_HINT}")


def existing_python(python: str, source: str) -> str:
    """python, checked to exist; else SplatInputError naming the setting (source) and how to correct it."""
    if not Path(python).is_file():
        raise SplatInputError(f"Worker Python not found: {python} (from {source}); {setting_fix(source)}")
    return python


def setting_fix(source: str) -> str:
    """How to correct the setting that named a worker Python that is not there."""
    if source == PYTHON_ENV_VAR:
        return f"set {PYTHON_ENV_VAR} to the worker's Python on this machine"
    if source.endswith(SETTINGS_FILE):
        return f"correct worker_python in {source}, or run python install.py"
    return INSTALL_HINT


def stylize_gpus(requested: str, device: str, info: WorkerCheck) -> tuple[str | None, str | None]:
    """The engine's --gpus for a stylization (None: one process) and a warning when the request cannot be met.

    Args:
        requested: "N" or "all" (worker/config.py's requested_gpus(), from the preferences).
        device: the device the job runs on (effective_device()).
        info: the worker's --check; its gpu_count is how many CUDA GPUs the worker sees. An engine that does not
            report it gets the request unchanged and checks it itself (``--gpus N``: only M CUDA GPUs visible).
    Returns:
        ("N" or "all", or None for one process; a warning or None)
    """
    if requested == "1":
        return None, None
    asked = "all GPUs" if requested == "all" else f"{requested} GPUs"
    if device == "cpu":
        return None, f"Stylize GPUs: {asked} asked for in the preferences, but the job runs on the CPU: one process"
    count = info.gpu_count
    if count is None:
        return requested, None
    if requested == "all":
        return ("all" if count > 1 else None), None
    if int(requested) > count:
        return (str(count) if count > 1 else None), (
            f"Stylize GPUs: {requested} asked for in the preferences, but the worker sees {count} CUDA "
            f"GPU{'s' if count != 1 else ''}: using {count}")
    return requested, None


def worker_environment() -> dict[str, str]:
    """Environment for worker processes: Blender's own Python settings must not leak into the worker."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def process_flags() -> int:
    """No console window for worker processes on Windows."""
    return getattr(subprocess, "CREATE_NO_WINDOW", 0)


def check_key(python: str) -> tuple[str, int]:
    """Cache key of a check: the executable and its modification time."""
    return python, Path(python).stat().st_mtime_ns if Path(python).exists() else 0


def cached_check(python: str) -> WorkerCheck | None:
    """The last check of this executable in this session, if any."""
    return _CHECKS.get(check_key(python))


def check_worker(python: str, refresh: bool = False) -> WorkerCheck:
    """The worker's `python -m core.worker --check` report (cached per executable); raises SplatInputError."""
    key = check_key(python)
    if refresh or key not in _CHECKS:
        _CHECKS[key] = run_check(python)
    return _CHECKS[key]


def run_check(python: str) -> WorkerCheck:
    """Run the worker's self-check; a failure names what is missing and how to fix it."""
    try:
        done = subprocess.run(worker_command(python, "--check"), capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_S, env=worker_environment(), creationflags=process_flags())
    except OSError as error:
        raise SplatInputError(f"Cannot run the worker Python {python}: {error.strerror or error}; "
                              f"{INSTALL_HINT}") from error
    except subprocess.TimeoutExpired as error:
        raise SplatInputError(f"The worker Python {python} did not answer within {CHECK_TIMEOUT_S} s") from error
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SplatInputError(f"The worker Python {python} cannot run the engine ({last_line(done.stderr)}); "
                              "run python install.py to install torch, gsplat and the engine there")
    try:
        return parse_check(json.loads(lines[-1]))
    except ProtocolError as error:
        raise SplatInputError(f"The worker Python {python} gave a check this add-on does not understand ({error}); "
                              f"{UPDATE_HINT}") from error
    except ValueError as error:
        raise SplatInputError(f"The worker Python {python} gave an unreadable check: {lines[-1][:200]}") from error


def last_line(text: str) -> str:
    """The last non-empty line of a process's output (a traceback's message), or a placeholder."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def describe_check(info: WorkerCheck) -> str:
    """One line: engine and protocol versions, Python, torch, device (and how many GPUs), gsplat."""
    device = f"CUDA GPU {info.device}" if info.cuda else "no CUDA GPU (CPU only)"
    if info.cuda and info.gpu_count is not None and info.gpu_count > 1:
        names = sorted(set(info.gpu_names or [info.device]))
        device = f"{info.gpu_count} CUDA GPUs ({', '.join(names)})"
    gsplat = f"gsplat {info.gsplat}" if info.gsplat else "gsplat missing"
    engine = f"engine {info.engine_version or '(version unknown)'}, protocol {info.protocol}"
    return f"{engine}, Python {info.python_version}, torch {info.torch}, {device}, {gsplat}"


def protocol_problem(info: WorkerCheck | ReadyLine) -> str | None:
    """A plain sentence when the worker's engine (its --check or its ready line) speaks another protocol than this
    add-on, with how to fix it."""
    theirs = info.protocol
    engine = f"engine {info.engine_version}" if info.engine_version else "engine"
    if theirs < PROTOCOL_VERSION:
        return (f"The worker's {engine} is older than this add-on (protocol {theirs}, the add-on needs "
                f"{PROTOCOL_VERSION}): update the worker: {UPDATE_HINT}")
    if theirs > PROTOCOL_VERSION:
        return (f"The worker's {engine} is newer than this add-on (protocol {theirs}, the add-on speaks "
                f"{PROTOCOL_VERSION}): update the add-on: {UPDATE_HINT} (with --blender)")
    return None


def require_compatible(info: WorkerCheck) -> None:
    """Refuse to work with a worker that speaks another protocol (SplatInputError with the fix)."""
    problem = protocol_problem(info)
    if problem is not None:
        raise SplatInputError(problem)


def check_problems(info: WorkerCheck) -> list[str]:
    """What the worker lacks, each with its fix (a protocol mismatch first)."""
    problems = [problem] if (problem := protocol_problem(info)) else []
    if not info.vgg_weights:
        problems.append(f"{info.vgg_error or 'VGG-19 weights missing'}; run python install.py")
    if info.cuda and not info.gsplat:
        problems.append("gsplat is not usable, so the GPU renders with the slower PyTorch rasterizer "
                        f"({info.gsplat_error or 'not installed'}); run python install.py")
    if not info.cuda:
        problems.append("no CUDA GPU: the worker runs on the CPU (small scenes and sizes only)")
    return problems


def effective_device(requested: str, info: WorkerCheck) -> tuple[str, str | None]:
    """The device to ask the engine for, and a warning when CUDA is wanted but missing (CPU fallback)."""
    if requested in ("cuda", "auto") and not info.cuda:
        return "cpu", "The worker has no CUDA GPU: running on the CPU (slow; fine for small scenes)"
    return requested, None
