"""Detail's geometry kept inside the capture: every Gaussian's footprint stays within its input Gaussian's, and a
guard rolls the geometry back when a run still spills outside the capture's silhouette.

With detail on, positions and scales learn (core.trained_scene). Unconstrained, the style loss grows Gaussians into
streaks and blobs that cover the background of an object on black: they lower the object's style distance where
the stylized render covers it while breaking the picture. Two rules keep the geometry honest:

- **confinement** (``confine_``, a projection after every step and every split): in the frame of the row's input
  Gaussian (its *anchor*: a split child's is its original parent), scales never exceed the anchor's, and the
  centre stays close enough that the row's ``FOOTPRINT_SIGMAS`` ellipsoid lies inside the anchor's: with ρ the
  largest scale ratio, the centre is at most ``FOOTPRINT_SIGMAS · (1 − ρ)`` anchor sigmas from the anchor's
  centre. Rotations never change, so the axes agree and the rule is exact for the ellipsoids. A Gaussian that
  keeps its size keeps its place; a child a split shrank by 1.6 may move 1.1 sigmas.
- **the guard** (``GeometryGuard``): at every densification round and at the end, the spill of the current scene
  over every view against the capture (core.silhouette, renders at ``GUARD_SIDE`` px). Past ``SPILL_LIMIT`` the
  rows go back to the geometry they were born with (splitting alone: the input's, or where a split placed a
  child) and geometry stops learning; the run says so in one warning and in report.json.
"""

from __future__ import annotations

import warnings

import torch

from core.errors import InputWarning
from core.gaussians import Gaussians
from core.raster_torch import quat_to_rotmat
from core.silhouette import SPILL_LIMIT, CoverageChange, coverage_change, coverage_sums
from core.views import Views

FOOTPRINT_SIGMAS = 3.0
"""The footprint both rasterizers draw: 3 sigmas of each axis."""
GUARD_SIDE = 512
"""The guard renders the views with at most this long side (coverage needs no detail)."""


@torch.no_grad()
def confine_(means: torch.Tensor, log_scales: torch.Tensor, anchor: Gaussians) -> int:
    """Project positions [N, 3] and log-scales [N, 3] in place so that each row's footprint lies in its anchor's
    (``anchor``: the input Gaussians gathered by row origin; its quats are the rows' rotations). Returns how many
    positions were moved."""
    torch.minimum(log_scales, anchor.log_scales, out=log_scales)
    ratio = torch.exp(log_scales - anchor.log_scales).amax(dim=1)
    rotation = quat_to_rotmat(anchor.quats)
    sigma = torch.exp(anchor.log_scales)
    local = torch.einsum("ni,nij->nj", means - anchor.means, rotation) / sigma  # Rᵀ d / s per row
    radius = local.norm(dim=1)
    allowed = FOOTPRINT_SIGMAS * (1 - ratio)
    outside = radius > allowed
    if not bool(outside.any()):
        return 0
    shrink = (allowed[outside] / radius[outside]).unsqueeze(1)
    moved = torch.einsum("nj,nij->ni", local[outside] * shrink * sigma[outside], rotation[outside])
    means[outside] = anchor.means[outside] + moved
    return int(outside.sum())


class GeometryGuard:
    """Spill and lost coverage of the scene being optimised against the capture, from every view of a run
    (``run_views``), rendered with at most ``GUARD_SIDE`` px; the capture's coverage of each is kept. ``checks``
    records every measurement (iteration, spill, lost); ``rolled_back`` the iteration of a roll-back.
    """

    def __init__(self, capture: Gaussians, run_views: Views):
        cameras = [c.with_long_side(min(max(c.width, c.height), GUARD_SIDE)) for c in run_views.cameras]
        self.views = Views(cameras, run_views.device, run_views.backend, run_views.background)
        with torch.no_grad():
            self.capture = [self.views.render(capture, i)[1] for i in range(len(self.views))]
        self.checks: list[dict] = []
        self.rolled_back: int | None = None

    def measure(self, g: Gaussians) -> CoverageChange:
        with torch.no_grad():
            sums = sum(coverage_sums(self.views.render(g, i)[1], capture).cpu()
                       for i, capture in enumerate(self.capture))
        return coverage_change(sums)

    def passes(self, g: Gaussians, iteration: int) -> bool:
        """Measure ``g`` after ``iteration``; False when its spill is past ``SPILL_LIMIT`` (then the caller rolls
        back and calls ``rolled_back_at``)."""
        change = self.measure(g)
        self.checks.append({"iteration": iteration, "spill": change.spill, "lost": change.lost})
        return change.spill <= SPILL_LIMIT

    def rolled_back_at(self, iteration: int) -> None:
        self.rolled_back = iteration
        spill = self.checks[-1]["spill"]
        warnings.warn(f"detail: at iteration {iteration} the splats covered {100 * spill:.1f} % of the capture's "
                      f"area outside its silhouette (limit {100 * SPILL_LIMIT:g} %): positions and scales went back "
                      "to where splitting put them and stopped learning; colours and splits go on",
                      InputWarning, stacklevel=2)

    def report(self) -> dict:
        return {"spill_limit": SPILL_LIMIT, "checks": self.checks, "rolled_back": self.rolled_back}

    def state_dict(self) -> dict:
        return {"checks": self.checks, "rolled_back": self.rolled_back}

    def load_state_dict(self, state: dict) -> None:
        self.checks, self.rolled_back = list(state["checks"]), state["rolled_back"]
