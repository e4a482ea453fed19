"""Quality benchmark: stylize a scene with several settings and judge every result with SGSST's own loss.

    python bench/quality.py --scene ../shared/data/scenes/guitar \
        --style ../shared/data/styles/vangogh_the_starry_night.jpg --resolution 1920 --iterations 600 \
        --strengths 0.3,1,3,10 --statistics object,frame --baseline --out OUT/guitar

Each configuration (the product of --strengths, --statistics, --balance, --preserve-colors, --stroke-scales, plus
today's default with --baseline) runs through core.stylize.stylize as the CLI does. The judge is the same for
all, and is computed once for the capture: SGSST's unnormalised style distance (released weights, the painting's
frame statistics at stroke scale 1) per pyramid scale, over the whole frame and over the object (statistics
weighted by the render's alpha, docs/sos_loss.md), and the relu4_2 content distance to the capture (mean squared
error, over the frame and alpha-weighted), all in float32 without TF32, averaged over the views. The judge's
VGG, the painting's statistics and the capture's features are computed once and reused by every run.

Writes OUT/quality.json (numbers, ratios to the capture, timings, settings) and OUT/contact_sheet.jpg (rows:
views; columns: the capture, then each run). Runs on CUDA or, at tiny sizes, on CPU (the test does).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import sos  # noqa: E402
from interchange.atomic import atomic_write  # noqa: E402
from core.cameras import Camera, load_cameras  # noqa: E402
from core.gaussians import Gaussians  # noqa: E402
from core.images import load_image, to_uint8  # noqa: E402
from core.loss_terms import LossWeights, style_distance  # noqa: E402
from core.planner import ScalePlan  # noqa: E402
from interchange.ply import SplatData, read_ply  # noqa: E402
from core.renderer import pick_backend, render  # noqa: E402
from core.statistics import content_count, layer_stats, pool_to_layers, squared_error_sum  # noqa: E402
from core.device import resolve_device  # noqa: E402
from core.stylization import StylizeSettings, stylize  # noqa: E402
from core.vgg import ALL_LAYERS, CONTENT_LAYER, STYLE_LAYERS, load_vgg19  # noqa: E402

CAMERA_NAMES = ("cameras.json", "orbit_cameras.json")
MEASURES = ("style_frame", "style_object", "content_frame", "content_object")
BASELINE = {"statistics": "frame", "balance": "sgsst", "style_strength": 1.0, "preserve_colors": False,
            "stroke_scale": 1.0, "learning_rate": 0.05}
"""The default before object statistics and the relative balance: SGSST's released weights, lr 0.05."""


@contextmanager
def strict_float32():
    """TF32 off for float32 matmuls and convolutions while judging; the previous state restored after."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv"):  # the newer API, where torch has it
        saved = (matmul.fp32_precision, cudnn.conv.fp32_precision)
        matmul.fp32_precision = cudnn.conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision, cudnn.conv.fp32_precision = saved
        return
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


class Judge:
    """SGSST's unnormalised loss as a fixed yardstick: the painting's targets and the capture's renders, once."""

    def __init__(self, scene: SplatData, painting: torch.Tensor, cameras: list[Camera], device: torch.device,
                 min_short_side: int, tile: int | None):
        self.device, self.tile, self.cameras = device, tile, cameras
        self.backend = pick_backend(device)
        self.vgg = load_vgg19(device=device)
        self.weights = LossWeights()
        height, width = cameras[0].height, cameras[0].width
        self.sizes = sos.pyramid_sizes(height, width, min_short_side)
        with strict_float32(), torch.no_grad():
            style_img = painting.permute(2, 0, 1).unsqueeze(0).to(device)
            self.style = sos.build_style_targets(self.vgg, style_img, self.sizes, plan=self._plan())
            self.capture_images, self.capture_features, reference = [], [], []
            for i in range(len(cameras)):
                image, alpha = self.render(scene, i)
                self.capture_images.append(image.cpu())
                self.capture_features.append([self._content(image, size) for size in self.sizes])
                reference.append(self._reference(image, alpha, self.capture_features[-1]))
        self.capture = self.measure(scene)
        self.sgsst_strength = {mode: float(np.mean([r[mode] for r in reference])) for mode in ("frame", "object")}

    def render(self, scene: SplatData, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """View i of `scene` as [1, 3, H, W] and its alpha [1, 1, H, W] (black background, as stylization)."""
        g = Gaussians.from_splat_data(scene, self.device)
        cam = self.cameras[i]
        viewmat = torch.as_tensor(cam.viewmat, dtype=torch.float32, device=self.device)
        K = torch.as_tensor(cam.K(), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            out = render(g, viewmat, K, cam.width, cam.height, backend=self.backend)
        return out.image.permute(2, 0, 1).unsqueeze(0), out.alpha.permute(2, 0, 1).unsqueeze(0)

    def measure(self, scene: SplatData) -> dict:
        """The judge's numbers for a (stylized) scene: per scale, averaged over the views."""
        per_view = []
        with strict_float32(), torch.no_grad():
            for i in range(len(self.cameras)):
                image, alpha = self.render(scene, i)
                per_view.append([self._scale_numbers(image, alpha, i, s) for s in range(len(self.sizes))])
        per_scale = [{key: float(np.mean([view[s][key] for view in per_view])) for key in MEASURES}
                     for s in range(len(self.sizes))]
        return {"per_scale": [{"size": list(size), **numbers} for size, numbers in zip(self.sizes, per_scale)],
                "mean": {key: float(np.mean([p[key] for p in per_scale])) for key in MEASURES}}

    def _scale_numbers(self, image: torch.Tensor, alpha: torch.Tensor, view: int, scale: int) -> dict:
        size = self.sizes[scale]
        image_s, alpha_s = sos.downsample(image, size), sos.downsample(alpha, size)
        tile = self._plan_tile(scale)
        weights = pool_to_layers(alpha_s, ALL_LAYERS)
        if tile is None:  # one forward for everything
            feats = self.vgg(image_s, ALL_LAYERS)
            frame = {layer: layer_stats(feats[layer]) for layer in STYLE_LAYERS}
            covered = {layer: layer_stats(feats[layer], weights[layer]) for layer in STYLE_LAYERS}
            feat = feats[CONTENT_LAYER]
        else:
            frame = sos.image_stats(self.vgg, image_s, tile=tile)
            covered = sos.image_stats(self.vgg, image_s, coverage=alpha_s, tile=tile)
            feat = self._content(image, size)
        target = self.capture_features[view][scale]
        weights = weights[CONTENT_LAYER]
        return {"style_frame": float(style_distance(frame, self.style.stats[scale], self.weights)),
                "style_object": float(style_distance(covered, self.style.stats[scale], self.weights)),
                "content_frame": float(squared_error_sum(feat, target) / target.numel()),
                "content_object": float(squared_error_sum(feat, target, weights) / content_count(target, weights))}

    def _reference(self, image: torch.Tensor, alpha: torch.Tensor, features: list[torch.Tensor]) -> dict:
        """Where SGSST's balance sits in the relative balance's units, K·S_ref/E averaged over scales (docs)."""
        out = {}
        for mode in ("frame", "object"):
            coverage = None if mode == "frame" else sos.Coverage.of_alpha(alpha)
            values = []
            for s, size in enumerate(self.sizes):
                image_s = sos.downsample(image, size)
                cov = None if coverage is None else coverage.at(size)
                stats = sos.image_stats(self.vgg, image_s, coverage=None if cov is None else cov.style,
                                        tile=self._plan_tile(s))
                weights = None if cov is None else pool_to_layers(cov.content, (CONTENT_LAYER,))[CONTENT_LAYER]
                feat = features[s]
                energy = squared_error_sum(feat, torch.zeros_like(feat), weights) / content_count(feat, weights)
                distance = style_distance(stats, self.style.stats[s], self.weights)
                values.append(float(sos.CONTENT_UNIT * distance / energy))
            out[mode] = float(np.mean(values))
        return out

    def _content(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        scale = self.sizes.index(tuple(size))
        return sos.image_content_features(self.vgg, sos.downsample(image, size), tile=self._plan_tile(scale))

    def _plan(self) -> list[ScalePlan] | None:
        if self.tile is None:
            return None
        return [ScalePlan(tuple(s), "tiled", self.tile) if max(s) > self.tile else ScalePlan(tuple(s), "autograd")
                for s in self.sizes]

    def _plan_tile(self, scale: int) -> int | None:
        return None if self.tile is None or max(self.sizes[scale]) <= self.tile else self.tile


def configurations(args: argparse.Namespace) -> list[dict]:
    """Every combination of the swept settings (as StylizeSettings fields), plus the baseline if asked."""
    axes = {"style_strength": floats(args.strengths), "statistics": names(args.statistics),
            "balance": names(args.balance), "preserve_colors": [v == "on" for v in names(args.preserve_colors)],
            "stroke_scale": floats(args.stroke_scales)}
    configs = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    if args.baseline and BASELINE not in configs:
        configs.insert(0, dict(BASELINE))
    return [{**config, "seed": seed} for seed in ints(args.seeds) for config in configs]


def label(config: dict) -> str:
    parts = [f"{config['statistics']} {config['balance']} s={config['style_strength']:g}"]
    if config["preserve_colors"]:
        parts.append("colours kept")
    if config["stroke_scale"] != 1:
        parts.append(f"strokes x{config['stroke_scale']:g}")
    if config.get("seed", 0):
        parts.append(f"seed {config['seed']}")
    return ", ".join(parts)


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def ratios(result: dict, capture: dict) -> dict:
    """Style distances over the capture's, per scale and for the mean (content: the capture's is 0, no ratio)."""
    out = {"per_scale": [], "mean": {}}
    for mine, base in zip(result["per_scale"], capture["per_scale"]):
        out["per_scale"].append({key: mine[key] / base[key] for key in ("style_frame", "style_object")})
    out["mean"] = {key: result["mean"][key] / capture["mean"][key] for key in ("style_frame", "style_object")}
    return out


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
    p.add_argument("--lr", type=float, default=StylizeSettings.learning_rate)
    p.add_argument("--strengths", default="1", help="comma-separated style strengths")
    p.add_argument("--statistics", default="object", help="comma-separated: object, frame")
    p.add_argument("--balance", default="relative", help="comma-separated: relative, sgsst")
    p.add_argument("--preserve-colors", default="off", help="comma-separated: off, on")
    p.add_argument("--stroke-scales", default="1", help="comma-separated stroke scales")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (run-to-run spread)")
    p.add_argument("--baseline", action="store_true", help="also run the old default (frame statistics, SGSST "
                   "weights, strength 1, lr 0.05)")
    p.add_argument("--min-short-side", type=int, default=StylizeSettings.min_short_side)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--judge-tile", type=int, help="judge scales larger than this by tiles (UHR)")
    p.add_argument("--sheet-views", type=int, default=3, help="views shown in the contact sheet")
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
    judge = Judge(scene, painting, cameras, device, args.min_short_side, args.judge_tile)
    report = {"scene": str(args.scene), "style": str(args.style), "cameras": str(camera_path), "views": len(cameras),
              "resolution": [cameras[0].width, cameras[0].height], "iterations": args.iterations,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "judge": "SGSST unnormalised loss (released weights), float32 without TF32; "
              "painting: frame statistics at stroke scale 1; object: statistics weighted by the render's alpha",
              "judge_setup_s": time.perf_counter() - t0, "capture": judge.capture,
              "sgsst_equivalent_strength": judge.sgsst_strength, "runs": []}
    shown = range(min(args.sheet_views, len(cameras)))
    columns = [("capture", [judge.capture_images[i] for i in shown])]
    base = StylizeSettings(iterations=args.iterations, learning_rate=args.lr, resolution=args.resolution,
                           min_short_side=args.min_short_side, bf16=not args.no_bf16, device=args.device)
    for config in configurations(args):
        settings = replace(base, **config)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = stylize(scene, painting, cameras, settings)
        numbers = judge.measure(result.splat)
        run = {"label": label(config), "settings": asdict(settings), "statistics": result.statistics,
               "timings": result.timings,
               **numbers, "ratios": ratios(numbers, judge.capture),
               "final_terms": result.history[-1] if result.history else {}}
        report["runs"].append(run)
        columns.append((run["label"], [judge.render(result.splat, i)[0].cpu() for i in shown]))
        print(f"{run['label']}: style/capture frame {run['ratios']['mean']['style_frame']:.3f}, object "
              f"{run['ratios']['mean']['style_object']:.3f}; content frame {numbers['mean']['content_frame']:.4g}, "
              f"object {numbers['mean']['content_object']:.4g}; {result.timings['it_per_s']:.2f} it/s", flush=True)
        write_json(args.out / "quality.json", report)
    with atomic_write(args.out / "contact_sheet.jpg") as stream:
        contact_sheet(columns, args.sheet_cell).save(stream, format="JPEG", quality=90)
    write_json(args.out / "quality.json", report)
    return 0


def write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as stream:
        json.dump(data, stream, indent=1)


if __name__ == "__main__":
    sys.exit(main())
