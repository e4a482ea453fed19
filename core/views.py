"""The views a run renders: cameras on the device, per-view content targets kept between visits, and the start-up
survey of the capture (what auto statistics and colour preservation read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core import regions, sos
from core.cameras import Camera
from core.colour_transfer import ColourMoments
from core.gaussians import Gaussians
from core.device import resolve_device
from core.renderer import RenderOutput, pick_backend, render
from interchange.ply import SplatData

CONTENT_BYTES_PER_PX = 512 * 4 / 64 * 4 / 3
"""relu4_2 targets: 512 float32 channels at 1/8 resolution over a pyramid adding a third: ≈ 43 bytes per pixel."""
EDGE_BYTES_PER_PX = 4
"""The edges term's reference: one float32 plane at full resolution."""
SURVEY_VIEWS = 4
SURVEY_SIDE = 256
"""The start-up survey (auto statistics' coverage, colour preservation's and the preview's colours) renders at
most SURVEY_VIEWS cameras, evenly spread over the list, with at most SURVEY_SIDE px: coverage and colour moments
need few pixels, and on a CPU the rasterizer's cost is mostly per Gaussian and per view (1-3 s a view for 100k
Gaussians on two cores), so the instant preview stays a few seconds there."""
MIN_COVERAGE = 1e-3
"""Pixels the scene covers less than this are left out of its colour moments (no colour to un-premultiply)."""
CONTENT_CACHE_SHARE = 0.25
"""Share of the GPU memory budget that cached content targets may take before they move to host memory."""


class Views:
    """The render cameras with their per-view content targets, computed once per view on first use.

    ``memory_budget``: the run's GPU memory (core.device.memory_budget; None: unlimited). When all views' targets
    (``target_bytes_per_px`` each) would take more than ``CONTENT_CACHE_SHARE`` of it, they wait in host memory and
    are copied in when their view comes up.
    """

    def __init__(self, cameras: list[Camera], device: torch.device, backend: str, background: torch.Tensor,
                 memory_budget: float | None = None, target_bytes_per_px: float = CONTENT_BYTES_PER_PX):
        self.cameras = cameras
        self.device = device
        self.backend = backend
        self.background = background
        total = sum(target_bytes_per_px * c.width * c.height for c in cameras)
        self.offload = memory_budget is not None and total > CONTENT_CACHE_SHARE * memory_budget
        self.viewmats = [torch.as_tensor(c.viewmat, dtype=torch.float32, device=device) for c in cameras]
        self.Ks = [torch.as_tensor(c.K(), dtype=torch.float32, device=device) for c in cameras]
        self._content: dict[int, sos.ContentTargets] = {}

    def __len__(self) -> int:
        return len(self.cameras)

    def output(self, g: Gaussians, i: int, absgrad: bool = False, background: torch.Tensor | None = None
               ) -> RenderOutput:
        """View i's whole render output (with what densification reads when ``absgrad``)."""
        cam = self.cameras[i]
        return render(g, self.viewmats[i], self.Ks[i], cam.width, cam.height, backend=self.backend, absgrad=absgrad,
                      background=self.background if background is None else background)

    def render(self, g: Gaussians, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """View i as [1, 3, H, W] (differentiable) and its coverage [1, 1, H, W]."""
        return image_and_alpha(self.output(g, i))

    def selected(self, g: Gaussians, i: int, region: torch.Tensor | None, alpha: torch.Tensor) -> torch.Tensor:
        """The coverage [1, 1, H, W] of a region's Gaussians in view i (``alpha`` itself when there is no region),
        a constant."""
        if region is None:
            return alpha.detach()
        with torch.no_grad():
            black = torch.zeros_like(self.background)
            out = self.output(regions.coverage_colours(g, region), i, background=black)
            return image_and_alpha(out)[0][:, :1]

    def culling_cameras(self) -> list[tuple[torch.Tensor, torch.Tensor, int, int]]:
        """(viewmat, K, width, height) of every view, for densification's pruning."""
        return [(v, k, c.width, c.height) for v, k, c in zip(self.viewmats, self.Ks, self.cameras)]

    def content(self, i: int, build: Callable[[int], sos.ContentTargets]) -> sos.ContentTargets:
        """View i's content targets, built by ``build(i)`` on the first visit."""
        if i not in self._content:
            targets = build(i)
            if self.offload:
                targets = targets.moved(lambda t: t.cpu().pin_memory())
            self._content[i] = targets
        targets = self._content[i]
        if targets.features[0].device != self.device:
            targets = targets.moved(lambda t: t.to(self.device, non_blocking=True))
        return targets


def image_and_alpha(out: RenderOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """A render's image [1, 3, H, W] and coverage [1, 1, H, W] (NCHW, as the loss takes them)."""
    return out.image.permute(2, 0, 1).unsqueeze(0), out.alpha.permute(2, 0, 1).unsqueeze(0)


@dataclass
class Survey:
    """The capture seen from every view at start-up: its mean coverage (alpha) over the views, and the colour
    moments of its pixels over the whole frame ("frame", background included) and of the scene's own colours
    (un-premultiplied from the background) weighted by what the scene, or its region, covers ("object")."""

    alphas: list[float] = field(default_factory=list)
    colours: dict[str, ColourMoments] = field(default_factory=lambda: {"frame": ColourMoments(),
                                                                         "object": ColourMoments()})

    @property
    def coverage(self) -> float:
        return sum(self.alphas) / len(self.alphas)


def survey_cameras(cameras: list[Camera], resolution: int) -> list[Camera]:
    """The cameras the start-up survey renders: at most SURVEY_VIEWS, at most SURVEY_SIDE px."""
    count = min(SURVEY_VIEWS, len(cameras))
    chosen = [cameras[i * len(cameras) // count] for i in range(count)]
    return [c.with_long_side(min(resolution, SURVEY_SIDE)) for c in chosen]


def survey(scene: Gaussians, views: Views, region: torch.Tensor | None) -> Survey:
    """One pass over ``views`` (``survey_cameras``) of the unmodified scene: coverage and colours."""
    found = Survey()
    with torch.no_grad():
        for i in range(len(views)):
            image, alpha = views.render(scene, i)
            found.alphas.append(float(alpha.mean()))
            pixels, coverage = image[0].permute(1, 2, 0), alpha[0].permute(1, 2, 0)
            found.colours["frame"].add(pixels)
            own = (pixels - (1 - coverage) * views.background) / coverage.clamp_min(MIN_COVERAGE)
            weights = views.selected(scene, i, region, alpha)[0, 0] * (coverage[..., 0] >= MIN_COVERAGE)
            found.colours["object"].add(own, weights)
    return found


def render_views(scene: SplatData, cameras: list[Camera], *, resolution: int | None = None,
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0), device: str = "auto",
                 backend: str = "auto") -> list[torch.Tensor]:
    """Plain renders [H, W, 3] of a scene from cameras (previews, before/after images)."""
    dev = resolve_device(device)
    g = Gaussians.from_splat_data(scene, dev)
    cams = [c.with_long_side(resolution) if resolution else c for c in cameras]
    views = Views(cams, dev, pick_backend(dev, backend), torch.tensor(background, dtype=torch.float32, device=dev))
    with torch.no_grad():
        return [views.render(g, i)[0][0].permute(1, 2, 0).cpu() for i in range(len(cams))]
