"""How the Blender add-on and the engine talk: the job folder, the stylization events and exit codes, and the
render worker's requests. The settings a job runs with (its arguments) come from the settings schema.

Stylize: the add-on writes a job folder and runs ``<worker python> -m core @args.txt --json-progress
--cancel-file cancel [--gpus N|all]`` in it (``job_command``); the engine prints one JSON event per line on stdout
(``EVENTS`` lists each type with the fields it always carries) and exits with one of the ``EXIT_*`` codes::

    job_<time>_<id>/
        args.txt        one argument per line (the engine's command line, run with the folder as cwd)
        scene.ply       the splat object's Gaussians in its own (local, PLY) coordinates
        cameras.json    the views, in the same coordinates
        style.<ext>     the painting
        region.npy      only for part of the object: one weight in 0..1 per Gaussian, in scene.ply's row order
                        (float32 [N], the engine's --region format, core/regions.py); args.txt then names it
        cancel          created by the add-on to ask the engine to stop
        out/            written by the engine: stylized.ply, cameras.json, preview.png, report.json

Render: one long-lived ``<worker python> -m core.worker --serve --device D [--gpu K]`` answers JSON-line requests
(see core/worker.py for the fields); ``--check`` prints one JSON object that includes ``engine_version`` and
``protocol`` (this module's PROTOCOL_VERSION), so the add-on can tell a worker older than itself, and
``gpu_count`` (the CUDA GPUs the worker sees), so it can tell how many GPUs a stylization may use. ``--gpu K``
(which GPU renders) is passed only for K > 0, so the default command runs on engines from before it existed.
"""

from __future__ import annotations

# Raise when anything below changes in a way an older add-on or worker would misread.
PROTOCOL_VERSION = 1

ENGINE_MODULE = "core"
WORKER_MODULE = "core.worker"

ARGS_FILE = "args.txt"
SCENE_FILE = "scene.ply"
CAMERAS_FILE = "cameras.json"
STYLE_STEM = "style"
REGION_FILE = "region.npy"
CANCEL_FILE = "cancel"
OUTPUT_FOLDER = "out"
STYLIZED_FILE = "stylized.ply"
OUTPUT_CAMERAS_FILE = "cameras.json"
PREVIEW_FILE = "preview.png"
REPORT_FILE = "report.json"

# Event type -> the fields it always carries (progress also carries the loss terms of the history records).
EVENTS = {
    "start": ("iterations", "gaussians", "sh_degree", "views", "cameras"),
    "progress": ("iteration", "iterations", "style", "content", "it_per_s", "eta_s"),
    "preview": ("iteration", "path"),
    "done": ("ply", "report", "text"),
    "cancelled": ("iteration", "text"),
    "error": ("message",),
}

EXIT_DONE = 0
EXIT_BAD_INPUT = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_CANCELLED = 130

# The render worker: requests by "cmd", the first line it prints, and what --check reports.
WORKER_COMMANDS = {
    "render": ("objects", "viewmat", "K", "width", "height", "background", "out"),
    "ping": (),
    "quit": (),
}
RENDER_OBJECT_FIELDS = ("ply", "matrix", "name")
READY_EVENT = "ready"
CHECK_FIELDS = ("python", "python_version", "torch", "cuda", "device", "gsplat", "vgg_weights", "renderer",
                "engine_version", "protocol", "gpu_count", "gpu_names")


def job_command(python: str, gpus: str | None = None) -> list[str]:
    """The command that runs a job folder (with the folder as the working directory).

    ``gpus`` ("N" or "all", the engine's ``--gpus``) runs the job on several GPUs of this machine. It is part of
    the command, not of args.txt, as ``--json-progress`` is: a job folder copied to another machine is not tied
    to this machine's GPUs. The add-on passes it only when more than one GPU is asked for, so one-GPU jobs run on
    every engine of this protocol, also those from before ``--gpus`` existed.
    """
    command = [python, "-m", ENGINE_MODULE, f"@{ARGS_FILE}", "--json-progress", "--cancel-file", CANCEL_FILE]
    return command + (["--gpus", gpus] if gpus else [])


def worker_command(python: str, *arguments: str) -> list[str]:
    """The render worker's command: ``--check``, or ``--serve --device D [--gpu K]``."""
    return [python, "-m", WORKER_MODULE, *arguments]


def missing_fields(event: dict) -> list[str]:
    """The fields an event of a known type lacks (an unknown type lacks nothing: newer engines may add types)."""
    return [name for name in EVENTS.get(event.get("event"), ()) if name not in event]
