"""Does the pure-PyTorch rasterizer agree with gsplat? Render every orbit view of a real scene with both
backends on a CUDA GPU, compare images (and gradients), time both, save a side-by-side picture.

    python bench/raster_agreement.py --scene guitar --out OUT [--data ../shared/data] [--size 256]

Needs a CUDA GPU and gsplat. Exits 1 when the mean |difference| over all views reaches --tolerance
(default 1e-3), 2 when it cannot run. Writes agreement_<scene>.png and agreement_<scene>.json into --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cameras import Camera, load_cameras  # noqa: E402  (after the path fix above)
from core.errors import InputError  # noqa: E402
from core.gaussians import Gaussians  # noqa: E402
from interchange.ply import read_ply  # noqa: E402
from core.renderer import BACKENDS, render  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PICTURE_VIEWS = 4  # rows in the side-by-side picture
DIFF_GAIN = 10.0  # the difference column is |gsplat - torch| times this


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default="guitar", help="scene folder under DATA/scenes (guitar, flowers)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--out", type=Path, required=True, help="folder for the picture and the JSON summary")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest acceptable mean |difference|")
    parser.add_argument("--repeats", type=int, default=3, help="timed renders per view and backend")
    return parser.parse_args()


def camera_tensors(camera: Camera, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    viewmat = torch.tensor(camera.viewmat, dtype=torch.float32, device=device)
    return viewmat, torch.tensor(camera.K(), dtype=torch.float32, device=device)


def timed(fn, repeats: int) -> tuple[object, float]:
    """Result of ``fn()`` and its median wall time in ms (GPU work included)."""
    times, result = [], None
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return result, statistics.median(times)


def gradients(g: Gaussians, viewmat, K, size: int, backend: str, weights: torch.Tensor) -> torch.Tensor:
    """Gradient of sum(weights * image) w.r.t. SH and opacity logits, flattened (backward included)."""
    sh = g.sh.detach().clone().requires_grad_(True)
    logits = g.opacity.detach().clone().requires_grad_(True)
    scene = Gaussians.from_sh(g.means, g.quats, g.log_scales, logits, sh)
    out = render(scene, viewmat, K, size, size, background=torch.ones(3, device=g.device), backend=backend)
    (out.image * weights).sum().backward()
    return torch.cat([sh.grad.flatten(), logits.grad.flatten()])


def compare_view(g: Gaussians, camera: Camera, size: int, repeats: int, weights: torch.Tensor) -> dict:
    """Images, differences, timings and gradient agreement of one view."""
    viewmat, K = camera_tensors(camera, g.device)
    background = torch.ones(3, device=g.device)
    row: dict = {"view": camera.name}
    images = {}
    with torch.no_grad():
        for backend in BACKENDS:
            out, row[f"{backend}_ms"] = timed(
                lambda b=backend: render(g, viewmat, K, size, size, background=background, backend=b), repeats)
            images[backend] = out
    diff = (images["gsplat"].image - images["torch"].image).abs()
    row["mean_abs_diff"] = diff.mean().item()
    row["max_abs_diff"] = diff.max().item()
    row["alpha_mean_abs_diff"] = (images["gsplat"].alpha - images["torch"].alpha).abs().mean().item()
    grads = {}
    for backend in BACKENDS:
        grads[backend], row[f"{backend}_fwd_bwd_ms"] = timed(
            lambda b=backend: gradients(g, viewmat, K, size, b, weights), 1)
    row["grad_cosine"] = torch.nn.functional.cosine_similarity(grads["gsplat"], grads["torch"], dim=0).item()
    row["grad_rel_error"] = ((grads["gsplat"] - grads["torch"]).norm() / grads["gsplat"].norm()).item()
    row["images"] = (images["gsplat"].image, images["torch"].image, diff)
    return row


def save_picture(rows: list[dict], path: Path) -> None:
    """Rows of views; columns gsplat | torch | |difference| x DIFF_GAIN."""
    lines = []
    for row in rows[:PICTURE_VIEWS]:
        reference, ours, diff = row["images"]
        lines.append(torch.cat([reference, ours, (diff * DIFF_GAIN)], dim=1))
    picture = torch.cat(lines, dim=0).clamp(0, 1).mul(255).round().byte().cpu().numpy()
    Image.fromarray(np.ascontiguousarray(picture)).save(path)


def print_table(rows: list[dict]) -> None:
    print(f"{'view':<12}{'mean|d|':>10}{'max|d|':>10}{'alpha|d|':>10}{'gsplat ms':>11}{'torch ms':>10}"
          f"{'gs f+b ms':>11}{'to f+b ms':>11}{'grad cos':>10}{'grad rel':>10}")
    for r in rows:
        print(f"{r['view']:<12}{r['mean_abs_diff']:>10.2e}{r['max_abs_diff']:>10.2e}{r['alpha_mean_abs_diff']:>10.2e}"
              f"{r['gsplat_ms']:>11.2f}{r['torch_ms']:>10.2f}{r['gsplat_fwd_bwd_ms']:>11.2f}"
              f"{r['torch_fwd_bwd_ms']:>11.2f}{r['grad_cosine']:>10.5f}{r['grad_rel_error']:>10.2e}")


def load_scene(folder: Path, size: int, device: torch.device) -> tuple[Gaussians, list[Camera]]:
    g = Gaussians.from_splat_data(read_ply(folder / "point_cloud.ply"), device)
    cameras = [camera.resized(size, size * camera.height // camera.width)
               for camera in load_cameras(folder / "orbit_cameras.json")]
    return g, cameras


def main() -> int:
    args = parse_args()
    if not torch.cuda.is_available():
        print("error: this benchmark compares against gsplat and needs a CUDA GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    try:
        g, cameras = load_scene(args.data / "scenes" / args.scene, args.size, device)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.scene}: {g.count} Gaussians, SH degree {g.sh_degree}, {len(cameras)} views at "
          f"{cameras[0].width}x{cameras[0].height}, {torch.cuda.get_device_name()}", flush=True)
    warm_start = time.perf_counter()
    with torch.no_grad():
        for backend in BACKENDS:  # the first gsplat call compiles its CUDA extension
            render(g, *camera_tensors(cameras[0], device), cameras[0].width, cameras[0].height, backend=backend)
    torch.cuda.synchronize()
    print(f"warm-up (gsplat build included): {time.perf_counter() - warm_start:.1f} s", flush=True)
    weights = torch.rand(cameras[0].height, cameras[0].width, 3, device=device,
                         generator=torch.Generator(device).manual_seed(0))
    rows = [compare_view(g, camera, camera.width, args.repeats, weights) for camera in cameras]
    print_table(rows)
    mean_diff = statistics.mean(r["mean_abs_diff"] for r in rows)
    summary = {
        "scene": args.scene, "gaussians": g.count, "sh_degree": g.sh_degree, "size": args.size,
        "device": torch.cuda.get_device_name(), "mean_abs_diff": mean_diff,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows), "tolerance": args.tolerance,
        "views": [{k: v for k, v in r.items() if k != "images"} for r in rows],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_picture(rows, args.out / f"agreement_{args.scene}.png")
    (args.out / f"agreement_{args.scene}.json").write_text(json.dumps(summary, indent=1))
    verdict = "PASS" if mean_diff < args.tolerance else "FAIL"
    print(f"{verdict}: mean |diff| over {len(rows)} views = {mean_diff:.3e} (tolerance {args.tolerance:.0e}), "
          f"max {summary['max_abs_diff']:.3e}; median ms gsplat {statistics.median(r['gsplat_ms'] for r in rows):.2f}"
          f", torch {statistics.median(r['torch_ms'] for r in rows):.2f}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
