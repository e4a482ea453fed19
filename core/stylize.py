"""The stylization loop: optimise a scene's colours so its renders carry a painting's style at every scale.

One random view per iteration: render it (differentiable), ask ``core.sos.sos_gradient`` for dL/drender with
all scales stacked on the full-resolution image, back-propagate the rasterizer once, take an Adam step.
With ``views_per_step`` V, or N ranks under torch.distributed, the gradients of the step's V×N views are averaged
(``core.distributed`` says how the views are drawn).
"""

from __future__ import annotations

import math
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core import densify, distributed, planner, regions, sos
from core.cameras import Camera
from core.checks import divergence_hint
from core.colour_transfer import ColourMoments, match_colours
from core.errors import InputError
from core.gaussians import Gaussians
from core.render import RenderOutput, pick_backend, render
from core.vgg import load_vgg19
from interchange.atomic import atomic_write
from interchange.ply import SplatData
from interchange.settings import BY_NAME, SettingsError, StylizeSettings

OPTIMIZE_CHOICES = BY_NAME["optimize"].values
# The scene's per-Gaussian tensors, by name: all [N, ...] with the same N, so a step that changes the number of
# Gaussians replaces them together (and the optimizer state of the trained ones).
PARAMETERS = ("means", "quats", "log_scales", "opacity", "sh_dc", "sh_rest")
TRAINED = {"color": ("sh_dc",), "sh": ("sh_dc", "sh_rest"), "sh+opacity": ("sh_dc", "sh_rest", "opacity")}
GEOMETRY = ("means", "log_scales")
# --geometry-lr: positions learn at that rate times the cameras' extent, log-scales at 30 times it (3DGS's ratio of
# its scaling and position learning rates, 5e-3 / 1.6e-4).
GEOMETRY_SCALE_LR_RATIO = 30.0
DENSIFY_SETTINGS = ("detail", "densify_every", "densify_threshold", "densify_dropout", "geometry_lr")
CHECKPOINT_FORMAT = 2
# The start-up survey of the capture (colour preservation's colours, auto statistics' coverage) renders the views
# with at most this long side.
COLOUR_SAMPLE_SIDE = 512
# statistics="auto" takes whole-frame statistics when the scene covers at least this share of its views on average:
# then the background is the minority and matching the frame's statistics does not push the scene to extremes
# (flowers' orbit: 0.73, whole-frame distance 0.18 of the capture's against 0.26 with object statistics), and
# object statistics below it (guitar: 0.08, whose object moved 13.5x further from the painting with frame
# statistics). docs/quality.md.
AUTO_FRAME_COVERAGE = 0.5
# relu4_2 targets: 512 float32 channels at 1/8 resolution over a pyramid adding a third: ≈ 43 bytes per pixel.
CONTENT_BYTES_PER_PX = 512 * 4 / 64 * 4 / 3
# Share of the GPU memory budget that cached content targets may take before they move to host memory.
CONTENT_CACHE_SHARE = 0.25

ProgressCallback = Callable[[dict], None]
PreviewCallback = Callable[[int, torch.Tensor], None]


def check_settings(settings: StylizeSettings) -> None:
    """Refuse settings that cannot work: InputError('settings: <name> <problem>')."""
    try:
        settings.validate()
    except SettingsError as error:
        raise InputError(str(error)) from None


@dataclass
class StylizeResult:
    """What ``stylize()`` returns.

    Attributes:
        splat: the stylized scene: the input's PLY table with new colours (SH) and, for "sh+opacity", opacities;
            every other property byte-for-byte as read.
        history: one record per iteration done (resumed runs include the checkpoint's): ``iteration`` (1-based),
            ``view`` (camera index), and the loss terms averaged over the pyramid's scales: ``gram``, ``mean``,
            ``std`` (style statistics, weighted), ``style`` (their sum), ``content``, ``total``.
        cancelled: True when ``should_stop`` ended the run early (``splat`` holds the colours so far).
        device: the torch device that ran it ("cuda", "mps", "cpu").
        backend: the rasterizer ("gsplat" or "torch").
        timings: ``total_s`` (the call), ``loop_s`` (the iterations), ``it_per_s`` (iterations done in this call
            per second of the loop), ``densify_s`` (splitting and pruning), and on CUDA ``peak_gpu_mem_gib``.
        densify: style-driven densification (``settings.detail``): ``enabled``, ``budget`` (most Gaussians
            allowed), ``gaussians_before`` / ``gaussians_after``, ``seconds``, ``rounds`` (one record per split:
            iteration, before, after, candidates, split, pruned, seconds) and the ``settings`` that shaped it.
        statistics: the style statistics the run used, "object" or "frame" (what ``settings.statistics`` =
            "auto" chose).
    """

    splat: SplatData
    history: list[dict]
    cancelled: bool
    device: str
    backend: str
    timings: dict = field(default_factory=dict)
    densify: dict | None = None
    statistics: str = ""


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
        return self.output(g, i, background, backend).image.permute(2, 0, 1).unsqueeze(0)

    def render_with_alpha(self, g: Gaussians, i: int, background: torch.Tensor,
                          backend: str) -> tuple[torch.Tensor, torch.Tensor]:
        """View i as [1, 3, H, W] (differentiable) and its coverage [1, 1, H, W]."""
        return _image_and_alpha(self.output(g, i, background, backend))

    def output(self, g: Gaussians, i: int, background: torch.Tensor, backend: str,
               absgrad: bool = False) -> RenderOutput:
        """View i's whole render output (with what densification reads when ``absgrad``)."""
        cam = self.cameras[i]
        return render(g, self.viewmats[i], self.Ks[i], cam.width, cam.height, background=background, backend=backend,
                      absgrad=absgrad)

    def culling_cameras(self) -> list[tuple[torch.Tensor, torch.Tensor, int, int]]:
        """(viewmat, K, width, height) of every view, for densification's pruning."""
        return [(v, k, c.width, c.height) for v, k, c in zip(self.viewmats, self.Ks, self.cameras)]

    def content(self, i: int, build: Callable[[int], sos.ContentTargets]) -> sos.ContentTargets:
        """View i's content targets; when all views' would not fit the cache budget, they wait in host memory."""
        if i not in self._content:
            targets = build(i)
            if self.offload:
                targets = replace(targets, features=[f.cpu().pin_memory() for f in targets.features])
            self._content[i] = targets
        targets = self._content[i]
        if targets.features[0].device != self.device:
            targets = replace(targets, features=[f.to(self.device, non_blocking=True) for f in targets.features])
        return targets


def _image_and_alpha(out: RenderOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """A render's image [1, 3, H, W] and coverage [1, 1, H, W] (NCHW, as the loss takes them)."""
    return out.image.permute(2, 0, 1).unsqueeze(0), out.alpha.permute(2, 0, 1).unsqueeze(0)


def parameters_of(g: Gaussians) -> dict[str, torch.Tensor]:
    """The scene's per-Gaussian tensors by name (SH split into the DC colour and the higher bands)."""
    return {"means": g.means, "quats": g.quats, "log_scales": g.log_scales, "opacity": g.opacity_logits,
            "sh_dc": g.sh[:, :1], "sh_rest": g.sh[:, 1:]}


def gaussians_of(params: dict[str, torch.Tensor]) -> Gaussians:
    """The Gaussians the named tensors stand for (rebuilt each step so autograd sees the leaves)."""
    return Gaussians(params["means"], params["quats"], params["log_scales"], params["opacity"],
                     torch.cat([params["sh_dc"], params["sh_rest"]], dim=1))


def trainable(params: dict[str, torch.Tensor], optimize: str, geometry: bool = False) -> dict[str, torch.Tensor]:
    """The tensors as leaves: those ``optimize`` trains (and with ``geometry`` positions and log-scales) are
    copies that require grad (an empty tensor, like sh_rest at SH degree 0, has nothing to train); the others are
    shared, detached."""
    trained = TRAINED[optimize] + (GEOMETRY if geometry else ())
    return {name: t.detach().clone().requires_grad_(True) if name in trained and t.numel() else t.detach()
            for name, t in params.items()}


def make_optimizer(params: dict[str, torch.Tensor], learning_rate: float,
                   rates: dict[str, float] | None = None) -> torch.optim.Adam:
    """Adam with one parameter group per trained tensor, named after it; ``rates`` overrides some groups' rate."""
    rates = rates or {}
    groups = [{"params": [t], "name": name, "lr": rates.get(name, learning_rate)}
              for name, t in params.items() if t.requires_grad]
    return torch.optim.Adam(groups, lr=learning_rate)


def geometry_rates(settings: StylizeSettings, cameras: list[Camera]) -> dict[str, float]:
    """Learning rates of positions (``geometry_lr`` × the cameras' extent: 1.1 × the largest distance of a camera
    centre from their mean, as 3DGS scales its position rate) and log-scales (× ``GEOMETRY_SCALE_LR_RATIO``)."""
    centres = torch.as_tensor(np.stack([c.position() for c in cameras]), dtype=torch.float64)
    extent = 1.1 * float((centres - centres.mean(0)).norm(dim=1).max().clamp_min(1e-6))
    return {"means": settings.geometry_lr * extent, "log_scales": settings.geometry_lr * GEOMETRY_SCALE_LR_RATIO}


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_write(path) as stream:
        torch.save(state, stream)


def _load_checkpoint(path: Path, settings: StylizeSettings, scene_count: int) -> dict | None:
    """A checkpoint to resume from, if one exists for the same scene size and settings.

    Read with ``weights_only=True``: tensors and plain data only, so a crafted file cannot run code; anything
    else (a foreign pickle, a truncated or corrupt file) is refused in one line.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: not a checkpoint of this program (it holds objects other than tensors and "
                         "plain data; refused unread); delete it or choose another output folder") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: unreadable checkpoint ({reason}); delete it or choose another output "
                         "folder") from None
    if not _is_checkpoint(state):
        raise InputError(f"{path}: not a checkpoint of this program (format {CHECKPOINT_FORMAT}); delete it or "
                         "choose another output folder")
    if state["settings"] != asdict(settings) or state["count"] != scene_count:
        raise InputError(f"{path}: checkpoint was made with other settings or another scene; "
                         "delete it or choose another output folder")
    return state


def _is_checkpoint(state: object) -> bool:
    """Whether a loaded object has this version's checkpoint layout (all parameters, one Gaussian count)."""
    keys = {"format", "settings", "count", "iteration", "params", "optimizer", "rng", "history"}
    if not isinstance(state, dict) or not keys <= set(state) or state["format"] != CHECKPOINT_FORMAT:
        return False
    params = state["params"]
    return (isinstance(params, dict) and set(params) == set(PARAMETERS)
            and all(isinstance(t, torch.Tensor) for t in params.values())
            and len({t.shape[0] for t in params.values()}) == 1)


class _Survey:
    """The capture seen from every view at start-up: its mean coverage (alpha) over the views, and the colour
    moments of its pixels over the whole frame ("frame") and weighted by what the scene, or its region, covers
    ("object")."""

    def __init__(self) -> None:
        self.alphas: list[float] = []
        self.colours = {"frame": ColourMoments(), "object": ColourMoments()}

    def add(self, pixels: torch.Tensor, alpha: torch.Tensor, selected: torch.Tensor) -> None:
        """One view: its pixels [H, W, 3], alpha and selected coverage [1, 1, H, W]."""
        self.alphas.append(float(alpha.mean()))
        self.colours["frame"].add(pixels)
        self.colours["object"].add(pixels, selected)

    @property
    def coverage(self) -> float:
        return sum(self.alphas) / len(self.alphas)


class _Run:
    """One stylization's state: the scene being optimised, its views, loss targets, optimizer and history."""

    def __init__(self, scene: SplatData, style_image: torch.Tensor, cameras: list[Camera],
                 settings: StylizeSettings, region: torch.Tensor | None = None):
        self.settings = settings
        self.device = distributed.rank_device(resolve_device(settings.device))
        self.backend = pick_backend(self.device, settings.backend)
        torch.manual_seed(settings.seed)
        self.rng = random.Random(settings.seed)
        self.original = Gaussians.from_splat_data(scene, self.device)
        self.rates = geometry_rates(settings, cameras)
        self.params = trainable(parameters_of(self.original), settings.optimize, settings.moves_geometry)
        self.optimizer = make_optimizer(self.params, settings.learning_rate, self.rates)
        self.views = _Views([c.with_long_side(settings.resolution) for c in cameras], self.device,
                            _content_cache_bytes(self.device, settings))
        self.densifier = densify.Densifier(
            scene.count, detail=settings.detail, every=settings.densify_every, iterations=settings.iterations,
            threshold=settings.densify_threshold, dropout=settings.densify_dropout, seed=settings.seed,
            device=self.device, memory_bytes=_memory_budget(self.device, settings))
        self.background = torch.tensor(settings.background, dtype=torch.float32, device=self.device)
        self.vgg = load_vgg19(settings.vgg_weights, device=self.device, preprocess=settings.vgg_preprocess)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        self.weights = sos.LossWeights(style_strength=settings.style_strength,
                                       content_weight=settings.content_weight)
        self.autocast = settings.bf16 and self.device.type == "cuda"
        self.region_input = region
        self.region, self.base = region, self.original  # per current row: see follow_origin
        survey = self.survey(cameras) if settings.preserve_colors or self.needs_coverage() else None
        self.statistics = self.resolve_statistics(survey)
        if settings.preserve_colors:
            style_image = match_colours(style_image, *survey.colours[self.statistics].mean_covariance())
        self.style = style_image.permute(2, 0, 1).unsqueeze(0).to(self.device)
        self._style_targets: dict[tuple[int, int], tuple[sos.StyleTargets, list | None]] = {}
        self.history: list[dict] = []
        self.start_iteration = 0

    def current(self) -> Gaussians:
        g = gaussians_of(self.params)
        return g if self.region is None else regions.blend(self.base, g, self.region)

    def follow_origin(self) -> None:
        """After a split or a restore, with a region: its weights and the original values per current row (a
        child takes its parent's)."""
        if self.region_input is None:
            return
        rows, o = self.densifier.origin, self.original
        self.region = self.region_input[rows]
        self.base = Gaussians(o.means[rows], o.quats[rows], o.log_scales[rows], o.opacity_logits[rows], o.sh[rows])

    def needs_coverage(self) -> bool:
        """Whether the statistics depend on the scene's coverage: "auto" without a region."""
        return self.settings.statistics == "auto" and self.region is None

    def resolve_statistics(self, survey: _Survey | None) -> str:
        """"object" or "frame": the setting, or for "auto" the survey's mean coverage against AUTO_FRAME_COVERAGE
        (a region is always matched over its own coverage: "object")."""
        if self.settings.statistics != "auto":
            return self.settings.statistics
        if not self.needs_coverage():
            return "object"
        return "frame" if survey.coverage >= AUTO_FRAME_COVERAGE else "object"

    def coverage(self, g: Gaussians, i: int, alpha: torch.Tensor) -> sos.Coverage | None:
        """Object statistics' weights for view i rendered from `g` (None for frame statistics)."""
        if self.statistics == "frame":
            return None
        return sos.Coverage(self.selected(self.views, g, i, alpha), alpha.detach())

    def selected(self, views: _Views, g: Gaussians, i: int, alpha: torch.Tensor) -> torch.Tensor:
        """The coverage [1, 1, H, W] of the region's Gaussians in view i (the alpha when there is no region)."""
        if self.region is None:
            return alpha.detach()
        with torch.no_grad():
            black = torch.zeros_like(self.background)
            return views.render(regions.coverage_colours(g, self.region), i, black, self.backend)[:, :1]

    def survey(self, cameras: list[Camera]) -> _Survey:
        """One pass over the unmodified scene's views, rendered at most COLOUR_SAMPLE_SIDE px: what auto statistics
        and colour preservation need, so neither renders the views again."""
        side = min(self.settings.resolution, COLOUR_SAMPLE_SIDE)
        views = _Views([c.with_long_side(side) for c in cameras], self.device)
        survey = _Survey()
        with torch.no_grad():
            for i in range(len(cameras)):
                image, alpha = views.render_with_alpha(self.original, i, self.background, self.backend)
                survey.add(image[0].permute(1, 2, 0), alpha, self.selected(views, self.original, i, alpha))
        return survey

    def style_targets(self, h: int, w: int) -> tuple[sos.StyleTargets, list | None]:
        """Style statistics and memory plan per render size (computed once per run)."""
        if (h, w) not in self._style_targets:
            sizes = sos.pyramid_sizes(h, w, self.settings.min_short_side)
            reserve = densify.reserved_bytes(self.densifier.input_count, self.densifier.limit)
            plan = _plan(sizes, self.device, self.settings, reserve) if self.device.type == "cuda" else None
            with torch.no_grad():
                targets = sos.build_style_targets(self.vgg, self.style, sizes, stroke_scale=self.settings.stroke_scale,
                                                  plan=plan, autocast_bf16=self.autocast)
            self._style_targets[(h, w)] = targets, plan
        return self._style_targets[(h, w)]

    def content_targets(self, i: int) -> sos.ContentTargets:
        """Targets of view i from the original scene's render from that camera: relu4_2 features, and the units
        of the relative balance."""
        with torch.no_grad():
            image, alpha = self.views.render_with_alpha(self.original, i, self.background, self.backend)
            style, plan = self.style_targets(image.shape[2], image.shape[3])
            relative = self.settings.balance == "relative"
            return sos.build_content_targets(self.vgg, image, style.sizes, style=style if relative else None,
                                             coverage=self.coverage(self.original, i, alpha), plan=plan,
                                             autocast_bf16=self.autocast)

    def step(self) -> dict:
        """One iteration: this rank's random view(s), their gradients averaged over all the step's views (and
        ranks, core.distributed), one Adam step; every ``densify_every`` iterations, densification."""
        drawn, mine = distributed.step_views(self.rng, len(self.views.cameras), self.settings.views_per_step)
        self.optimizer.zero_grad(set_to_none=True)
        per_view = [self.view_gradient(i) for i in mine]
        trained = [t for t in self.params.values() if t.requires_grad]
        terms = distributed.average_gradients(trained, {k: sum(t[k] for t in per_view) for k in per_view[0]},
                                              len(mine))
        self.optimizer.step()
        record = {"iteration": len(self.history) + 1, **({"view": drawn[0]} if len(drawn) == 1 else
                                                          {"views": drawn}), **terms}
        if self.densifier.due(record["iteration"]):
            self.densifier.stats.pooled(distributed.pool_in_place)
            eligible = None if self.region is None else self.region > 0  # a region's unselected rows stay as they are
            self.params, split = self.densifier.split(record["iteration"], self.params, self.optimizer,
                                                      self.views.culling_cameras(), eligible)
            self.follow_origin()
            record["densify"] = asdict(split)
        record["gaussians"] = self.densifier.count
        self.history.append(record)
        return record

    def view_gradient(self, i: int) -> dict[str, float]:
        """Render view i, SOS gradient of all scales, one rasterizer backward adding to .grad; the loss terms."""
        g = self.current()
        out = self.views.output(g, i, self.background, self.backend, absgrad=self.densifier.enabled)
        image, alpha = _image_and_alpha(out)
        style, plan = self.style_targets(image.shape[2], image.shape[3])
        relative = self.settings.balance == "relative"
        content = self.views.content(i, self.content_targets) if self.settings.content_weight > 0 or relative else None
        weights = sos.relative_weights(self.weights, style, content) if relative else self.weights
        grad, terms = sos.sos_gradient(self.vgg, image.detach(), style, content, weights,
                                       coverage=self.coverage(g, i, alpha), plan=plan, autocast_bf16=self.autocast)
        if image.requires_grad:  # else no Gaussian shows in this view: nothing to update
            image.backward(grad)
            self.densifier.observe(out)
        return terms

    def preview_image(self) -> torch.Tensor:
        with torch.no_grad():
            return self.views.render(self.current(), 0, self.background, self.backend)[0].permute(1, 2, 0)

    def checkpoint_state(self, scene_count: int) -> dict:
        """Everything a resumed run needs, in tensors and plain data (checkpoints load with weights_only)."""
        return {"format": CHECKPOINT_FORMAT, "settings": asdict(self.settings), "count": scene_count,
                "iteration": len(self.history), "params": {name: t.detach().cpu() for name, t in self.params.items()},
                "optimizer": self.optimizer.state_dict(), "densify": self.densifier.state_dict(),
                "rng": self.rng.getstate(), "history": self.history}

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint: its tensors (whatever their count), optimizer state, densification and
        random states, history."""
        saved = {name: t.to(self.device, torch.float32) for name, t in state["params"].items()}
        self.params = trainable(saved, self.settings.optimize, self.settings.moves_geometry)
        self.optimizer = make_optimizer(self.params, self.settings.learning_rate, self.rates)
        self.optimizer.load_state_dict(state["optimizer"])
        self.densifier.load_state_dict(state["densify"])
        self.follow_origin()
        if not distributed.current().is_main:  # the checkpoint's statistics are every rank's, pooled: count once
            self.densifier.stats.clear_sums()
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
    region: torch.Tensor | np.ndarray | None = None,
) -> StylizeResult:
    """Stylize a 3DGS scene with a painting: optimise its colours so its renders carry the painting's style at
    every scale (SGSST's multi-scale SOS loss, Galerne et al. CVPR 2025).

    Each iteration renders one random view (differentiably), takes the SOS loss's gradient with respect to that
    render over all pyramid scales, back-propagates it through the rasterizer once and takes an Adam step on the
    trained tensors (``settings.optimize``: the DC colours; + the higher SH bands; + opacities). With
    ``settings.detail`` > 0, every ``settings.densify_every`` iterations the Gaussians too coarse for the strokes
    the loss asks for are split in two (``core.densify``), so the result can have more Gaussians than ``scene``.
    In a torch.distributed process group (``core.distributed``) every rank calls this with the same arguments:
    each takes its own view(s) per step, gradients are averaged over all of the step's views, cancellation stops
    all ranks at the same step, and only rank 0 gets progress and previews and writes checkpoints.

    Args:
        scene: the Gaussians (``core.read_ply``); it is not modified.
        style_image: the painting, ``[H, W, 3]`` float32 RGB in [0, 1] (``core.load_image``); any size.
        cameras: the views to stylize from (``core.load_cameras`` or ``core.orbit_cameras``); each is rendered with
            its long side at ``settings.resolution`` pixels. At least one.
        settings: a ``StylizeSettings`` (default: all defaults); validated first (``InputError`` names the bad
            setting).
        progress: called after every iteration with a dict: ``event`` ("progress"), ``iterations`` (the total),
            the iteration's history record (below), ``it_per_s``, ``eta_s`` (seconds left) and ``densify_s`` (time
            spent densifying so far).
        preview: called every ``settings.preview_every`` iterations (and after the last) with
            ``(iteration, image)``, the current render of ``cameras[0]`` as ``[H, W, 3]`` in [0, 1].
        should_stop: polled before every iteration; returning True ends the run cooperatively and returns the
            result so far with ``cancelled=True``.
        checkpoint_path: where a checkpoint is saved every ``settings.checkpoint_every`` iterations; if the file
            exists when the call starts, the run resumes from it (same settings and scene size, else
            ``InputError``) and ends exactly as an uninterrupted run would.
        region: ``[N]`` weights in [0, 1], how much of its stylized change each Gaussian takes (``core.regions``;
            0 keeps a Gaussian as it is, though it still counts as content); None: the whole scene.

    Returns:
        A ``StylizeResult``: ``splat`` (the stylized scene, the input's PLY table with new SH colours and, for
        "sh+opacity", opacities; with ``detail``, split rows carry their parent's every property, with new
        positions and scales), ``history`` (one record per iteration: ``iteration``, ``view``, the loss terms
        averaged over scales ``gram``, ``mean``, ``std``, ``style``, ``content``, ``total``, ``gaussians`` (the count
        after the iteration) and, where a split happened, ``densify`` (that round's record)), ``cancelled``,
        ``device``, ``backend`` ("gsplat" or "torch"), ``timings`` (``total_s``, ``loop_s``, ``it_per_s``,
        ``densify_s``, and on CUDA ``peak_gpu_mem_gib``) and ``densify`` (see ``StylizeResult``).

    Raises:
        InputError: unusable settings, no cameras, an unavailable device or backend, a checkpoint that is not
            this run's.

    Example:
        >>> import core
        >>> scene, style = core.read_ply("point_cloud.ply"), core.load_image("painting.jpg")
        >>> cameras = core.load_cameras("cameras.json")
        >>> result = core.stylize(scene, style, cameras, core.StylizeSettings(iterations=300, resolution=1024))
        >>> result.history[-1]["style"] < result.history[0]["style"]
        True
        >>> core.write_ply("stylized.ply", result.splat)
    """
    settings = settings or StylizeSettings()
    check_settings(settings)
    if not cameras:
        raise InputError("cameras: no cameras to render the scene from")
    t_start = time.perf_counter()
    run = _Run(scene, style_image, cameras, settings, _region_tensor(region, scene.count, settings))
    checkpoint = Path(checkpoint_path) if checkpoint_path else None
    state = _load_checkpoint(checkpoint, settings, scene.count) if checkpoint is not None else None
    if state is not None:
        run.restore(state)
    distributed.broadcast_tensors(run.params.values())
    progress, preview = distributed.main_only(progress), distributed.main_only(preview)
    t_loop = time.perf_counter()
    cancelled = False
    for done in range(run.start_iteration + 1, settings.iterations + 1):
        if distributed.any_rank(should_stop is not None and should_stop()):
            cancelled = True
            break
        record = run.step()
        _check_finite(run, record)
        rate = (done - run.start_iteration) / max(time.perf_counter() - t_loop, 1e-9)
        if progress is not None:
            progress({"event": "progress", "iterations": settings.iterations, **record, "it_per_s": rate,
                      "eta_s": (settings.iterations - done) / max(rate, 1e-9), "densify_s": run.densifier.seconds})
        if preview is not None and _every(done, settings.preview_every, settings.iterations):
            preview(done, run.preview_image())
        if checkpoint is not None and settings.checkpoint_every and done % settings.checkpoint_every == 0:
            run.densifier.stats.pooled(distributed.pool_in_place)
            if distributed.current().is_main:
                _save_checkpoint(checkpoint, run.checkpoint_state(scene.count))
            else:
                run.densifier.stats.clear_sums()
    t_end = time.perf_counter()
    steps = len(run.history) - run.start_iteration
    if steps and not cancelled:
        _check_something_visible(run)
    timings = {"total_s": t_end - t_start, "loop_s": t_end - t_loop, "it_per_s": steps / max(t_end - t_loop, 1e-9),
               "densify_s": run.densifier.seconds}
    if run.device.type == "cuda":
        timings["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(run.device) / 2**30
    geometry_changed = run.densifier.enabled or settings.moves_geometry
    final = run.current()
    geometry = {"means": final.means, "quats": final.quats, "log_scales": final.log_scales}
    template = densify.splat_data(scene, run.densifier.origin, geometry) if geometry_changed else scene
    report = {**run.densifier.report(), "settings": {name: getattr(settings, name) for name in DENSIFY_SETTINGS}}
    return StylizeResult(final.to_splat_data(template), run.history, cancelled, str(run.device), run.backend,
                         timings, report, run.statistics)


def _region_tensor(region: torch.Tensor | np.ndarray | None, count: int,
                   settings: StylizeSettings) -> torch.Tensor | None:
    """The region as a float32 tensor [count] on the run's device; its length and range checked."""
    if region is None:
        return None
    values = torch.as_tensor(region, dtype=torch.float32).reshape(-1)
    if values.shape[0] != count or not bool(((values >= 0) & (values <= 1)).all()):
        raise InputError(f"region: need {count} values in 0..1 (one per Gaussian), got {values.shape[0]}")
    return values.to(resolve_device(settings.device))


def _check_finite(run: _Run, record: dict) -> None:
    """Stop a diverged run at once, before a preview or checkpoint of it is written, naming the likely cause."""
    loss_finite = all(math.isfinite(value) for value in record.values() if isinstance(value, float))
    if loss_finite and all(bool(torch.isfinite(p).all()) for p in run.params.values()):
        return
    what = "the scene's colours" if loss_finite else "the loss"
    raise InputError(f"settings: the optimisation diverged at iteration {record['iteration']} ({what} became NaN or "
                     f"infinite); {divergence_hint(run.settings)}")


def _check_something_visible(run: _Run) -> None:
    """A run in which no Gaussian showed in any view it used stylized nothing: say so instead of returning a copy.

    Cheap when colours changed; else the views used are rendered once more to tell "nothing visible" from a
    legitimately zero gradient (a painting equal to the renders).
    """
    live = run.current()
    if not (torch.equal(live.sh, run.original.sh) and torch.equal(live.opacity_logits, run.original.opacity_logits)):
        return
    used = sorted({record["view"] for record in run.history[run.start_iteration:]})
    with torch.no_grad():
        for i in used:
            camera = run.views.cameras[i]
            alpha = render(run.original, run.views.viewmats[i], run.views.Ks[i], camera.width, camera.height,
                           backend=run.backend).alpha
            if bool(alpha.max() > 0):
                return
    raise InputError(f"cameras: nothing was stylized: no Gaussian is visible in the views used ({len(used)} of "
                     f"{len(run.views.cameras)}); check that the cameras look at the scene")


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


def _memory_budget(device: torch.device, settings: StylizeSettings) -> float | None:
    """GPU memory the run may use, min(cap, free), that densification's budget is measured against (None off CUDA)."""
    if device.type != "cuda":
        return None
    budget = planner.free_gpu_bytes(device)
    return budget if settings.max_gpu_mem_gib is None else min(budget, settings.max_gpu_mem_gib * 2**30)


def _plan(sizes: list[tuple[int, int]], device: torch.device, settings: StylizeSettings, reserve: int = 0) -> list:
    """The loss's memory plan, with ``reserve`` bytes kept for the Gaussians densification may add."""
    cap = None if settings.max_gpu_mem_gib is None else int(settings.max_gpu_mem_gib * 2**30) - reserve
    return planner.plan_scales(sizes, free_bytes=planner.free_gpu_bytes(device) - reserve, cap_bytes=cap,
                               bf16=settings.bf16)


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

