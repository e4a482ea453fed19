"""Worker child processes read by threads (blender_addon/io/process.py): lines in order, the end of output, the
last error line, and stopping a process that does not stop by itself."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from addon_package import load_addon

addon = load_addon()
process = addon.io.process
TIMEOUT_S = 30.0


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_for_exit(child) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while (code := child.returncode()) is None:
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    return code


def test_lines_arrive_in_order_then_the_end_then_the_exit_code() -> None:
    child = process.LineProcess(python("import sys\nfor i in range(3): print(f'line {i}')\n"
                                       "sys.stderr.write('first\\nValueError: the last words\\n\\n'); sys.exit(4)"))
    assert wait_for_exit(child) == 4
    assert child.drain() == ["line 0", "line 1", "line 2", None]
    assert child.error_text() == "ValueError: the last words"
    assert child not in process._RUNNING


def test_lines_sent_on_stdin_are_answered(tmp_path: Path) -> None:
    child = process.LineProcess(python("import os, sys\nprint(os.getcwd(), flush=True)\n"
                                       "for line in sys.stdin: print(line.strip().upper(), flush=True)"),
                                cwd=tmp_path, with_stdin=True)
    child.send("hello")
    child.send("again")
    assert [child.lines.get(timeout=TIMEOUT_S) for _ in range(3)] == [str(tmp_path), "HELLO", "AGAIN"]
    child.stop()
    assert child.proc.poll() is not None and child not in process._RUNNING


def test_a_process_that_ignores_terminate_is_killed() -> None:
    child = process.LineProcess(python("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                       "print('ready', flush=True)\ntime.sleep(60)"))
    assert child.lines.get(timeout=TIMEOUT_S) == "ready"
    started = time.monotonic()
    child.stop(grace_s=0.3)
    assert child.proc.returncode == -9 and time.monotonic() - started < 10


def test_stop_all_ends_every_process_started() -> None:
    children = [process.LineProcess(python("import time; time.sleep(60)")) for _ in range(2)]
    process.stop_all()
    assert all(child.proc.poll() is not None for child in children) and not process._RUNNING


def test_a_worker_that_cannot_start_is_a_user_error_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no_python"
    with pytest.raises(addon.interchange.errors.InputError,
                       match=rf"^Cannot start the worker {missing}: No such file or directory; set the worker "
                             "Python in the add-on preferences, or run python install.py$"):
        process.LineProcess([str(missing)])
