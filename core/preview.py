"""The instant preview: the painting's palette on the capture in closed form, in about a second.

A colour-space whitening and colouring transform (WCT; Li et al., "Universal Style Transfer via Feature
Transforms", NeurIPS 2017, on RGB instead of VGG features): the capture's colours, as its renders show them and
weighted like the style statistics (by what the object covers, or over the whole frame), get the painting's colour
mean and covariance: c ↦ μ_p + A (c − μ_c), A = Σ_p^½ Σ_c^-½ (the map colour preservation uses the other way
round, core.colour_transfer).

A Gaussian's colour seen from direction d is c(d) = C0 · sh₀ + 0.5 + Σ_{k≥1} sh_k Y_k(d), linear in the SH
coefficients, and compositing is linear in the colours, so the map applies exactly to the coefficients:
sh₀' = (A (C0 sh₀ + 0.5) + b − 0.5) / C0 with b = μ_p − A μ_c, and sh_k' = A sh_k. Every view of the result is
the capture's view with its colours mapped (up to the renderer's clamp at 0, the background, which keeps its
colour, and each Gaussian's base colour C0 sh₀ + 0.5, which is kept in [0, 1]). A region blends each Gaussian by
its weight. ``stylize`` uses it for ``init`` "preview" (the optimisation starts from these colours) and, with
``iterations`` 0, returns it as the result.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from core import distributed
from core.cameras import Camera
from core.colour_transfer import ColourMoments, colour_map
from core.device import resolve_device
from core.gaussians import Gaussians
from core.objective import survey_decisions
from core.renderer import pick_backend
from core.sh import C0
from core.views import Views, survey_cameras
from interchange.ply import SplatData
from interchange.settings import START_FROM_PREVIEW, StylizeSettings

def preview_colours(capture: Gaussians, painting: torch.Tensor, moments: ColourMoments,
                    region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The previewed SH coefficients (sh_dc [N, 1, 3], sh_rest [N, M, 3]) of ``capture``.

    Args:
        capture: the Gaussians, as captured.
        painting: [H, W, 3] in [0, 1] (the palette comes from all its pixels).
        moments: the capture's rendered colours (core.views.survey), weighted as the style statistics are.
        region: [N] weights in 0..1 (None: every Gaussian takes the whole change).
    """
    target = ColourMoments()
    target.add(painting)
    matrix, offset = colour_map(*moments.mean_covariance(), *target.mean_covariance())
    matrix = matrix.to(capture.sh_dc)
    offset = offset.to(capture.sh_dc)
    # The base colour stays in [0, 1]: beyond it Blender's native splats (EEVEE, Cycles) and our engine show a
    # colour differently (tests/blender/test_blender_native.py), and no display shows it.
    dc = (((C0 * capture.sh_dc + 0.5) @ matrix.T + offset).clamp(0, 1) - 0.5) / C0
    rest = capture.sh_rest @ matrix.T
    if region is None:
        return dc, rest
    weights = region.reshape(-1, 1, 1).to(dc)
    return capture.sh_dc + weights * (dc - capture.sh_dc), capture.sh_rest + weights * (rest - capture.sh_rest)


def preview_scene(scene: SplatData, painting: torch.Tensor, cameras: list[Camera], settings: StylizeSettings,
                  region: torch.Tensor | None = None) -> tuple[SplatData, str, str, str]:
    """The preview of a whole scene as a result: (the scene with previewed colours, the statistics it was weighted
    by, the device, the rasterizer): what a run with ``init`` "preview" starts from (the same survey of the capture,
    core.views.survey_cameras, and the same decisions, core.objective.survey_decisions)."""
    device = distributed.rank_device(resolve_device(settings.device))
    capture = Gaussians.from_splat_data(scene, device)
    backend = pick_backend(device, settings.backend)
    views = Views(survey_cameras(cameras, settings.resolution), device, backend,
                  torch.tensor(settings.background, dtype=torch.float32, device=device))
    start = survey_decisions(replace(settings, init=START_FROM_PREVIEW), painting, capture, views, region)
    if start.moments is None:  # the survey saw none of the scene (survey_decisions warned): nothing to map
        return scene, start.statistics, str(device), backend
    dc, rest = preview_colours(capture, start.painting, start.moments, region)
    return replace(capture, sh_dc=dc, sh_rest=rest).to_splat_data(scene), start.statistics, str(device), backend
