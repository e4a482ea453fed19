"""The stylization loop: optimise a scene's colours so its renders carry a painting's style at every scale.

One random view per iteration: render it (differentiable), ask ``core.sos.sos_gradient`` for dL/drender with
all scales stacked on the full-resolution image, back-propagate the rasterizer once, take an Adam step.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core import planner, sos
from core.atomic import atomic_write
from core.cameras import Camera
from core.errors import InputError
from core.gaussians import Gaussians
from core.ply import SplatData
from core.render import pick_backend, render
from core.vgg import load_vgg19

OPTIMIZE_CHOICES = ("color", "sh", "sh+opacity")
# relu4_2 targets: 512 float32 channels at 1/8 resolution over a pyramid adding a third: ≈ 43 bytes per pixel.
CONTENT_BYTES_PER_PX = 512 * 4 / 64 * 4 / 3
# Share of the GPU memory budget that cached content targets may take before they move to host memory.
CONTENT_CACHE_SHARE = 0.25

ProgressCallback = Callable[[dict], None]
PreviewCallback = Callable[[int, torch.Tensor], None]


@dataclass
class StylizeSettings:
    """Everything that shapes a run; stored in report.json and checkpoints."""

    iterations: int = 600
    learning_rate: float = 0.05
    style_strength: float = 1.0
    content_weight: float = 1.0
    resolution: int = 1024
    optimize: str = "color"
    seed: int = 0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    min_short_side: int = 511
    max_gpu_mem_gib: float | None = None
    bf16: bool = True
    device: str = "auto"
    backend: str = "auto"
    vgg_weights: str | None = None
    vgg_preprocess: str = "caffe"
    cudnn_benchmark: bool = False
    preview_every: int = 0
    checkpoint_every: int = 0

    def validate(self) -> None:
        """Refuse settings that cannot work, with a message naming the setting."""
        checks = [
            (self.iterations >= 0, f"iterations must be >= 0 (got {self.iterations})"),
            (self.learning_rate > 0, f"learning rate must be > 0 (got {self.learning_rate})"),
            (self.style_strength >= 0, f"style strength must be >= 0 (got {self.style_strength})"),
            (self.content_weight >= 0, f"content weight must be >= 0 (got {self.content_weight})"),
            (16 <= self.resolution <= 16384, f"resolution must be 16..16384 px (got {self.resolution})"),
            (self.optimize in OPTIMIZE_CHOICES, f"optimize must be one of {', '.join(OPTIMIZE_CHOICES)}"),
            (len(self.background) == 3 and all(0 <= c <= 1 for c in self.background),
             f"background must be three values in 0..1 (got {self.background})"),
            (self.max_gpu_mem_gib is None or self.max_gpu_mem_gib > 0, "GPU memory cap must be > 0 GiB"),
            (self.vgg_preprocess in ("caffe", "torch"), "VGG preprocessing must be 'caffe' or 'torch'"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"settings: {message}")


@dataclass
class StylizeResult:
    splat: SplatData
    history: list[dict]
    cancelled: bool
    device: str
    backend: str
    timings: dict = field(default_factory=dict)


def resolve_device(requested: str) -> torch.device:
    """'auto' → CUDA when available, else Apple MPS, else CPU; an unavailable explicit choice is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available to this PyTorch "
                         f"(torch {torch.__version__}); use --device auto or cpu")
    if requested not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device: unknown device '{requested}' (auto, cuda, cpu or mps)")
    return torch.device(requested)


class _Views:
    """The render cameras with their per-view content targets, computed once per view on first use."""

    def __init__(self, cameras: list[Camera], device: torch.device, cache_bytes: float = float("inf")):
        self.cameras = cameras
        self.device = device
        total = sum(CONTENT_BYTES_PER_PX * c.width * c.height for c in cameras)
        self.offload = device.type == "cuda" and total > cache_bytes
        self.viewmats = [torch.as_tensor(c.viewmat, dtype=torch.float32, device=device) for c in cameras]
        self.Ks = [torch.as_tensor(c.K(), dtype=torch.float32, device=device) for c in cameras]
        self._content: dict[int, sos.ContentTargets] = {}

    def render(self, g: Gaussians, i: int, background: torch.Tensor, backend: str) -> torch.Tensor:
        """View i as [1, 3, H, W] (differentiable)."""
        cam = self.cameras[i]
        out = render(g, self.viewmats[i], self.Ks[i], cam.width, cam.height, background=background, backend=backend)
        return out.image.permute(2, 0, 1).unsqueeze(0)

    def content(self, i: int, build: Callable[[int], sos.ContentTargets]) -> sos.ContentTargets:
        """View i's content targets; when all views' would not fit the cache budget, they wait in host memory."""
        if i not in self._content:
            targets = build(i)
            if self.offload:
                targets = sos.ContentTargets(targets.sizes, [f.cpu().pin_memory() for f in targets.features])
            self._content[i] = targets
        targets = self._content[i]
        if targets.features[0].device != self.device:
            targets = sos.ContentTargets(targets.sizes, [f.to(self.device, non_blocking=True)
                                                         for f in targets.features])
        return targets


def _trainable(g: Gaussians, optimize: str) -> tuple[Gaussians, list[torch.Tensor]]:
    """Leaf tensors to optimise (DC colour; + higher SH bands; + opacity) and the Gaussians that use them."""
    dc = g.sh[:, :1].clone().requires_grad_(True)
    rest = g.sh[:, 1:].clone().requires_grad_(optimize != "color" and g.sh.shape[1] > 1)
    opacity = g.opacity_logits.clone().requires_grad_(optimize == "sh+opacity")
    params = [t for t in (dc, rest, opacity) if t.requires_grad]
    live = Gaussians(g.means, g.quats, g.log_scales, opacity, torch.cat([dc, rest], dim=1))
    return live, params


def _assemble(g: Gaussians, params: list[torch.Tensor], optimize: str) -> Gaussians:
    """The Gaussians as they stand now (rebuilt each step so autograd sees the leaves)."""
    dc = params[0]
    rest = params[1] if optimize != "color" and g.sh.shape[1] > 1 else g.sh[:, 1:].detach()
    opacity = params[-1] if optimize == "sh+opacity" else g.opacity_logits.detach()
    return Gaussians(g.means, g.quats, g.log_scales, opacity, torch.cat([dc, rest], dim=1))


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_write(path) as stream:
        torch.save(state, stream)


def _load_checkpoint(path: Path, settings: StylizeSettings, scene_count: int) -> dict | None:
    """A checkpoint to resume from, if one exists for the same scene size and settings."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    same = state.get("settings") == asdict(settings) and state.get("count") == scene_count
    if not same:
        raise InputError(f"{path}: checkpoint was made with other settings or another scene; "
                         "delete it or choose another output folder")
    return state


def stylize(
    scene: SplatData,
    style_image: torch.Tensor,
    cameras: list[Camera],
    settings: StylizeSettings | None = None,
    *,
    progress: ProgressCallback | None = None,
    preview: PreviewCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | Path | None = None,
) -> StylizeResult:
    """Stylize ``scene`` with ``style_image`` ([H, W, 3] in [0, 1]) seen from ``cameras``.

    ``progress`` gets a dict per iteration (iteration, loss terms, it/s, ETA); ``preview`` gets (iteration, image of
    view 0) every ``settings.preview_every`` iterations; ``should_stop`` is polled each iteration (cooperative
    cancellation: the result so far is returned with ``cancelled=True``); ``checkpoint_path`` saves every
    ``settings.checkpoint_every`` iterations and resumes from an existing checkpoint.
    """
    settings = settings or StylizeSettings()
    settings.validate()
    if not cameras:
        raise InputError("cameras: no cameras to render the scene from")
    t_start = time.perf_counter()
    device = resolve_device(settings.device)
    backend = pick_backend(device, settings.backend)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)

    original = Gaussians.from_splat_data(scene, device)
    live, params = _trainable(original, settings.optimize)
    optimizer = torch.optim.Adam(params, lr=settings.learning_rate)
    views = _Views([c.with_long_side(settings.resolution) for c in cameras], device,
                   _content_cache_bytes(device, settings))
    background = torch.tensor(settings.background, dtype=torch.float32, device=device)
    vgg = load_vgg19(settings.vgg_weights, device=device, preprocess=settings.vgg_preprocess)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    weights = sos.LossWeights(style_strength=settings.style_strength, content_weight=settings.content_weight)
    autocast = settings.bf16 and device.type == "cuda"
    style = style_image.permute(2, 0, 1).unsqueeze(0).to(device)

    style_targets: dict[tuple[int, int], sos.StyleTargets] = {}
    plans: dict[tuple[int, int], list] = {}

    def targets_for(h: int, w: int) -> tuple[sos.StyleTargets, list | None]:
        """Style statistics and memory plan per render size (computed once per run)."""
        if (h, w) not in style_targets:
            sizes = sos.pyramid_sizes(h, w, settings.min_short_side)
            plans[(h, w)] = _plan(sizes, device, settings) if device.type == "cuda" else None
            with torch.no_grad():
                style_targets[(h, w)] = sos.build_style_targets(vgg, style, sizes, plan=plans[(h, w)],
                                                                autocast_bf16=autocast)
        return style_targets[(h, w)], plans[(h, w)]

    def build_content(i: int) -> sos.ContentTargets:
        with torch.no_grad():
            image = views.render(original, i, background, backend)
            _, plan = targets_for(image.shape[2], image.shape[3])
            sizes = sos.pyramid_sizes(image.shape[2], image.shape[3], settings.min_short_side)
            return sos.build_content_targets(vgg, image, sizes, plan=plan, autocast_bf16=autocast)

    history: list[dict] = []
    start_iteration = 0
    checkpoint = Path(checkpoint_path) if checkpoint_path else None
    if checkpoint is not None:
        state = _load_checkpoint(checkpoint, settings, scene.count)
        if state is not None:
            with torch.no_grad():
                for p, saved in zip(params, state["params"]):
                    p.copy_(saved.to(device))
            optimizer.load_state_dict(state["optimizer"])
            rng.setstate(state["rng"])
            history = state["history"]
            start_iteration = state["iteration"]
    t_loop = time.perf_counter()
    cancelled = False
    for it in range(start_iteration, settings.iterations):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        i = rng.randrange(len(views.cameras))
        g = _assemble(live, params, settings.optimize)
        image = views.render(g, i, background, backend)
        style_t, plan = targets_for(image.shape[2], image.shape[3])
        content_t = views.content(i, build_content) if settings.content_weight > 0 else None
        grad, terms = sos.sos_gradient(vgg, image.detach(), style_t, content_t, weights, plan=plan,
                                       autocast_bf16=autocast)
        optimizer.zero_grad(set_to_none=True)
        image.backward(grad)
        optimizer.step()
        done = it + 1
        elapsed = time.perf_counter() - t_loop
        rate = (done - start_iteration) / max(elapsed, 1e-9)
        record = {"iteration": done, "view": i, **terms}
        history.append(record)
        if progress is not None:
            progress({"event": "progress", "iterations": settings.iterations, **record,
                      "it_per_s": rate, "eta_s": (settings.iterations - done) / max(rate, 1e-9)})
        if preview is not None and settings.preview_every and (done % settings.preview_every == 0 or
                                                                 done == settings.iterations):
            with torch.no_grad():
                preview(done, views.render(_assemble(live, params, settings.optimize), 0, background, backend)[0]
                        .permute(1, 2, 0))
        if checkpoint is not None and settings.checkpoint_every and done % settings.checkpoint_every == 0:
            _save_checkpoint(checkpoint, {"settings": asdict(settings), "count": scene.count, "iteration": done,
                                          "params": [p.detach().cpu() for p in params],
                                          "optimizer": optimizer.state_dict(), "rng": rng.getstate(),
                                          "history": history})
    final = _assemble(live, params, settings.optimize)
    t_end = time.perf_counter()
    steps = (history[-1]["iteration"] if history else 0) - start_iteration
    timings = {"total_s": t_end - t_start, "loop_s": t_end - t_loop, "it_per_s": steps / max(t_end - t_loop, 1e-9)}
    if device.type == "cuda":
        timings["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return StylizeResult(final.to_splat_data(scene), history, cancelled, str(device), backend, timings)


def _content_cache_bytes(device: torch.device, settings: StylizeSettings) -> float:
    """GPU memory that cached content targets may use: a share of the cap or of the free memory."""
    if device.type != "cuda":
        return float("inf")
    budget = planner.free_gpu_bytes(device)
    if settings.max_gpu_mem_gib is not None:
        budget = min(budget, settings.max_gpu_mem_gib * 2**30)
    return CONTENT_CACHE_SHARE * budget


def _plan(sizes: list[tuple[int, int]], device: torch.device, settings: StylizeSettings) -> list:
    cap = None if settings.max_gpu_mem_gib is None else int(settings.max_gpu_mem_gib * 2**30)
    return planner.plan_scales(sizes, free_bytes=planner.free_gpu_bytes(device), cap_bytes=cap, bf16=settings.bf16)


def render_views(scene: SplatData, cameras: list[Camera], *, resolution: int | None = None,
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0), device: str = "auto",
                 backend: str = "auto") -> list[torch.Tensor]:
    """Plain renders [H, W, 3] of a scene from cameras (previews, before/after images)."""
    dev = resolve_device(device)
    chosen = pick_backend(dev, backend)
    g = Gaussians.from_splat_data(scene, dev)
    cams = [c.with_long_side(resolution) if resolution else c for c in cameras]
    views = _Views(cams, dev)
    bg = torch.tensor(background, dtype=torch.float32, device=dev)
    with torch.no_grad():
        return [views.render(g, i, bg, chosen)[0].permute(1, 2, 0).cpu() for i in range(len(cams))]

