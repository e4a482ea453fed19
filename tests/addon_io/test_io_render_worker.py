"""The long-lived render worker (blender_addon/io/render_worker.py) with a stand-in `--serve` process: one
worker for many requests, a new one when the Python, device or GPU changes, and one-line errors when it is of
another protocol, refuses a request, dies or is cancelled."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from addon_package import load_addon

addon = load_addon()
render_worker = addon.io.render_worker
protocol = addon.interchange.protocol
InputError = addon.interchange.errors.InputError


def serve(fake_python: Callable, name: str = "python", ready: dict | None = None, on_request: str = "") -> str:
    """A stand-in `python -m core.worker --serve`: prints its ready line, then answers each request with its id
    and arguments (after running on_request, which may refuse or exit), and quits on {"cmd": "quit"}."""
    ready = {"event": protocol.READY_EVENT, "protocol": protocol.PROTOCOL_VERSION, "device": "cpu"} | (ready or {})
    return str(fake_python(f"""\
        import json, os
        print(json.dumps({ready!r}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("cmd") == "quit":
                break
            if request.get("cmd") != "ping":
                {on_request or "pass"}
            print("a line that is not a reply", flush=True)
            print(json.dumps({{"id": request["id"], "ok": True, "argv": sys.argv[1:], "pid": os.getpid()}}),
                  flush=True)
        """, name))


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    yield
    render_worker.shutdown()


def never() -> bool:
    return False


def test_one_worker_answers_every_request_until_its_settings_change(fake_python: Callable) -> None:
    python = serve(fake_python)
    first, warning = render_worker.render_request(python, "cpu", {"cmd": "render"}, never)
    again, _ = render_worker.render_request(python, "cpu", {"cmd": "render"}, never)
    assert first["argv"] == ["-m", "core.worker", "--serve", "--device", "cpu"] and warning is None
    assert again["pid"] == first["pid"] and again["id"] == first["id"] + 1
    on_gpu, _ = render_worker.render_request(python, "cuda", {"cmd": "render"}, never, gpu=2)
    assert on_gpu["pid"] != first["pid"] and on_gpu["argv"][-4:] == ["--device", "cuda", "--gpu", "2"]
    assert render_worker.current_worker().key == (python, "cuda", 2)


def test_a_worker_without_the_gpu_asked_for_warns_once(fake_python: Callable) -> None:
    python = serve(fake_python)
    _, warning = render_worker.render_request(python, "cuda", {"cmd": "render"}, never)
    assert warning == "The render worker has no CUDA GPU: rendering on the CPU (slow for large scenes)"
    assert render_worker.render_request(python, "cuda", {"cmd": "render"}, never)[1] is None


def test_a_worker_of_another_protocol_is_refused_and_stopped(fake_python: Callable) -> None:
    python = serve(fake_python, ready={"protocol": protocol.PROTOCOL_VERSION + 1})
    with pytest.raises(InputError, match="newer than this add-on"):
        render_worker.render_request(python, "cpu", {"cmd": "render"}, never)
    assert render_worker.current_worker() is None


def test_a_refused_request_keeps_the_worker(fake_python: Callable) -> None:
    refuse = ("print(json.dumps({'id': request['id'], 'ok': False, 'error': 'scene.ply: not a PLY'}), flush=True)"
              "; continue")
    python = serve(fake_python, on_request=refuse)
    with pytest.raises(InputError, match=r"^The render worker failed: scene\.ply: not a PLY$"):
        render_worker.render_request(python, "cpu", {"cmd": "render"}, never)
    assert render_worker.current_worker().alive()


def test_a_worker_that_dies_is_named_with_its_last_words_and_forgotten(fake_python: Callable) -> None:
    python = serve(fake_python, on_request="sys.stderr.write('MemoryError: out of host memory\\n'); sys.exit(1)")
    with pytest.raises(InputError, match=r"^The render worker stopped: MemoryError: out of host memory; set the "
                                         "worker Python"):
        render_worker.render_request(python, "cpu", {"cmd": "render"}, never)
    assert render_worker.current_worker() is None


def test_a_cancelled_render_stops_the_worker(fake_python: Callable) -> None:
    python = serve(fake_python, on_request="import time; time.sleep(60)")
    render_worker.render_request(python, "cpu", {"cmd": "ping"}, never)
    worker = render_worker.current_worker()
    with pytest.raises(InputError, match="^Render cancelled$"):
        render_worker.render_request(python, "cpu", {"cmd": "render"}, lambda: True)
    assert render_worker.current_worker() is None and not worker.alive()
