"""The protocol's records: what one end builds, the other reads back to the same record, and what breaks the
protocol is named in one line (plain Python: no bpy, no torch)."""

from __future__ import annotations

import json

import pytest

from interchange import protocol as p

EVENTS = [
    p.StartEvent(600, 1500, 3, 24, "cameras.json"),
    p.ProgressEvent(3, 600, 0.5, 1.25, 2.0, 298.5, {"view": 7, "gram": 0.25, "densify_s": 0.0}),
    p.PreviewEvent(25, "out/preview.png"),
    p.DoneEvent("out/stylized.ply", "out/report.json", "wrote out/stylized.ply", 1700),
    p.CancelledEvent(12, "cancelled; nothing written"),
    p.ErrorEvent("scene.ply: truncated"),
    p.ErrorEvent("lower --lr", "lower {setting:learning_rate}"),
    p.WarningEvent("painting.png: 12 of 4096 pixels are transparent"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: f"{event.kind}")
def test_every_event_reads_back_as_it_was_built(event) -> None:
    line = json.dumps(p.event_dict(event))
    data = json.loads(line)
    assert data[p.EVENT_KEY] == event.kind.value and p.missing_fields(data) == []
    assert p.parse_event(data) == event


def test_every_event_type_has_its_record_and_the_warning_is_one() -> None:
    assert set(p.EVENT_RECORDS) == set(p.Event) == set(p.EVENTS)
    assert p.EVENTS[p.Event.WARNING] == ("message",)
    assert p.EVENTS[p.Event.PROGRESS] == ("iteration", "iterations", "style", "content", "it_per_s", "eta_s")


def test_the_progress_builder_takes_a_history_record() -> None:
    record = {"iteration": 4, "view": 2, "gram": 0.1, "mean": 0.2, "std": 0.3, "style": 0.6, "content": 0.9,
              "total": 1.5, "gaussians": 150}
    data = p.progress_event(10, record, it_per_s=2.0, eta_s=3.0, densify_s=0.0)
    assert data == {"event": "progress", "iterations": 10, **record, "it_per_s": 2.0, "eta_s": 3.0, "densify_s": 0.0}
    event = p.parse_event(json.loads(json.dumps(data)))
    assert (event.iteration, event.iterations, event.style, event.terms["gaussians"]) == (4, 10, 0.6, 150)
    with pytest.raises(p.ProtocolError, match="lacks style"):
        p.progress_event(10, {"iteration": 1, "content": 1.0}, it_per_s=1.0, eta_s=1.0)


@pytest.mark.parametrize("data, problem", [
    ({"event": "progress", "iteration": 1, "iterations": 5, "style": 1.0, "content": 0.5, "eta_s": 1.0},
     "progress: missing it_per_s"),
    ({"event": "preview", "iteration": "3", "path": "p.png"}, "preview: iteration has the wrong type"),
    ({"event": "start", "iterations": True, "gaussians": 1, "sh_degree": 0, "views": 1, "cameras": "c"},
     "start: iterations has the wrong type"),
    ({"event": "error"}, "error: missing message"),
])
def test_an_event_that_breaks_the_protocol_is_named(data: dict, problem: str) -> None:
    with pytest.raises(p.ProtocolError, match=f"^{problem}"):
        p.parse_event(data)


@pytest.mark.parametrize("data", [{"event": "from_the_future", "x": 1}, {"no": "event"}, [1, 2], "text", None])
def test_what_is_no_known_event_is_left_alone(data) -> None:
    assert p.parse_event(data) is None


REQUESTS = [
    p.RenderRequest((p.RenderObject("a.ply", tuple(float(i) for i in range(16)), "Splat"), p.RenderObject("b.ply")),
                    tuple(float(i) for i in range(16)), tuple(float(i) for i in range(9)), 40, 30, "view.npy",
                    (1.0, 1.0, 1.0), 7),
    p.RenderRequest((p.RenderObject("a.ply"),), tuple([0.0] * 16), tuple([0.0] * 9), 4, 3, "v.npy"),
    p.PingRequest(2),
    p.QuitRequest(),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r.kind}")
def test_every_request_reads_back_as_it_was_built(request_) -> None:
    data = json.loads(json.dumps(p.request_dict(request_)))
    assert data[p.COMMAND_KEY] == request_.kind.value
    assert p.parse_request(data) == request_


@pytest.mark.parametrize("data, problem", [
    ({"cmd": "dance"}, "unknown command 'dance'"),
    ({"objects": []}, "unknown command None"),
    ({"cmd": "render", "objects": [{"ply": "a.ply"}]}, "render request: missing viewmat"),
    ({"cmd": "render", "objects": [], "viewmat": [0] * 16, "K": [0] * 9, "width": 4, "height": 3, "out": "o"},
     "render request: no splat objects"),
    ({"cmd": "render", "objects": [{"name": "x"}], "viewmat": [0] * 16, "K": [0] * 9, "width": 4, "height": 3,
      "out": "o"}, "render request: object: missing ply"),
    ({"cmd": "render", "objects": [{"ply": "a"}], "viewmat": [0] * 15, "K": [0] * 9, "width": 4, "height": 3,
      "out": "o"}, r"render request: viewmat must hold 16 numbers \(got 15\)"),
    ({"cmd": "render", "objects": [{"ply": "a"}], "viewmat": [0] * 16, "K": [0] * 9, "width": 0, "height": 3,
      "out": "o"}, "render request: width and height must be positive"),
    ({"cmd": "render", "objects": [{"ply": "a"}], "viewmat": ["x"] * 16, "K": [0] * 9, "width": 4, "height": 3,
      "out": "o"}, "render request: viewmat has the wrong type"),
    ([1], "a request is a JSON object"),
])
def test_a_request_that_breaks_the_protocol_is_named(data, problem: str) -> None:
    with pytest.raises(p.ProtocolError, match=problem):
        p.parse_request(data)


def test_replies_ready_line_and_check_read_back() -> None:
    reply = p.Reply(3, True, ms=1.5, values={"out": "v.npy"})
    assert p.parse_reply(json.loads(json.dumps(p.reply_dict(reply)))) == reply
    failed = p.Reply(None, False, "bad request: a request is a JSON object", 0.1)
    assert p.parse_reply(p.reply_dict(failed)) == failed
    ready = p.ReadyLine("cuda:0", "gsplat", "1.2.0", p.PROTOCOL_VERSION, "GPU 3 was asked for")
    data = p.ready_dict(ready)
    assert data[p.EVENT_KEY] == p.READY_EVENT and p.parse_ready(data) == ready
    assert p.parse_reply(data) is None and p.parse_ready(p.reply_dict(reply)) is None
    assert p.parse_ready({"event": "ready", "device": "cpu"}) == p.ReadyLine("cpu")  # engines before versions
    check = p.WorkerCheck("/venv/bin/python", "3.11.7", "2.5.0", True, "H100", "1.5.3", "/w/vgg.pth", "gsplat",
                          "1.2.0", p.PROTOCOL_VERSION, 2, ("H100", "H100"))
    data = json.loads(json.dumps(p.check_dict(check)))
    assert set(data) == set(p.CHECK_FIELDS) and p.parse_check(data) == check


def test_a_check_from_an_older_engine_reads_with_what_it_lacks_unknown() -> None:
    old = {"python": "py", "python_version": "3.10", "torch": "2.1", "cuda": False, "device": "cpu", "gsplat": None,
           "vgg_weights": None, "renderer": "torch", "vgg_error": "VGG-19 weights missing"}
    check = p.parse_check(old)
    assert (check.engine_version, check.protocol, check.gpu_count, check.vgg_error) == (None, 0, None, old["vgg_error"])
    with pytest.raises(p.ProtocolError, match="worker check: cuda has the wrong type"):
        p.parse_check({**old, "cuda": "no"})
    with pytest.raises(p.ProtocolError, match="worker check: missing renderer"):
        p.parse_check({k: v for k, v in old.items() if k != "renderer"})


def test_names_read_as_their_text() -> None:
    assert p.Event.DONE == "done" and f"{p.Event.DONE}" == str(p.Event.DONE) == "done"
    assert json.dumps({p.COMMAND_KEY: p.Command.RENDER}) == '{"cmd": "render"}'
