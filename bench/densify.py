"""Does style-driven densification paint finer strokes? Colours only against detail on, same iterations.

    python bench/densify.py --scene ../shared/data/scenes/flowers --style ../shared/data/styles/X.jpg \
        --resolution 7680 --iterations 150 --detail 3 --densify-every 30 --max-gpu-mem 24 --eval-views 2 \
        --out OUT/densify_8k --variants ';geometry_lr=1e-3'       # docs/benchmarks.md
    python bench/densify.py --demo --device cpu --resolution 64 --iterations 6 --densify-every 2 --out /tmp/d

Per run: Gaussians before/after, wall time, peak GPU memory, densification rounds and their time, and the geometry
guard's checks. Judged by bench/judge.py on --eval-views views at the run's full resolution (16:9 by default, as
bench/stylize_scene.py widens the orbit), in bf16: style distance at the finest scale and averaged over all scales,
over the whole frame and over the object weighted by the CAPTURE's coverage (floaters cannot score); content
distance; the sliced Wasserstein distance; spill and lost coverage against the capture; multi-view consistency
(each view's neighbour warped into it with the rendered expected depth; the original scene's error is the floor).
Saves a full-resolution crop of view 0 (colours only | detail) as JPEG and summary.json in --out; prints a table.
Runs on CPU at a tiny size (--demo: the procedural scene and painting) and on CUDA, in one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from judge import Judge  # noqa: E402  (after the path fix above)
from core.cameras import Camera, load_cameras, orbit_cameras  # noqa: E402
from core.demo import demo_scene, demo_style  # noqa: E402
from core.gaussians import Gaussians  # noqa: E402
from core.images import load_image, side_by_side, to_uint8  # noqa: E402
from interchange.ply import SplatData, read_ply  # noqa: E402
from core.device import resolve_device  # noqa: E402
from core.stylization import StylizeSettings, stylize  # noqa: E402
from core.trained_scene import DENSIFY_SETTINGS  # noqa: E402

MEASURES = {"style_finest": "style_frame_finest", "style_sos": "style_frame", "style_finest_object":
            "style_object_finest", "style_sos_object": "style_object", "content": "content_object",
            "sw_object": "sw_object", "spill": "spill", "lost": "lost", "consistency_l1": "consistency"}
"""The summary's names for the judge's means (bench/judge.py)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", type=Path, help="folder with point_cloud.ply (+ orbit_cameras.json)")
    p.add_argument("--style", type=Path, help="the painting")
    p.add_argument("--demo", action="store_true", help="procedural scene and painting (smoke test)")
    p.add_argument("--resolution", type=int, default=3840, help="render long side (3840: 4K, 7680: 8K)")
    p.add_argument("--aspect", type=float, default=16 / 9, help="render width / height (cameras are widened)")
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--lr", type=float, default=StylizeSettings.learning_rate)
    p.add_argument("--detail", type=float, default=3.0, help="the detail run's --detail (colours only: 0)")
    p.add_argument("--densify-every", type=int, default=StylizeSettings.densify_every)
    p.add_argument("--densify-threshold", type=float)
    p.add_argument("--densify-dropout", type=float)
    p.add_argument("--geometry-lr", type=float)
    p.add_argument("--variants", help="several detail runs against the same colours-only run: ';'-separated lists "
                   "of StylizeSettings overrides, e.g. 'densify_threshold=0.5,densify_dropout=0.2;geometry_lr=1e-4' "
                   "(each on top of the flags above)")
    p.add_argument("--max-gpu-mem", type=float)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-views", type=int, default=4, help="views judged (spread over the orbit)")
    p.add_argument("--crop", type=int, default=1024, help="side of the full-resolution crop of view 0")
    p.add_argument("--colours-only-from", type=Path, help="take the colours-only run from an earlier summary.json "
                   "of the same scene, painting, resolution and iterations instead of running it again")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if not args.demo and (args.scene is None or args.style is None):
        p.error("--scene and --style are needed (or --demo)")
    return args


def widen(camera: Camera, aspect: float) -> Camera:
    """A square orbit camera made width/height = aspect, same vertical field of view."""
    if aspect == 1:
        return camera
    width = int(round(camera.height * aspect))
    return replace(camera, width=width, cx=width / 2)


def load_inputs(args: argparse.Namespace) -> tuple[SplatData, torch.Tensor, list[Camera]]:
    if args.demo:
        scene = demo_scene(count=1500, seed=1)
        return scene, demo_style(128), orbit_cameras(scene.means(), scene.opacity(), count=8)
    scene = read_ply(args.scene / "point_cloud.ply")
    cams_file = args.scene / "orbit_cameras.json"
    cameras = load_cameras(cams_file) if cams_file.is_file() else orbit_cameras(scene.means(), scene.opacity())
    return scene, load_image(args.style), cameras


def run_settings(args: argparse.Namespace, detail: float, overrides: dict | None = None) -> StylizeSettings:
    extra = {name: getattr(args, name) for name in ("densify_threshold", "densify_dropout", "geometry_lr")
             if getattr(args, name) is not None}
    settings = StylizeSettings(iterations=args.iterations, learning_rate=args.lr, resolution=args.resolution,
                               max_gpu_mem_gib=args.max_gpu_mem, seed=args.seed, device=args.device, detail=detail,
                               densify_every=args.densify_every, **extra)
    return replace(settings, **(overrides or {}))


def parse_variants(text: str | None) -> list[dict]:
    """'a=1,b=2;c=3' → [{'a': 1.0, 'b': 2.0}, {'c': 3.0}] (ints stay ints); None or '' → [{}] (the flags alone)."""
    if not text:
        return [{}]
    variants = []
    for part in text.split(";"):
        overrides = {}
        for item in filter(None, part.split(",")):
            key, _, value = item.partition("=")
            kind = type(getattr(StylizeSettings, key.strip()))
            overrides[key.strip()] = kind(float(value)) if kind in (int, float) else value
        variants.append(overrides)
    return variants


def timed_run(scene, style, cameras, settings: StylizeSettings, device: torch.device) -> tuple[object, dict]:
    """One stylization; its peak GPU memory counts what was already allocated (the judge's VGG and targets)."""
    before = None
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**30
    start = time.perf_counter()
    result = stylize(scene, style, cameras, settings)
    wall = time.perf_counter() - start
    info = {"detail": settings.detail, "wall_s": wall, "it_per_s": result.timings["it_per_s"],
            "peak_gpu_mem_gib": result.timings.get("peak_gpu_mem_gib"), "allocated_before_gib": before,
            "gaussians": result.splat.count,
            "densify": result.densify, "final_style_loss": result.history[-1]["style"], "statistics": result.statistics}
    return result, info


def judged(judge: Judge, scene: SplatData) -> dict[str, float]:
    """The judge's numbers for a scene under the summary's names."""
    numbers = judge.measure(scene)["mean"]
    return {name: numbers[key] for name, key in MEASURES.items()}


def save_crop(path: Path, images: list[torch.Tensor], side: int) -> None:
    """Centre crops of the same size from each image, side by side, as JPEG."""
    h, w = images[0].shape[:2]
    side = min(side, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    joined = side_by_side([im[top:top + side, left:left + side].cpu() for im in images])
    Image.fromarray(to_uint8(joined)).save(path, format="JPEG", quality=92)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    scene, style, orbit = load_inputs(args)
    wide = [widen(c, args.aspect) for c in orbit]
    cameras = [c.with_long_side(args.resolution) for c in wide]
    views = sorted({round(k * len(cameras) / args.eval_views) % len(cameras) for k in range(args.eval_views)})
    summary = {"scene": "demo" if args.demo else str(args.scene), "style": "demo" if args.demo else str(args.style),
               "resolution": [cameras[0].width, cameras[0].height], "iterations": args.iterations,
               "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "eval_views": views}
    judge = Judge(scene, style, cameras, device, views=views, strict=False)
    summary["original"] = judged(judge, scene)
    crops, runs = [], []
    plans = [run_settings(args, 0.0)] + [run_settings(args, args.detail, v) for v in parse_variants(args.variants)]
    if args.colours_only_from is not None:
        earlier = json.loads(args.colours_only_from.read_text())
        runs.append(earlier["runs"][0])
        crops.append(None)
        plans = plans[1:]
    for settings in plans:
        result, info = timed_run(scene, style, wide, settings, device)
        info["overrides"] = {k: getattr(settings, k) for k in DENSIFY_SETTINGS}
        info.update(judged(judge, result.splat))
        runs.append(info)
        image = judge.render(Gaussians.from_splat_data(result.splat, device), views[0])[0]
        crops.append(image[0].permute(1, 2, 0).cpu())
        del result
        print_run(info, flush=True)
        summary["runs"] = runs
        summary["ratios"] = [ratios(run, runs[0]) for run in runs[1:]]
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    save_crop(args.out / f"crop_{cameras[0].width}x{cameras[0].height}.jpg", [c for c in crops if c is not None],
              args.crop)
    for run, ratio in zip(runs[1:], summary["ratios"]):
        print(f"{run['overrides']} / colours only: " + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()))
    return 0


def ratios(run: dict, colour: dict) -> dict[str, float]:
    """A detail run's figures over the colours-only run's."""
    keys = ("style_finest", "style_sos", "style_finest_object", "style_sos_object", "content", "sw_object",
            "consistency_l1", "gaussians", "wall_s")
    return {key: run[key] / colour[key] for key in keys if colour[key]}


def print_run(info: dict, flush: bool = False) -> None:
    densify = info["densify"] or {}
    peak = info["peak_gpu_mem_gib"]
    print(f"detail {info['detail']:g}: {info['gaussians']} Gaussians (from {densify.get('gaussians_before')}), "
          f"{info['wall_s']:.1f} s ({densify.get('seconds', 0.0):.2f} s densifying), peak "
          f"{'-' if peak is None else f'{peak:.2f}'} GiB; "
          f"style finest {info['style_finest']:.4g} (object {info['style_finest_object']:.4g}), "
          f"SOS {info['style_sos']:.4g} (object {info['style_sos_object']:.4g}), content {info['content']:.4g}, "
          f"SW {info['sw_object']:.4g}, spill {info['spill']:.4f}, lost {info['lost']:.4f}, "
          f"consistency L1 {info['consistency_l1']:.4f}", flush=flush)


if __name__ == "__main__":
    sys.exit(main())
