"""The add-on's worker process: environment check and the JSON-lines render server."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import core
from core.cameras import orbit_cameras
from core.demo import demo_scene
from core.gaussians import Gaussians
from core.renderer import render
from interchange.ply import write_ply
from interchange.protocol import CHECK_FIELDS, PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parents[1]


def test_check_reports_torch_device_and_weights():
    proc = subprocess.run([sys.executable, "-m", "core.worker", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.splitlines()[-1])
    assert info["torch"] == torch.__version__
    assert info["cuda"] == torch.cuda.is_available()
    assert info["vgg_weights"] and Path(info["vgg_weights"]).is_file()
    assert info["renderer"] in ("gsplat", "torch")
    assert (info["engine_version"], info["protocol"]) == (core.__version__, PROTOCOL_VERSION)
    assert set(CHECK_FIELDS) <= set(info)


def test_serve_renders_views_and_survives_bad_requests(tmp_path):
    scene = demo_scene(count=500)
    ply = tmp_path / "scene.ply"
    write_ply(ply, scene)
    cam = orbit_cameras(scene.means(), scene.opacity(), count=1, width=40, height=30)[0]
    base = {"cmd": "render", "objects": [{"ply": str(ply), "matrix": np.eye(4).ravel().tolist()}],
            "viewmat": cam.viewmat.ravel().tolist(), "K": cam.K().ravel().tolist(), "width": 40, "height": 30}
    requests = [
        {**base, "id": 1, "background": None, "out": str(tmp_path / "a.npy")},
        {**base, "id": 2, "objects": [{"ply": str(tmp_path / "missing.ply")}], "out": str(tmp_path / "c.npy")},
        {"id": 3, "cmd": "dance"},
        {**base, "id": 4, "background": [1, 1, 1], "out": str(tmp_path / "b.npy")},
        {"id": 5, "cmd": "render", "objects": [{"ply": str(ply)}]},
    ]
    stdin = "\n".join(json.dumps(r) for r in requests) + "\nnot json\n" + json.dumps({"cmd": "quit"}) + "\n"
    proc = subprocess.run([sys.executable, "-m", "core.worker", "--serve", "--device", "cpu"], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["event"] == "ready" and lines[0]["device"] == "cpu" and lines[0]["protocol"] == PROTOCOL_VERSION
    replies = {r["id"]: r for r in lines[1:] if r.get("id") is not None}
    assert replies[1]["ok"] and replies[4]["ok"]
    assert not replies[2]["ok"] and "missing.ply" in replies[2]["error"]
    assert not replies[3]["ok"] and "dance" in replies[3]["error"]
    assert not replies[5]["ok"] and "render request: missing viewmat" in replies[5]["error"]
    assert any(not r["ok"] and "bad request" in r["error"] for r in lines[1:] if r.get("id") is None)

    transparent, opaque = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert transparent.shape == (30, 40, 4) and transparent.dtype == np.float32
    expected = render(Gaussians.from_splat_data(scene), torch.tensor(cam.viewmat, dtype=torch.float32),
                      torch.tensor(cam.K(), dtype=torch.float32), 40, 30, background=torch.zeros(3))
    assert np.abs(transparent[..., :3] - expected.image.numpy()).mean() < 1e-6
    assert np.abs(transparent[..., 3:] - expected.alpha.numpy()).mean() < 1e-6
    np.testing.assert_allclose(opaque[..., :3], transparent[..., :3] + (1 - transparent[..., 3:]), atol=1e-6)
    assert np.all(opaque[..., 3] == 1.0)
