"""Stylize a real scene end to end and report it/s, peak GPU memory and the loss curve.

    python bench/stylize_scene.py --scene ../shared/data/scenes/flowers --style ../shared/data/styles/X.jpg \
        --resolution 1920 --iterations 600 --lr 0.02 --out OUT/flowers_1080p

Also sweeps learning rates (``--lr 0.005,0.01,0.02,0.05``) to choose defaults: each run prints the smoothed style
loss at fixed checkpoints so the curves can be compared. Writes before/after PNGs, the stylized PLY (optional) and
a JSON summary into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cameras import load_cameras, orbit_cameras  # noqa: E402
from core.images import load_image, save_png, side_by_side  # noqa: E402
from interchange.ply import read_ply, write_ply  # noqa: E402
from core.stylization import StylizeSettings, render_views, stylize  # noqa: E402


def smoothed(values: list[float], window: int = 25) -> np.ndarray:
    """Moving average: one random view per iteration makes the raw curve noisy."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < window:
        return v
    return np.convolve(v, np.ones(window) / window, mode="valid")


def run_once(scene, style, cameras, settings: StylizeSettings) -> dict:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = stylize(scene, style, cameras, settings)
    wall = time.perf_counter() - t0
    style_curve = smoothed([h["style"] for h in result.history])
    marks = sorted({min(len(style_curve) - 1, m) for m in (0, 50, 100, 200, 400, 800, 1600, 3200)
                    if m < len(style_curve) + 25})
    return {"result": result, "wall_s": wall, "it_per_s": result.timings["it_per_s"],
            "peak_gib": result.timings.get("peak_gpu_mem_gib"),
            "style_at": {int(m): float(style_curve[m]) for m in marks},
            "content_final": float(smoothed([h["content"] for h in result.history])[-1]),
            "history": result.history}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, required=True, help="folder with point_cloud.ply (+ orbit_cameras.json)")
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--resolution", type=int, default=1920)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--lr", default="0.02", help="one value or a comma-separated sweep")
    p.add_argument("--max-gpu-mem", type=float)
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--aspect", type=float, default=16 / 9, help="render width/height (cameras are resized)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--save-ply", action="store_true")
    p.add_argument("--crop", type=int, default=0, help="also save a centre crop of this size from a full-res render")
    args = p.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    scene = read_ply(args.scene / "point_cloud.ply")
    style = load_image(args.style)
    cams_file = args.scene / "orbit_cameras.json"
    base = load_cameras(cams_file) if cams_file.is_file() else orbit_cameras(scene.means(), scene.opacity())
    cameras = [_widen(c, args.aspect) for c in base]
    summary = {"scene": str(args.scene), "style": str(args.style), "resolution": args.resolution,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "runs": []}
    before = render_views(scene, cameras[:2], resolution=min(args.resolution, 1920))
    for lr in [float(v) for v in args.lr.split(",")]:
        settings = StylizeSettings(iterations=args.iterations, learning_rate=lr, resolution=args.resolution,
                                   max_gpu_mem_gib=args.max_gpu_mem, bf16=not args.no_bf16,
                                   content_weight=args.content_weight,
                                   cudnn_benchmark=args.cudnn_benchmark)
        run = run_once(scene, style, cameras, settings)
        result = run.pop("result")
        tag = f"lr{lr:g}"
        after = render_views(result.splat, cameras[:2], resolution=min(args.resolution, 1920))
        for i, (b, a) in enumerate(zip(before, after)):
            save_png(args.out / f"{tag}_view{i}_before_after.png", side_by_side([b, a]))
        if args.crop:
            full = render_views(result.splat, cameras[:1], resolution=args.resolution)[0]
            h, w = full.shape[:2]
            c = args.crop
            save_png(args.out / f"{tag}_crop{c}.png", full[(h - c) // 2:(h + c) // 2, (w - c) // 2:(w + c) // 2])
        if args.save_ply:
            write_ply(args.out / f"{tag}_stylized.ply", result.splat)
        summary["runs"].append({"lr": lr, **{k: v for k, v in run.items() if k != "history"}})
        (args.out / f"{tag}_history.json").write_text(json.dumps(run["history"]))
        print(f"lr={lr:g}: {run['it_per_s']:.2f} it/s, wall {run['wall_s']:.1f} s, peak "
              f"{run['peak_gib'] if run['peak_gib'] is None else round(run['peak_gib'], 2)} GiB, "
              f"style(smoothed) {run['style_at']}", flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


def _widen(camera, aspect: float):
    """A square orbit camera turned into a width/height = aspect one with the same vertical field of view."""
    if aspect == 1:
        return camera
    width = int(round(camera.height * aspect))
    return replace(camera, width=width, cx=width / 2)


if __name__ == "__main__":
    sys.exit(main())
