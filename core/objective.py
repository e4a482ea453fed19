"""What a run optimises: the SOS loss against one painting, with the statistics, weights and memory plan the
settings ask for (docs/sos_loss.md states the loss; core.sos computes it).

The painting's targets are computed once per render size, the capture's (content) targets once per view; object
statistics weigh every pixel by what the scene, or its region, covers.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass

import torch

from core import planner, sos
from core.device import memory_budget
from core.colour_transfer import ColourMoments, match_colours
from core.image_terms import EDGE_ENERGY_FLOOR, edge_difference, edge_map, mean_square, total_variation
from core.gaussians import Gaussians
from core.views import Survey, Views, survey
from core.vgg import VGG19Features
from interchange.settings import START_FROM_PREVIEW, StylizeSettings

AUTO_FRAME_COVERAGE = 0.5
"""statistics="auto" takes whole-frame statistics when the scene covers at least this share of its views on
average: then the background is the minority and matching the frame's statistics does not push the scene to
extremes (flowers' orbit: 0.73, whole-frame distance 0.18 of the capture's against 0.26 with object statistics),
and object statistics below it (guitar: 0.08, whose object moved 13.5x further from the painting with frame
statistics). docs/quality.md."""


def needs_survey_coverage(settings: StylizeSettings, has_region: bool) -> bool:
    """Whether the statistics depend on the capture's coverage: "auto" without a region."""
    return settings.statistics == "auto" and not has_region


def choose_statistics(settings: StylizeSettings, survey: Survey | None, has_region: bool) -> str:
    """"object" or "frame": the setting, or for "auto" the survey's mean coverage against AUTO_FRAME_COVERAGE
    (a region is always matched over its own coverage: "object")."""
    if settings.statistics != "auto":
        return settings.statistics
    if not needs_survey_coverage(settings, has_region):
        return "object"
    return "frame" if survey.coverage >= AUTO_FRAME_COVERAGE else "object"


@dataclass
class StartUp:
    """What a survey of the capture decides before the first step: the painting as the loss sees it (colour-matched
    to the capture when colours are preserved), the statistics, and the capture's colour moments under those
    statistics (None when nothing needed a survey)."""

    painting: torch.Tensor
    statistics: str
    moments: ColourMoments | None
    """None when nothing needed a survey, or the survey saw none of the scene."""


def survey_decisions(settings: StylizeSettings, painting: torch.Tensor, capture: Gaussians, views: Views,
                     region: torch.Tensor | None) -> StartUp:
    """The ``StartUp`` of a run, from one survey of the capture's ``views`` when colour preservation, auto
    statistics or the preview start need one."""
    found = None
    wanted = settings.preserve_colors or settings.init == START_FROM_PREVIEW
    if wanted or needs_survey_coverage(settings, region is not None):
        found = survey(capture, views, region)
    statistics = choose_statistics(settings, found, region is not None)
    moments = None if found is None else found.colours[statistics]
    if moments is not None and float(moments.mass) <= 0:
        warnings.warn("the scene covers none of the start-up survey's views: its colours start from the capture and "
                      "are not preserved", stacklevel=2)
        moments = None
    if settings.preserve_colors and moments is not None:
        painting = match_colours(painting, *moments.mean_covariance())
    return StartUp(painting, statistics, moments)


class Objective:
    """The SOS loss of one run and its gradient with respect to a render.

    Args:
        vgg: the feature extractor.
        painting: [1, 3, H, W] in [0, 1] (already colour-matched when colours are preserved).
        settings: strength, balance, stroke scale, coarsest scale, bf16, memory cap.
        statistics: "object" or "frame" (``choose_statistics``).
        reserve_bytes: GPU memory kept out of the loss's memory plan (for Gaussians densification may add).
    """

    def __init__(self, vgg: VGG19Features, painting: torch.Tensor, settings: StylizeSettings, statistics: str,
                 reserve_bytes: int = 0):
        self.vgg = vgg
        self.painting = painting
        self.settings = settings
        self.statistics = statistics
        self.reserve_bytes = reserve_bytes
        self.weights = sos.LossWeights(style_strength=settings.style_strength, content_weight=settings.content_weight)
        self.autocast = settings.bf16 and painting.device.type == "cuda"
        self._style: dict[tuple[int, int], tuple[sos.StyleTargets, list[planner.ScalePlan] | None]] = {}
        self._palette: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def relative(self) -> bool:
        return self.settings.balance == "relative"

    @property
    def needs_content(self) -> bool:
        """Whether a view's capture targets are needed (a content term, the relative balance's units, or the edge
        term's reference)."""
        return self.settings.content_weight > 0 or self.relative or self.settings.edges > 0

    def coverage(self, selected: torch.Tensor, alpha: torch.Tensor) -> sos.Coverage | None:
        """Object statistics' weights: ``selected`` (the region's coverage, or the alpha) for style, ``alpha`` for
        content; None with frame statistics."""
        return None if self.statistics == "frame" else sos.Coverage(selected, alpha.detach())

    def style_targets(self, height: int, width: int) -> tuple[sos.StyleTargets, list[planner.ScalePlan] | None]:
        """The painting's statistics and the memory plan for renders of this size (computed once per size)."""
        if (height, width) not in self._style:
            sizes = sos.pyramid_sizes(height, width, self.settings.min_short_side)
            plan = self._plan(sizes)
            with torch.no_grad():
                targets = sos.build_style_targets(self.vgg, self.painting, sizes,
                                                  stroke_scale=self.settings.stroke_scale, plan=plan,
                                                  autocast_bf16=self.autocast)
            self._style[(height, width)] = targets, plan
        return self._style[(height, width)]

    def content_targets(self, capture: torch.Tensor, coverage: sos.Coverage | None) -> sos.ContentTargets:
        """A view's targets from the capture's render of it [1, 3, H, W]: relu4_2 features (of the capture
        recoloured to the painting's palette with ``content_colours`` "painting"), the units of the relative
        balance, with smoothness on the capture's grain, and with edges on the edge map of the same image the
        content term compares with (the recoloured capture's edges have the painting's lightness contrast, so the
        term asks for the capture's edges, not its tones) and its mean square over ``coverage``."""
        style, plan = self.style_targets(*capture.shape[-2:])
        weights = None if coverage is None else coverage.content
        with torch.no_grad():
            reference = capture
            # A view that sees none of the scene has no colours to move (and no content weight with object statistics).
            if self.settings.content_colours == "painting" and (weights is None or bool(weights.any())):
                pixels = capture[0].permute(1, 2, 0)
                matched = match_colours(pixels, *self._painting_colours(), None if weights is None else weights[0, 0])
                reference = matched.permute(2, 0, 1).unsqueeze(0)
            targets = sos.build_content_targets(self.vgg, reference, style.sizes,
                                                style=style if self.relative else None, coverage=coverage, plan=plan,
                                                autocast_bf16=self.autocast)
            if self.settings.smoothness > 0:
                targets.grain = float(total_variation(capture, weights)[0])
            if self.settings.edges > 0:
                targets.edges = edge_map(reference).float()
                targets.edge_energy = float(mean_square(targets.edges, weights))
            return targets

    def gradient(self, image: torch.Tensor, coverage: sos.Coverage | None,
                 content: sos.ContentTargets | None) -> tuple[torch.Tensor, dict[str, float]]:
        """dL/dimage [1, 3, H, W] of a render of a view whose capture targets are ``content``, and the terms
        (with smoothness on, ``tv``: the total variation term; with edges on, ``edges``: the edge term; each added
        once at full resolution)."""
        style, plan = self.style_targets(*image.shape[-2:])
        weights = sos.relative_weights(self.weights, style, content) if self.relative else self.weights
        grad, terms = sos.sos_gradient(self.vgg, image.detach(), style, content, weights, coverage=coverage,
                                       plan=plan, autocast_bf16=self.autocast)
        if self.settings.smoothness > 0:
            scale = self.settings.smoothness / (max(content.grain, 1e-12) if self.relative else 1.0)
            tv, tv_grad = total_variation(image, None if coverage is None else coverage.content)
            grad += scale * tv_grad
            terms["tv"] = scale * float(tv)
            terms["total"] += terms["tv"]
        if self.settings.edges > 0:
            scale = self.settings.edges / (max(content.edge_energy, EDGE_ENERGY_FLOOR) if self.relative else 1.0)
            error, error_grad = edge_difference(image, content.edges, None if coverage is None else coverage.content)
            grad += scale * error_grad.to(grad.dtype)
            terms["edges"] = scale * float(error)
            terms["total"] += terms["edges"]
        return grad, terms

    def _painting_colours(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The painting's colour mean [3] and covariance [3, 3] (what ``content_colours`` "painting" moves the
        capture to)."""
        if self._palette is None:
            moments = ColourMoments()
            moments.add(self.painting[0].permute(1, 2, 0))
            self._palette = moments.mean_covariance()
        return self._palette

    def _plan(self, sizes: list[tuple[int, int]]) -> list[planner.ScalePlan] | None:
        """Autograd or tiles per scale, within the memory budget less the reserve (None off CUDA: autograd)."""
        budget = memory_budget(self.painting.device, self.settings.max_gpu_mem_gib)
        if budget is None:
            return None
        return planner.plan_scales(sizes, free_bytes=int(budget) - self.reserve_bytes, cap_bytes=None,
                                   bf16=self.settings.bf16)
