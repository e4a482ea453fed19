"""The long-lived render worker (blender_addon/io/render_worker.py) with a stand-in `--serve` process: one
worker for many requests, a new one when the Python, device or GPU changes, and one-line errors when it is of
another protocol, refuses a request, dies or is cancelled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from addon_package import load_addon

addon = load_addon()
render_worker = addon.io.render_worker
protocol = addon.interchange.protocol
InputError = addon.interchange.errors.InputError
RENDER = protocol.RenderRequest(objects=(protocol.RenderObject("scene.ply"),), viewmat=protocol.IDENTITY,
                                K=(100.0, 0.0, 8.0, 0.0, 100.0, 8.0, 0.0, 0.0, 1.0), width=16, height=16,
                                out="view.npy")


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
            print(json.dumps({{"id": request["id"], "ok": True, "argv": sys.argv[1:], "pid": os.getpid(),
                              "request": request}}), flush=True)
        """, name))


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    yield
    render_worker.shutdown()


def never() -> bool:
    return False


def test_one_worker_answers_every_request_until_its_settings_change(fake_python: Callable) -> None:
    python = serve(fake_python)
    first, warning = render_worker.render_request(python, "cpu", RENDER, never)
    again, _ = render_worker.render_request(python, "cpu", RENDER, never)
    assert first.ok and first.values["argv"] == ["-m", "core.worker", "--serve", "--device", "cpu"]
    assert warning is None
    assert protocol.parse_request(first.values["request"]) == replace(RENDER, id=first.id)  # sent as the record
    assert again.values["pid"] == first.values["pid"] and again.id == first.id + 1
    on_gpu, _ = render_worker.render_request(python, "cuda", RENDER, never, gpu=2)
    assert on_gpu.values["pid"] != first.values["pid"]
    assert on_gpu.values["argv"][-4:] == ["--device", "cuda", "--gpu", "2"]
    assert render_worker.current_worker().key == (python, "cuda", 2)


def test_a_worker_without_the_gpu_asked_for_warns_once(fake_python: Callable) -> None:
    python = serve(fake_python)
    _, warning = render_worker.render_request(python, "cuda", RENDER, never)
    assert warning == "The render worker has no CUDA GPU: rendering on the CPU (slow for large scenes)"
    assert render_worker.render_request(python, "cuda", RENDER, never)[1] is None


def test_a_worker_of_another_protocol_is_refused_and_stopped(fake_python: Callable) -> None:
    python = serve(fake_python, ready={"protocol": protocol.PROTOCOL_VERSION + 1})
    with pytest.raises(InputError, match="newer than this add-on"):
        render_worker.render_request(python, "cpu", RENDER, never)
    assert render_worker.current_worker() is None


def test_a_refused_request_keeps_the_worker(fake_python: Callable) -> None:
    refuse = ("print(json.dumps({'id': request['id'], 'ok': False, 'error': 'scene.ply: not a PLY'}), flush=True)"
              "; continue")
    python = serve(fake_python, on_request=refuse)
    with pytest.raises(InputError, match=r"^The render worker failed: scene\.ply: not a PLY$"):
        render_worker.render_request(python, "cpu", RENDER, never)
    assert render_worker.current_worker().alive()


def test_a_worker_that_dies_is_named_with_its_last_words_and_forgotten(fake_python: Callable) -> None:
    python = serve(fake_python, on_request="sys.stderr.write('MemoryError: out of host memory\\n'); sys.exit(1)")
    with pytest.raises(InputError, match=r"^The render worker stopped: MemoryError: out of host memory; set the "
                                         "worker Python"):
        render_worker.render_request(python, "cpu", RENDER, never)
    assert render_worker.current_worker() is None


def test_a_cancelled_render_stops_the_worker(fake_python: Callable) -> None:
    python = serve(fake_python, on_request="import time; time.sleep(60)")
    render_worker.render_request(python, "cpu", protocol.PingRequest(), never)
    worker = render_worker.current_worker()
    with pytest.raises(InputError, match="^Render cancelled$"):
        render_worker.render_request(python, "cpu", RENDER, lambda: True)
    assert render_worker.current_worker() is None and not worker.alive()


@pytest.mark.parametrize("ready, answer", [
    ({"protocol": "1"}, "the worker's ready line: protocol has the wrong type"),
    ({}, "reply: ok has the wrong type"),
])
def test_a_worker_that_answers_outside_the_protocol_is_refused_and_stopped(fake_python: Callable, ready: dict,
                                                                           answer: str) -> None:
    """A ready line or a reply with a field of the wrong type is named, with the fix (the add-on and the engine
    come from different releases), and the worker is stopped."""
    garbled = "print(json.dumps({'id': request['id'], 'ok': 'yes'}), flush=True); continue"
    python = serve(fake_python, ready=ready, on_request=garbled)
    with pytest.raises(InputError, match=rf"^The render worker's answer is not understood \({answer} .*\); run "
                                         "python install.py again"):
        render_worker.render_request(python, "cpu", RENDER, never)
    assert render_worker.current_worker() is None
