"""One running stylization: the `sos-stylize` process of a job folder and what its JSON-lines events said.

`advance()` is called repeatedly (by a timer in the UI, by a loop in background mode); it never blocks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..interchange.atomic import write_atomically
from ..interchange.protocol import (CANCEL_FILE, CANCEL_KEEP, EXIT_CANCELLED, EXIT_DONE, EXIT_OUT_OF_MEMORY,
                                    CancelledEvent, DoneEvent, ErrorEvent, Event, PreviewEvent, ProgressEvent,
                                    ProtocolError, StartEvent, parse_event, job_command)
from ..interchange.settings import for_panel
from .process import LineProcess

CANCEL_GRACE_S = 5.0


class Phase(Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Progress:
    """The latest progress event."""

    iteration: int = 0
    total: int = 0
    style: float | None = None
    content: float | None = None
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return self.iteration / self.total if self.total else 0.0


@dataclass
class JobTarget:
    """What the job stylizes, found again by session id when it ends (names may change meanwhile); ``preview``
    for the instant preview (0 iterations from the closed-form preview), whose result is named as a preview."""

    object_uid: int
    object_name: str
    scene_name: str
    created_rig: bool = False
    warnings: list[str] = field(default_factory=list)
    preview: bool = False


class StylizeJob:
    """The engine process of one job folder."""

    def __init__(self, folder: Path, python: str, target: JobTarget, gpus: str | None = None):
        self.folder = folder
        self.target = target
        self.progress = Progress()
        self.phase = Phase.RUNNING
        self.events: list[dict] = []  # every event line as the engine sent it
        self.kinds: set[Event] = set()
        self.error: str | None = None
        self.error_names_settings = False  # the engine's error named its settings as the panel does
        self.preview: Path | None = None
        self.preview_count = 0
        self.cancel_deadline: float | None = None
        self.keep_requested = False  # asked to stop and write the result so far
        self.started = time.monotonic()
        self.process = LineProcess(job_command(python, gpus), cwd=folder)

    def advance(self) -> Phase:
        """Take in the process's new events; settle the phase once it has exited."""
        if self.phase is not Phase.RUNNING:
            return self.phase
        for line in self.process.drain():
            if line is not None:
                self.take_line(line)
        if self.cancel_deadline is not None and time.monotonic() > self.cancel_deadline:
            self.process.end(force=time.monotonic() > self.cancel_deadline + CANCEL_GRACE_S)
        code = self.process.returncode()
        if code is not None:
            for line in self.process.drain():
                if line is not None:
                    self.take_line(line)
            self.phase = self.settle(code)
        return self.phase

    def take_line(self, line: str) -> None:
        """One stdout line: a JSON event, or anything else (kept out of the event list, as are events of types
        this add-on does not know and events that break the protocol)."""
        try:
            data = json.loads(line)
            event = parse_event(data)
        except (ValueError, ProtocolError):
            return
        if event is None:
            return
        self.events.append(data)
        self.kinds.add(event.kind)
        if isinstance(event, StartEvent):
            self.progress.total = event.iterations
        elif isinstance(event, ProgressEvent):
            self.progress = Progress(event.iteration, event.iterations, event.style, event.content, event.eta_s)
        elif isinstance(event, PreviewEvent):
            self.preview = self.folder / event.path
            self.preview_count += 1
        elif isinstance(event, ErrorEvent):
            self.error = for_panel(event.template) if event.template else event.message
            self.error_names_settings = event.template is not None

    def settle(self, code: int) -> Phase:
        """The final phase from the exit code and the events seen."""
        if code == EXIT_DONE and DoneEvent.kind in self.kinds:
            return Phase.DONE
        if code == EXIT_CANCELLED or CancelledEvent.kind in self.kinds or self.cancel_deadline is not None:
            return Phase.CANCELLED
        self.error = self.failure_message(code)
        return Phase.FAILED

    def failure_message(self, code: int) -> str:
        """What went wrong, in the worker's own words where it gave any."""
        at = f"at iteration {self.progress.iteration}/{self.progress.total}" if self.progress.total else "at start-up"
        if self.error and code == EXIT_OUT_OF_MEMORY and not self.error_names_settings:
            return f"{self.error} (lower Resolution or set a GPU Memory Cap in the Stylize panel)"
        if self.error:
            return self.error
        if code < 0:
            return f"The worker stopped unexpectedly (signal {-code}) {at}"
        return f"The worker failed (exit code {code}) {at}: {self.process.error_text()}"

    def request_cancel(self) -> None:
        """Ask the engine to stop (an empty cancel file); a process still running after a grace time is
        terminated, then killed. Also after request_keep: then nothing is kept."""
        if self.phase is Phase.RUNNING and self.cancel_deadline is None:
            write_atomically(self.folder / CANCEL_FILE, lambda handle: None)
            self.cancel_deadline = time.monotonic() + CANCEL_GRACE_S

    def request_keep(self) -> None:
        """Ask the engine to stop at its next iteration and write the result so far as a finished run (the cancel
        file holding CANCEL_KEEP, written whole at once). No time limit: writing takes as long as it takes;
        Cancel still stops it. An engine from before this stops and writes nothing (the job ends cancelled)."""
        if self.phase is Phase.RUNNING and self.cancel_deadline is None and not self.keep_requested:
            text = CANCEL_KEEP.encode("utf-8")
            write_atomically(self.folder / CANCEL_FILE, lambda handle: handle.write(text))
            self.keep_requested = True

    @property
    def stopping(self) -> bool:
        """Whether the job was asked to stop (cancel, or stop and keep)."""
        return self.cancel_deadline is not None or self.keep_requested

    def kill(self) -> None:
        """Stop the process now (Blender quits or loads another file)."""
        self.process.stop(grace_s=1.0)
        if self.phase is Phase.RUNNING:
            self.phase = Phase.CANCELLED
