"""One stylization process and its JSON-lines events (blender_addon/io/job.py), with stand-in engines: what the
add-on shows and concludes from the events and the exit code, and how it cancels."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from addon_package import load_addon

addon = load_addon()
job_module = addon.io.job
protocol = addon.interchange.protocol
settings = addon.interchange.settings
TIMEOUT_S = 30.0
START = {"event": "start", "iterations": 10, "gaussians": 600, "sh_degree": 1, "views": 3, "cameras": "cameras.json"}


def progress(iteration: int) -> dict:
    return {"event": "progress", "iteration": iteration, "iterations": 10, "style": 0.5 / iteration,
            "content": 0.25, "it_per_s": 2.0, "eta_s": (10 - iteration) / 2}


def engine(fake_python: Callable, events: list[dict], then: str = "sys.exit(0)") -> str:
    """A stand-in engine printing events (and a line that is not JSON), then running `then`."""
    lines = [json.dumps(event) for event in events]
    return str(fake_python(textwrap.dedent(f"""\
        import json, os, signal, time
        print("plain text from a library", flush=True)
        for line in {lines!r}:
            print(line, flush=True)
        """) + textwrap.dedent(then)))


def run(folder: Path, python: str, gpus: str | None = None, cancel_after: int | None = None):
    """Start a job in folder and advance it until it ends (asking to cancel after that many events)."""
    target = job_module.JobTarget(object_uid=1, object_name="scan", scene_name="Scene")
    job = job_module.StylizeJob(folder, python, target, gpus)
    deadline = time.monotonic() + TIMEOUT_S
    while job.advance() is job_module.Phase.RUNNING:
        if cancel_after is not None and len(job.events) >= cancel_after:
            job.request_cancel()
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    return job


def test_a_finished_job_is_done_with_its_progress_and_preview(fake_python: Callable, tmp_path: Path) -> None:
    events = [START, progress(5), {"event": "preview", "iteration": 5, "path": "out/preview.png"}, progress(10),
              {"event": "done", "ply": "out/stylized.ply", "report": "out/report.json", "text": "done"}]
    job = run(tmp_path, engine(fake_python, events))
    assert job.phase is job_module.Phase.DONE and job.error is None
    assert job.events == events  # the plain text line is not an event
    assert (job.progress.iteration, job.progress.total, job.progress.fraction) == (10, 10, 1.0)
    assert (job.progress.style, job.progress.content, job.progress.eta_s) == (0.05, 0.25, 0.0)
    assert job.preview == tmp_path / "out" / "preview.png" and job.preview_count == 1


def test_the_job_runs_the_protocols_command_in_its_folder(fake_python: Callable, tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    python = engine(fake_python, [], then="print(json.dumps({'event': 'done', 'ply': '', 'report': '', 'text': "
                                          "json.dumps([os.getcwd()] + sys.argv[1:])}))")
    job = run(folder, python, gpus="2")
    assert json.loads(job.events[-1]["text"]) == [str(folder)] + protocol.job_command(python, "2")[1:]


def test_a_crash_names_the_iteration_and_the_last_error_line(fake_python: Callable, tmp_path: Path) -> None:
    python = engine(fake_python, [START, progress(4)],
                    then="sys.stderr.write('Traceback\\nRuntimeError: boom\\n'); sys.exit(1)")
    job = run(tmp_path, python)
    assert job.phase is job_module.Phase.FAILED
    assert job.error == "The worker failed (exit code 1) at iteration 4/10: RuntimeError: boom"


def test_the_engines_own_error_message_is_the_error(fake_python: Callable, tmp_path: Path) -> None:
    python = engine(fake_python, [{"event": "error", "message": "style.png: not an image"}],
                    then=f"sys.exit({protocol.EXIT_BAD_INPUT})")
    assert run(tmp_path, python).error == "style.png: not an image"


def test_out_of_memory_adds_what_to_lower(fake_python: Callable, tmp_path: Path) -> None:
    python = engine(fake_python, [START, {"event": "error", "message": "GPU out of memory at 2048 px"}],
                    then=f"sys.exit({protocol.EXIT_OUT_OF_MEMORY})")
    assert run(tmp_path, python).error == ("GPU out of memory at 2048 px (lower Resolution or set a GPU Memory Cap "
                                           "in the Stylize panel)")


def test_an_error_naming_settings_names_them_by_their_panel_labels(fake_python: Callable, tmp_path: Path) -> None:
    """The engine's message names settings by flag; its template lets the add-on name them by label (and the
    message already says what to lower, so no hint is added)."""
    template = (f"GPU out of memory: lower {settings.mention('resolution')} or set "
                f"{settings.mention('max_gpu_mem_gib')} to the GiB this GPU can spare")
    error = {"event": "error", "message": settings.for_command_line(template), "template": template}
    python = engine(fake_python, [START, error], then=f"sys.exit({protocol.EXIT_OUT_OF_MEMORY})")
    assert run(tmp_path, python).error == ("GPU out of memory: lower Resolution or set GPU Memory Cap to the GiB "
                                           "this GPU can spare")


def test_lines_outside_the_protocol_are_not_events(fake_python: Callable, tmp_path: Path) -> None:
    """Events of types this add-on does not know (a newer engine's) and events that break the protocol (a field
    missing or of the wrong type) are left out, as plain text is."""
    done = {"event": "done", "ply": "out/stylized.ply", "report": "out/report.json", "text": "done"}
    odd = [{"event": "telemetry", "gpu_temp": 71}, {**progress(3), "iteration": "3"},
           {key: value for key, value in progress(4).items() if key != "style"}, ["start"], {"iteration": 5}]
    job = run(tmp_path, engine(fake_python, [START, *odd, done]))
    assert job.phase is job_module.Phase.DONE and job.events == [START, done]
    assert (job.progress.iteration, job.progress.total) == (0, 10)


def test_a_worker_killed_by_a_signal_says_so(fake_python: Callable, tmp_path: Path) -> None:
    job = run(tmp_path, engine(fake_python, [], then="os.kill(os.getpid(), signal.SIGKILL)"))
    assert job.phase is job_module.Phase.FAILED
    assert job.error == "The worker stopped unexpectedly (signal 9) at start-up"


def test_cancel_writes_the_cancel_file_and_the_engine_stops(fake_python: Callable, tmp_path: Path) -> None:
    python = engine(fake_python, [START], then=f"""\
        while not os.path.exists({protocol.CANCEL_FILE!r}):
            time.sleep(0.01)
        print(json.dumps({{"event": "cancelled", "iteration": 0, "text": "cancelled"}}), flush=True)
        sys.exit({protocol.EXIT_CANCELLED})
        """)
    job = run(tmp_path, python, cancel_after=1)
    assert job.phase is job_module.Phase.CANCELLED and job.process.proc.returncode == protocol.EXIT_CANCELLED
    assert (tmp_path / protocol.CANCEL_FILE).is_file()


def test_an_engine_that_ignores_cancel_is_terminated(fake_python: Callable, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_module, "CANCEL_GRACE_S", 0.2)
    job = run(tmp_path, engine(fake_python, [START], then="time.sleep(60)"), cancel_after=1)
    assert job.phase is job_module.Phase.CANCELLED and job.process.proc.returncode < 0


def test_stop_and_keep_asks_the_engine_for_its_result_so_far_and_waits_for_it(fake_python: Callable, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel file appears whole, holding the protocol's keep word; the job sets no deadline (writing the
    outputs takes what it takes) and ends done when the engine writes them."""
    monkeypatch.setattr(job_module, "CANCEL_GRACE_S", 0.05)
    python = engine(fake_python, [START], then=f"""\
        while not os.path.exists({protocol.CANCEL_FILE!r}):
            time.sleep(0.01)
        text = open({protocol.CANCEL_FILE!r}).read()
        time.sleep(0.5)  # longer than the cancel grace: a kept result is not cut short
        print(json.dumps({{"event": "done", "ply": "out/stylized.ply", "report": "out/report.json",
                          "text": "stopped at iteration 3 of 10 on request; wrote " + text}}), flush=True)
        """)
    target = job_module.JobTarget(object_uid=1, object_name="scan", scene_name="Scene")
    job = job_module.StylizeJob(tmp_path, python, target)
    deadline = time.monotonic() + TIMEOUT_S
    while job.advance() is job_module.Phase.RUNNING:
        if job.events and not job.keep_requested:
            job.request_keep()
            assert job.stopping and job.cancel_deadline is None
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    assert job.phase is job_module.Phase.DONE and job.process.proc.returncode == 0
    assert job.events[-1]["text"].endswith("wrote " + protocol.CANCEL_KEEP)


def test_cancel_after_stop_and_keep_is_a_plain_cancel(fake_python: Callable, tmp_path: Path) -> None:
    python = engine(fake_python, [START], then=f"""\
        while not os.path.exists({protocol.CANCEL_FILE!r}) or open({protocol.CANCEL_FILE!r}).read():
            time.sleep(0.01)
        print(json.dumps({{"event": "cancelled", "iteration": 0, "text": "cancelled"}}), flush=True)
        sys.exit({protocol.EXIT_CANCELLED})
        """)
    target = job_module.JobTarget(object_uid=1, object_name="scan", scene_name="Scene")
    job = job_module.StylizeJob(tmp_path, python, target)
    job.request_keep()
    assert (tmp_path / protocol.CANCEL_FILE).read_text() == protocol.CANCEL_KEEP
    job.request_cancel()
    deadline = time.monotonic() + TIMEOUT_S
    while job.advance() is job_module.Phase.RUNNING:
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    assert job.phase is job_module.Phase.CANCELLED and (tmp_path / protocol.CANCEL_FILE).read_text() == ""
