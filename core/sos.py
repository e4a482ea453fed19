"""The SOS style loss (SGSST): Gram + mean + std of VGG-19 features over a pyramid of scales, plus content.

docs/sos_loss.md states the loss. This module holds what spans the pyramid: the pyramid itself, the style
targets (the painting) and the per-view targets (the capture), the relative balance, `sos_loss` (plain autograd,
the reference definition) and `sos_gradient` (what the stylization loop calls: dL/drender scale by scale, each
scale by `scale_gradient_autograd` here or `core.tiled.scale_gradient_tiled`, fed the closed-form dL/dF of
core.loss_terms). Statistics are over the whole frame, or weighted by the render's coverage (`Coverage`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from core import tiled
from core.loss_terms import (LossWeights, combine_terms, content_feature_gradient, content_term, featureless_stats,
                             needed_layers, style_distance, style_feature_gradient, style_terms, vgg_autocast)
from core.planner import ScalePlan, run_with_oom_retry
from core.statistics import (LayerStats, content_count, layer_stats, layer_sums, pool_to_layers, squared_error_sum,
                             stats_from_sums)
from core.vgg import CONTENT_LAYER, STYLE_LAYERS, VGG19Features

MIN_STYLE_SIDE = 64
"""A stroke scale below 1 never shrinks the painting under this short side (relu5_1 keeps 4 x 4 positions) nor
under the scale's own short side when that is smaller."""
RELATIVE_FLOOR = 1e-3
"""The capture's style distance is floored at this fraction of the painting's featureless distance (no 0/0 when
the capture already looks like the painting)."""
CONTENT_UNIT = 1.0
"""Relative balance: the content term is Σ w (F − F_c)² / Σ w F_c² times this (docs/sos_loss.md)."""


@dataclass
class StyleTargets:
    """Style statistics of the painting per pyramid scale (computed once per run).

    `stroke_scales`: the painting's short side over the render's at each scale (the stroke scale reached there);
    `featureless`: SGSST's style distance of all-zero features from the painting at each scale (a painting-derived
    unit of style distance).
    """

    sizes: list[tuple[int, int]]
    stats: list[dict[str, LayerStats]]
    stroke_scales: list[float] = field(default_factory=list)
    featureless: list[float] = field(default_factory=list)


@dataclass
class ContentTargets:
    """Per-view targets from the capture (the unmodified scene's render), per pyramid scale (once per view).

    `features`: relu4_2 features (float32 or wider). With the style targets at hand also `style_distance`, the
    capture's own SGSST style distance from the painting, and `energy`, the (weighted) mean of F_c² on relu4_2:
    the units of the relative balance; `grain`, the capture's total variation at full resolution (the unit of the
    smoothness term), where it is used; `edges`, the edge map [1, 1, H, W] of the image the content term compares
    with at full resolution (core.image_terms.edge_map, float32: 4 bytes a pixel against relu4_2's 43), and
    `edge_energy`, its (weighted) mean square (the unit of the edge term), where the edge term is on.
    """

    sizes: list[tuple[int, int]]
    features: list[torch.Tensor]
    style_distance: list[float] | None = None
    energy: list[float] | None = None
    grain: float | None = None
    edges: torch.Tensor | None = None
    edge_energy: float | None = None

    def moved(self, move: Callable[[torch.Tensor], torch.Tensor]) -> ContentTargets:
        """These targets with each tensor (the features, the edge map) passed through ``move``: to host memory
        and back."""
        return replace(self, features=[move(f) for f in self.features],
                       edges=None if self.edges is None else move(self.edges))


@dataclass
class Coverage:
    """Per-pixel weights of a render [1, 1, H, W] in [0, 1] at full resolution, treated as constants.

    `style` weighs the style statistics (the render's alpha, or the alpha of the selected region), `content`
    the content term (the render's alpha). docs/sos_loss.md, "Object-aware statistics".
    """

    style: torch.Tensor
    content: torch.Tensor

    @classmethod
    def of_alpha(cls, alpha: torch.Tensor) -> Coverage:
        """Both from one alpha [1, 1, H, W] (or [H, W, 1] as core.render returns it)."""
        alpha = _as_coverage(alpha)
        return cls(alpha, alpha)

    def at(self, size: tuple[int, int]) -> Coverage:
        """Both maps at another size (antialiased, like the render's pyramid)."""
        style = downsample(self.style, size)
        return Coverage(style, style if self.content is self.style else downsample(self.content, size))

    def layer_weights(self, with_content: bool) -> dict[str, torch.Tensor]:
        """Position weights of the style layers (from `style`) and relu4_2 (from `content`) on their grids."""
        weights = pool_to_layers(self.style, STYLE_LAYERS)
        if with_content:
            weights.update(pool_to_layers(self.content, (CONTENT_LAYER,)))
        return weights


def pyramid_sizes(height: int, width: int, min_short_side: int = 511) -> list[tuple[int, int]]:
    """Full resolution, then halved (from the full size, rounded) until the short side is ≤ min_short_side."""
    if height < 1 or width < 1 or min_short_side < 1:
        raise ValueError(f"bad pyramid request {height}x{width}, min_short_side={min_short_side}")
    sizes = [(height, width)]
    level = 0
    while min(sizes[-1]) > min_short_side:
        level += 1
        sizes.append((_half_round(height, level), _half_round(width, level)))
    return sizes


def _half_round(length: int, level: int) -> int:
    return max(1, int(length / 2**level + 0.5))


def downsample(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of [B, C, H, W] to `size` (identity when the size already matches)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)


def style_image_pyramid(style: torch.Tensor, sizes: Sequence[tuple[int, int]],
                        stroke_scale: float = 1.0) -> list[torch.Tensor]:
    """The painting at each scale: short side = stroke_scale × the scale's short side, aspect kept.

    Never upscaled: where that asks for more pixels than the painting has, it is used at its own size and its
    strokes appear smaller than asked at that scale (a warning says so). A stroke scale below 1 stops at
    MIN_STYLE_SIDE (or the scale's short side, if smaller).
    """
    style_short = min(style.shape[-2:])
    wanted = [max(stroke_scale * min(size), min(min(size), MIN_STYLE_SIDE)) for size in sizes]
    capped = sum(w > style_short for w in wanted)
    if capped:
        reached = style_short / min(sizes[0])
        warnings.warn(f"the style image ({style.shape[-1]}x{style.shape[-2]}) is smaller than the render "
                      f"({sizes[0][1]}x{sizes[0][0]}) times the stroke scale {stroke_scale:g}: at the {capped} "
                      f"finest scale(s) it is used at its own size, so its strokes appear {reached:.2g}x the "
                      f"render's short side there instead of {stroke_scale:g}x, and the finest detail is missing",
                      stacklevel=2)
    pyramid = []
    for want in wanted:
        ratio = min(1.0, want / style_short)
        target = (max(1, round(style.shape[-2] * ratio)), max(1, round(style.shape[-1] * ratio)))
        pyramid.append(downsample(style, target))
    return pyramid


def image_stats(vgg: VGG19Features, image: torch.Tensor, *, coverage: torch.Tensor | None = None,
                tile: int | None = None, autocast_bf16: bool = False) -> dict[str, LayerStats]:
    """Style statistics of an image (no gradient), weighted by `coverage` [1, 1, H, W] when given; by tiles
    when `tile` is given (large images)."""
    weights = None if coverage is None else pool_to_layers(coverage, STYLE_LAYERS)
    if tile is not None:
        sums, _ = tiled.accumulate_sums(vgg, image, STYLE_LAYERS, None, tile=tile, layer_weights=weights,
                                        autocast_bf16=autocast_bf16)
        return {layer: stats_from_sums(s) for layer, s in sums.items()}
    with torch.no_grad():
        with vgg_autocast(image.device, autocast_bf16):
            feats = vgg(image, STYLE_LAYERS)
        return {layer: layer_stats(feats[layer], None if weights is None else weights[layer])
                for layer in STYLE_LAYERS}


def image_content_features(vgg: VGG19Features, image: torch.Tensor, *, tile: int | None = None,
                           autocast_bf16: bool = False) -> torch.Tensor:
    """relu4_2 features of an image as float32 (no gradient); by tiles when `tile` is given."""
    if tile is not None:
        return tiled.tiled_layer(vgg, image, CONTENT_LAYER, tile=tile, autocast_bf16=autocast_bf16)
    with torch.no_grad():
        with vgg_autocast(image.device, autocast_bf16):
            feats = vgg(image, (CONTENT_LAYER,))[CONTENT_LAYER]
        return feats.to(torch.promote_types(feats.dtype, torch.float32)).contiguous()


def build_style_targets(vgg: VGG19Features, style_img: torch.Tensor, sizes: Sequence[tuple[int, int]], *,
                        stroke_scale: float = 1.0, plan: Sequence[ScalePlan] | None = None,
                        autocast_bf16: bool = False) -> StyleTargets:
    """Frame statistics of the painting's pyramid (style_image_pyramid: stroke scale, never upscaled)."""
    images = style_image_pyramid(style_img, sizes, stroke_scale)
    stats = [image_stats(vgg, image, tile=_plan_tile(plan, i), autocast_bf16=autocast_bf16)
             for i, image in enumerate(images)]
    strokes = [min(image.shape[-2:]) / min(size) for image, size in zip(images, sizes)]
    featureless = [float(style_distance(featureless_stats(s), s)) for s in stats]
    return StyleTargets([tuple(s) for s in sizes], stats, strokes, featureless)


def build_content_targets(vgg: VGG19Features, content_img: torch.Tensor, sizes: Sequence[tuple[int, int]], *,
                          style: StyleTargets | None = None, coverage: Coverage | None = None,
                          plan: Sequence[ScalePlan] | None = None, autocast_bf16: bool = False) -> ContentTargets:
    """relu4_2 features of the capture (the original scene's render of the view) at each scale.

    With `style`, also the units of the relative balance (ContentTargets), from the same statistics the loss
    uses: weighted by `coverage` (the capture's) when given, over the frame otherwise.
    """
    _check_size(content_img, sizes, "content image")
    features, distances, energies = [], [], []
    for i, size in enumerate(sizes):
        image = downsample(content_img, size)
        scaled = None if coverage is None else coverage.at(size)
        feat = image_content_features(vgg, image, tile=_plan_tile(plan, i), autocast_bf16=autocast_bf16)
        features.append(feat)
        if style is not None:
            stats = image_stats(vgg, image, coverage=None if scaled is None else scaled.style,
                                tile=_plan_tile(plan, i), autocast_bf16=autocast_bf16)
            distances.append(float(style_distance(stats, style.stats[i])))
            weights = None if scaled is None else pool_to_layers(scaled.content, (CONTENT_LAYER,))[CONTENT_LAYER]
            energies.append(float(squared_error_sum(feat, torch.zeros_like(feat), weights)
                                  / content_count(feat, weights)))
    if style is None:
        return ContentTargets([tuple(s) for s in sizes], features)
    return ContentTargets([tuple(s) for s in sizes], features, distances, energies)


def relative_weights(weights: LossWeights, style: StyleTargets, content: ContentTargets) -> list[LossWeights]:
    """Per-scale weights of the relative balance (docs/sos_loss.md, "Strength").

    Style terms divided by the capture's own style distance at that view and scale (the style term is 1 on the
    capture), the content term by the capture's relu4_2 energy there (it is the relative change of the content
    features): neither depends on image size, coverage or painting.
    """
    if content.style_distance is None or content.energy is None:
        raise ValueError("relative weights need content targets built with the style targets")
    out = []
    for distance, energy, unit in zip(content.style_distance, content.energy, style.featureless):
        reference = max(distance, RELATIVE_FLOOR * unit)
        out.append(weights.rescaled(style=1.0 / reference, content=CONTENT_UNIT / max(energy, 1e-30)))
    return out


def sos_loss(vgg: VGG19Features, render: torch.Tensor, style: StyleTargets, content: ContentTargets | None,
             weights: LossWeights | Sequence[LossWeights], *,
             coverage: Coverage | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The SOS loss by plain autograd: average over scales of style terms + content (the reference definition).

    `weights`: one LossWeights for all scales or one per scale; `coverage`: object statistics (None: frame).
    """
    _check_size(render, style.sizes, "render")
    per_scale = []
    for i, size in enumerate(style.sizes):
        w = _scale_weights(weights, i)
        feats = vgg(downsample(render, size), needed_layers(content is not None))
        layer_weights = _layer_weights(coverage, size, content is not None)
        stats = {layer: layer_stats(feats[layer], _get(layer_weights, layer)) for layer in STYLE_LAYERS}
        content_loss = None
        if content is not None:
            target, position_weights = content.features[i], _get(layer_weights, CONTENT_LAYER)
            error = squared_error_sum(feats[CONTENT_LAYER], target, position_weights)
            content_loss = content_term(error, content_count(target, position_weights), w)
        per_scale.append(combine_terms(style_terms(stats, style.stats[i], w), content_loss))
    terms = {key: sum(t[key] for t in per_scale) / len(per_scale) for key in per_scale[0]}
    return terms["total"], {key: float(value.detach()) for key, value in terms.items()}


def scale_gradient_autograd(vgg: VGG19Features, image: torch.Tensor, style_stats: dict[str, LayerStats],
                            content_feat: torch.Tensor | None, weights: LossWeights, *,
                            layer_weights: tiled.LayerWeights | None = None,
                            autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """dL/dimage of one scale's loss by one autograd pass through VGG, fed the closed-form dL/dF.

    The whole-image twin of core.tiled.scale_gradient_tiled. The terms stay 0-dim tensors so that no scale
    waits for the GPU (sos_gradient reads them all at once).
    """
    image = image.detach().requires_grad_(True)
    with torch.enable_grad(), vgg_autocast(image.device, autocast_bf16):
        feats = vgg(image, needed_layers(content_feat is not None))
    with torch.no_grad():
        sums = {layer: layer_sums(feats[layer], _get(layer_weights, layer)) for layer in STYLE_LAYERS}
        stats = {layer: stats_from_sums(s) for layer, s in sums.items()}
        grads = {layer: style_feature_gradient(feats[layer], stats[layer], style_stats[layer], weights,
                                               sums[layer].mass, _get(layer_weights, layer)) for layer in STYLE_LAYERS}
        content_loss = None
        if content_feat is not None:
            feat, position_weights = feats[CONTENT_LAYER], _get(layer_weights, CONTENT_LAYER)
            count = content_count(content_feat, position_weights)
            content_loss = content_term(squared_error_sum(feat, content_feat, position_weights), count, weights)
            grads[CONTENT_LAYER] = content_feature_gradient(feat, content_feat, weights, count, position_weights)
        terms = combine_terms(style_terms(stats, style_stats, weights), content_loss)
    torch.autograd.backward([feats[layer] for layer in grads], [grads[layer] for layer in grads])
    return image.grad, terms


def sos_gradient(vgg: VGG19Features, render: torch.Tensor, style: StyleTargets, content: ContentTargets | None,
                 weights: LossWeights | Sequence[LossWeights], *, coverage: Coverage | None = None,
                 plan: list[ScalePlan] | None = None,
                 autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """dL/drender [1, 3, H, W] of the SOS loss and its terms (averaged over scales), scale by scale.

    Each scale runs by autograd or by tiles as `plan` says (None: autograd); its gradient is carried back to
    the full-resolution render through the antialiased downsampling. A scale that runs out of GPU memory is
    retried with smaller tiles, and its entry in `plan` is replaced so later calls start there. `weights` and
    `coverage` as in sos_loss; a scale whose content weight is 0 skips relu4_2.
    """
    _check_size(render, style.sizes, "render")
    source = render.detach().requires_grad_(True)
    total_grad = torch.zeros_like(render)
    per_scale = []
    for i, size in enumerate(style.sizes):
        w = _scale_weights(weights, i)
        with torch.enable_grad():
            image = downsample(source, size)
        content_feat = None if content is None or w.content_weight == 0 else content.features[i]
        with torch.no_grad():
            layer_weights = _layer_weights(coverage, size, content_feat is not None)

        def run(p: ScalePlan) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            if p.method == "tiled":
                return tiled.scale_gradient_tiled(vgg, image.detach(), style.stats[i], content_feat, w, tile=p.tile,
                                                  layer_weights=layer_weights, autocast_bf16=autocast_bf16)
            return scale_gradient_autograd(vgg, image.detach(), style.stats[i], content_feat, w,
                                           layer_weights=layer_weights, autocast_bf16=autocast_bf16)

        start = plan[i] if plan is not None else ScalePlan(tuple(size), "autograd", None)
        (grad, terms), used = run_with_oom_retry(run, start)
        if plan is not None:
            plan[i] = used
        if image is source:
            total_grad += grad
        else:
            total_grad += torch.autograd.grad(image, source, grad.to(image.dtype))[0]
        per_scale.append(terms)
    total_grad /= len(style.sizes)
    keys = list(per_scale[0])
    means = torch.stack([sum(t[key] for t in per_scale) / len(per_scale) for key in keys]).tolist()
    return total_grad, dict(zip(keys, means))


def _scale_weights(weights: LossWeights | Sequence[LossWeights], index: int) -> LossWeights:
    return weights if isinstance(weights, LossWeights) else weights[index]


def _layer_weights(coverage: Coverage | None, size: tuple[int, int],
                   with_content: bool) -> dict[str, torch.Tensor] | None:
    if coverage is None:
        return None
    return coverage.at(size).layer_weights(with_content)


def _get(layer_weights: tiled.LayerWeights | None, layer: str) -> torch.Tensor | None:
    return None if layer_weights is None else layer_weights[layer]


def _as_coverage(alpha: torch.Tensor) -> torch.Tensor:
    """[H, W, 1] or [1, 1, H, W] alpha as [1, 1, H, W], detached (coverage weights are constants)."""
    alpha = alpha.detach()
    if alpha.dim() == 3 and alpha.shape[-1] == 1:
        alpha = alpha.permute(2, 0, 1).unsqueeze(0)
    if alpha.dim() != 4 or alpha.shape[:2] != (1, 1):
        raise ValueError(f"alpha must be [H, W, 1] or [1, 1, H, W], got {list(alpha.shape)}")
    return alpha


def _check_size(image: torch.Tensor, sizes: Sequence[tuple[int, int]], what: str) -> None:
    if image.dim() != 4 or image.shape[:2] != (1, 3) or tuple(image.shape[-2:]) != tuple(sizes[0]):
        raise ValueError(f"{what} must be [1, 3, {sizes[0][0]}, {sizes[0][1]}], got {list(image.shape)}")


def _plan_tile(plan: Sequence[ScalePlan] | None, index: int) -> int | None:
    if plan is None or plan[index].method != "tiled":
        return None
    return plan[index].tile
