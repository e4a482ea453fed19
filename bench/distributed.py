"""Data-parallel stylization: it/s and views/s of the plain path, the distributed path on one rank, and N ranks.

    python bench/distributed.py --scene ../shared/data/scenes/flowers --style PAINTING     # GPUs: 3840 and 7680
    python bench/distributed.py --smoke                                                   # CPU, tiny, gloo

Rows: "plain" is stylize() without a process group; "dist" runs the same in a process group (NCCL on GPUs, gloo on
the CPU): world size 1 in this process (the overhead of the distributed code path, target ≤ 5 %), then N spawned
ranks for each N of --gpus that this machine has. it/s is measured on rank 0 over the iterations after --warmup
(targets, cuDNN and allocator warm-up excluded); views/s = it/s × ranks × views per step. Plain and world-size-1
runs alternate --repeats times and the best of each is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import distributed  # noqa: E402
from core.cameras import Camera, load_cameras, orbit_cameras  # noqa: E402
from core.demo import demo_scene, demo_style  # noqa: E402
from core.images import load_image  # noqa: E402
from interchange.ply import SplatData, read_ply  # noqa: E402
from core.device import resolve_device  # noqa: E402
from core.stylization import StylizeSettings, stylize  # noqa: E402


def load_inputs(args: argparse.Namespace) -> tuple[SplatData, torch.Tensor, list[Camera]]:
    """The scene (point_cloud.ply + orbit_cameras.json of a folder, else the demo scene), painting and cameras."""
    if args.scene is None:
        scene = demo_scene(count=args.demo_gaussians, seed=1)
        cameras = orbit_cameras(scene.means(), scene.opacity(), count=6)
    else:
        scene = read_ply(args.scene / "point_cloud.ply")
        cams_file = args.scene / "orbit_cameras.json"
        cameras = (load_cameras(cams_file) if cams_file.is_file()
                   else orbit_cameras(scene.means(), scene.opacity()))
    style = load_image(args.style) if args.style else demo_style(512)
    return scene, style, cameras


def measure(args: argparse.Namespace, resolution: int) -> dict:
    """One stylize() run in this process (in whatever process group it is in); rank 0's steady it/s."""
    scene, style, cameras = load_inputs(args)
    settings = StylizeSettings(iterations=args.warmup + args.iterations, resolution=resolution, device=args.device,
                               max_gpu_mem_gib=args.max_gpu_mem, views_per_step=args.views_per_step)
    stamps: list[float] = []
    device = distributed.rank_device(resolve_device(args.device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = stylize(scene, style, cameras, settings, progress=lambda event: stamps.append(time.perf_counter()))
    steady = stamps[args.warmup - 1:] if args.warmup else stamps
    it_per_s = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else result.timings["it_per_s"]
    return {"it_per_s": it_per_s, "peak_gib": result.timings.get("peak_gpu_mem_gib")}


def rank_main(rank: int, world: int, port: int, args: argparse.Namespace, resolution: int, folder: str) -> None:
    """A spawned rank: join the group, run, and (rank 0) leave the figures in folder/result.json."""
    device = resolve_device(args.device)
    if device.type != "cuda":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # CPU ranks share the cores
    distributed.setup(rank, world, device, port=port)
    try:
        figures = measure(args, resolution)
    finally:
        distributed.teardown()
    if rank == 0:
        (Path(folder) / "result.json").write_text(json.dumps(figures))


def spawned(args: argparse.Namespace, world: int, resolution: int) -> dict:
    """``world`` ranks as separate processes (one GPU each on CUDA)."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(rank_main, args=(world, distributed.free_port(), args, resolution, folder), nprocs=world)
        return json.loads((Path(folder) / "result.json").read_text())


def in_group_of_one(args: argparse.Namespace, resolution: int) -> dict:
    """The distributed code path (collectives included) with world size 1, in this process."""
    distributed.setup(0, 1, resolve_device(args.device), port=distributed.free_port())
    try:
        return measure(args, resolution)
    finally:
        distributed.teardown()


def rank_counts(args: argparse.Namespace) -> list[int]:
    """The --gpus counts above 1 this machine can run (CPU: gloo processes, any count)."""
    wanted = [int(n) for n in args.gpus.split(",") if int(n) > 1]
    if resolve_device(args.device).type != "cuda":
        return wanted
    return [n for n in wanted if n <= torch.cuda.device_count()]


def row(resolution: int, path: str, ranks: int, figures: dict, base: float, views_per_step: int) -> str:
    """A table row; the ratios compare with the plain path's it/s (``base``) at the same views per step."""
    views = figures["it_per_s"] * ranks * views_per_step
    peak = "-" if figures.get("peak_gib") is None else f"{figures['peak_gib']:.2f}"
    return (f"| {resolution} | {path} | {ranks} | {figures['it_per_s']:.3f} | {views:.3f} | "
            f"{figures['it_per_s'] / base:.3f} | {figures['it_per_s'] * ranks / base:.2f} | {peak} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, help="folder with point_cloud.ply (+ orbit_cameras.json); default: demo")
    p.add_argument("--style", type=Path, help="painting; default: the procedural one")
    p.add_argument("--resolutions", default="3840,7680", help="render long sides, comma-separated")
    p.add_argument("--gpus", default="2,4,8", help="rank counts to try above 1 (those this machine has)")
    p.add_argument("--iterations", type=int, default=20, help="measured iterations per run")
    p.add_argument("--warmup", type=int, default=5, help="iterations before the measurement")
    p.add_argument("--repeats", type=int, default=2, help="alternating plain / world-size-1 runs, best kept")
    p.add_argument("--views-per-step", type=int, default=1)
    p.add_argument("--max-gpu-mem", type=float, help="GiB cap per GPU (as sos-stylize --max-gpu-mem)")
    p.add_argument("--device", default="auto")
    p.add_argument("--demo-gaussians", type=int, default=20000)
    p.add_argument("--smoke", action="store_true", help="CPU smoke test: demo scene, 48 px, 2 gloo ranks")
    args = p.parse_args()
    if args.smoke:
        args.device, args.resolutions, args.gpus, args.demo_gaussians = "cpu", "48", "2", 500
        args.iterations, args.warmup, args.repeats = 3, 1, 1
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name} × {torch.cuda.device_count() if device.type == 'cuda' else 1}, torch {torch.__version__}"
          f", {args.iterations} iterations after {args.warmup}, views per step {args.views_per_step}", flush=True)
    print("| resolution | path | ranks | it/s | views/s | it/s vs plain | views/s vs plain | peak GiB (rank 0) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for resolution in [int(r) for r in args.resolutions.split(",")]:
        plain, single = [], []
        for _ in range(args.repeats):
            plain.append(measure(args, resolution))
            single.append(in_group_of_one(args, resolution))
        best_plain = max(plain, key=lambda f: f["it_per_s"])
        best_single = max(single, key=lambda f: f["it_per_s"])
        base = best_plain["it_per_s"]
        v = args.views_per_step
        print(row(resolution, "plain", 1, best_plain, base, v), flush=True)
        print(row(resolution, "dist", 1, best_single, base, v), flush=True)
        for world in rank_counts(args):
            print(row(resolution, "dist", world, spawned(args, world, resolution), base, v), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
