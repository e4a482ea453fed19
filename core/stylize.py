"""The stylization loop: optimise a scene's colours so its renders carry a painting's style at every scale.

One random view per iteration: render it (differentiable), ask ``core.sos.sos_gradient`` for dL/drender with
all scales stacked on the full-resolution image, back-propagate the rasterizer once, take an Adam step.
With ``views_per_step`` V, or N ranks under torch.distributed, the gradients of the step's V×N views are averaged
(``core.distributed`` says how the views are drawn).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core import distributed, planner, sos
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
    views_per_step: int = 1

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
            (self.views_per_step >= 1, f"views per step must be >= 1 (got {self.views_per_step})"),
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


class _Run:
    """One stylization's state: the scene being optimised, its views, loss targets, optimizer and history."""

    def __init__(self, scene: SplatData, style_image: torch.Tensor, cameras: list[Camera],
                 settings: StylizeSettings):
        self.settings = settings
        self.device = distributed.rank_device(resolve_device(settings.device))
        self.backend = pick_backend(self.device, settings.backend)
        torch.manual_seed(settings.seed)
        self.rng = random.Random(settings.seed)
        self.original = Gaussians.from_splat_data(scene, self.device)
        self.live, self.params = _trainable(self.original, settings.optimize)
        self.optimizer = torch.optim.Adam(self.params, lr=settings.learning_rate)
        self.views = _Views([c.with_long_side(settings.resolution) for c in cameras], self.device,
                            _content_cache_bytes(self.device, settings))
        self.background = torch.tensor(settings.background, dtype=torch.float32, device=self.device)
        self.vgg = load_vgg19(settings.vgg_weights, device=self.device, preprocess=settings.vgg_preprocess)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        self.weights = sos.LossWeights(style_strength=settings.style_strength,
                                       content_weight=settings.content_weight)
        self.autocast = settings.bf16 and self.device.type == "cuda"
        self.style = style_image.permute(2, 0, 1).unsqueeze(0).to(self.device)
        self._style_targets: dict[tuple[int, int], tuple[sos.StyleTargets, list | None]] = {}
        self.history: list[dict] = []
        self.start_iteration = 0

    def current(self) -> Gaussians:
        return _assemble(self.live, self.params, self.settings.optimize)

    def style_targets(self, h: int, w: int) -> tuple[sos.StyleTargets, list | None]:
        """Style statistics and memory plan per render size (computed once per run)."""
        if (h, w) not in self._style_targets:
            sizes = sos.pyramid_sizes(h, w, self.settings.min_short_side)
            plan = _plan(sizes, self.device, self.settings) if self.device.type == "cuda" else None
            with torch.no_grad():
                targets = sos.build_style_targets(self.vgg, self.style, sizes, plan=plan,
                                                  autocast_bf16=self.autocast)
            self._style_targets[(h, w)] = targets, plan
        return self._style_targets[(h, w)]

    def content_targets(self, i: int) -> sos.ContentTargets:
        """relu4_2 targets of view i: the original scene's render from that camera."""
        with torch.no_grad():
            image = self.views.render(self.original, i, self.background, self.backend)
            style, plan = self.style_targets(image.shape[2], image.shape[3])
            return sos.build_content_targets(self.vgg, image, style.sizes, plan=plan, autocast_bf16=self.autocast)

    def step(self) -> dict:
        """One iteration: this rank's random view(s), their gradients averaged over all the step's views, Adam."""
        drawn, mine = distributed.step_views(self.rng, len(self.views.cameras), self.settings.views_per_step)
        self.optimizer.zero_grad(set_to_none=True)
        per_view = [self.view_gradient(i) for i in mine]
        terms = distributed.average_gradients(self.params, {k: sum(t[k] for t in per_view) for k in per_view[0]},
                                              len(mine))
        self.optimizer.step()
        record = {"iteration": len(self.history) + 1, **({"view": drawn[0]} if len(drawn) == 1 else
                                                          {"views": drawn}), **terms}
        self.history.append(record)
        return record

    def view_gradient(self, i: int) -> dict[str, float]:
        """Render view i, SOS gradient of all scales, one rasterizer backward adding to .grad; the loss terms."""
        image = self.views.render(self.current(), i, self.background, self.backend)
        style, plan = self.style_targets(image.shape[2], image.shape[3])
        content = self.views.content(i, self.content_targets) if self.settings.content_weight > 0 else None
        grad, terms = sos.sos_gradient(self.vgg, image.detach(), style, content, self.weights, plan=plan,
                                       autocast_bf16=self.autocast)
        image.backward(grad)
        return terms

    def preview_image(self) -> torch.Tensor:
        with torch.no_grad():
            return self.views.render(self.current(), 0, self.background, self.backend)[0].permute(1, 2, 0)

    def checkpoint_state(self, scene_count: int) -> dict:
        return {"settings": asdict(self.settings), "count": scene_count, "iteration": len(self.history),
                "params": [p.detach().cpu() for p in self.params], "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.getstate(), "history": self.history}

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.params, state["params"]):
                p.copy_(saved.to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.setstate(state["rng"])
        self.history = state["history"]
        self.start_iteration = state["iteration"]


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
    ``settings.checkpoint_every`` iterations and resumes from an existing checkpoint. In a torch.distributed
    process group (core.distributed) every rank calls this with the same arguments: each takes its own views,
    cancellation stops all ranks at the same step, and only rank 0 gets progress and previews and writes checkpoints.
    """
    settings = settings or StylizeSettings()
    settings.validate()
    if not cameras:
        raise InputError("cameras: no cameras to render the scene from")
    t_start = time.perf_counter()
    run = _Run(scene, style_image, cameras, settings)
    checkpoint = Path(checkpoint_path) if checkpoint_path else None
    state = _load_checkpoint(checkpoint, settings, scene.count) if checkpoint is not None else None
    if state is not None:
        run.restore(state)
    distributed.broadcast_tensors(run.params)
    progress, preview = distributed.main_only(progress), distributed.main_only(preview)
    t_loop = time.perf_counter()
    cancelled = False
    for done in range(run.start_iteration + 1, settings.iterations + 1):
        if distributed.any_rank(should_stop is not None and should_stop()):
            cancelled = True
            break
        record = run.step()
        rate = (done - run.start_iteration) / max(time.perf_counter() - t_loop, 1e-9)
        if progress is not None:
            progress({"event": "progress", "iterations": settings.iterations, **record,
                      "it_per_s": rate, "eta_s": (settings.iterations - done) / max(rate, 1e-9)})
        if preview is not None and _every(done, settings.preview_every, settings.iterations):
            preview(done, run.preview_image())
        if (checkpoint is not None and settings.checkpoint_every and done % settings.checkpoint_every == 0
                and distributed.current().is_main):
            _save_checkpoint(checkpoint, run.checkpoint_state(scene.count))
    t_end = time.perf_counter()
    steps = len(run.history) - run.start_iteration
    timings = {"total_s": t_end - t_start, "loop_s": t_end - t_loop, "it_per_s": steps / max(t_end - t_loop, 1e-9)}
    if run.device.type == "cuda":
        timings["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(run.device) / 2**30
    return StylizeResult(run.current().to_splat_data(scene), run.history, cancelled, str(run.device), run.backend,
                         timings)


def _every(done: int, period: int, last: int) -> bool:
    """Whether iteration ``done`` is a multiple of ``period`` (0: never), or the last one."""
    return bool(period) and (done % period == 0 or done == last)


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

