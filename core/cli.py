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

from core import __version__, argument_files, distributed, outputs
from core.cameras import Camera, load_cameras, orbit_cameras, save_cameras_json
from core.checks import (check_cameras, check_result, check_scene, check_visibility, divergence_hint,
                         restore_degenerate_quats)
from core.demo import demo_scene, demo_style
from core.errors import InputError, InputWarning
from core.images import load_image, save_png, side_by_side
from core.outputs import CHECKPOINT_FILE, PREVIEW_SIDE, before_after_views
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
from interchange.protocol import (CANCEL_KEEP, EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_OUT_OF_MEMORY, ORIGIN_FILE,
                                  OUTPUT_CAMERAS_FILE, PREVIEW_FILE, REPORT_FILE, STYLIZED_FILE, CancelledEvent,
                                  DoneEvent, ErrorEvent, PreviewEvent, ProgressEvent, StartEvent, WarningEvent,
                                  event_dict, parse_event)
from interchange.settings import (START_FROM_PREVIEW, add_arguments, for_command_line, mention,
                                  settings_from_namespace)

DEMO_SETTINGS = {"iterations": 120, "resolution": 128}  # --demo's defaults: a quick run on the procedural scene
JSON_PROGRESS = "--json-progress"
NO_PREVIEWS_NOTE = "no before/after images: a run of 0 iterations (the preview) writes none"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors naming the option (``error: --lr: must be ...``), exit code 2, and with
    ``json_progress`` also as an error event on stdout (option errors come before the options are known)."""

    def __init__(self, *args, json_progress: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.json_progress = json_progress

    def error(self, message: str) -> typing.NoReturn:
        report_error(self.json_progress, message.removeprefix("argument "), EXIT_BAD_INPUT, rank_zero_only=False)
        self.exit(EXIT_BAD_INPUT)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def build_parser(json_progress: bool = False) -> argparse.ArgumentParser:
    """The command line; ``json_progress`` (found in the arguments before they are parsed, ``asks_for_json``)
    makes option errors come as error events too. Arguments files are expanded before (core.argument_files)."""
    p = Parser(
        prog="sos-stylize", json_progress=json_progress,
        description="Stylize a 3D Gaussian Splatting scene with a painting (SGSST's multi-scale SOS loss). Writes "
        "OUTDIR/stylized.ply, previews and OUTDIR/report.json. Arguments can also come from a file, one per line: "
        "sos-stylize @args.txt (the Blender add-on's job folders hold one).")
    p.add_argument("scene", nargs="?", type=Path, help="3DGS scene (.ply)")
    p.add_argument("style", nargs="?", type=Path, help="style image (painting)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if needed)")
    p.add_argument("--demo", action="store_true", help="no input: a procedural scene and a procedural painting")
    p.add_argument("--cameras", type=Path, help="cameras.json (Inria) or COLMAP text model; default: cameras.json "
                   "beside the scene (3DGS output layout), else an orbit rig around the scene")
    p.add_argument("--views", type=positive_int, default=24,
                   help="number of orbit cameras when no cameras are given (at least 1)")
    p.add_argument("--region", type=Path, help="stylize part of the scene: one weight in 0..1 per Gaussian, "
                   ".npy array or text file with one value per line (0 keeps a Gaussian's colours)")
    p.add_argument("--gpus", metavar="N|all", help="one process per GPU, each taking its own view per step, "
                   "gradients averaged (torch.distributed; same as torchrun --nproc_per_node N -m core)")
    p.add_argument(JSON_PROGRESS, action="store_true", help="one JSON object per line on stdout (for programs), "
                   "errors included")
    p.add_argument("--cancel-file", type=Path, help="stop cooperatively when this file appears and write nothing; "
                   f"when it holds the word {CANCEL_KEEP!r}, stop and write the result so far")
    p.add_argument("--version", action="version", version=f"sos-stylize {__version__}")
    add_arguments(p.add_argument_group("stylization settings"),
                  notes={name: f"demo {value}" for name, value in DEMO_SETTINGS.items()})
    return p


def asks_for_json(argv: list[str]) -> bool:
    """Whether the arguments (arguments files read as far as they can be) ask for --json-progress, or an
    abbreviation argparse accepts, before ``--``."""
    for argument in argument_files.lenient_expand(argv):
        if argument == "--":
            return False
        if len(argument) > 2 and JSON_PROGRESS.startswith(argument):
            return True
    return False


def choose_cameras(args: argparse.Namespace, scene: SplatData) -> tuple[list[Camera], str]:
    """The cameras to stylize from and where they came from."""
    path = args.cameras or (find_cameras_file(args.scene) if args.scene else None)
    if path is not None:
        return load_cameras(path), str(path)
    cams = orbit_cameras(scene.means(), scene.opacity(), count=args.views)
    return cams, f"orbit rig ({len(cams)} views)"


def uses_vgg(settings: StylizeSettings) -> bool:
    """Whether the run loads VGG-19: not for the preview alone (0 iterations from the preview, a closed form)."""
    return not (settings.iterations == 0 and settings.init == START_FROM_PREVIEW)


def keep_requested(cancel_file: Path | None) -> bool:
    """Whether the cancel file asks to keep the result so far (it holds CANCEL_KEEP; an empty or unreadable one
    is a plain cancel)."""
    if cancel_file is None:
        return False
    try:
        return cancel_file.read_text(encoding="utf-8", errors="replace").strip() == CANCEL_KEEP
    except OSError:
        return False


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
    files = {path: "arguments file" for path in getattr(args, "argument_files", ())}
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


def prepare_output(args: argparse.Namespace, scene: SplatData, settings: StylizeSettings,
                   cameras: list[Camera]) -> outputs.OutputFolder:
    """Check the output folder against the inputs and the free space, then create it and prove it writable.

    Called once every input has been validated and before any heavy work, so a refused run creates nothing.
    """
    source = args.scene if args.scene is not None and not args.demo else None
    return outputs.prepare(args.output, source, input_files(args), outputs.needed_bytes(scene, settings, cameras))


class Reporter:
    """Progress as JSON lines on stdout (for the Blender add-on) or as a tqdm bar on stderr, made at the first
    progress event (so a run refused before its first iteration prints nothing but its error)."""

    def __init__(self, json_lines: bool, total: int, quiet: bool = False):
        self.json_lines = json_lines
        self.quiet = quiet
        self.total = total
        self.bar = None

    def emit(self, event: dict) -> None:
        """One event (interchange.protocol's wire form)."""
        if self.quiet:
            return
        if self.json_lines:
            print(json.dumps(event), flush=True)
            return
        record = parse_event(event)
        if isinstance(record, ProgressEvent):
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=self.total, unit="it", dynamic_ncols=True)
            self.bar.n = record.iteration
            self.bar.set_postfix(style=f"{record.style:.3g}", content=f"{record.content:.3g}", refresh=False)
            self.bar.refresh()
        elif isinstance(record, (DoneEvent, CancelledEvent)):
            self.close()
            print(record.text or record.kind.value, file=sys.stderr)

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


def write_origin(path: Path, origin: np.ndarray) -> None:
    """origin.npy: int32 [N_out], the input row of each output row (atomically)."""
    with atomic_write(path, "wb") as stream:
        np.save(stream, np.ascontiguousarray(origin, dtype=np.int32), allow_pickle=False)


def write_previews(staging: outputs.Staging, before: list[torch.Tensor], after: list[torch.Tensor]) -> list[str]:
    """before | after images of the first views, one PNG each (staged with the other outputs)."""
    paths = []
    for i, (b, a) in enumerate(zip(before, after)):
        image = side_by_side([b, a])
        name = f"before_after_{i:02d}.png"
        paths.append(str(staging.write(name, lambda path, image=image: save_png(path, image))))
    return paths


def run(args: argparse.Namespace) -> int:
    """Validate every input (nothing is created before), then stylize and write the outputs."""
    settings = settings_from_args(args)
    check_settings(settings)
    resolve_device(settings.device)
    if uses_vgg(settings) or settings.vgg_weights:  # the preview alone needs no VGG: only given weights are checked
        check_vgg_weights(settings.vgg_weights, settings.vgg_preprocess)
    original, style = load_inputs(args, settings.resolution)
    scene = check_scene(original, str(args.scene) if not args.demo and args.scene else "demo scene")
    region = load_region(args.region, scene.count) if args.region else None
    cameras, camera_source = choose_cameras(args, scene)
    check_cameras(cameras, camera_source, settings.resolution)
    check_visibility(scene, cameras, camera_source)
    folder = prepare_output(args, original, settings, cameras)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 1
    try:
        code = stylize_into(args, folder, settings, original, scene, style, cameras, camera_source, region)
        return code
    finally:
        if code != 0:
            folder.clean_up_failure()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stylize_into(args: argparse.Namespace, folder: outputs.OutputFolder, settings: StylizeSettings,
                 original: SplatData, scene: SplatData, style: torch.Tensor, cameras: list[Camera], camera_source: str,
                 region: np.ndarray | None = None) -> int:
    """The run proper, once everything is validated: stylize ``scene``, the renderable form of ``original``;
    ``region`` [N] weights in 0..1 limit the change to part of the scene (None: all of it)."""
    out = folder.path
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
        path = folder.write_live(PREVIEW_FILE, lambda target: save_png(target, image))
        reporter.emit(event_dict(PreviewEvent(iteration, str(path))))

    reporter.emit(event_dict(StartEvent(settings.iterations, scene.count, scene.sh_degree, len(cameras),
                                        camera_source)))
    shown = cameras[:before_after_views(settings)]
    before = render_views(scene, shown, resolution=min(settings.resolution, PREVIEW_SIDE),
                          background=settings.background, device=settings.device) if main_rank and shown else []
    try:
        result = stylize(scene, style, cameras, settings, progress=reporter.emit,
                         preview=on_preview if settings.preview_every else None, should_stop=should_stop,
                         checkpoint_path=out / CHECKPOINT_FILE if settings.checkpoint_every else None,
                         region=region)
    finally:
        reporter.close()
    done = result.history[-1]["iteration"] if result.history else 0
    kept = result.cancelled and not stop["requested"] and keep_requested(args.cancel_file)
    if result.cancelled and not (kept and (done or settings.init == START_FROM_PREVIEW)):
        text = "cancelled; nothing written" + ("" if not kept else " (no iteration had run: nothing to keep)")
        reporter.emit(event_dict(CancelledEvent(done, text)))
        return EXIT_CANCELLED
    if not main_rank:
        return 0
    return finish(args, out, settings, original, result, cameras, camera_source, before, reporter)


def finish(args, out: Path, settings: StylizeSettings, scene: SplatData, result: StylizeResult,
           cameras: list[Camera], camera_source: str, before: list[torch.Tensor], reporter: Reporter) -> int:
    """Check the result, then write the stylized scene, each of its rows' input row (origin.npy), its cameras,
    before/after previews (none after 0 iterations: ``before`` is empty) and report.json; a run stopped on request
    to keep its result (``result.cancelled``) writes the same, and its report says where it stopped.

    They are staged (core.outputs.Staging) and put in place together, report.json last: a write that fails leaves
    none of them. ``scene`` is the scene as read: the written PLY keeps every one of its values but the stylized
    ones, also where check_scene drew some Gaussians differently (zero quaternions).
    """
    t0 = time.perf_counter()
    check_result(result.splat, divergence_hint(settings))
    stylized = restore_degenerate_quats(result.splat, scene)
    staging = outputs.Staging(out)
    try:
        ply_path = staging.write(STYLIZED_FILE, lambda path: write_ply(path, stylized))
        origin_path = staging.write(ORIGIN_FILE, lambda path: write_origin(path, result.origin))
        cameras_path = staging.write(OUTPUT_CAMERAS_FILE, lambda path: save_cameras_json(
            path, [c.with_long_side(settings.resolution) for c in cameras]))
        after = render_views(result.splat, cameras[:len(before)], resolution=min(settings.resolution, PREVIEW_SIDE),
                             background=settings.background, device=settings.device) if before else []
        previews = write_previews(staging, before, after)
        done = result.history[-1]["iteration"] if result.history else 0
        stopped = {"iteration": done, "iterations": settings.iterations} if result.cancelled else None
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
            "stopped": stopped,
            "outputs": {"ply": str(ply_path), "origin": str(origin_path), "previews": previews,
                        **({} if before else {"previews_note": NO_PREVIEWS_NOTE}), "cameras": str(cameras_path)},
            "history": result.history,
        }
        report_path = staging.write(REPORT_FILE, lambda path: write_json_atomic(path, report))
        staging.commit(last=REPORT_FILE)
    except BaseException:
        staging.discard()
        raise
    pace = f"{result.timings['it_per_s']:.2f} it/s" if done else f"{result.timings['total_s']:.1f} s"
    where = f"stopped at iteration {done} of {settings.iterations} on request; " if stopped else ""
    reporter.emit(event_dict(DoneEvent(str(ply_path), str(report_path), f"{where}wrote {ply_path} "
                                       f"({pace} on {report['device']['name']})", result.splat.count)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run sos-stylize; returns the exit status (option errors exit through argparse with the same status)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    json_progress = asks_for_json(argv)
    try:
        expanded, files = argument_files.expand(argv)
    except InputError as exc:
        return report_error(json_progress, exc.template, EXIT_BAD_INPUT)
    args = build_parser(json_progress).parse_args(expanded)
    args.argument_files = files
    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = lambda message, *rest: report_warning(args.json_progress, str(message))
        try:
            requested = args.device or StylizeSettings.device  # the schema default when not given
            device = resolve_device(requested)
            processes = distributed.requested_processes(args.gpus, device, requested)
            if processes > 1:
                return distributed.launch(argv, processes, device)
            with distributed.from_environment(device):
                return run(args)
        except InputError as exc:
            return report_error(args.json_progress, exc.template, EXIT_BAD_INPUT)
        except torch.cuda.OutOfMemoryError:
            return report_error(args.json_progress, f"GPU out of memory: lower {mention('resolution')} or set "
                                f"{mention('max_gpu_mem_gib')} to the GiB this GPU can spare", EXIT_OUT_OF_MEMORY)
        except OSError as exc:  # a file that vanished or a disk that failed under the run: still one line
            where = exc.filename if exc.filename is not None else args.output
            return report_error(args.json_progress, f"{where}: {exc.strerror or exc}", EXIT_BAD_INPUT)


def report_error(json_progress: bool, template: str, code: int, rank_zero_only: bool = True) -> int:
    """One line on stderr (and an error event for programs reading --json-progress); bad input by rank 0 only.

    ``template`` may mention settings (interchange.settings.mention): the line names them by flag, and the event
    carries the template too, for front ends that name them their own way.
    """
    if rank_zero_only and code == EXIT_BAD_INPUT and distributed.environment_rank() != 0:
        return code
    message = for_command_line(template)
    if json_progress:
        event = ErrorEvent(message, template if template != message else None)
        print(json.dumps(event_dict(event)), flush=True)
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def report_warning(json_progress: bool, template: str) -> None:
    """One line on stderr per warning (and a warning event for programs reading --json-progress)."""
    message = for_command_line(template)
    if json_progress:
        print(json.dumps(event_dict(WarningEvent(message, template if template != message else None))), flush=True)
    print(f"warning: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
