"""Profile stylization steps on a real scene: where an iteration's time goes (CUDA kernels and CPU).

    python bench/profile_step.py --scene ../shared/data/scenes/flowers --style PAINTING --resolution 3840
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch.profiler import ProfilerActivity, profile, schedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cameras import load_cameras  # noqa: E402
from core.images import load_image  # noqa: E402
from interchange.ply import read_ply  # noqa: E402
from core.stylization import StylizeSettings, stylize  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, required=True)
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--resolution", type=int, default=3840)
    p.add_argument("--max-gpu-mem", type=float, default=24.0)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()
    scene = read_ply(args.scene / "point_cloud.ply")
    cameras = load_cameras(args.scene / "orbit_cameras.json")[:1]
    settings = StylizeSettings(iterations=30, resolution=args.resolution, max_gpu_mem_gib=args.max_gpu_mem)
    style = load_image(args.style)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                 schedule=schedule(wait=15, warmup=5, active=10)) as prof:
        stylize(scene, style, cameras, settings, progress=lambda event: prof.step())
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
