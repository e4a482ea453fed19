"""Benchmark: the SOS gradient (all pyramid scales, as the stylization loop calls it) at 1080p, 4K and 8K.

Usage: python bench/sos_grad.py [--sizes 1920x1080,3840x2160,7680x4320] [--quick] [--json OUT]
                                [--budget-s 420] [--style PAINTING] [--reps 3] [--device cuda|cpu]

Per size: plain autograd in TF32 and in bf16 autocast, exact tiles of 512/1024/2048 px (bf16, then TF32 if
time is left), and core.planner's choice under a 24 GiB cap and with no cap. Time: median of --reps runs after
one warm-up (CUDA events); peak: torch.cuda.max_memory_allocated over the timed runs, and per full-resolution
pixel above what was allocated before (to refine core.planner's constants). "x floor": time over the VGG FLOP
floor of sos.md (0.72 MFLOP/px forward, backward 2x, +1 forward on tiled scales, summed over the pyramid) at the
bf16 matmul rate measured here. "rel err": |g - g_ref| / |g_ref| against strict float32 (TF32 off, planner plan).
Configs predicted not to fit in free memory are skipped and say so; out-of-memory is caught. The run stops after
--budget-s seconds and prints what it has. --quick: tiny sizes and one timed run (works on CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import planner, sos  # noqa: E402
from core.planner import ScalePlan  # noqa: E402
from core.vgg import load_vgg19  # noqa: E402

SHARED_STYLE = ROOT.parent / "shared" / "data" / "styles" / "vangogh_starry_night_over_the_rhone_2000px.jpg"
FLOP_PER_PX_FORWARD = 0.72e6
GIB = 2**30


@dataclass
class Row:
    size: str
    config: str
    plan: str = ""
    ms: float | None = None
    peak_gib: float | None = None
    bytes_per_px: float | None = None
    floor_ratio: float | None = None
    rel_error: float | None = None
    note: str = ""


@dataclass
class Config:
    name: str
    bf16: bool
    make_plan: Callable[[list[tuple[int, int]]], list[ScalePlan]]


@dataclass
class Case:
    """One image size with everything the gradient needs, built once."""

    size: tuple[int, int]
    render: torch.Tensor
    style: sos.StyleTargets
    content: sos.ContentTargets
    reference: torch.Tensor | None = None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", help="comma-separated WIDTHxHEIGHT (default 1920x1080,3840x2160,7680x4320)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one timed run (also on CPU)")
    parser.add_argument("--json", type=Path, help="write all rows and measured rates to this file")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new configs after this")
    parser.add_argument("--style", type=Path, help="style painting (default: a shared painting, else noise)")
    parser.add_argument("--reps", type=int, help="timed runs per config (default 3; 1 with --quick)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--min-short-side", type=int, help="pyramid threshold (default 511; 48 with --quick on CPU)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune convolutions")
    return parser.parse_args()


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"1920x1080,3840x2160" -> [(1080, 1920), (2160, 3840)] as (height, width)."""
    sizes = []
    for item in text.split(","):
        width, height = item.lower().split("x")
        sizes.append((int(height), int(width)))
    return sizes


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and convolutions on or off (new API where torch has it)."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        mode = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
    else:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], object]) -> float:
    """Seconds one call of fn takes (CUDA events on the GPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul rate in FLOP/s (8192^2 on the GPU, 1024^2 on the CPU)."""
    n, reps = (8192, 20) if device.type == "cuda" else (1024, 3)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    seconds = timed(device, lambda: [a @ b for _ in range(reps)])
    return 2 * n**3 * reps / seconds


def load_style(path: Path | None, device: torch.device) -> torch.Tensor:
    """[1, 3, H, W] style image in [0, 1]: the given file, a shared painting, or smooth noise."""
    path = path or (SHARED_STYLE if SHARED_STYLE.is_file() else None)
    if path is None:
        return smooth_noise(1200, 1600, device, seed=7)
    array = np.array(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous().to(device)


def smooth_noise(height: int, width: int, device: torch.device, seed: int) -> torch.Tensor:
    """An image with structure at several scales (coarse noise upsampled plus fine noise), in [0, 1]."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 64), max(2, width // 64), generator=generator)
    fine = torch.rand(1, 3, height, width, generator=generator)
    image = 0.8 * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False) + 0.2 * fine
    return image.clamp(0, 1).to(device)


def plan_text(plan: list[ScalePlan]) -> str:
    return ",".join("A" if p.method == "autograd" else f"T{p.tile}" for p in plan)


def predicted_bytes(size: tuple[int, int], plan: list[ScalePlan], bf16: bool) -> int:
    """core.planner's estimate of the peak of a plan: resident full-resolution data plus the largest scale."""
    height, width = size
    per_scale = [planner.autograd_bytes(*p.size, bf16) if p.method == "autograd"
                 else planner.tiled_bytes(*p.size, p.tile, bf16) for p in plan]
    return planner.FIXED_BYTES + planner.RESIDENT_BYTES_PER_PX * height * width + max(per_scale)


def floor_seconds(plan: list[ScalePlan], rate: float) -> float:
    """sos.md floor: 0.72 MFLOP/px forward, x3 with backward, +1 forward on tiled scales, over the pyramid."""
    flops = sum(FLOP_PER_PX_FORWARD * p.size[0] * p.size[1] * (4 if p.method == "tiled" else 3) for p in plan)
    return flops / rate


def configs(tiles: list[int], device: torch.device) -> tuple[list[Config], list[Config]]:
    """Two tiers: the essential configs for every size first, then the extra ones if time is left."""
    def autograd(sizes):
        return [ScalePlan(s, "autograd") for s in sizes]

    def tiled(tile):
        return lambda sizes: [ScalePlan(s, "tiled", tile) if max(s) > tile else ScalePlan(s, "autograd")
                              for s in sizes]

    def planned(cap, bf16):
        return lambda sizes: planner.plan_scales(sizes, free_bytes=planner.free_gpu_bytes(device),
                                                 cap_bytes=cap, bf16=bf16)

    first = [Config("autograd TF32", False, autograd), Config("autograd bf16", True, autograd),
             Config("planner (no cap) bf16", True, planned(None, True)),
             Config("planner (24 GiB) bf16", True, planned(24 * GIB, True))]
    first += [Config(f"tiles {t} bf16", True, tiled(t)) for t in tiles]
    second = [Config("planner (no cap) TF32", False, planned(None, False)),
              Config("planner (24 GiB) TF32", False, planned(24 * GIB, False))]
    second += [Config(f"tiles {t} TF32", False, tiled(t)) for t in tiles]
    return first, second


def build_case(vgg, style_img: torch.Tensor, size: tuple[int, int], min_short_side: int,
               device: torch.device) -> Case:
    """Render, style and content targets for one size (content = a nearby image, as in early stylization)."""
    sizes = sos.pyramid_sizes(*size, min_short_side)
    plan = planner.plan_scales(sizes, free_bytes=planner.free_gpu_bytes(device), cap_bytes=None, bf16=False)
    content_img = smooth_noise(*size, device, seed=1)
    render = (content_img + 0.1 * smooth_noise(*size, device, seed=2) - 0.05).clamp(0, 1)
    with torch.no_grad():
        style = sos.build_style_targets(vgg, style_img, sizes, plan=plan)
        content = sos.build_content_targets(vgg, content_img, sizes, plan=plan)
    return Case(size, render, style, content)


def reference_gradient(vgg, case: Case, device: torch.device) -> tuple[torch.Tensor, Row]:
    """Strict float32 gradient (TF32 off) with the planner's plan: the yardstick for every config's error."""
    sizes = case.style.sizes
    plan = planner.plan_scales(sizes, free_bytes=planner.free_gpu_bytes(device), cap_bytes=None, bf16=False)
    row = Row(size_text(case.size), "fp32 strict (reference)", plan_text(plan), note="1 run, no warm-up")
    set_tf32(False)
    try:
        holder = {}
        seconds = timed(device, lambda: holder.update(
            g=sos.sos_gradient(vgg, case.render, case.style, case.content, sos.LossWeights(), plan=plan)[0]))
    finally:
        set_tf32(True)
    row.ms = seconds * 1000
    return holder["g"].cpu(), row


def run_config(vgg, case: Case, config: Config, reps: int, bf16_rate: float, device: torch.device) -> Row:
    """Warm-up (also the gradient checked against the reference), then `reps` timed runs."""
    plan = config.make_plan(case.style.sizes)
    requested = plan_text(plan)
    row = Row(size_text(case.size), config.name, requested)
    free = planner.free_gpu_bytes(device)
    need = predicted_bytes(case.size, plan, config.bf16)
    if device.type == "cuda" and need > free:
        row.note = f"skipped: predicted OOM ({need / GIB:.1f} GiB > {free / GIB:.1f} GiB free)"
        return row

    def call():
        return sos.sos_gradient(vgg, case.render, case.style, case.content, sos.LossWeights(), plan=plan,
                                autocast_bf16=config.bf16)

    try:
        grad, _ = call()
        synchronize(device)
        after_warm_up = plan_text(plan)
        if case.reference is not None:
            reference = case.reference.to(device)
            row.rel_error = float((grad - reference).norm() / reference.norm())
            del reference
        del grad
        base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = [timed(device, call) for _ in range(reps)]
    except torch.cuda.OutOfMemoryError:
        row.note = "out of memory"
        return row
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row.ms = statistics.median(seconds) * 1000
    row.floor_ratio = statistics.median(seconds) / floor_seconds(plan, bf16_rate)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        row.peak_gib = peak / GIB
        row.bytes_per_px = (peak - base) / (case.size[0] * case.size[1])
    if plan_text(plan) != requested:
        row.plan = plan_text(plan)
        row.note = f"OOM: retried as {row.plan}"
        if after_warm_up == requested:
            row.note += " during the timed runs (their time and peak include the failed try)"
    return row


def size_text(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def markdown(rows: list[Row]) -> str:
    """The results as a markdown table."""
    def number(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| size | config | plan (per scale) | ms | peak GiB | B/px | x floor | rel err | note |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        error = "-" if r.rel_error is None else f"{r.rel_error:.1e}"
        lines.append(f"| {r.size} | {r.config} | {r.plan} | {number(r.ms, 1)} | {number(r.peak_gib, 2)} | "
                     f"{number(r.bytes_per_px, 0)} | {number(r.floor_ratio, 2)} | {error} | {r.note} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    quick_sizes = "1920x1080" if on_gpu else "160x96"
    sizes = parse_sizes(args.sizes or (quick_sizes if args.quick else "1920x1080,3840x2160,7680x4320"))
    reps = args.reps or (1 if args.quick else 3)
    tiles = [512, 1024] if args.quick and on_gpu else [64, 128] if args.quick else [512, 1024, 2048]
    min_short_side = args.min_short_side or (48 if args.quick and not on_gpu else 511)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    set_tf32(True)

    vgg = load_vgg19(device=device)
    style_img = load_style(args.style, device)
    rates = {"bf16": matmul_rate(device, torch.bfloat16), "tf32": matmul_rate(device, torch.float32)}
    name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    print(f"# SOS gradient benchmark on {name}, torch {torch.__version__}; matmul rates: "
          f"bf16 {rates['bf16'] / 1e12:.1f} TFLOP/s, TF32 {rates['tf32'] / 1e12:.1f} TFLOP/s", flush=True)

    rows: list[Row] = []
    cases: dict[tuple[int, int], Case] = {}
    out_of_time = False

    def record(row: Row) -> None:
        rows.append(row)
        print(f"  {row.size} {row.config} [{row.plan}]: ms {row.ms}, peak GiB {row.peak_gib}, "
              f"rel err {row.rel_error} {row.note}", file=sys.stderr, flush=True)

    first, second = configs(tiles, device)
    for tier in (first, second):
        for size in sizes:
            for config in tier:
                if time.perf_counter() - started > args.budget_s:
                    out_of_time = True
                    break
                case = cases.get(size)
                try:
                    if case is None:
                        case = build_case(vgg, style_img, size, min_short_side, device)
                        case.reference, row = reference_gradient(vgg, case, device)
                        cases[size] = case
                        record(row)
                    record(run_config(vgg, case, config, reps, rates["bf16"], device))
                except torch.cuda.OutOfMemoryError:
                    record(Row(size_text(size), config.name, note="out of memory while preparing"))
                    if on_gpu:
                        torch.cuda.empty_cache()
            if out_of_time:
                break
        if out_of_time:
            break
    if out_of_time:
        print(f"\nstopped after the {args.budget_s:.0f} s budget; results so far:")
    table = markdown(rows)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "rates_flops": rates,
                                         "budget_s": args.budget_s, "stopped_by_budget": out_of_time,
                                         "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
