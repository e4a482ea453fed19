"""Engine-made test files, run in the worker's Python (torch, core) so the Blender tests' own Python needs neither
(bpy 5.3 runs on Python 3.13, for which no torch wheel exists here).

    python engine_tool.py scene FOLDER COUNT VIEWS WIDTH HEIGHT    # demo scene + orbit cameras.json
    python engine_tool.py style PATH SIZE                          # the procedural painting as a PNG
    python engine_tool.py render REQUEST.json                      # core.render of views of a PLY (CPU)

A render request is {"ply": path, "views": [{"viewmat", "K", "width", "height", "background", "out"}]}; each
view is written as float32 RGBA [H, W, 4] (.npy): the sRGB image, premultiplied as core.render returns it, and
alpha.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from core.cameras import orbit_cameras, save_cameras_json
from core.demo import demo_scene, demo_style
from core.gaussians import Gaussians
from core.images import save_png
from interchange.ply import read_ply, write_ply


def scene(folder: str, count: str, views: str, width: str, height: str) -> None:
    """A small sphere-on-a-disc scene (SH degree 1, y-down) with an orbit cameras.json beside it."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    splats = demo_scene(count=int(count))
    write_ply(path / "point_cloud.ply", splats)
    cameras = orbit_cameras(splats.means(), splats.opacity(), count=int(views), width=int(width),
                            height=int(height))
    save_cameras_json(path / "cameras.json", cameras)


def style(path: str, size: str) -> None:
    save_png(Path(path), demo_style(int(size)))


def render(request_path: str) -> None:
    from core.renderer import render as render_view
    request = json.loads(Path(request_path).read_text())
    gaussians = Gaussians.from_splat_data(read_ply(Path(request["ply"])), torch.device("cpu"))
    for view in request["views"]:
        background = view.get("background")
        with torch.no_grad():
            out = render_view(gaussians, torch.tensor(view["viewmat"], dtype=torch.float32),
                              torch.tensor(view["K"], dtype=torch.float32), view["width"], view["height"],
                              background=None if background is None else torch.tensor(background,
                                                                                      dtype=torch.float32))
        np.save(view["out"], np.concatenate([out.image.numpy(), out.alpha.numpy()], axis=-1).astype(np.float32))


if __name__ == "__main__":
    {"scene": scene, "style": style, "render": render}[sys.argv[1]](*sys.argv[2:])
