"""Quality benchmark: stylize a scene with several settings and judge every result with one fixed judge.

    python bench/quality.py --scene ../shared/data/scenes/portrait \
        --style ../shared/data/styles/kandinsky_composition_vii.jpg --resolution 1920 --iterations 600 \
        --baseline --variants 'default:;structure:content_colours=painting,content_weight=4' \
        --sheet-views 0,5,6 --out OUT/portrait

Each configuration runs through core.stylization.stylize as the CLI does: today's defaults with each variant's
settings on top (``--variants``: ';'-separated ``label:name=value,...``, values parsed by the settings schema; an
empty list is today's default), plus SGSST's released weights with ``--baseline``, each with every ``--seeds``.
The judge (bench/judge.py) is computed once for the capture and the painting: style distance per scale over the
frame and over the object weighted by the capture's coverage, content distance, a sliced Wasserstein distance the
loss does not optimise, grain, spill and lost coverage, and multi-view consistency.

Writes OUT/quality.json (numbers, ratios to the capture, timings, settings) and OUT/contact_sheet.jpg (rows: the
--sheet-views; columns: the capture, then each run). Runs on CUDA or, at tiny sizes, on CPU (the test does).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from judge import Judge, ratios  # noqa: E402
from core.cameras import Camera, load_cameras  # noqa: E402
from core.device import resolve_device  # noqa: E402
from core.gaussians import Gaussians  # noqa: E402
from core.images import load_image, to_uint8  # noqa: E402
from core.stylization import StylizeSettings, stylize  # noqa: E402
from interchange.atomic import atomic_write  # noqa: E402
from interchange.ply import SplatData, read_ply  # noqa: E402
from interchange.settings import BY_NAME  # noqa: E402

CAMERA_NAMES = ("cameras.json", "orbit_cameras.json")
BASELINE = {"statistics": "frame", "balance": "sgsst", "style_strength": 1.0, "content_weight": 1.0,
            "content_colours": "capture", "init": "capture", "learning_rate": 0.05}
"""SGSST's released weights: the default before object statistics, the relative balance, structure against the
recoloured capture and the preview start (lr 0.05)."""


def parse_variants(text: str | None) -> list[tuple[str, dict]]:
    """'a:style_strength=10,smoothness=1;b:' → [('a', {...}), ('b', {})]; values typed by the settings schema.
    None or '' → [('default', {})]."""
    if not text:
        return [("default", {})]
    variants = []
    for index, part in enumerate(text.split(";")):
        label, _, items = part.rpartition(":") if ":" in part else ("", "", part)
        overrides = {}
        for item in filter(None, (i.strip() for i in items.split(","))):
            name, _, value = item.partition("=")
            overrides[name.strip()] = BY_NAME[name.strip()].parse(value.strip())
        variants.append((label.strip() or f"variant {index}", overrides))
    return variants


def configurations(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(label, settings overrides) of every run: the baseline if asked, then the variants, for every seed."""
    configs = ([("SGSST weights", dict(BASELINE))] if args.baseline else []) + parse_variants(args.variants)
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    return [(label if seed == seeds[0] else f"{label}, seed {seed}", {**overrides, "seed": seed})
            for seed in seeds for label, overrides in configs]


def contact_sheet(columns: list[tuple[str, list[torch.Tensor]]], cell: int) -> Image.Image:
    """Rows: views; columns: labelled images ([1, 3, H, W] each), every image scaled to `cell` px long side."""
    first = columns[0][1][0]
    height, width = first.shape[-2:]
    scale = cell / max(height, width)
    w, h, header = max(1, round(width * scale)), max(1, round(height * scale)), 16
    rows = len(columns[0][1])
    sheet = Image.new("RGB", (len(columns) * (w + 4), header + rows * (h + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, images) in enumerate(columns):
        draw.text((c * (w + 4) + 2, 2), title[: max(8, w // 6)], fill="black")
        for r, image in enumerate(images):
            tile = Image.fromarray(to_uint8(image[0].permute(1, 2, 0))).resize((w, h), Image.Resampling.LANCZOS)
            sheet.paste(tile, (c * (w + 4), header + r * (h + 4)))
    return sheet


def load_scene_and_cameras(scene_arg: Path, cameras_arg: Path | None) -> tuple[SplatData, list[Camera], Path]:
    ply = scene_arg / "point_cloud.ply" if scene_arg.is_dir() else scene_arg
    folder = ply.parent
    cams = cameras_arg or next((folder / n for n in CAMERA_NAMES if (folder / n).is_file()), None)
    if cams is None:
        raise SystemExit(f"{folder}: no cameras.json or orbit_cameras.json; pass --cameras")
    return read_ply(ply), load_cameras(cams), cams


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, required=True, help="scene folder (point_cloud.ply + cameras) or a .ply")
    p.add_argument("--style", type=Path, required=True, help="the painting")
    p.add_argument("--cameras", type=Path, help="cameras.json (default: beside the scene)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resolution", type=int, default=1920, help="render long side in px")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--variants", help="';'-separated 'label:name=value,...' settings on top of today's defaults")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (run-to-run spread)")
    p.add_argument("--baseline", action="store_true", help="also run SGSST's released weights (frame statistics, "
                   "SGSST balance, strength 1, lr 0.05)")
    p.add_argument("--min-short-side", type=int, default=StylizeSettings.min_short_side)
    p.add_argument("--device", default="auto")
    p.add_argument("--judge-tile", type=int, help="judge scales larger than this by tiles (UHR)")
    p.add_argument("--sheet-views", default="0,1,2", help="comma-separated view indices shown in the contact sheet")
    p.add_argument("--sheet-cell", type=int, default=512, help="long side of each contact-sheet image, px")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    scene, cameras, camera_path = load_scene_and_cameras(args.scene, args.cameras)
    cameras = [c.with_long_side(args.resolution) for c in cameras]
    painting = load_image(args.style)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    judge = Judge(scene, painting, cameras, device, min_short_side=args.min_short_side, tile=args.judge_tile)
    report = {"scene": str(args.scene), "style": str(args.style), "cameras": str(camera_path), "views": len(cameras),
              "resolution": [cameras[0].width, cameras[0].height], "iterations": args.iterations,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "judge": "bench/judge.py (float32 without TF32; object statistics weighted "
              "by the capture's coverage)", "judge_setup_s": time.perf_counter() - t0, "capture": judge.capture,
              "runs": []}
    shown = [int(v) for v in args.sheet_views.split(",") if v.strip() and int(v) < len(cameras)]
    capture = Gaussians.from_splat_data(scene, device)
    columns = [("capture", [judge.render(capture, i)[0].cpu() for i in shown])]
    base = StylizeSettings(iterations=args.iterations, resolution=args.resolution,
                           min_short_side=args.min_short_side, device=args.device)
    for label, overrides in configurations(args):
        settings = replace(base, **overrides)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = stylize(scene, painting, cameras, settings)
        numbers = judge.measure(result.splat)
        run = {"label": label, "settings": asdict(settings), "statistics": result.statistics,
               "timings": result.timings, **numbers, "ratios": ratios(numbers, judge.capture),
               "final_terms": result.history[-1] if result.history else {}}
        report["runs"].append(run)
        g = Gaussians.from_splat_data(result.splat, device)
        columns.append((label, [judge.render(g, i)[0].cpu() for i in shown]))
        print_run(run, flush=True)
        write_json(args.out / "quality.json", report)
        # After every run, so that a run cut short by a time limit still leaves what it finished.
        with atomic_write(args.out / "contact_sheet.jpg") as stream:
            contact_sheet(columns, args.sheet_cell).save(stream, format="JPEG", quality=90)
    return 0


def print_run(run: dict, flush: bool = False) -> None:
    r, m = run["ratios"], run["mean"]
    print(f"{run['label']}: style/capture frame {r['style_frame']:.3f}, object {r['style_object']:.3f}; "
          f"SW object {r['sw_object']:.3f}; content frame {m['content_frame']:.4g}, object {m['content_object']:.4g};"
          f" grain {m['grain']:.4f} (painting {m['painting_grain']:.4f}); spill {m['spill']:.4f}, lost "
          f"{m['lost']:.4f}; consistency {m['consistency']:.4f}; {run['timings']['it_per_s']:.2f} it/s", flush=flush)


def write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as stream:
        json.dump(data, stream, indent=1)


if __name__ == "__main__":
    sys.exit(main())
