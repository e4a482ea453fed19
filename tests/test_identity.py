"""Issue 19's loss terms: the smoothness (total variation) term and content against the capture recoloured to the
painting's palette; each against a plain reference."""

import pytest
import torch

from core import sos
from core.cameras import orbit_cameras
from core.colour_transfer import ColourMoments, match_colours
from core.demo import demo_scene, demo_style
from core.loss_terms import TV_EPSILON, LossWeights, total_variation
from core.objective import Objective
from core.stylization import StylizeSettings, stylize
from core.vgg import load_vgg19

RES = 40


def reference_tv(image: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The definition, by autograd-able tensor ops: Σ_pairs w_p √(d² + ε²) / (3 Σ w)."""
    w = torch.ones_like(image[:, :1]) if weights is None else weights
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    total = (w[..., :, :-1] * torch.sqrt(dx**2 + TV_EPSILON**2)).sum() + \
        (w[..., :-1, :] * torch.sqrt(dy**2 + TV_EPSILON**2)).sum()
    return total / (3 * w.sum())


@pytest.mark.parametrize("weighted", [False, True])
def test_total_variation_and_its_gradient_match_autograd(weighted):
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 17, 23, generator=generator, dtype=torch.float64)
    weights = torch.rand(1, 1, 17, 23, generator=generator, dtype=torch.float64) if weighted else None
    value, grad = total_variation(image, weights)
    leaf = image.clone().requires_grad_(True)
    expected = reference_tv(leaf, weights)
    expected.backward()
    torch.testing.assert_close(value.double(), expected.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), leaf.grad, rtol=1e-4, atol=1e-7)


def test_total_variation_of_a_flat_image_is_the_smoothing_floor_and_of_an_edge_its_height():
    flat = torch.full((1, 3, 8, 8), 0.4)
    assert float(total_variation(flat)[0]) == pytest.approx(2 * 7 * 8 * TV_EPSILON / 64, rel=1e-4)
    edge = flat.clone()
    edge[..., 4:] = 0.9  # one vertical edge of height 0.5 per row
    extra = float(total_variation(edge)[0] - total_variation(flat)[0])
    assert extra == pytest.approx(8 * ((0.5**2 + TV_EPSILON**2) ** 0.5 - TV_EPSILON) / 64, rel=1e-4)


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=600, seed=2)


@pytest.fixture(scope="module")
def camera(scene):
    return orbit_cameras(scene.means(), scene.opacity(), count=1, elevations_deg=(25.0,), width=RES, height=RES)


def settings(**changes) -> StylizeSettings:
    return StylizeSettings(**{"iterations": 1, "resolution": RES, "device": "cpu", **changes})


def test_smoothness_adds_the_relative_tv_term_to_the_first_step(scene, camera):
    """With balance relative the term is smoothness · TV(render) / TV(capture): 1 × smoothness at the first step,
    where the render is the capture."""
    plain = stylize(scene, demo_style(64), camera, settings()).history[0]
    smooth = stylize(scene, demo_style(64), camera, settings(smoothness=2.5)).history[0]
    assert "tv" not in plain and smooth["tv"] == pytest.approx(2.5, rel=1e-5)
    assert smooth["total"] == pytest.approx(plain["total"] + 2.5, rel=1e-5)
    assert smooth["style"] == pytest.approx(plain["style"], rel=1e-5)


def test_smoothness_lowers_the_grain_of_the_result(scene, camera):
    painting = demo_style(64)
    grains = []
    for smoothness in (0.0, 50.0):
        result = stylize(scene, painting, camera, settings(iterations=8, smoothness=smoothness))
        image = sos.downsample(render_view(result.splat, camera[0]), (RES, RES))
        grains.append(float(total_variation(image)[0]))
    assert grains[1] < grains[0]


def render_view(splat, camera) -> torch.Tensor:
    from core.views import render_views
    return render_views(splat, [camera], device="cpu")[0].permute(2, 0, 1)[None]


def test_painting_colours_recolour_the_capture_for_the_content_targets():
    """content_colours="painting": the content features are the recoloured capture's (the painting's colour mean
    and covariance over the capture's coverage), the units of the relative balance unchanged in kind."""
    vgg = load_vgg19()
    painting = demo_style(48).permute(2, 0, 1)[None]
    generator = torch.Generator().manual_seed(1)
    capture = 0.2 + 0.5 * torch.rand(1, 3, RES, RES, generator=generator)
    alpha = torch.zeros(1, 1, RES, RES)
    alpha[..., 8:32, 10:30] = 1.0
    coverage = sos.Coverage.of_alpha(alpha)
    objective = Objective(vgg, painting, StylizeSettings(content_colours="painting"), "object")
    targets = objective.content_targets(capture, coverage)
    moments = ColourMoments()
    moments.add(painting[0].permute(1, 2, 0))
    recoloured = match_colours(capture[0].permute(1, 2, 0), *moments.mean_covariance(), alpha[0, 0])
    expected = sos.build_content_targets(vgg, recoloured.permute(2, 0, 1)[None], targets.sizes)
    for got, want in zip(targets.features, expected.features):
        torch.testing.assert_close(got, want)
    captured = Objective(vgg, painting, StylizeSettings(), "object").content_targets(capture, coverage)
    assert not torch.allclose(captured.features[0], targets.features[0])


def test_matched_colours_weigh_only_the_covered_pixels():
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(20, 20, 3, generator=generator, dtype=torch.float64) * 0.5 + 0.25
    weights = torch.zeros(20, 20, dtype=torch.float64)
    weights[5:15, 5:15] = 1.0
    mean = torch.tensor([0.4, 0.5, 0.6], dtype=torch.float64)
    covariance = torch.diag(torch.tensor([2e-3, 3e-3, 1e-3], dtype=torch.float64))
    matched = match_colours(image, mean, covariance, weights)
    moments = ColourMoments()
    moments.add(matched, weights)
    got_mean, got_covariance = moments.mean_covariance()
    torch.testing.assert_close(got_mean, mean)
    torch.testing.assert_close(got_covariance, covariance)


def test_content_colours_painting_keeps_structure_without_holding_the_palette(scene, camera):
    """With the capture's colours the content term resists the painting's palette; against the recoloured capture
    it does not: at a high content weight the result's mean colour moves further toward the painting's."""
    painting = demo_style(64)
    painting_mean = painting.reshape(-1, 3).mean(0)
    distances = {}
    for colours in ("capture", "painting"):
        result = stylize(scene, painting, camera, settings(iterations=10, content_weight=20.0, content_colours=colours,
                                                           statistics="frame"))
        image = render_view(result.splat, camera[0])
        distances[colours] = float((image[0].reshape(3, -1).mean(1) - painting_mean).norm())
    assert distances["painting"] < distances["capture"]


def test_loss_weights_default_unchanged():
    assert LossWeights().content_weight == 1.0
