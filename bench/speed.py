"""Speed of a whole stylization iteration on the card it runs on, against the VGG FLOP floor (issue 23, part 4).

    python bench/speed.py --scene ../shared/data/scenes/flowers --style PAINTING --out OUT/speed
    python bench/speed.py --scene ... --style ... --sizes 7680x4320 --max-gpu-mem 24 --time-to --out OUT/speed
    python bench/speed.py --demo --device cpu --sizes 64x36 --settings min_short_side=18 --warmup 1 --reps 2 \
        --time-to --time-to-iterations 6 --time-to-resolution 32 --smooth 2 --out /tmp/speed

Per size (``--sizes``, default 1920x1080, 3840x2160, 7680x4320 and 1920², 3840², 7680²): the engine's own
``core.stylization.Stylization`` is built with today's defaults (plus ``--settings``) under ``--max-gpu-mem``
(default 24 GiB; 0: no cap) from the scene's cameras made exactly WIDTHxHEIGHT (widened as bench/densify.py's
``widen()`` does, then resized), the content targets of every view are built (a real run builds each on its
first visit; here they would otherwise land in the timed steps), ``--warmup`` steps run, then ``--reps`` timed
``step()`` calls (render + every pyramid scale's SOS gradient + rasterizer backward + Adam), each between two
device synchronisations, timed with perf_counter: ms/it is their median. Also: peak GPU memory over the timed steps
(``torch.cuda.max_memory_allocated`` after a reset) and over the set-up (targets, warm-up), and the plan the steps
used per scale (autograd, or tiles of n px: ``Objective.style_targets(h, w)[1]``, after any out-of-memory retry;
then ``planned`` holds the planner's own choice).

The FLOP floor. One step runs VGG-19's 13 convolutions up to relu5_1 (conv1_1 ... conv5_1, which include
relu4_2, the content layer) forward and backward at every pyramid scale s of the render
(``Objective.style_targets(h, w)[0].sizes``, from core.sos.pyramid_sizes), for each of the step's V views::

    F_fwd(h, w) = sum over conv k of 2 * 9 * Cin_k * Cout_k * floor(h / 2^p_k) * floor(w / 2^p_k)
    FLOPs(step) = V * (1 + 2) * sum over s of F_fwd(h_s, w_s)

with p_k the 2x2 max-pools before conv k (core.vgg's layer table; F_fwd ≈ 0.72 MFLOP per pixel) and the backward
counted as 2x the forward, the convention of docs/sos_loss.md ("Cost floor") and of the issue's figures. VGG is
frozen, so the engine's backward computes input gradients only, about 1x the forward: the arithmetic minimum is
2/3 of this floor, and a ratio against it would read 1.5x higher than "x floor" here. Not counted: the tiled
path's recomputation (the floor does not depend on the plan), Gram matrices and the other statistics, the
rasterizer, Adam. ``ms_floor = FLOPs / rate``, with the rate of
``torch.matmul`` on two 8192² bf16 matrices measured in the same run (median of 5 timings of 10 products after a
warm-up). On the CPU there is no bf16 floor: a float32 1024² matmul rate is measured instead and the output says so.

``--time-to``: the time to reach a quality, by a proxy. The default loop (``--time-to-iterations``, default 600)
runs through ``core.stylization.stylize`` on the scene's cameras as they are (long side ``--time-to-resolution``,
default 1920) with the same settings, recording every iteration's loss terms with the wall time since the call
began (set-up included). Reported: the wall time (and iteration) at which the style term, smoothed by a trailing
mean over ``--smooth`` iterations (one random view per iteration makes it noisy), first comes within 2 % of its
final smoothed value. This is a loss-curve proxy only; the issue's judged comparison (style and content distances
of the result) is done with bench/quality.py.

Writes OUT/speed.json (after every size) and prints a table: size, ms/it, floor ms, x floor, peak GiB, plan.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from densify import widen  # noqa: E402  (after the path fix above)
from quality import load_scene_and_cameras, write_json  # noqa: E402
from core.cameras import Camera, orbit_cameras  # noqa: E402
from core.demo import demo_scene, demo_style  # noqa: E402
from core.device import resolve_device  # noqa: E402
from core.errors import InputError  # noqa: E402
from core.images import load_image  # noqa: E402
from core.planner import ScalePlan  # noqa: E402
from core.stylization import Stylization, StylizeSettings, check_settings, stylize  # noqa: E402
from core.vgg import CONV_CHANNELS, CONV_NAMES, POOL_AFTER  # noqa: E402
from interchange.ply import SplatData  # noqa: E402
from interchange.settings import BY_NAME, SettingsError  # noqa: E402

DEFAULT_SIZES = "1920x1080,3840x2160,7680x4320,1920x1920,3840x3840,7680x7680"
BACKWARD_FACTOR = 2
"""The backward pass counted as this many forwards (docs/sos_loss.md's convention; see the module docstring)."""
GEMM = {"cuda": (torch.bfloat16, 8192, 10), "cpu": (torch.float32, 1024, 3)}
"""Per device type: the matmul's dtype, side and products per timing."""
GEMM_TIMINGS = 5
QUALITY_TOLERANCE = 0.02
"""--time-to: the smoothed style term counts as arrived within this fraction of its final value."""
GIB = 2**30
SWITCH = {"true": True, "false": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", type=Path, help="scene folder (point_cloud.ply + cameras.json or orbit_cameras.json)")
    p.add_argument("--style", type=Path, help="the painting")
    p.add_argument("--cameras", type=Path, help="cameras.json (default: beside the scene)")
    p.add_argument("--demo", action="store_true", help="procedural scene and painting (core.demo)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated WIDTHxHEIGHT, or 'none' (default: "
                   "1080p, 4K and 8K, 16:9 and square)")
    p.add_argument("--max-gpu-mem", type=float, default=24.0, help="GiB, as the engine's --max-gpu-mem (0: no cap)")
    p.add_argument("--settings", help="StylizeSettings overrides for every run, 'name=value,...' "
                   "(e.g. 'views_per_step=2,min_short_side=32')")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per size")
    p.add_argument("--reps", type=int, default=15, help="timed steps per size (ms/it is their median)")
    p.add_argument("--time-to", action="store_true", help="also run the default loop and report when the style "
                   "term settles (a proxy: see the docstring)")
    p.add_argument("--time-to-iterations", type=int, default=StylizeSettings.iterations)
    p.add_argument("--time-to-resolution", type=int, default=1920)
    p.add_argument("--smooth", type=int, default=25, help="--time-to: trailing mean over this many iterations")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if not args.demo and (args.scene is None or args.style is None):
        p.error("--scene and --style are needed (or --demo)")
    try:
        args.sizes = parse_sizes(args.sizes)
        args.overrides = parse_overrides(args.settings)
    except ValueError as error:
        p.error(str(error))
    if min(args.warmup, args.reps - 1, args.smooth - 1, args.time_to_iterations - 1) < 0:
        p.error("--warmup must be at least 0, and --reps, --smooth and --time-to-iterations at least 1")
    return args


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'1920x1080,1920x1920' → [(1920, 1080), (1920, 1920)] as (width, height); 'none' → []."""
    if text.strip().lower() == "none":
        return []
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        width, _, height = item.lower().partition("x")
        if not (width.isdigit() and height.isdigit()) or min(int(width), int(height)) < 16:
            raise ValueError(f"--sizes: {item!r} is not WIDTHxHEIGHT with both sides at least 16 px")
        sizes.append((int(width), int(height)))
    return sizes


def parse_overrides(text: str | None) -> dict:
    """'views_per_step=2,bf16=false' → {'views_per_step': 2, 'bf16': False}, typed by the settings schema
    (true/false for a switch)."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, value = (s.strip() for s in item.partition("="))
        if name not in BY_NAME:
            raise ValueError(f"--settings: no setting named {name!r}")
        setting = BY_NAME[name]
        try:
            overrides[name] = SWITCH[value.lower()] if setting.kind == "bool" else setting.parse(value)
        except KeyError:
            raise ValueError(f"--settings: {name} must be true or false (got {value!r})") from None
        except SettingsError as error:
            raise ValueError(f"--settings: {name} {error}") from None
    return overrides


def vgg_forward_flops(height: int, width: int) -> int:
    """FLOPs of VGG-19's convolutions conv1_1 ... conv5_1 on one height x width image (2 per multiply-add)."""
    flops = 0
    for name in CONV_NAMES:
        c_in, c_out = CONV_CHANNELS[name]
        flops += 2 * 9 * c_in * c_out * height * width
        if name in POOL_AFTER:
            height, width = height // 2, width // 2
    return flops


def step_flops(sizes: list[tuple[int, int]], views: int = 1) -> int:
    """The floor's FLOPs of one step: forward + backward (BACKWARD_FACTOR forwards) at every scale, every view."""
    return views * (1 + BACKWARD_FACTOR) * sum(vgg_forward_flops(h, w) for h, w in sizes)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings then hold the work itself, not its launch)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def gemm_rate(device: torch.device) -> dict:
    """The dense matmul rate the floor divides by: bf16 8192² on CUDA, float32 1024² elsewhere (said so)."""
    dtype, n, products = GEMM["cuda" if device.type == "cuda" else "cpu"]
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    for _ in range(3):
        torch.matmul(a, b)
    seconds = []
    for _ in range(GEMM_TIMINGS):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(products):
            torch.matmul(a, b)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    rate = 2 * n**3 * products / statistics.median(seconds)
    note = "" if device.type == "cuda" else "no bf16 floor on the CPU: x floor is against a float32 matmul"
    return {"dtype": str(dtype).removeprefix("torch."), "side": n, "flops_per_s": rate, "note": note}


def exact_cameras(cameras: list[Camera], width: int, height: int) -> list[Camera]:
    """The cameras widened to width/height (bench/densify.py's widen) and resized to exactly width x height."""
    return [widen(c, width / height).resized(width, height) for c in cameras]


def plan_records(plan: list[ScalePlan] | None, sizes: list[tuple[int, int]]) -> list[dict]:
    """Per scale: size [w, h], method, tile (no plan, off CUDA: autograd everywhere)."""
    plan = plan or [ScalePlan(tuple(s), "autograd") for s in sizes]
    return [{"size": [p.size[1], p.size[0]], "method": p.method, "tile": p.tile} for p in plan]


def plan_text(records: list[dict]) -> str:
    return ",".join("A" if r["method"] == "autograd" else f"T{r['tile']}" for r in records)


def timed_step(run: Stylization, device: torch.device) -> float:
    """Seconds of one whole step, between two device synchronisations."""
    synchronize(device)
    start = time.perf_counter()
    run.step()
    synchronize(device)
    return time.perf_counter() - start


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def prepared(scene: SplatData, painting: torch.Tensor, cameras: list[Camera], settings: StylizeSettings,
             size: tuple[int, int], warmup: int) -> tuple[Stylization, str]:
    """A Stylization at exactly ``size`` (width, height) with every view's content targets built (a real run builds
    each on its view's first visit) and ``warmup`` steps taken, and the planner's plan before any step ran."""
    width, height = size
    run = Stylization(scene, painting, exact_cameras(cameras, width, height), settings)
    style, plan = run.objective.style_targets(height, width)
    planned = plan_text(plan_records(plan, style.sizes))
    for i in range(len(run.views) if run.objective.needs_content else 0):
        run.views.content(i, run._content_targets)
    for _ in range(warmup):
        run.step()
    return run, planned


def floor_fields(sizes: list[tuple[int, int]], views: int, rate: float, ms_per_it: float) -> dict:
    """A row's scales, FLOPs, floor and ratio (``rate``: the measured matmul FLOP/s)."""
    flops = step_flops(sizes, views)
    floor_ms = 1000 * flops / rate
    return {"scales": [[w, h] for h, w in sizes], "views_per_step": views,
            "forward_flops": sum(vgg_forward_flops(h, w) for h, w in sizes), "flops": flops, "floor_ms": floor_ms,
            "x_floor": ms_per_it / floor_ms}


def measure_size(scene: SplatData, painting: torch.Tensor, cameras: list[Camera], settings: StylizeSettings,
                 size: tuple[int, int], args: argparse.Namespace, rate: float) -> dict:
    """One size's row: ms per whole step (median of --reps after --warmup), its floor, peak memory, plan."""
    width, height = size
    settings = replace(settings, resolution=max(width, height))
    device = resolve_device(settings.device)
    row = {"size": f"{width}x{height}", "width": width, "height": height}
    release(device)
    reset_peak(device)
    try:
        run, planned = prepared(scene, painting, cameras, settings, size, args.warmup)
        style, plan = run.objective.style_targets(height, width)
        synchronize(device)
        row["setup_peak_gib"] = peak_gib(device)
        reset_peak(device)
        seconds = [timed_step(run, device) for _ in range(args.reps)]
    except torch.cuda.OutOfMemoryError as error:
        row["error"] = f"out of GPU memory: {str(error).splitlines()[0]}"
        return row
    finally:
        run = None
        release(device)
    row["peak_gib"] = peak_gib(device)
    row["ms_per_it"] = 1000 * statistics.median(seconds)
    row["ms_all"] = [1000 * s for s in seconds]
    row["plan"] = plan_records(plan, style.sizes)
    row["plan_text"] = plan_text(row["plan"])
    if row["plan_text"] != planned:  # an out-of-memory retry took smaller tiles (core.planner.run_with_oom_retry)
        row["planned"] = planned
    return {**row, **floor_fields(style.sizes, settings.views_per_step, rate, row["ms_per_it"])}


def smoothed(values: list[float], window: int) -> list[float]:
    """Trailing mean over ``window`` values (fewer at the start)."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1):i + 1]
        out.append(sum(part) / len(part))
    return out


def first_within(values: list[float], tolerance: float) -> int:
    """Index of the first value within ``tolerance`` (a fraction) of the last one."""
    final = values[-1]
    return next(i for i, v in enumerate(values) if abs(v - final) <= tolerance * abs(final))


def time_to_quality(scene: SplatData, painting: torch.Tensor, cameras: list[Camera], settings: StylizeSettings,
                    args: argparse.Namespace) -> dict:
    """The default loop with wall times: when the smoothed style term first comes within 2 % of its final value."""
    settings = replace(settings, iterations=args.time_to_iterations, resolution=args.time_to_resolution)
    device = resolve_device(settings.device)
    release(device)
    reset_peak(device)
    history = []
    start = time.perf_counter()

    def record(event: dict) -> None:
        history.append({"iteration": event["iteration"], "wall_s": time.perf_counter() - start,
                        **{k: event[k] for k in ("style", "content", "total") if k in event}})

    result = stylize(scene, painting, cameras, settings, progress=record)
    total = time.perf_counter() - start
    curve = smoothed([h["style"] for h in history], args.smooth)
    index = first_within(curve, QUALITY_TOLERANCE)
    size = cameras[0].with_long_side(settings.resolution)
    return {"proxy": f"wall time at which the style term (trailing mean over {args.smooth} iterations) first comes "
                     f"within {QUALITY_TOLERANCE:.0%} of its final value; the judged comparison is bench/quality.py",
            "size": f"{size.width}x{size.height}", "iterations": settings.iterations, "smooth": args.smooth,
            "final_style_smoothed": curve[-1], "reached_iteration": history[index]["iteration"],
            "reached_s": history[index]["wall_s"], "total_s": total,
            "loop_s": result.timings["loop_s"], "peak_gib": result.timings.get("peak_gpu_mem_gib"),
            "history": history}


def load_inputs(args: argparse.Namespace) -> tuple[SplatData, torch.Tensor, list[Camera], str]:
    """Scene, painting [H, W, 3], cameras and where the cameras came from."""
    if not args.demo and not args.scene.exists():
        raise InputError(f"{args.scene}: no such scene folder or PLY file")
    if args.demo:
        scene = demo_scene(count=1500, seed=1)
        return scene, demo_style(128), orbit_cameras(scene.means(), scene.opacity(), count=4), "demo orbit"
    scene, cameras, camera_path = load_scene_and_cameras(args.scene, args.cameras)
    return scene, load_image(args.style), cameras, str(camera_path)


def base_settings(args: argparse.Namespace) -> StylizeSettings:
    """Today's defaults, the --settings overrides, the device and the memory cap (0: none)."""
    settings = StylizeSettings(device=args.device, max_gpu_mem_gib=args.max_gpu_mem or None)
    settings = replace(settings, **args.overrides)
    check_settings(settings)
    return settings


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def print_table(rows: list[dict], gemm: dict) -> None:
    def number(row: dict, key: str, digits: int) -> str:
        return "-" if row.get(key) is None else f"{row[key]:.{digits}f}"

    print(f"{'size':>10} {'ms/it':>9} {'floor ms':>9} {'x floor':>8} {'peak GiB':>9}  plan")
    for row in rows:
        if "error" in row:
            print(f"{row['size']:>10}  {row['error']}")
            continue
        print(f"{row['size']:>10} {number(row, 'ms_per_it', 1):>9} {number(row, 'floor_ms', 1):>9} "
              f"{number(row, 'x_floor', 2):>8} {number(row, 'peak_gib', 2):>9}  {row['plan_text']}")
    if gemm["note"]:
        print(f"note: {gemm['note']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = base_settings(args)
        device = resolve_device(settings.device)
        scene, painting, cameras, camera_source = load_inputs(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    gemm = gemm_rate(device)
    release(device)
    report = {"device": device_name(device), "torch": torch.__version__,
              "scene": "demo" if args.demo else str(args.scene), "style": "demo" if args.demo else str(args.style),
              "cameras": camera_source, "views": len(cameras), "gaussians": scene.count,
              "settings": asdict(settings), "warmup": args.warmup, "reps": args.reps, "gemm": gemm,
              "floor": "VGG-19 conv1_1..conv5_1 at every scale, forward + backward (2x forward), over the gemm rate",
              "rows": []}
    print(f"# {report['device']}, torch {torch.__version__}: {gemm['dtype']} matmul {gemm['side']}² "
          f"{gemm['flops_per_s'] / 1e12:.2f} TFLOP/s; {scene.count} Gaussians, {len(cameras)} views", flush=True)
    for size in args.sizes:
        row = measure_size(scene, painting, cameras, settings, size, args, gemm["flops_per_s"])
        report["rows"].append(row)
        print(f"  {row['size']}: {row.get('ms_per_it', row.get('error'))}", file=sys.stderr, flush=True)
        write_json(args.out / "speed.json", report)
    if args.time_to:
        report["time_to"] = time_to_quality(scene, painting, cameras, settings, args)
    write_json(args.out / "speed.json", report)
    print_table(report["rows"], gemm)
    if args.time_to:
        t = report["time_to"]
        print(f"time to quality (proxy), {t['size']}, {t['iterations']} iterations: style within "
              f"{QUALITY_TOLERANCE:.0%} of its final value at iteration {t['reached_iteration']}, "
              f"{t['reached_s']:.1f} s of {t['total_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
