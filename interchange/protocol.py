"""How the Blender add-on and the engine talk: the job folder, the stylization events and exit codes, and the
render worker's requests. The settings a job runs with (its arguments) come from the settings schema.

Every name that crosses the process boundary is declared here once, and both ends build and read their messages
through this module: records (frozen dataclasses) whose fields are the message's fields, ``to_dict()`` to build
a message and ``parse_*`` to read one (a ``ProtocolError`` names what is missing or of the wrong type).
tests/test_protocol_names.py checks that no event type or command is spelled anywhere else.

Stylize: the add-on writes a job folder and runs ``<worker python> -m core @args.txt --json-progress
--cancel-file cancel [--gpus N|all]`` in it (``job_command``); the engine prints one JSON event per line on stdout
(``Event``; each type's record lists the fields it always carries, ``EVENTS``) and exits with one of the
``EXIT_*`` codes::

    job_<time>_<id>/
        args.txt        one argument per line (the engine's command line, run with the folder as cwd)
        scene.ply       the splat object's Gaussians in its own (local, PLY) coordinates
        cameras.json    the views, in the same coordinates
        style.<ext>     the painting
        region.npy      only for part of the object: one weight in 0..1 per Gaussian, in scene.ply's row order
                        (float32 [N], the engine's --region format, core/regions.py); args.txt then names it
        cancel          created by the add-on to ask the engine to stop; holding ``CANCEL_KEEP`` it asks the engine
                        to stop and write the result so far as a finished run's outputs (engines from before
                        that stop and write nothing, as for an empty file)
        out/            written by the engine: stylized.ply, cameras.json, origin.npy, preview.png, report.json

Render: one long-lived ``<worker python> -m core.worker --serve --device D [--gpu K]`` prints a ready line
(``ReadyLine``), then answers JSON-line requests (``Command``: ``RenderRequest``, ``PingRequest``,
``QuitRequest``) with replies (``Reply``); ``--check`` prints one JSON object (``WorkerCheck``) that includes
``engine_version`` and ``protocol`` (this module's PROTOCOL_VERSION), so the add-on can tell a worker older than
itself, and ``gpu_count`` (the CUDA GPUs the worker sees), so it can tell how many GPUs a stylization may use.
``--gpu K`` (which GPU renders) is passed only for K > 0, so the default command runs on engines from before it
existed.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, ClassVar

# Raise when anything below changes in a way an older add-on or worker would misread (fields a reader does not
# know are ignored, so adding an optional field is no change).
PROTOCOL_VERSION = 1

ENGINE_MODULE = "core"
WORKER_MODULE = "core.worker"

ARGS_FILE = "args.txt"
SCENE_FILE = "scene.ply"
CAMERAS_FILE = "cameras.json"
STYLE_STEM = "style"
REGION_FILE = "region.npy"
CANCEL_FILE = "cancel"
CANCEL_KEEP = "keep"  # the cancel file's text that asks to stop and keep the result so far
OUTPUT_FOLDER = "out"
STYLIZED_FILE = "stylized.ply"
OUTPUT_CAMERAS_FILE = "cameras.json"
PREVIEW_FILE = "preview.png"
REPORT_FILE = "report.json"
# int32 [N_out] .npy: the input row (scene.ply) each row of stylized.ply descends from (with detail, a split
# Gaussian's children name their parent's row; without detail it is 0, 1, ..., N - 1).
ORIGIN_FILE = "origin.npy"

EXIT_DONE = 0
EXIT_BAD_INPUT = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_CANCELLED = 130

EVENT_KEY = "event"     # the field that says which event (or the worker's ready line) a line is
COMMAND_KEY = "cmd"     # the field that says which command a request is
ID_KEY = "id"           # a request's number, repeated in its reply


class ProtocolError(ValueError):
    """A message that does not follow this protocol; the text names what is wrong in one line."""


class _Name(str, Enum):
    """A protocol name: compares equal to its text and is written as it (json, f-strings)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Event(_Name):
    """The type of a stylization event (the ``event`` field of each line ``--json-progress`` prints)."""

    START = "start"
    PROGRESS = "progress"
    PREVIEW = "preview"
    DONE = "done"
    CANCELLED = "cancelled"
    ERROR = "error"
    WARNING = "warning"


class Command(_Name):
    """A render worker request (its ``cmd`` field)."""

    RENDER = "render"
    PING = "ping"
    QUIT = "quit"


READY_EVENT = "ready"  # the render worker's first line: {"event": "ready", ...} (ReadyLine)


# -- reading and writing records ----------------------------------------------------------------------------------


def _accepts(hint: Any, value: Any) -> bool:
    """Whether a JSON value fits a field's annotation (int is not bool; a float field takes ints)."""
    if hint is Any:
        return True
    if is_dataclass(hint):  # a nested record: read on its own
        return isinstance(value, dict)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(option, value) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, (list, tuple)) and all(_accepts(item, v) for v in value)
    return isinstance(value, typing.get_origin(hint) or hint)


def _converted(hint: Any, value: Any) -> Any:
    """A JSON value as the field holds it: lists as tuples, whole numbers in float fields as floats."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and hint in (float, float | None):
        return float(value)
    return value


def _read(cls: type, data: Any, what: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of record class ``cls`` from a JSON object, checked against their types; fields with a default
    may be missing; others the object holds are ignored (newer senders may add some)."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for item in fields(cls):
        if item.name in skip or not item.init:
            continue
        if item.name not in data:
            if item.default is MISSING and item.default_factory is MISSING:
                raise ProtocolError(f"{what}: missing {item.name}")
            continue
        value = data[item.name]
        if not _accepts(hints[item.name], value):
            raise ProtocolError(f"{what}: {item.name} has the wrong type ({value!r:.60})")
        values[item.name] = _converted(hints[item.name], value)
    return values


def _written(record: Any) -> dict[str, Any]:
    """A record's fields as JSON values (tuples as lists), in declaration order."""
    return {item.name: list(value) if isinstance(value := getattr(record, item.name), tuple) else value
            for item in fields(record)}


# -- stylization events -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartEvent:
    """The run begins: its length, the scene and the views."""

    kind: ClassVar[Event] = Event.START
    iterations: int
    gaussians: int
    sh_degree: int
    views: int
    cameras: str


@dataclass(frozen=True)
class ProgressEvent:
    """One iteration done; ``terms`` holds the rest of its history record (view, gram, mean, std, total,
    gaussians, densify_s, ...: see core.stylization's StylizeResult.history)."""

    kind: ClassVar[Event] = Event.PROGRESS
    iteration: int
    iterations: int
    style: float
    content: float
    it_per_s: float
    eta_s: float
    terms: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewEvent:
    """A preview of the first view was written to ``path``."""

    kind: ClassVar[Event] = Event.PREVIEW
    iteration: int
    path: str


@dataclass(frozen=True)
class DoneEvent:
    """The outputs are written (report.json last); ``text`` is the line a person reads."""

    kind: ClassVar[Event] = Event.DONE
    ply: str
    report: str
    text: str
    gaussians: int | None = None


@dataclass(frozen=True)
class CancelledEvent:
    """The run stopped on request at ``iteration``; nothing was written."""

    kind: ClassVar[Event] = Event.CANCELLED
    iteration: int
    text: str


@dataclass(frozen=True)
class ErrorEvent:
    """The run failed (the exit code says how). ``message`` is the one line the command line prints;
    ``template`` is the same with the settings it names marked (interchange.settings.mention), present only when
    it names some, so that a front end can name them its own way (the add-on by their labels)."""

    kind: ClassVar[Event] = Event.ERROR
    message: str
    template: str | None = None


@dataclass(frozen=True)
class WarningEvent:
    """Input that works but is probably a mistake; the run goes on. Fields as ErrorEvent's."""

    kind: ClassVar[Event] = Event.WARNING
    message: str
    template: str | None = None


EventRecord = StartEvent | ProgressEvent | PreviewEvent | DoneEvent | CancelledEvent | ErrorEvent | WarningEvent
EVENT_RECORDS: dict[Event, type] = {cls.kind: cls for cls in typing.get_args(EventRecord)}
# Event type -> the fields it always carries (progress also carries the loss terms of the history records).
EVENTS: dict[Event, tuple[str, ...]] = {
    kind: tuple(item.name for item in fields(cls) if item.default is MISSING and item.default_factory is MISSING)
    for kind, cls in EVENT_RECORDS.items()}


def event_dict(record: EventRecord) -> dict[str, Any]:
    """The event as the JSON object a ``--json-progress`` line holds (optional fields left out when unset)."""
    values = {name: value for name, value in _written(record).items() if value is not None}
    terms = values.pop("terms", {})
    return {EVENT_KEY: record.kind.value, **values, **terms}


def progress_event(iterations: int, record: dict[str, Any], *, it_per_s: float, eta_s: float,
                   **extra: Any) -> dict[str, Any]:
    """The progress event of one iteration, from its history record (``iteration``, ``style``, ``content`` and
    the other terms) and the run's pace; ``extra`` adds fields (e.g. ``densify_s``)."""
    known = ("iteration", "style", "content")
    missing = [name for name in known if name not in record]
    if missing:
        raise ProtocolError(f"progress: the history record lacks {', '.join(missing)}")
    terms = {name: value for name, value in record.items() if name not in known}
    return event_dict(ProgressEvent(record["iteration"], iterations, record["style"], record["content"], it_per_s,
                                    eta_s, {**terms, **extra}))


def parse_event(data: Any) -> EventRecord | None:
    """The record of one decoded ``--json-progress`` line; None for an object that is no event or an event type
    this version does not know (newer engines may add types). Raises ProtocolError for a known event that lacks
    a field or holds one of the wrong type."""
    if not isinstance(data, dict) or data.get(EVENT_KEY) not in EVENT_RECORDS:
        return None
    kind = Event(data[EVENT_KEY])
    cls = EVENT_RECORDS[kind]
    if cls is ProgressEvent:
        values = _read(cls, data, kind.value, skip=("terms",))
        terms = {name: value for name, value in data.items() if name not in values and name != EVENT_KEY}
        return ProgressEvent(**values, terms=terms)
    return cls(**_read(cls, data, kind.value))


def missing_fields(event: dict) -> list[str]:
    """The fields an event of a known type lacks (an unknown type lacks nothing: newer engines may add types)."""
    return [name for name in EVENTS.get(event.get(EVENT_KEY), ()) if name not in event]


# -- the render worker --------------------------------------------------------------------------------------------

IDENTITY = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class RenderObject:
    """One splat object of a render: its PLY (data coordinates), world matrix (16 floats, row-major) and name."""

    ply: str
    matrix: tuple[float, ...] = IDENTITY
    name: str | None = None


@dataclass(frozen=True)
class RenderRequest:
    """Render one camera view of ``objects`` into ``out`` (.npy, float32 [H, W, 4] RGBA, alpha premultiplied,
    rows top to bottom): ``viewmat`` 16 floats (world-to-camera, OpenCV axes, row-major), ``K`` 9 floats, the
    size, and ``background`` r, g, b (None: transparent)."""

    kind: ClassVar[Command] = Command.RENDER
    objects: tuple[RenderObject, ...]
    viewmat: tuple[float, ...]
    K: tuple[float, ...]
    width: int
    height: int
    out: str
    background: tuple[float, ...] | None = None
    id: int | None = None


@dataclass(frozen=True)
class PingRequest:
    """Ask the worker for its device and renderer."""

    kind: ClassVar[Command] = Command.PING
    id: int | None = None


@dataclass(frozen=True)
class QuitRequest:
    """End the worker process."""

    kind: ClassVar[Command] = Command.QUIT
    id: int | None = None


Request = RenderRequest | PingRequest | QuitRequest
REQUEST_RECORDS: dict[Command, type] = {cls.kind: cls for cls in typing.get_args(Request)}
SIZES = {"matrix": 16, "viewmat": 16, "K": 9, "background": 3}


def request_dict(request: Request) -> dict[str, Any]:
    """The request as the JSON object of one line to the worker (``id`` left out when unset)."""
    values = {name: value for name, value in _written(request).items() if not (name == ID_KEY and value is None)}
    if isinstance(request, RenderRequest):
        values["objects"] = [_written(obj) for obj in request.objects]
    return {COMMAND_KEY: request.kind.value, **values}


def parse_request(data: Any) -> Request:
    """The record of one request line; raises ProtocolError naming an unknown command or a bad field."""
    if not isinstance(data, dict):
        raise ProtocolError("a request is a JSON object")
    name = data.get(COMMAND_KEY)
    if name not in REQUEST_RECORDS:
        raise ProtocolError(f"unknown command {name!r} (known: {', '.join(c.value for c in Command)})")
    cls = REQUEST_RECORDS[Command(name)]
    what = f"{name} request"
    values = _read(cls, data, what)
    if cls is RenderRequest:
        if not values["objects"]:
            raise ProtocolError(f"{what}: no splat objects to render")
        values["objects"] = tuple(RenderObject(**_read(RenderObject, obj, f"{what}: object")) for obj in
                                  values["objects"])
        for obj in values["objects"]:
            _check_size(obj.matrix, "matrix", what)
        for key in ("viewmat", "K", "background"):
            _check_size(values.get(key), key, what)
        if values["width"] < 1 or values["height"] < 1:
            raise ProtocolError(f"{what}: width and height must be positive (got {values['width']}x"
                                f"{values['height']})")
    return cls(**values)


def _check_size(value: tuple | None, key: str, what: str) -> None:
    if value is not None and len(value) != SIZES[key]:
        raise ProtocolError(f"{what}: {key} must hold {SIZES[key]} numbers (got {len(value)})")


@dataclass(frozen=True)
class Reply:
    """The worker's answer to request ``id``: ``ok``, or the ``error`` in one line; ``ms`` the time it took;
    ``values`` what the command returns (render: ``out``; ping: ``device``, ``renderer``)."""

    id: int | None
    ok: bool
    error: str | None = None
    ms: float | None = None
    values: dict = field(default_factory=dict)


def reply_dict(reply: Reply) -> dict[str, Any]:
    """The reply as the JSON object of one line from the worker."""
    fixed = {ID_KEY: reply.id, "ok": reply.ok, "ms": reply.ms}
    return {**reply.values, **fixed, **({"error": reply.error} if reply.error is not None else {})}


def parse_reply(data: Any) -> Reply | None:
    """The record of one worker line that answers a request; None for any other line (the ready line, ...)."""
    if not isinstance(data, dict) or "ok" not in data or EVENT_KEY in data:
        return None
    values = _read(Reply, data, "reply", skip=("values",))
    rest = {name: value for name, value in data.items() if name not in values}
    return Reply(**values, values=rest)


@dataclass(frozen=True)
class ReadyLine:
    """The render worker's first line: it is up, on ``device`` with ``renderer``; ``warning`` when the device asked
    for could not be had. Engines from before versions were reported send no engine_version (None) nor protocol
    (0)."""

    device: str | None = None
    renderer: str | None = None
    engine_version: str | None = None
    protocol: int = 0
    warning: str | None = None


def ready_dict(ready: ReadyLine) -> dict[str, Any]:
    """The ready line as the JSON object the worker prints first."""
    return {EVENT_KEY: READY_EVENT, **{k: v for k, v in _written(ready).items() if v is not None}}


def parse_ready(data: Any) -> ReadyLine | None:
    """The ready line's record; None for any other line."""
    if not isinstance(data, dict) or data.get(EVENT_KEY) != READY_EVENT:
        return None
    return ReadyLine(**_read(ReadyLine, data, "the worker's ready line"))


@dataclass(frozen=True)
class WorkerCheck:
    """What ``python -m core.worker --check`` reports about its environment.

    Engines from before a field existed leave it out: no engine_version (None), protocol 0, gpu_count None.
    ``gsplat_error`` and ``vgg_error`` say why gsplat or the VGG weights are missing; ``warning`` is a note for the
    user (no CUDA GPU).
    """

    python: str
    python_version: str
    torch: str
    cuda: bool
    device: str
    gsplat: str | None
    vgg_weights: str | None
    renderer: str
    engine_version: str | None = None
    protocol: int = 0
    gpu_count: int | None = None
    gpu_names: tuple[str, ...] = ()
    gsplat_error: str | None = None
    vgg_error: str | None = None
    warning: str | None = None


CHECK_NOTES = ("gsplat_error", "vgg_error", "warning")  # only present when there is something to say
# The fields every check of this version reports.
CHECK_FIELDS = tuple(item.name for item in fields(WorkerCheck) if item.name not in CHECK_NOTES)


def check_dict(check: WorkerCheck) -> dict[str, Any]:
    """The check as the JSON object ``--check`` prints (the notes only when set)."""
    return {k: v for k, v in _written(check).items() if k not in CHECK_NOTES or v is not None}


def parse_check(data: Any) -> WorkerCheck:
    """The record of a ``--check`` answer; raises ProtocolError naming a missing or mistyped field."""
    return WorkerCheck(**_read(WorkerCheck, data, "worker check"))


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
