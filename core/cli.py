"""sos-stylize: stylize a 3DGS scene with a painting from the command line (also ``python -m core``)."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
import typing
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core import __version__, distributed
from core.cameras import Camera, load_cameras, orbit_cameras, save_cameras_json
from core.checks import (check_cameras, check_result, check_scene, check_visibility, divergence_hint,
                         restore_degenerate_quats)
from core.demo import demo_scene, demo_style
from core.errors import InputError, InputWarning
from core.images import load_image, save_png, side_by_side
from core.renderer import gsplat_version
from core.regions import load_region
from core.device import resolve_device
from core.checks import check_settings
from core.stylization import StylizeResult, StylizeSettings, stylize
from core.views import render_views
from core.vgg import check_vgg_weights
from interchange.atomic import atomic_write
from interchange.cameras import find_cameras_file
from interchange.ply import SplatData, read_ply, write_ply
from interchange.protocol import (EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_OUT_OF_MEMORY, OUTPUT_CAMERAS_FILE, PREVIEW_FILE,
                                  REPORT_FILE, STYLIZED_FILE)
from interchange.settings import add_arguments, settings_from_namespace

PREVIEW_VIEWS = 3
DEMO_SETTINGS = {"iterations": 120, "resolution": 128}  # --demo's defaults: a quick run on the procedural scene
CHECKPOINT_FILE = "checkpoint.pt"
# Every file a run may write into its output folder (atomic writes add only hidden temporary names).
OUTPUT_NAMES = (STYLIZED_FILE, OUTPUT_CAMERAS_FILE, REPORT_FILE, PREVIEW_FILE, CHECKPOINT_FILE,
                *(f"before_after_{i:02d}.png" for i in range(PREVIEW_VIEWS)))


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors naming the option (``error: --lr: must be ...``), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message.removeprefix('argument ')}\n")


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
    p.add_argument("--region", type=Path, help="stylize part of the scene: one weight in 0..1 per Gaussian, "
                   ".npy array or text file with one value per line (0 keeps a Gaussian's colours)")
    p.add_argument("--gpus", metavar="N|all", help="one process per GPU, each taking its own view per step, "
                   "gradients averaged (torch.distributed; same as torchrun --nproc_per_node N -m core)")
    p.add_argument("--json-progress", action="store_true", help="one JSON object per line on stdout (for programs)")
    p.add_argument("--cancel-file", type=Path, help="stop cooperatively when this file appears")
    p.add_argument("--version", action="version", version=f"sos-stylize {__version__}")
    add_arguments(p.add_argument_group("stylization settings"),
                  notes={name: f"demo {value}" for name, value in DEMO_SETTINGS.items()})
    return p




def choose_cameras(args: argparse.Namespace, scene: SplatData) -> tuple[list[Camera], str]:
    """The cameras to stylize from and where they came from."""
    path = args.cameras or (find_cameras_file(args.scene) if args.scene else None)
    if path is not None:
        return load_cameras(path), str(path)
    if args.views < 1:
        raise InputError(f"--views: need at least one orbit camera (got {args.views})")
    cams = orbit_cameras(scene.means(), scene.opacity(), count=args.views)
    return cams, f"orbit rig ({len(cams)} views)"


def settings_from_args(args: argparse.Namespace) -> StylizeSettings:
    """The stylization settings given on the command line (the schema's defaults, or --demo's, for the rest)."""
    return settings_from_namespace(args, DEMO_SETTINGS if args.demo else None)


def load_inputs(args: argparse.Namespace, resolution: int) -> tuple[SplatData, torch.Tensor]:
    if args.demo:
        return demo_scene(), demo_style()
    if args.scene is None or args.style is None:
        raise InputError("usage: sos-stylize SCENE.ply STYLE_IMAGE -o OUTDIR (or --demo -o OUTDIR)")
    return read_ply(args.scene), load_image(args.style, resolution)


def input_files(args: argparse.Namespace) -> dict[Path, str]:
    """Every file the run reads, with its role: none of them may be written by the run."""
    files = {Path(name): "arguments file" for name in getattr(args, "argument_files", ())}
    if not args.demo:
        files.update({args.scene: "scene", args.style: "painting"})
    cameras = args.cameras or (find_cameras_file(args.scene) if args.scene and not args.demo else None)
    if cameras is not None:
        folder = cameras if cameras.is_dir() else cameras.parent
        colmap = cameras.is_dir() or cameras.name.lower() in ("images.txt", "cameras.txt")
        files.update({path: "cameras" for path in ([folder / "images.txt", folder / "cameras.txt"] if colmap
                                                    else [cameras])})
    if args.vgg_weights:
        files[args.vgg_weights] = "VGG-19 weights"
    if args.region:
        files[args.region] = "region"
    return files


def prepare_output(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """Check the output folder against the inputs, then create it: (folder, the folders this call created).

    Refused: a file in the folder's place, a folder that is or holds the scene's folder, and any output name
    that is an input file. Called once every input has been validated, so a refused run creates nothing.
    """
    out = args.output
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output exists and is not a folder")
    folder = out.resolve()
    if args.scene is not None and not args.demo and folder in args.scene.resolve().parents:
        raise InputError(f"{out}: the output folder holds the input scene {args.scene}; choose a folder of its own "
                         "for the results, so no input is overwritten")
    inputs = {path.resolve(): (path, role) for path, role in input_files(args).items()}
    for name in OUTPUT_NAMES:
        if folder / name in inputs:
            path, role = inputs[folder / name]
            raise InputError(f"{out}: the run would overwrite the input {path} ({role}); choose another output "
                             "folder")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    return out, created


def remove_if_empty(folders: list[Path]) -> None:
    """Remove folders this run created (innermost first) that are still empty, after a failed run."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


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
    """Validate every input (nothing is created before), then stylize and write the outputs."""
    settings = settings_from_args(args)
    check_settings(settings)
    resolve_device(settings.device)
    check_vgg_weights(settings.vgg_weights, settings.vgg_preprocess)
    original, style = load_inputs(args, settings.resolution)
    scene = check_scene(original, str(args.scene) if not args.demo and args.scene else "demo scene")
    region = load_region(args.region, scene.count) if args.region else None
    cameras, camera_source = choose_cameras(args, scene)
    check_cameras(cameras, camera_source, settings.resolution)
    check_visibility(scene, cameras, camera_source)
    out, created = prepare_output(args)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 1
    try:
        code = stylize_into(args, out, settings, original, scene, style, cameras, camera_source, region)
        return code
    finally:
        if code != 0:
            remove_if_empty(created)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stylize_into(args: argparse.Namespace, out: Path, settings: StylizeSettings, original: SplatData,
                 scene: SplatData, style: torch.Tensor, cameras: list[Camera], camera_source: str,
                 region: np.ndarray | None = None) -> int:
    """The run proper, once everything is validated: stylize ``scene``, the renderable form of ``original``;
    ``region`` [N] weights in 0..1 limit the change to part of the scene (None: all of it)."""
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
        path = save_png(out / PREVIEW_FILE, image)
        reporter.emit({"event": "preview", "iteration": iteration, "path": str(path)})

    reporter.emit({"event": "start", "iterations": settings.iterations, "gaussians": scene.count,
                   "sh_degree": scene.sh_degree, "views": len(cameras), "cameras": camera_source})
    preview_cams = cameras[:PREVIEW_VIEWS]
    before = render_views(scene, preview_cams, resolution=min(settings.resolution, 1024),
                          background=settings.background, device=settings.device) if main_rank else []
    try:
        result = stylize(scene, style, cameras, settings, progress=reporter.emit,
                         preview=on_preview if settings.preview_every else None, should_stop=should_stop,
                         checkpoint_path=out / CHECKPOINT_FILE if settings.checkpoint_every else None,
                         region=region)
    finally:
        reporter.close()
    if result.cancelled:
        reporter.emit({"event": "cancelled", "iteration": result.history[-1]["iteration"] if result.history else 0,
                       "text": "cancelled; nothing written"})
        return EXIT_CANCELLED
    if not main_rank:
        return 0
    return finish(args, out, settings, original, result, cameras, camera_source, before, reporter)


def finish(args, out: Path, settings: StylizeSettings, scene: SplatData, result: StylizeResult,
           cameras: list[Camera], camera_source: str, before: list[torch.Tensor], reporter: Reporter) -> int:
    """Check the result, then write the stylized scene, its cameras, before/after previews and report.json.

    ``scene`` is the scene as read: the written PLY keeps every one of its values but the stylized ones, also
    where check_scene drew some Gaussians differently (zero quaternions).
    """
    t0 = time.perf_counter()
    check_result(result.splat, divergence_hint(settings))
    stylized = restore_degenerate_quats(result.splat, scene)
    ply_path = out / STYLIZED_FILE
    write_ply(ply_path, stylized)
    save_cameras_json(out / OUTPUT_CAMERAS_FILE, [c.with_long_side(settings.resolution) for c in cameras])
    after = render_views(result.splat, cameras[:PREVIEW_VIEWS], resolution=min(settings.resolution, 1024),
                         background=settings.background, device=settings.device)
    previews = write_previews(out, before, after)
    report = {
        "settings": asdict(settings),
        "inputs": {"scene": str(args.scene) if args.scene else "demo", "style": str(args.style) if args.style
                   else "demo", "gaussians": scene.count, "sh_degree": scene.sh_degree, "cameras": camera_source,
                   "views": len(cameras), "region": str(args.region) if args.region else None},
        "versions": versions(),
        "device": {"name": device_name(result.device), "torch_device": result.device, "renderer": result.backend,
                   "processes": distributed.current().world_size},
        "timings": {**result.timings, "write_s": time.perf_counter() - t0},
        "densify": result.densify,
        "statistics": result.statistics,
        "outputs": {"ply": str(ply_path), "previews": previews, "cameras": str(out / OUTPUT_CAMERAS_FILE)},
        "history": result.history,
    }
    write_json_atomic(out / REPORT_FILE, report)
    reporter.emit({"event": "done", "ply": str(ply_path), "report": str(out / REPORT_FILE),
                   "gaussians": result.splat.count,
                   "text": f"wrote {ply_path} ({result.timings['it_per_s']:.2f} it/s on {report['device']['name']})"})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argument_files = [arg[1:] for arg in argv if arg.startswith("@")]
    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = lambda message, *rest: report_warning(args, str(message))
        try:
            requested = args.device or StylizeSettings.device  # the schema default when not given
            device = resolve_device(requested)
            processes = distributed.requested_processes(args.gpus, device, requested)
            if processes > 1:
                return distributed.launch(argv, processes, device)
            with distributed.from_environment(device):
                return run(args)
        except InputError as exc:
            return report_error(args, str(exc), EXIT_BAD_INPUT)
        except torch.cuda.OutOfMemoryError:
            return report_error(args, "GPU out of memory: lower --resolution or set --max-gpu-mem to the GiB this "
                                "GPU can spare", EXIT_OUT_OF_MEMORY)


def report_error(args: argparse.Namespace, message: str, code: int) -> int:
    """One line on stderr (and an error event for programs reading --json-progress); bad input by rank 0 only."""
    if code == EXIT_BAD_INPUT and distributed.environment_rank() != 0:
        return code
    if args.json_progress:
        print(json.dumps({"event": "error", "message": message}), flush=True)
    print(f"error: {message}", file=sys.stderr)
    return code


def report_warning(args: argparse.Namespace, message: str) -> None:
    """One line on stderr per warning (and a warning event for programs reading --json-progress)."""
    if args.json_progress:
        print(json.dumps({"event": "warning", "message": message}), flush=True)
    print(f"warning: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
