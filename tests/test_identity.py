"""Issue 19's loss terms: the smoothness (total variation) term, the edge term, and content against the capture
recoloured to the painting's palette; each against a plain reference."""

import math

import pytest
import torch

from core import sos
from core.cameras import orbit_cameras
from core.colour_transfer import ColourMoments, match_colours
from core.demo import demo_scene, demo_style
from core.image_terms import (EDGE_SIGMAS, LUMINANCE, TV_EPSILON, edge_difference, edge_map, mean_square,
                               total_variation)
from core.loss_terms import LossWeights
from core.objective import Objective
from core.stylization import StylizeSettings, stylize
from core.vgg import load_vgg19
from core.views import CONTENT_BYTES_PER_PX, CONTENT_CACHE_SHARE, EDGE_BYTES_PER_PX, Views

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
    """A one-step run from the capture whose content term compares with the capture as it is: the first step renders
    the reference itself, so each term's value there is known."""
    return StylizeSettings(**{"iterations": 1, "resolution": RES, "device": "cpu", "init": "capture",
                              "content_colours": "capture", **changes})


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
    captured = Objective(vgg, painting, StylizeSettings(content_colours="capture"), "object").content_targets(
        capture, coverage)
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


def normalised_blur_matrix(length: int, sigma: float) -> torch.Tensor:
    """The definition of one axis of the edge map's blur as a matrix: row i is the Gaussian around i, cut at 3σ and
    at the frame, divided by its sum."""
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(length, dtype=torch.float64)
    distance = offsets[None, :] - offsets[:, None]
    kernel = torch.exp(-0.5 * (distance / sigma) ** 2) * (distance.abs() <= radius)
    return kernel / kernel.sum(1, keepdim=True)


def reference_edge_map(image: torch.Tensor) -> torch.Tensor:
    """E(x) = B_σ1 Y B_σ1ᵀ − B_σ2 Y B_σ2ᵀ by autograd-able matrix products, Y the Rec. 709 luminance."""
    luminance = torch.einsum("c,chw->hw", torch.tensor(LUMINANCE, dtype=image.dtype), image[0])
    height, width = luminance.shape
    blurred = [normalised_blur_matrix(height, s) @ luminance @ normalised_blur_matrix(width, s).T for s in EDGE_SIGMAS]
    return (blurred[0] - blurred[1])[None, None]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("size", [(17, 23), (5, 4)], ids=["17x23", "under-the-kernel"])
def test_edge_difference_and_its_gradient_match_autograd(weighted, size):
    generator = torch.Generator().manual_seed(7)
    image = torch.rand(1, 3, *size, generator=generator, dtype=torch.float64)
    reference = reference_edge_map(torch.rand(1, 3, *size, generator=generator, dtype=torch.float64))
    weights = torch.rand(1, 1, *size, generator=generator, dtype=torch.float64) if weighted else None
    torch.testing.assert_close(edge_map(image), reference_edge_map(image), rtol=1e-10, atol=1e-12)
    value, grad = edge_difference(image, reference, weights)
    leaf = image.clone().requires_grad_(True)
    w = torch.ones(1, 1, *size, dtype=torch.float64) if weights is None else weights
    expected = (w * (reference_edge_map(leaf) - reference) ** 2).sum() / w.sum()
    expected.backward()
    assert value.dtype == grad.dtype == torch.float64
    torch.testing.assert_close(value, expected.detach(), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(grad, leaf.grad, rtol=1e-8, atol=1e-14)


def test_edge_map_sees_lightness_edges_only():
    """No edges in a flat image (up to the border: the blur is normalised there) nor where only the chroma changes
    (equal Rec. 709 luminance); a lightness step has them on both sides."""
    flat = torch.full((1, 3, 12, 16), 0.4, dtype=torch.float64)
    torch.testing.assert_close(edge_map(flat), torch.zeros(1, 1, 12, 16, dtype=torch.float64), rtol=0, atol=1e-12)
    chroma = flat.clone()
    chroma[0, :, :, 8:] = torch.tensor([0.4 + 0.0722, 0.4, 0.4 - 0.2126], dtype=torch.float64)[:, None, None]
    assert float(edge_map(chroma).abs().max()) < 1e-12
    step = flat.clone()
    step[..., 8:] = 0.9
    edges = edge_map(step)[0, 0, 6]
    assert edges[7] < -0.04 and edges[8] > 0.04
    torch.testing.assert_close(edges, -edges.flip(0))  # the step is centred: dark side mirrors the light side
    assert float(edges[[0, 1, -2, -1]].abs().max()) < 1e-12  # beyond the wider kernel's 6 px: nothing


def test_edge_difference_is_zero_at_the_reference():
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(2))
    value, grad = edge_difference(image, edge_map(image))
    assert float(value) == 0.0 and not grad.any()


def test_content_targets_keep_the_edge_map_only_with_edges_on_and_move_it_with_the_features():
    vgg = load_vgg19()
    painting = demo_style(48).permute(2, 0, 1)[None]
    capture = 0.2 + 0.5 * torch.rand(1, 3, RES, RES, generator=torch.Generator().manual_seed(4))
    alpha = torch.zeros(1, 1, RES, RES)
    alpha[..., 8:32, 10:30] = 1.0
    coverage = sos.Coverage.of_alpha(alpha)
    plain = Objective(vgg, painting, StylizeSettings(), "object").content_targets(capture, coverage)
    assert plain.edges is None and plain.edge_energy is None
    targets = Objective(vgg, painting, StylizeSettings(edges=1.0, content_colours="capture"), "object").content_targets(
        capture, coverage)
    assert targets.edges.dtype == torch.float32
    torch.testing.assert_close(targets.edges, edge_map(capture))
    assert targets.edge_energy == pytest.approx(float(mean_square(edge_map(capture), alpha)), rel=1e-6)
    moved = targets.moved(lambda t: t.double())
    assert moved.edges.dtype == torch.float64 and all(f.dtype == torch.float64 for f in moved.features)


def test_the_edge_map_counts_toward_the_content_targets_memory(camera):
    """A budget whose share just holds the VGG targets keeps them on the device, not once the edge map is added."""
    share = (CONTENT_BYTES_PER_PX + EDGE_BYTES_PER_PX / 2) * RES * RES
    args = (camera, torch.device("cpu"), "torch", torch.zeros(3), share / CONTENT_CACHE_SHARE)
    assert not Views(*args).offload
    assert Views(*args, CONTENT_BYTES_PER_PX + EDGE_BYTES_PER_PX).offload


def test_edges_term_is_relative_to_the_capture_s_own_edges():
    """With balance relative the term is edges · L(render) / (the capture's mean squared edge map): 0 at the capture
    itself, and ``edges`` for a render with no edges at all (an error as large as the capture's edges)."""
    vgg = load_vgg19()
    painting = demo_style(48).permute(2, 0, 1)[None]
    capture = 0.2 + 0.5 * torch.rand(1, 3, RES, RES, generator=torch.Generator().manual_seed(6))
    objective = Objective(vgg, painting, StylizeSettings(edges=3.0, content_colours="capture"), "frame")
    targets = objective.content_targets(capture, None)
    at_capture = objective.gradient(capture, None, targets)[1]
    flat = objective.gradient(torch.full_like(capture, 0.5), None, targets)[1]
    assert at_capture["edges"] == 0.0
    assert flat["edges"] == pytest.approx(3.0, rel=1e-5)


def test_edges_add_a_term_that_is_zero_at_the_first_step(scene, camera):
    """The first step renders the capture itself: the term is in the history and 0, nothing else changes."""
    plain = stylize(scene, demo_style(64), camera, settings()).history[0]
    edged = stylize(scene, demo_style(64), camera, settings(edges=5.0)).history[0]
    assert "edges" not in plain and edged["edges"] == pytest.approx(0.0, abs=1e-9)
    assert edged["total"] == pytest.approx(plain["total"], rel=1e-5)


def test_edges_keep_the_result_s_edges_closer_to_the_capture_s(scene, camera):
    painting = demo_style(64)
    capture = render_view(scene, camera[0])
    errors = []
    for edges in (0.0, 50.0):
        result = stylize(scene, painting, camera, settings(iterations=8, edges=edges))
        errors.append(float(mean_square(edge_map(render_view(result.splat, camera[0])) - edge_map(capture))))
    assert errors[1] < 0.5 * errors[0]  # measured: 7.8e-5 against 3.4e-4
