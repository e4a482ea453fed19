"""Do gsplat and the PyTorch rasterizer give densification the same numbers? On a CUDA GPU, render one view with
both (``absgrad=True, depth=True``), back-propagate the same upstream gradient and compare the drawn Gaussians,
their footprint radii, Σ over pixels |dL/dmeans2d| and the expected depth.

    python bench/absgrad_agreement.py [--scene ../shared/data/scenes/flowers] [--sizes 256,1024]

Without --scene: the procedural demo scene (20,000 Gaussians). Prints one line per size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cameras import load_cameras, orbit_cameras  # noqa: E402  (after the path fix above)
from core.demo import demo_scene  # noqa: E402
from core.gaussians import Gaussians  # noqa: E402
from interchange.ply import read_ply  # noqa: E402
from core.renderer import render  # noqa: E402


def per_gaussian(count: int, out, values: torch.Tensor) -> torch.Tensor:
    full = torch.zeros(count, values.shape[-1], device=values.device)
    full[out.visible] = values.float()
    return full


def compare(g: Gaussians, camera, seed: int = 0) -> str:
    viewmat = torch.tensor(camera.viewmat, dtype=torch.float32)
    K = torch.tensor(camera.K(), dtype=torch.float32)
    upstream = torch.rand(camera.height, camera.width, 3, device="cuda",
                          generator=torch.Generator("cuda").manual_seed(seed))
    results = {}
    for backend in ("gsplat", "torch"):
        sh = g.sh.clone().requires_grad_(True)
        out = render(g.with_sh(sh), viewmat, K, camera.width, camera.height, backend=backend, absgrad=True,
                     depth=True)
        (out.image * upstream).sum().backward()
        results[backend] = (out, per_gaussian(g.count, out, out.means2d_absgrad()),
                            per_gaussian(g.count, out, out.radii))
    (a, grad_a, radii_a), (b, grad_b, radii_b) = results["gsplat"], results["torch"]
    covered = (a.alpha[..., 0] > 0.5) & (b.alpha[..., 0] > 0.5)
    depth = ((a.depth - b.depth).abs()[covered] / b.depth[covered]).mean()
    return (f"{camera.width}x{camera.height}: drawn {len(a.visible)} (gsplat) / {len(b.visible)} (torch), radii equal "
            f"for {float((radii_a == radii_b).all(-1).float().mean()):.4f}; absgrad relative L1 "
            f"{float((grad_a - grad_b).abs().sum() / grad_b.abs().sum()):.2e} (totals {float(grad_a.sum()):.5g} / "
            f"{float(grad_b.sum()):.5g}); image max |diff| {float((a.image - b.image).abs().max()):.2e}; "
            f"expected depth mean relative diff {float(depth):.2e}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", type=Path, help="folder with point_cloud.ply and orbit_cameras.json")
    p.add_argument("--sizes", default="256,1024")
    args = p.parse_args()
    if args.scene is None:
        scene = demo_scene(count=20000, seed=3)
        cameras = orbit_cameras(scene.means(), scene.opacity(), count=1)
    else:
        scene, cameras = read_ply(args.scene / "point_cloud.ply"), load_cameras(args.scene / "orbit_cameras.json")
    g = Gaussians.from_splat_data(scene, "cuda")
    for size in (int(s) for s in args.sizes.split(",")):
        print(compare(g, cameras[0].with_long_side(size)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
