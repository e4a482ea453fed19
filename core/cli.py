"""sos-stylize: stylize a 3DGS scene with a painting from the command line (also ``python -m core``)."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core import __version__, distributed
from core.atomic import atomic_write
from core.cameras import Camera, load_cameras, orbit_cameras, save_cameras_json
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.images import load_image, save_png, side_by_side
from core.ply import SplatData, read_ply, write_ply
from core.render import gsplat_version
from core.stylize import OPTIMIZE_CHOICES, StylizeResult, StylizeSettings, render_views, resolve_device, stylize

PREVIEW_VIEWS = 3
CAMERA_FILE_NAMES = ("cameras.json",)


def build_parser() -> argparse.ArgumentParser:
    d = StylizeSettings()
    p = argparse.ArgumentParser(
        prog="sos-stylize", fromfile_prefix_chars="@",
        description="Stylize a 3D Gaussian Splatting scene with a painting (SGSST's multi-scale SOS loss). Writes "
        "OUTDIR/stylized.ply, previews and OUTDIR/report.json. Arguments can also come from a file, one per line: "
        "sos-stylize @args.txt (the Blender add-on's job folders hold one).")
    p.add_argument("scene", nargs="?", type=Path, help="3DGS scene (.ply)")
    p.add_argument("style", nargs="?", type=Path, help="style image (painting)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--demo", action="store_true", help="no input: a procedural scene and a procedural painting")
    p.add_argument("--cameras", type=Path, help="cameras.json (Inria) or COLMAP text model; default: cameras.json "
                   "beside the scene (3DGS output layout), else an orbit rig around the scene")
    p.add_argument("--views", type=int, default=24, help="number of orbit cameras when no cameras are given")
    p.add_argument("--resolution", type=int, help=f"render long side in px (default {d.resolution}; demo 128)")
    p.add_argument("--iterations", type=int, help=f"optimisation steps (default {d.iterations}; demo 120)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="Adam learning rate")
    p.add_argument("--style-strength", type=float, default=d.style_strength, help="weight of style vs content")
    p.add_argument("--content-weight", type=float, default=d.content_weight, help="weight of the content term")
    p.add_argument("--optimize", choices=OPTIMIZE_CHOICES, default=d.optimize,
                   help="color: SH DC colours; sh: all SH bands; sh+opacity: SH and opacity")
    p.add_argument("--background", default="0,0,0", help="background colour r,g,b in 0..1, or black/white")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("auto", "cuda", "cpu", "mps"), default="auto")
    p.add_argument("--gpus", metavar="N|all", help="one process per GPU, each taking its own view per step, "
                   "gradients averaged (torch.distributed; same as torchrun --nproc_per_node N -m core)")
    p.add_argument("--views-per-step", type=int, default=d.views_per_step,
                   help="views per step in each process, their gradients averaged")
    p.add_argument("--max-gpu-mem", type=float, metavar="GiB", help="cap on GPU memory for the loss (tiles above)")
    p.add_argument("--no-bf16", action="store_true", help="run VGG in float32/TF32 instead of bf16 autocast")
    p.add_argument("--vgg-weights", type=Path, help="other VGG-19 weights (torchvision-style state dict)")
    p.add_argument("--vgg-preprocess", choices=("caffe", "torch"), default="caffe",
                   help="input convention of --vgg-weights: caffe (BGR 0-255, mean-subtracted) or torch (ImageNet)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune convolutions (measured slower "
                   "for runs of a few hundred steps: docs/benchmarks.md)")
    p.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout (for programs)")
    p.add_argument("--preview-every", type=int, default=0, help="write OUTDIR/preview.png every N iterations")
    p.add_argument("--checkpoint-every", type=int, default=0, help="save OUTDIR/checkpoint.pt every N iterations "
                   "(a later run with the same settings resumes from it)")
    p.add_argument("--cancel-file", type=Path, help="stop cooperatively when this file appears")
    p.add_argument("--version", action="version", version=f"sos-stylize {__version__}")
    return p


def parse_background(text: str) -> tuple[float, float, float]:
    named = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0)}
    if text in named:
        return named[text]
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InputError(f"--background: expected r,g,b in 0..1 or black/white, got '{text}'")
    return values  # type: ignore[return-value]


def find_cameras_beside(scene: Path) -> Path | None:
    """cameras.json in the scene's folder or up to two levels up (3DGS: out/point_cloud/iteration_N/*.ply)."""
    for folder in [scene.parent, *list(scene.parent.parents)[:2]]:
        for name in CAMERA_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def choose_cameras(args: argparse.Namespace, scene: SplatData) -> tuple[list[Camera], str]:
    """The cameras to stylize from and where they came from."""
    path = args.cameras or (find_cameras_beside(args.scene) if args.scene else None)
    if path is not None:
        return load_cameras(path), str(path)
    if args.views < 1:
        raise InputError(f"--views: need at least one orbit camera (got {args.views})")
    cams = orbit_cameras(scene.means(), scene.opacity_logits(), count=args.views)
    return cams, f"orbit rig ({len(cams)} views)"


def settings_from_args(args: argparse.Namespace) -> StylizeSettings:
    default_iterations = 120 if args.demo else StylizeSettings.iterations
    return StylizeSettings(
        iterations=args.iterations if args.iterations is not None else default_iterations,
        learning_rate=args.lr, style_strength=args.style_strength, content_weight=args.content_weight,
        resolution=args.resolution or (128 if args.demo else 1024), optimize=args.optimize, seed=args.seed,
        background=parse_background(args.background), max_gpu_mem_gib=args.max_gpu_mem, bf16=not args.no_bf16,
        device=args.device, vgg_weights=str(args.vgg_weights) if args.vgg_weights else None,
        vgg_preprocess=args.vgg_preprocess, cudnn_benchmark=args.cudnn_benchmark,
        preview_every=max(args.preview_every, 0), checkpoint_every=max(args.checkpoint_every, 0),
        views_per_step=args.views_per_step)


def load_inputs(args: argparse.Namespace) -> tuple[SplatData, torch.Tensor]:
    if args.demo:
        return demo_scene(), demo_style()
    if args.scene is None or args.style is None:
        raise InputError("usage: sos-stylize SCENE.ply STYLE_IMAGE -o OUTDIR (or --demo -o OUTDIR)")
    return read_ply(args.scene), load_image(args.style)


def prepare_output(args: argparse.Namespace) -> Path:
    out = args.output
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output exists and is not a folder")
    if args.scene is not None and (out / "stylized.ply").resolve() == args.scene.resolve():
        raise InputError(f"{args.scene}: the output would overwrite the input scene; choose another -o folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    return out


class Reporter:
    """Progress as JSON lines on stdout (for the Blender add-on) or as a tqdm bar on stderr."""

    def __init__(self, json_lines: bool, total: int, quiet: bool = False):
        self.json_lines = json_lines
        self.quiet = quiet
        self.bar = None
        if not json_lines and not quiet:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="it", dynamic_ncols=True)

    def emit(self, event: dict) -> None:
        if self.quiet:
            return
        if self.json_lines:
            print(json.dumps(event), flush=True)
        elif event["event"] == "progress":
            self.bar.n = event["iteration"]
            self.bar.set_postfix(style=f"{event['style']:.3g}", content=f"{event['content']:.3g}", refresh=False)
            self.bar.refresh()
        elif event["event"] in ("done", "cancelled"):
            self.close()
            print(event.get("text") or event["event"], file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_json_atomic(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as stream:
        json.dump(data, stream, indent=1)


def versions() -> dict:
    info = {"sos_stylizer": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}
    version, problem = gsplat_version()
    info["gsplat"] = version or f"unavailable ({problem})"
    return info


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def write_previews(out: Path, before: list[torch.Tensor], after: list[torch.Tensor]) -> list[str]:
    """before | after images of the first views, one PNG each."""
    paths = []
    for i, (b, a) in enumerate(zip(before, after)):
        paths.append(str(save_png(out / f"before_after_{i:02d}.png", side_by_side([b, a]))))
    return paths


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    settings.validate()
    resolve_device(settings.device)
    scene, style = load_inputs(args)
    out = prepare_output(args)
    cameras, camera_source = choose_cameras(args, scene)
    main_rank = distributed.current().is_main
    reporter = Reporter(args.json_progress, settings.iterations, quiet=not main_rank)
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)

    def should_stop() -> bool:
        return stop["requested"] or bool(args.cancel_file and args.cancel_file.exists())

    def on_preview(iteration: int, image: torch.Tensor) -> None:
        path = save_png(out / "preview.png", image)
        reporter.emit({"event": "preview", "iteration": iteration, "path": str(path)})

    reporter.emit({"event": "start", "iterations": settings.iterations, "gaussians": scene.count,
                   "sh_degree": scene.sh_degree, "views": len(cameras), "cameras": camera_source})
    preview_cams = cameras[:PREVIEW_VIEWS]
    before = render_views(scene, preview_cams, resolution=min(settings.resolution, 1024),
                          background=settings.background, device=settings.device) if main_rank else []
    try:
        result = stylize(scene, style, cameras, settings, progress=reporter.emit,
                         preview=on_preview if settings.preview_every else None, should_stop=should_stop,
                         checkpoint_path=out / "checkpoint.pt" if settings.checkpoint_every else None)
    finally:
        reporter.close()
    if result.cancelled:
        reporter.emit({"event": "cancelled", "iteration": result.history[-1]["iteration"] if result.history else 0,
                       "text": "cancelled; nothing written"})
        return 130
    if not main_rank:
        return 0
    return finish(args, out, settings, scene, result, cameras, camera_source, before, reporter)


def finish(args, out: Path, settings: StylizeSettings, scene: SplatData, result: StylizeResult,
           cameras: list[Camera], camera_source: str, before: list[torch.Tensor], reporter: Reporter) -> int:
    """Write the stylized scene, its cameras, before/after previews and report.json."""
    t0 = time.perf_counter()
    ply_path = out / "stylized.ply"
    write_ply(ply_path, result.splat)
    save_cameras_json(out / "cameras.json", [c.with_long_side(settings.resolution) for c in cameras])
    after = render_views(result.splat, cameras[:PREVIEW_VIEWS], resolution=min(settings.resolution, 1024),
                         background=settings.background, device=settings.device)
    previews = write_previews(out, before, after)
    report = {
        "settings": asdict(settings),
        "inputs": {"scene": str(args.scene) if args.scene else "demo", "style": str(args.style) if args.style
                   else "demo", "gaussians": scene.count, "sh_degree": scene.sh_degree, "cameras": camera_source,
                   "views": len(cameras)},
        "versions": versions(),
        "device": {"name": device_name(result.device), "torch_device": result.device, "renderer": result.backend,
                   "processes": distributed.current().world_size},
        "timings": {**result.timings, "write_s": time.perf_counter() - t0},
        "outputs": {"ply": str(ply_path), "previews": previews, "cameras": str(out / "cameras.json")},
        "history": result.history,
    }
    write_json_atomic(out / "report.json", report)
    reporter.emit({"event": "done", "ply": str(ply_path), "report": str(out / "report.json"),
                   "text": f"wrote {ply_path} ({result.timings['it_per_s']:.2f} it/s on {report['device']['name']})"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        processes = distributed.requested_processes(args.gpus, device, args.device)
        if processes > 1:
            return distributed.launch(sys.argv[1:] if argv is None else argv, processes, device)
        with distributed.from_environment(device):
            return run(args)
    except InputError as exc:
        return report_error(args, str(exc), 2)
    except torch.cuda.OutOfMemoryError:
        return report_error(args, "GPU out of memory: lower --resolution or set --max-gpu-mem to the GiB this GPU "
                            "can spare", 3)


def report_error(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr (and an error event for programs reading --json-progress); bad input by rank 0 only."""
    if code == 2 and distributed.environment_rank() != 0:
        return code
    if args.json_progress:
        print(json.dumps({"event": "error", "message": message}), flush=True)
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
