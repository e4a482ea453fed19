"""Data-parallel stylization on the CPU: 2 gloo processes equal 1 process taking 2 views per step.

One spawned pair of ranks runs every distributed scenario (process start-up is the slow part); the tests below
check what each rank reported. The reference runs in the test process with ``views_per_step=2``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core import checkpoint as checkpoint_module
from core import distributed
from core.cameras import orbit_cameras
from core.demo import demo_scene, demo_style
from core.stylization import StylizeSettings, stylize

RES = 40
ITERATIONS = 4
WORLD = 2
SPAWN_TIMEOUT_S = 240
ROOT = Path(__file__).resolve().parents[1]


def inputs():
    scene = demo_scene(count=500, seed=3)
    cameras = orbit_cameras(scene.means(), scene.opacity(), count=5, width=RES, height=RES)
    return scene, demo_style(64), cameras


def settings(**kw) -> StylizeSettings:
    base = dict(iterations=ITERATIONS, resolution=RES, device="cpu", learning_rate=0.02, optimize="sh+opacity",
                seed=7)
    return StylizeSettings(**{**base, **kw})


def splat_arrays(result) -> dict[str, np.ndarray]:
    s = result.splat
    return {"dc": s.sh_dc(), "rest": s.sh_rest(), "opacity": s.opacity()}


DETAIL = dict(detail=1.0, densify_every=2, iterations=6)  # splits after iterations 2 and 4, geometry moving


def detail_arrays(result) -> dict[str, np.ndarray]:
    return {**splat_arrays(result), "means": result.splat.means(), "count": np.array(result.splat.count)}


def rank_main(rank: int, port: int, folder: str) -> None:
    """One rank: every scenario in one process group; what it saw goes to rank<N>.pt."""
    torch.set_num_threads(1)
    distributed.setup(rank, WORLD, torch.device("cpu"), port=port)
    writes: list[str] = []
    real_atomic_write = checkpoint_module.atomic_write

    def recording_atomic_write(path, *args, **kwargs):
        writes.append(Path(path).name)
        return real_atomic_write(path, *args, **kwargs)

    checkpoint_module.atomic_write = recording_atomic_write
    scene, style, cameras = inputs()
    out = Path(folder)
    events, previews = [], []
    full = stylize(scene, style, cameras, settings(checkpoint_every=2, preview_every=2), progress=events.append,
                   preview=lambda i, image: previews.append(i), checkpoint_path=out / "full.pt")
    polls = []
    stopped = stylize(scene, style, cameras, settings(checkpoint_every=1), checkpoint_path=out / "resume.pt",
                      should_stop=lambda: polls.append(1) or (rank == 1 and len(polls) > 2))
    resumed = stylize(scene, style, cameras, settings(checkpoint_every=1), checkpoint_path=out / "resume.pt")
    decided = distributed.decided_on_main(lambda: torch.arange(3) + 10 * (rank + 1))
    split_full = stylize(scene, style, cameras, settings(**DETAIL))
    polls.clear()
    stylize(scene, style, cameras, settings(**DETAIL, checkpoint_every=1), checkpoint_path=out / "split.pt",
            should_stop=lambda: polls.append(1) or (rank == 1 and len(polls) > 3))
    split_resumed = stylize(scene, style, cameras, settings(**DETAIL, checkpoint_every=1),
                            checkpoint_path=out / "split.pt")
    torch.save({"full": splat_arrays(full), "history": full.history, "events": len(events), "previews": previews,
                "writes": writes, "stopped": (stopped.cancelled, len(stopped.history)),
                "resumed": splat_arrays(resumed), "resumed_history": [h["iteration"] for h in resumed.history],
                "decided": decided.tolist(), "ranks": distributed.current(), "split": detail_arrays(split_full),
                "split_resumed": detail_arrays(split_resumed)}, out / f"rank{rank}.pt")
    distributed.teardown(wait_for_peers=True)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ranks")
    context = mp.spawn(rank_main, args=(distributed.free_port(), str(folder)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"ranks did not finish within {SPAWN_TIMEOUT_S} s (a collective hangs)")
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def reference():
    """One process, two views per step, the same seed: what the two ranks together must reproduce."""
    scene, style, cameras = inputs()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return stylize(scene, style, cameras, settings(views_per_step=WORLD))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_two_ranks_equal_one_process_with_two_views_per_step(ranks, reference):
    expected = splat_arrays(reference)
    for name, values in ranks[0]["full"].items():
        np.testing.assert_allclose(values, expected[name], rtol=0, atol=1e-6, err_msg=name)
    assert [h["views"] for h in ranks[0]["history"]] == [h["views"] for h in reference.history]
    assert len({tuple(h["views"]) for h in reference.history}) > 1, "the test needs the views to vary"
    for key in ("style", "content", "total"):
        np.testing.assert_allclose([h[key] for h in ranks[0]["history"]], [h[key] for h in reference.history],
                                   rtol=1e-5, err_msg=key)
    assert not np.array_equal(expected["opacity"], inputs()[0].opacity()), "opacity must be optimised too"


@pytest.mark.slow
def test_ranks_stay_identical(ranks):
    for name in ranks[0]["full"]:
        assert np.array_equal(ranks[0]["full"][name], ranks[1]["full"][name]), name
    assert ranks[0]["history"] == ranks[1]["history"]
    assert [r["ranks"].rank for r in ranks] == [0, 1] and all(r["ranks"].world_size == WORLD for r in ranks)


@pytest.mark.slow
def test_only_rank_0_reports_and_writes(ranks):
    assert ranks[0]["events"] == ITERATIONS and ranks[0]["previews"] == [2, 4]
    assert "full.pt" in ranks[0]["writes"] and "resume.pt" in ranks[0]["writes"]
    assert ranks[1]["events"] == 0 and ranks[1]["previews"] == [] and ranks[1]["writes"] == []


@pytest.mark.slow
def test_a_stop_on_one_rank_stops_all_at_the_same_step(ranks):
    assert ranks[0]["stopped"] == ranks[1]["stopped"] == (True, 2)


@pytest.mark.slow
def test_resume_from_a_distributed_checkpoint_matches_the_uninterrupted_run(ranks):
    assert ranks[0]["resumed_history"] == list(range(1, ITERATIONS + 1))
    for name, values in ranks[0]["resumed"].items():
        np.testing.assert_allclose(values, ranks[0]["full"][name], rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_densification_splits_the_same_gaussians_on_every_rank(ranks):
    """Each rank gathers image-plane gradients from its own view; pooled before each split, so both ranks split the
    same Gaussians, as one process taking both views per step does."""
    scene = inputs()[0]
    reference = detail_arrays(stylize(scene, inputs()[1], inputs()[2], settings(**DETAIL, views_per_step=WORLD)))
    assert int(ranks[0]["split"]["count"]) > scene.count
    for name, values in ranks[0]["split"].items():
        assert np.array_equal(values, ranks[1]["split"][name]), name
        np.testing.assert_allclose(values, reference[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_a_distributed_detail_run_resumes_from_its_checkpoint(ranks):
    """The checkpoint holds the statistics of both ranks' views since the last split, counted once on resume."""
    for name, values in ranks[0]["split_resumed"].items():
        np.testing.assert_allclose(values, ranks[0]["split"][name], rtol=0, atol=1e-5, err_msg=name)
        assert np.array_equal(values, ranks[1]["split_resumed"][name]), name


@pytest.mark.slow
def test_decisions_made_on_rank_0_reach_every_rank(ranks):
    assert ranks[0]["decided"] == ranks[1]["decided"] == [10, 11, 12]


@pytest.mark.slow
def test_one_process_keeps_the_plain_path():
    scene, style, cameras = inputs()
    result = stylize(scene, style, cameras, settings(iterations=3, optimize="color"))
    rng = random.Random(7)
    assert [h["view"] for h in result.history] == [rng.randrange(len(cameras)) for _ in range(3)]
    assert not dist.is_initialized() and distributed.current() == distributed.SINGLE
    assert result.device == "cpu"


def test_views_per_step_is_validated():
    from core.errors import InputError
    from core.checks import check_settings
    with pytest.raises(InputError, match="settings: views_per_step must be in 1..64"):
        check_settings(settings(views_per_step=0))


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=SPAWN_TIMEOUT_S)


@pytest.mark.slow
def test_cli_gpus_runs_ranks_with_one_report(tmp_path):
    out = tmp_path / "out"
    proc = cli("--demo", "-o", out, "--iterations", 3, "--resolution", 32, "--views", 2, "--device", "cpu",
               "--gpus", 2, "--views-per-step", 2, "--json-progress", "--preview-every", 3)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "progress", "progress", "preview", "done"]
    report = json.loads((out / "report.json").read_text())
    assert report["device"]["processes"] == 2
    assert all(len(h["views"]) == 4 for h in report["history"])


@pytest.mark.slow
def test_cli_gpus_cancel_file_stops_every_rank(tmp_path):
    cancel = tmp_path / "cancel"
    cancel.write_text("")
    out = tmp_path / "out"
    proc = cli("--demo", "-o", out, "--iterations", 50, "--resolution", 32, "--views", 2, "--device", "cpu",
               "--gpus", 2, "--json-progress", "--cancel-file", cancel)
    assert proc.returncode == 130, proc.stderr
    assert [json.loads(line)["event"] for line in proc.stdout.splitlines()] == ["start", "cancelled"]
    assert not (out / "stylized.ply").exists()


@pytest.mark.slow
def test_cli_under_torchrun(tmp_path):
    out = tmp_path / "out"
    args = ["--demo", "-o", out, "--iterations", 2, "--resolution", 32, "--views", 2, "--device", "cpu",
            "--json-progress"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "core",
                           *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=SPAWN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    assert [e["iteration"] for e in map(json.loads, proc.stdout.splitlines()) if e["event"] == "progress"] == [1, 2]
    assert json.loads((out / "report.json").read_text())["device"]["processes"] == 2


@pytest.mark.parametrize("gpus,device,fragment", [("2", "auto", "no CUDA GPU"), ("none", "cpu", "expected a number"),
                                                  ("all", "cpu", "no CUDA GPU")])
def test_cli_bad_gpus_is_a_one_line_error(tmp_path, gpus, device, fragment):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = cli("--demo", "-o", tmp_path / "o", "--gpus", gpus, "--device", device)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("error: --gpus") and fragment in proc.stderr


def test_one_gpu_means_the_plain_run_anywhere():
    assert distributed.requested_processes("1", torch.device("cpu"), "auto") == 1
    assert distributed.requested_processes(None, torch.device("cpu"), "auto") == 1
    assert distributed.requested_processes("3", torch.device("cpu"), "cpu") == 3


def test_launcher_stops_the_other_ranks_when_one_fails():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    failing = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    t0 = time.monotonic()
    assert distributed.wait_for_ranks([sleeper, failing], grace_s=0.5) == 3
    assert sleeper.returncode == -signal.SIGTERM and time.monotonic() - t0 < 30


def test_broadcast_sends_contiguous_buffers_and_fills_strided_parameters(monkeypatch):
    """NCCL refuses non-contiguous tensors (seen on the H200 with a strided parameter); gloo accepts them, so the
    collective is replaced by one that checks contiguity and plays rank 0's values."""
    rank0 = [torch.arange(12.0).reshape(3, 4).T, torch.full((2,), 5.0)]
    mine = [torch.zeros(3, 4).T, torch.zeros(2)]  # a strided [4, 3] view, like rank0[0]
    sent = torch.cat([t.reshape(-1) for t in rank0])

    def fake_broadcast(tensor, src):
        assert src == 0 and tensor.is_contiguous()
        tensor.copy_(sent)

    monkeypatch.setattr(distributed, "current", lambda: distributed.Ranks(1, 2, 1, True))
    monkeypatch.setattr(distributed.dist, "broadcast", fake_broadcast)
    distributed.broadcast_tensors(mine)
    for got, want in zip(mine, rank0):
        assert torch.equal(got, want)
    assert not mine[0].is_contiguous()  # filled in place, still the caller's tensor
