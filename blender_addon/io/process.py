"""Worker child processes: stdout lines read by a thread into a queue, so Blender never blocks on a pipe.

Every process started here is tracked, and all of them end when Blender exits (atexit) or the add-on is
disabled.
"""

from __future__ import annotations

import atexit
import queue
import subprocess
import threading
from collections import deque
from pathlib import Path

from .errors import SplatInputError
from .worker_config import INSTALL_HINT, last_line, process_flags, worker_environment

STDERR_LINES = 60
STOP_GRACE_S = 3.0
_RUNNING: set[LineProcess] = set()


class LineProcess:
    """A child process speaking in lines: `lines` gets each stdout line, then None at end of output."""

    def __init__(self, argv: list[str], cwd: Path | None = None, with_stdin: bool = False):
        try:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                bufsize=1, env=worker_environment(), creationflags=process_flags())
        except OSError as error:
            raise SplatInputError(f"Cannot start the worker {argv[0]}: {error.strerror or error}; "
                                  f"{INSTALL_HINT}") from error
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        self._stdout = threading.Thread(target=self._read_stdout, daemon=True)
        self._stderr = threading.Thread(target=self._read_stderr, daemon=True)
        self._stdout.start()
        self._stderr.start()
        _RUNNING.add(self)

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\r\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip("\r\n"))

    def drain(self) -> list[str | None]:
        """Every line read so far (None marks the end of output)."""
        lines = []
        while True:
            try:
                lines.append(self.lines.get_nowait())
            except queue.Empty:
                return lines

    def returncode(self) -> int | None:
        """The exit code once the process ended and its output was read completely, else None."""
        if self.proc.poll() is None:
            return None
        self._stdout.join(timeout=5.0)
        self._stderr.join(timeout=1.0)
        _RUNNING.discard(self)
        return self.proc.returncode

    def send(self, line: str) -> None:
        """Write one line to the process's stdin."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def error_text(self) -> str:
        """The last line the process wrote on stderr; once it has ended, after its reader thread read all of it
        (else a worker that printed its error and exited at once could be reported with no message)."""
        if self.proc.poll() is not None:
            self._stderr.join(timeout=1.0)
        return last_line("\n".join(self.stderr_tail))

    def end(self, force: bool = False) -> None:
        """Terminate (or with force, kill) the process without waiting for it."""
        if self.proc.poll() is None:
            if force:
                self.proc.kill()
            else:
                self.proc.terminate()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Terminate the process (then kill it if it lingers) and forget it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=grace_s)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        _RUNNING.discard(self)


def stop_all() -> None:
    """End every worker process this add-on started."""
    for process in list(_RUNNING):
        process.stop(grace_s=1.0)


atexit.register(stop_all)
