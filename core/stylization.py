"""The stylization loop: optimise a scene's colours so its renders carry a painting's style at every scale.

One random view per iteration: render it (differentiable), ask the ``Objective`` for dL/drender with all scales
stacked on the full-resolution image, back-propagate the rasterizer once, take an Adam step. With
``views_per_step`` V, or N ranks under torch.distributed, the gradients of the step's V×N views are averaged
(``core.distributed`` says how the views are drawn). The parts: ``core.views`` (cameras, per-view targets, the
start-up survey), ``core.objective`` (the loss), ``core.trained_scene`` (tensors, optimizer, region, densifier),
``core.checkpoint`` (saving and resuming).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from core import checkpoint, densify, distributed
from core.cameras import Camera
from core.checks import check_finite, check_settings, check_something_visible
from core.confinement import GeometryGuard
from core.device import memory_budget, resolve_device
from core.errors import InputError
from core.gaussians import Gaussians
from core.objective import Objective, survey_decisions
from core.preview import preview_colours, preview_scene
from core.regions import region_tensor
from core.renderer import pick_backend
from core.trained_scene import TrainedScene, geometry_rates
from core.vgg import load_vgg19
from core.views import CONTENT_BYTES_PER_PX, EDGE_BYTES_PER_PX, Views, image_and_alpha, survey_cameras
from interchange.ply import SplatData
from interchange.protocol import progress_event
from interchange.settings import START_FROM_PREVIEW, StylizeSettings

ProgressCallback = Callable[[dict], None]
PreviewCallback = Callable[[int, torch.Tensor], None]


@dataclass
class StylizeResult:
    """What ``stylize()`` returns (its docstring's Returns says what each field holds): the stylized scene
    (``splat``), one ``history`` record per iteration, whether it was ``cancelled``, the torch ``device`` and the
    rasterizer (``backend``) that ran it, ``timings``, the ``densify`` report, the ``statistics`` used and the
    input row of each row (``origin``; left out, row i is input row i)."""

    splat: SplatData
    history: list[dict]
    cancelled: bool
    device: str
    backend: str
    timings: dict = field(default_factory=dict)
    densify: dict | None = None
    statistics: str = ""
    origin: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = np.arange(self.splat.count, dtype=np.int32)


class Stylization:
    """One stylization in progress: ``step()`` one iteration, ``save()`` / ``restore()`` a checkpoint of it,
    ``result()`` the stylized scene."""

    def __init__(self, scene: SplatData, painting: torch.Tensor, cameras: list[Camera], settings: StylizeSettings,
                 region: torch.Tensor | None = None):
        self.settings = settings
        device = distributed.rank_device(resolve_device(settings.device))
        torch.manual_seed(settings.seed)
        self.rng = random.Random(settings.seed)
        original = Gaussians.from_splat_data(scene, device)
        background = torch.tensor(settings.background, dtype=torch.float32, device=device)
        budget = memory_budget(device, settings.max_gpu_mem_gib)
        backend = pick_backend(device, settings.backend)
        target_bytes = CONTENT_BYTES_PER_PX + (EDGE_BYTES_PER_PX if settings.edges > 0 else 0)
        self.views = Views([c.with_long_side(settings.resolution) for c in cameras], device, backend, background,
                           budget, target_bytes)
        guard = GeometryGuard(original, self.views) if settings.moves_geometry else None
        self.scene = TrainedScene(original, settings, geometry_rates(settings, cameras), budget, region, guard)
        surveyed = Views(survey_cameras(cameras, settings.resolution), device, backend, background)
        self.objective = self._objective(load_vgg19(settings.vgg_weights, device=device,
                                                    preprocess=settings.vgg_preprocess), painting, surveyed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        self.history: list[dict] = []
        self.start_iteration = 0

    def _objective(self, vgg: torch.nn.Module, painting: torch.Tensor, surveyed: Views) -> Objective:
        """The loss, with the statistics and painting a survey of the capture (``surveyed``) decides; with
        ``init`` "preview" the colours start from the closed-form preview (core.preview)."""
        start = survey_decisions(self.settings, painting, self.scene.original, surveyed, self.scene.region)
        if self.settings.init == START_FROM_PREVIEW and start.moments is not None:
            self.scene.start_from(*preview_colours(self.scene.original, start.painting, start.moments))
        reserve = densify.reserved_bytes(self.scene.densifier.input_count, self.scene.densifier.limit)
        return Objective(vgg, start.painting.permute(2, 0, 1).unsqueeze(0).to(self.device), self.settings,
                         start.statistics, reserve)

    @property
    def device(self) -> torch.device:
        return self.views.device

    def step(self) -> dict:
        """One iteration: this rank's random view(s), their gradients averaged over all the step's views (and
        ranks, core.distributed), one Adam step; every ``densify_every`` iterations, densification. Returns the
        iteration's history record."""
        drawn, mine = distributed.step_views(self.rng, len(self.views), self.settings.views_per_step)
        self.scene.optimizer.zero_grad(set_to_none=True)
        per_view = [self._view_gradient(i) for i in mine]
        terms = distributed.average_gradients(self.scene.trained(), {k: sum(t[k] for t in per_view)
                                                                     for k in per_view[0]}, len(mine))
        self.scene.step()
        record = {"iteration": len(self.history) + 1,
                  **({"view": drawn[0]} if len(drawn) == 1 else {"views": drawn}), **terms}
        densifier = self.scene.densifier
        if densifier.due(record["iteration"]):
            self.scene.guard_geometry(record["iteration"])
            densifier.stats.pooled(distributed.pool_in_place)
            record["densify"] = self.scene.split(record["iteration"], self.views.culling_cameras())
        record["gaussians"] = self.scene.count
        self.history.append(record)
        return record

    def _view_gradient(self, i: int) -> dict[str, float]:
        """Render view i, take the loss's gradient over all scales, one rasterizer backward adding to .grad."""
        g = self.scene.current()
        out = self.views.output(g, i, absgrad=self.scene.densifier.enabled)
        image, alpha = image_and_alpha(out)
        coverage = self.objective.coverage(self.views.selected(g, i, self.scene.region, alpha), alpha)
        content = self.views.content(i, self._content_targets) if self.objective.needs_content else None
        grad, terms = self.objective.gradient(image, coverage, content)
        if image.requires_grad:  # else no Gaussian shows in this view: nothing to update
            image.backward(grad)
            self.scene.densifier.observe(out)
        return terms

    def _content_targets(self, i: int):
        """View i's targets, from the unmodified scene's render from that camera."""
        with torch.no_grad():
            original = self.scene.original
            capture, alpha = self.views.render(original, i)
            selected = self.views.selected(original, i, self.scene.region_input, alpha)
            return self.objective.content_targets(capture, self.objective.coverage(selected, alpha))

    def preview_image(self) -> torch.Tensor:
        """The first view as it looks now, [H, W, 3]."""
        with torch.no_grad():
            return self.views.render(self.scene.current(), 0)[0][0].permute(1, 2, 0)

    def save(self, path: Path, inputs: dict[str, str]) -> None:
        """Write a checkpoint bound to the settings and ``inputs`` (checkpoint.input_digests): rank 0 writes it,
        with densification's statistics pooled over every rank first."""
        stats = self.scene.densifier.stats
        stats.pooled(distributed.pool_in_place)
        if not distributed.current().is_main:
            stats.clear_sums()
            return
        checkpoint.save(path, {"format": checkpoint.FORMAT, "settings": asdict(self.settings), "inputs": inputs,
                               "iteration": len(self.history), **self.scene.state_dict(), "rng": self.rng.getstate(),
                               "history": self.history})

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint: its tensors (whatever their count), optimizer, densification and random
        states, history."""
        self.scene.load_state_dict(state)
        if not distributed.current().is_main:  # the checkpoint's statistics are every rank's, pooled: count once
            self.scene.densifier.stats.clear_sums()
        self.rng.setstate(state["rng"])
        self.history = state["history"]
        self.start_iteration = state["iteration"]

    def result(self, scene: SplatData, cancelled: bool, timings: dict) -> StylizeResult:
        """The stylized ``scene`` and what the run did."""
        return StylizeResult(self.scene.splat_data(scene), self.history, cancelled, str(self.device),
                             self.views.backend, timings, self.scene.densify_report(), self.objective.statistics,
                             self.scene.densifier.origin.cpu().numpy().astype(np.int32))


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
            setting). With ``iterations`` 0 and ``init`` "preview", the result is the instant preview (core.preview).
        progress: called after every iteration with its progress event (``interchange.protocol.progress_event``:
            ``iterations`` (the total), the iteration's history record (below), ``it_per_s``, ``eta_s`` (seconds
            left) and ``densify_s`` (time spent densifying so far)).
        preview: called every ``settings.preview_every`` iterations (and after the last) with
            ``(iteration, image)``, the current render of ``cameras[0]`` as ``[H, W, 3]`` in [0, 1].
        should_stop: polled before every iteration; returning True ends the run cooperatively and returns the
            result so far with ``cancelled=True``.
        checkpoint_path: where a checkpoint is saved every ``settings.checkpoint_every`` iterations; if the file
            exists when the call starts, the run resumes from it and ends exactly as an uninterrupted run would.
            Only a checkpoint of the same settings and the same inputs (scene, painting, cameras, region; compared
            by digest) is resumed; any other is refused (``InputError``) and left as it is.
        region: ``[N]`` weights in [0, 1], how much of its stylized change each Gaussian takes (``core.regions``;
            0 keeps a Gaussian as it is, though it still counts as content); None: the whole scene.

    Returns:
        A ``StylizeResult``: ``splat`` (the stylized scene, the input's PLY table with new SH colours and, for
        "sh+opacity", opacities; with ``detail``, split rows carry their parent's every property, with new
        positions and scales), ``history`` (one record per iteration: ``iteration``, ``view``, the loss terms
        averaged over scales ``gram``, ``mean``, ``std``, ``style``, ``content``, ``total``, ``gaussians`` (the count
        after the iteration) and, where a split happened, ``densify`` (that round's record)), ``cancelled``,
        ``device``, ``backend`` ("gsplat" or "torch"), ``timings`` (``total_s``, ``loop_s``, ``it_per_s``,
        ``densify_s``, and on CUDA ``peak_gpu_mem_gib``), ``densify`` (``enabled``, ``budget``, ``gaussians_before``
        / ``gaussians_after``, ``seconds``, ``rounds``: one record per split, and the ``settings`` that shaped it),
        ``statistics`` ("object" or "frame": what "auto" chose) and ``origin`` (int32 [splat.count]: the row of
        ``scene`` each row of ``splat`` descends from; 0..N-1 without detail).

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
    region = region_tensor(region, scene.count, distributed.rank_device(resolve_device(settings.device)))
    if settings.iterations == 0 and settings.init == START_FROM_PREVIEW:
        splat, statistics, device, backend = preview_scene(scene, style_image, cameras, settings, region)
        timings = {"total_s": time.perf_counter() - t_start, "loop_s": 0.0, "it_per_s": 0.0, "densify_s": 0.0}
        return StylizeResult(splat, [], False, device, backend, timings, None, statistics)
    path = Path(checkpoint_path) if checkpoint_path else None
    inputs = checkpoint.input_digests(scene, style_image, cameras, region) if path is not None else {}
    state = checkpoint.load(path, settings, inputs) if path is not None else None
    run = Stylization(scene, style_image, cameras, settings, region)
    if state is not None:
        run.restore(state)
    distributed.broadcast_tensors(run.scene.params.values())
    progress, preview = distributed.main_only(progress), distributed.main_only(preview)
    t_loop = time.perf_counter()
    cancelled = False
    for done in range(run.start_iteration + 1, settings.iterations + 1):
        if distributed.any_rank(should_stop is not None and should_stop()):
            cancelled = True
            break
        record = run.step()
        check_finite(record, run.scene.params.values(), settings)
        rate = (done - run.start_iteration) / max(time.perf_counter() - t_loop, 1e-9)
        if progress is not None:
            progress(progress_event(settings.iterations, record, it_per_s=rate,
                                    eta_s=(settings.iterations - done) / max(rate, 1e-9),
                                    densify_s=run.scene.densifier.seconds))
        every = settings.preview_every
        if preview is not None and every and (done % every == 0 or done == settings.iterations):  # and the last
            preview(done, run.preview_image())
        if path is not None and settings.checkpoint_every and done % settings.checkpoint_every == 0:
            run.save(path, inputs)
    steps = len(run.history) - run.start_iteration
    if steps and not cancelled:
        check_something_visible(run.scene, run.views, run.history[run.start_iteration:])
    if steps:  # also a stopped run: its colours so far may be kept (Stop and Keep)
        run.scene.guard_geometry(len(run.history), last=True)
    t_end = time.perf_counter()
    timings = {"total_s": t_end - t_start, "loop_s": t_end - t_loop, "it_per_s": steps / max(t_end - t_loop, 1e-9),
               "densify_s": run.scene.densifier.seconds}
    if run.device.type == "cuda":
        timings["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(run.device) / 2**30
    return run.result(scene, cancelled, timings)

