"""Colour preservation: the painting's colour statistics moved to the capture's; a run keeps the capture's colours."""

import numpy as np
import pytest
import torch

from core.cameras import orbit_cameras
from core.colour_transfer import ColourMoments, match_colours
from core.demo import demo_scene
from core.gaussians import Gaussians
from core.renderer import render
from core.stylization import StylizeSettings, stylize
from core.views import render_views


def moments(image, weights=None):
    m = ColourMoments()
    m.add(image, weights)
    return m.mean_covariance()


def test_moments_are_the_weighted_mean_and_covariance():
    image = torch.rand(20, 30, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weights = torch.rand(20, 30, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mean, cov = moments(image, weights)
    pixels, w = image.reshape(-1, 3), weights.reshape(-1)
    expected_mean = (pixels * w[:, None]).sum(0) / w.sum()
    centred = pixels - expected_mean
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(cov, (centred * w[:, None]).T @ centred / w.sum())


def test_matched_painting_has_the_target_colour_statistics():
    painting = 0.3 + 0.4 * torch.rand(64, 48, 3, generator=torch.Generator().manual_seed(3))
    painting[..., 0] = 0.8 * painting[..., 0] + 0.1  # correlated, unequal channels
    target_mean = torch.tensor([0.5, 0.45, 0.4], dtype=torch.float64)
    target_cov = torch.tensor([[4.0, 1.0, 0.5], [1.0, 3.0, 0.8], [0.5, 0.8, 2.0]], dtype=torch.float64) * 1e-3
    matched = match_colours(painting, target_mean, target_cov)
    assert matched.shape == painting.shape and matched.dtype == painting.dtype
    assert 0 < float(matched.min()) and float(matched.max()) < 1  # nothing clipped: the statistics match exactly
    mean, cov = moments(matched)
    torch.testing.assert_close(mean, target_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(cov, target_cov, atol=1e-6, rtol=0)


def test_grey_painting_does_not_blow_up():
    grey = torch.linspace(0, 1, 32 * 32).reshape(32, 32, 1).expand(-1, -1, 3).contiguous()
    matched = match_colours(grey, torch.tensor([0.6, 0.3, 0.2], dtype=torch.float64), torch.eye(3) * 0.01)
    assert torch.isfinite(matched).all() and 0.55 < float(matched[..., 0].mean()) < 0.65


def full_rank_red_painting(size: int = 96) -> torch.Tensor:
    """A warm painting whose three channels carry independent strokes (a full-rank colour covariance)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    red = 0.65 + 0.25 * np.sin(14 * x + 3 * np.sin(5 * y))
    green = 0.25 + 0.15 * np.sin(23 * y + 2 * np.cos(7 * x))
    blue = 0.12 + 0.1 * np.sin(31 * (x + y))
    return torch.from_numpy(np.stack([red, green, blue], axis=-1).astype(np.float32))


@pytest.mark.slow
def test_preserve_colors_keeps_the_capture_palette_while_the_style_loss_drops():
    """The object's mean colour (alpha-weighted) moves much less towards the painting's when colours are preserved."""
    scene = demo_scene(count=600, seed=1)
    cams = orbit_cameras(scene.means(), scene.opacity(), count=1, elevations_deg=(25.0,), width=32, height=32)
    settings = dict(iterations=20, resolution=32, device="cpu", learning_rate=0.2, style_strength=10.0)

    def object_mean(splat):
        image = render_views(splat, cams, resolution=32, device="cpu")[0]
        g = Gaussians.from_splat_data(splat)
        alpha = render(g, torch.as_tensor(cams[0].viewmat, dtype=torch.float32),
                       torch.as_tensor(cams[0].K(), dtype=torch.float32), 32, 32).alpha
        return moments(image, alpha)[0]

    capture = object_mean(scene)
    moved = {}
    for preserve in (False, True):
        result = stylize(scene, full_rank_red_painting(), cams, StylizeSettings(**settings, preserve_colors=preserve))
        moved[preserve] = float((object_mean(result.splat) - capture).norm())
        assert result.history[-1]["style"] < 0.5 * result.history[0]["style"]
    assert moved[True] < 0.7 * moved[False], moved
