"""How long the instant preview takes (issue 22: at most a second for 200k Gaussians on a GPU).

    python bench/preview_time.py --scene ../shared/data/scenes/flowers --style painting.jpg [--device cpu]

Times core.stylization.stylize with 0 iterations and init "preview" (the survey's renders at core.preview's
PREVIEW_SIDE and the closed-form map) after one warm-up call, median of --repeat calls; prints one line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cameras import load_cameras  # noqa: E402
from core.images import load_image  # noqa: E402
from core.stylization import StylizeSettings, stylize  # noqa: E402
from interchange.ply import read_ply  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, required=True, help="folder with point_cloud.ply and orbit_cameras.json")
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    scene = read_ply(args.scene / "point_cloud.ply")
    cameras = load_cameras(args.scene / "orbit_cameras.json")
    painting = load_image(args.style)
    settings = StylizeSettings(iterations=0, init="preview", device=args.device)
    times = []
    for _ in range(args.repeat + 1):
        start = time.perf_counter()
        result = stylize(scene, painting, cameras, settings)
        times.append(time.perf_counter() - start)
    print(f"preview of {args.scene.name} ({scene.count} Gaussians, {len(cameras)} views) on {result.device}: "
          f"median {statistics.median(times[1:]):.3f} s (first call {times[0]:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
