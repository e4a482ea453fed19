"""The long-lived render worker (`python -m core.worker --serve`): started on the first render, reused for
every frame and render after it (all frames of `blender -b -a` go to one worker process), restarted when it
died or its Python, device or GPU changed, and shut down when the add-on is disabled or Blender quits.
"""

from __future__ import annotations

import atexit
import itertools
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from ..interchange.protocol import (ProtocolError, QuitRequest, ReadyLine, Reply, Request, parse_ready, parse_reply,
                                    request_dict, worker_command)
from .errors import SplatInputError
from .worker_config import INSTALL_HINT, UPDATE_HINT, protocol_problem
from .process import LineProcess

START_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 1800.0
WAIT_S = 0.1
Line = TypeVar("Line")


class RenderWorker:
    """One worker process and its request/reply protocol (one JSON object per line each way)."""

    def __init__(self, python: str, device: str, should_stop: Callable[[], bool], gpu: int = 0):
        self.key = (python, device, gpu)
        self.process = LineProcess(worker_command(python, *serve_arguments(device, gpu)), with_stdin=True)
        self.ids = itertools.count(1)
        ready: ReadyLine = self.read_line(parse_ready, START_TIMEOUT_S, should_stop)
        problem = protocol_problem(ready)
        if problem is not None:
            self.close()
            raise SplatInputError(problem)
        self.device = ready.device or device
        self.warning: str | None = ready.warning
        if self.warning is None and device != "cpu" and self.device == "cpu":
            self.warning = "The render worker has no CUDA GPU: rendering on the CPU (slow for large scenes)"

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def read_line(self, parse: Callable[[Any], Line | None], timeout_s: float,
                  should_stop: Callable[[], bool]) -> Line:
        """The first line that ``parse`` (a reader of interchange.protocol) takes, as its record; raises
        SplatInputError if the worker dies, stalls, is stopped or answers in another protocol."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if should_stop():
                self.close()
                raise SplatInputError("Render cancelled")
            try:
                line = self.process.lines.get(timeout=WAIT_S)
            except queue.Empty:
                continue
            if line is None:
                self.process.stop()
                raise SplatInputError(f"The render worker stopped: {self.process.error_text()}; {INSTALL_HINT}")
            try:
                record = parse(json.loads(line))
            except ProtocolError as error:
                self.close()
                raise SplatInputError(f"The render worker's answer is not understood ({error}); {UPDATE_HINT}") \
                    from error
            except ValueError:
                continue
            if record is not None:
                return record
        self.close()
        raise SplatInputError(f"The render worker did not answer within {timeout_s:.0f} s")

    def request(self, request: Request, should_stop: Callable[[], bool]) -> Reply:
        """Send one request and wait for its reply; a refused request raises SplatInputError with its message."""
        request_id = next(self.ids)
        try:
            self.process.send(json.dumps(request_dict(replace(request, id=request_id))))
        except OSError as error:
            raise SplatInputError(f"The render worker stopped: {self.process.error_text()}") from error

        def answer(data: Any) -> Reply | None:
            reply = parse_reply(data)
            return reply if reply is not None and reply.id == request_id else None

        reply = self.read_line(answer, REQUEST_TIMEOUT_S, should_stop)
        if not reply.ok:
            raise SplatInputError(f"The render worker failed: {reply.error or 'no message'}")
        return reply

    def close(self) -> None:
        """Ask the worker to quit, then make sure it is gone."""
        if self.alive():
            try:
                self.process.send(json.dumps(request_dict(QuitRequest())))
            except OSError:
                pass
        self.process.stop(grace_s=2.0)


def serve_arguments(device: str, gpu: int) -> list[str]:
    """`--serve` on a device; `--gpu K` only for a GPU other than the first (engines before it had no --gpu)."""
    return ["--serve", "--device", device] + (["--gpu", str(gpu)] if gpu > 0 else [])


_LOCK = threading.Lock()
_WORKER: RenderWorker | None = None


def render_request(python: str, device: str, payload: Request, should_stop: Callable[[], bool],
                   gpu: int = 0) -> tuple[Reply, str | None]:
    """(reply, start-up warning or None) for one request, through the shared worker (started as needed)."""
    global _WORKER
    gpu = gpu if device != "cpu" else 0  # no GPU to choose: a changed choice needs no new worker
    with _LOCK:
        warning = None
        if _WORKER is not None and (not _WORKER.alive() or _WORKER.key != (python, device, gpu)):
            _WORKER.close()
            _WORKER = None
        if _WORKER is None:
            _WORKER = RenderWorker(python, device, should_stop, gpu)
            warning = _WORKER.warning
        try:
            return _WORKER.request(payload, should_stop), warning
        except SplatInputError:
            if not _WORKER.alive():
                _WORKER = None
            raise


def shutdown() -> None:
    """Stop the shared worker."""
    global _WORKER
    with _LOCK:
        if _WORKER is not None:
            _WORKER.close()
            _WORKER = None


def current_worker() -> RenderWorker | None:
    """The shared worker, if one is running (for status displays and tests)."""
    return _WORKER


atexit.register(shutdown)
