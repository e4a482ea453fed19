"""sos-stylize: stylize a 3DGS scene with a painting from the command line (also ``python -m core``)."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
import typing
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core import __version__
from core.atomic import atomic_write
from core.cameras import Camera, load_cameras, orbit_cameras, save_cameras_json
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.images import load_image, save_png, side_by_side
from core.ply import SplatData, read_ply, write_ply
from core.render import gsplat_version
from core.stylize import StylizeResult, StylizeSettings, check_settings, render_views, resolve_device, stylize
from interchange.settings import add_arguments, settings_from_namespace

PREVIEW_VIEWS = 3
CAMERA_FILE_NAMES = ("cameras.json",)
DEMO_SETTINGS = {"iterations": 120, "resolution": 128}  # --demo's defaults: a quick run on the procedural scene


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors naming the option (``error: --lr: must be ...``), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message.removeprefix('argument ')}\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
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
    p.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout (for programs)")
    p.add_argument("--cancel-file", type=Path, help="stop cooperatively when this file appears")
    p.add_argument("--version", action="version", version=f"sos-stylize {__version__}")
    add_arguments(p.add_argument_group("stylization settings"),
                  notes={name: f"demo {value}" for name, value in DEMO_SETTINGS.items()})
    return p


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
    """The stylization settings given on the command line (the schema's defaults, or --demo's, for the rest)."""
    return settings_from_namespace(args, DEMO_SETTINGS if args.demo else None)


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

    def __init__(self, json_lines: bool, total: int):
        self.json_lines = json_lines
        self.bar = None
        if not json_lines:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="it", dynamic_ncols=True)

    def emit(self, event: dict) -> None:
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
    check_settings(settings)
    resolve_device(settings.device)
    scene, style = load_inputs(args)
    out = prepare_output(args)
    cameras, camera_source = choose_cameras(args, scene)
    reporter = Reporter(args.json_progress, settings.iterations)
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
                          background=settings.background, device=settings.device)
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
        "device": {"name": device_name(result.device), "torch_device": result.device, "renderer": result.backend},
        "timings": {**result.timings, "write_s": time.perf_counter() - t0},
        "densify": result.densify,
        "outputs": {"ply": str(ply_path), "previews": previews, "cameras": str(out / "cameras.json")},
        "history": result.history,
    }
    write_json_atomic(out / "report.json", report)
    reporter.emit({"event": "done", "ply": str(ply_path), "report": str(out / "report.json"),
                   "gaussians": result.splat.count,
                   "text": f"wrote {ply_path} ({result.timings['it_per_s']:.2f} it/s on {report['device']['name']})"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        return report_error(args, str(exc), 2)
    except torch.cuda.OutOfMemoryError:
        return report_error(args, "GPU out of memory: lower --resolution or set --max-gpu-mem to the GiB this GPU "
                            "can spare", 3)


def report_error(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr (and an error event for programs reading --json-progress)."""
    if args.json_progress:
        print(json.dumps({"event": "error", "message": message}), flush=True)
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
