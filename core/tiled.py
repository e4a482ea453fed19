"""Exact gradient of one scale's SOS loss by overlapping tiles, for images whose VGG-19 graph does not fit.

The statistics are (weighted) sums over positions, so (docs/sos_loss.md, "The tiled gradient"): pass 1 (no
autograd) accumulates Σ w F Fᵀ, Σ w F, Σ w and the content error over the inner part of every tile; the
closed-form dL/dF follows from those global statistics; pass 2 runs each tile again with autograd, feeds it dL/dF
over the whole tile, halo included, and keeps the inner part of the pixel gradient.

Geometry (relu5_1 feature i sees pixels [16i − 70, 16i + 85]): inner tiles start on the 16-px grid so pooling
windows line up with the whole image's, and so do the position weights (coverage pooled on the whole image's grid,
then cropped like the features). Pass 1 needs the inner features exact: a halo of 70 px, 80 on the grid.
Pass 2 needs every feature that sees an inner pixel exact: a halo of 155 px (156 = relu5_1's receptive field),
rounded up to the grid when the tile origin is placed (160).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from core.loss_terms import (LossWeights, combine_terms, content_feature_gradient, content_term, needed_layers,
                             style_feature_gradient, style_terms, vgg_autocast)
from core.statistics import LayerStats, LayerSums, content_count, layer_sums, squared_error_sum, stats_from_sums
from core.vgg import CONTENT_LAYER, LAYER_STRIDES, STYLE_LAYERS, VGG19Features

LayerWeights = Mapping[str, torch.Tensor]
"""Position weights per VGG layer, each [h, w] on that layer's grid of the whole image (core.statistics)."""

GRID = 16
MIN_HALO = 156
FORWARD_HALO = 80
DEFAULT_HALO = 160


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the pixels fed to VGG [start, end) and its inner part [inner_start, inner_end)."""

    start: int
    end: int
    inner_start: int
    inner_end: int

    @property
    def region(self) -> slice:
        return slice(self.start, self.end)

    @property
    def inner(self) -> slice:
        return slice(self.inner_start, self.inner_end)

    @property
    def inner_in_tile(self) -> slice:
        return slice(self.inner_start - self.start, self.inner_end - self.start)

    def inner_features(self, stride: int) -> slice:
        """The inner part in the tile's feature map at `stride` (start is on the grid, so this is exact)."""
        return slice(self.inner_start // stride - self.start // stride, self.inner_end // stride - self.start // stride)

    def global_inner_features(self, stride: int) -> slice:
        """The inner part in the whole image's feature map at `stride`."""
        return slice(self.inner_start // stride, self.inner_end // stride)

    def global_features(self, stride: int, count: int) -> slice:
        """The `count` positions of the tile's feature map, in the whole image's feature map."""
        return slice(self.start // stride, self.start // stride + count)


def axis_spans(length: int, tile: int, halo: int) -> list[Span]:
    """Split an axis into inner tiles of at most `tile` px (evenly, on the 16-px grid), each with its halo."""
    if tile <= 0 or tile % GRID:
        raise ValueError(f"tile must be a positive multiple of {GRID} px, got {tile}")
    count = math.ceil(length / tile)
    step = math.ceil(length / count / GRID) * GRID
    bounds = list(range(0, length, step)) + [length]
    return [Span(max(0, (a - halo) // GRID * GRID), min(length, b + halo), a, b) for a, b in zip(bounds, bounds[1:])]


def tile_grid(height: int, width: int, tile: int, halo: int) -> list[tuple[Span, Span]]:
    """All tiles of an image as (row span, column span)."""
    return [(ys, xs) for ys in axis_spans(height, tile, halo) for xs in axis_spans(width, tile, halo)]


def inner_features(vgg: VGG19Features, image: torch.Tensor, layers: Sequence[str], *, tile: int,
                   halo: int = FORWARD_HALO, autocast_bf16: bool = False
                   ) -> Iterator[tuple[Span, Span, dict[str, torch.Tensor]]]:
    """Per tile, the features of `layers` cropped to the inner part (no autograd): exact for halo ≥ 80."""
    with torch.no_grad():
        for ys, xs in tile_grid(image.shape[-2], image.shape[-1], tile, halo):
            with vgg_autocast(image.device, autocast_bf16):
                feats = vgg(image[:, :, ys.region, xs.region], layers)
            yield ys, xs, {layer: f[:, :, ys.inner_features(LAYER_STRIDES[layer]),
                                    xs.inner_features(LAYER_STRIDES[layer])] for layer, f in feats.items()}


def accumulate_sums(vgg: VGG19Features, image: torch.Tensor, layers: Sequence[str],
                    content_feat: torch.Tensor | None, *, tile: int, halo: int = FORWARD_HALO,
                    layer_weights: LayerWeights | None = None,
                    autocast_bf16: bool = False) -> tuple[dict[str, LayerSums], torch.Tensor | None]:
    """Pass 1: Σ w F Fᵀ, Σ w F, Σ w per layer and Σ w (F − F_c)² on relu4_2 (when content_feat is given)."""
    wanted = tuple(layers) + ((CONTENT_LAYER,) if content_feat is not None else ())
    sums: dict[str, LayerSums] = {}
    content_error = None
    for ys, xs, feats in inner_features(vgg, image, wanted, tile=tile, halo=halo, autocast_bf16=autocast_bf16):
        for layer in layers:
            part = layer_sums(feats[layer], _crop(layer_weights, layer, ys, xs))
            sums[layer] = part if layer not in sums else sums[layer] + part
        if content_feat is not None:
            stride = LAYER_STRIDES[CONTENT_LAYER]
            target = content_feat[:, :, ys.global_inner_features(stride), xs.global_inner_features(stride)]
            error = squared_error_sum(feats[CONTENT_LAYER], target, _crop(layer_weights, CONTENT_LAYER, ys, xs))
            content_error = error if content_error is None else content_error + error
    return sums, content_error


def tiled_layer(vgg: VGG19Features, image: torch.Tensor, layer: str, *, tile: int, halo: int = FORWARD_HALO,
                autocast_bf16: bool = False) -> torch.Tensor:
    """One layer's whole feature map (float32 or wider), assembled from tiles (content targets of huge images)."""
    stride = LAYER_STRIDES[layer]
    out = None
    for ys, xs, feats in inner_features(vgg, image, (layer,), tile=tile, halo=halo, autocast_bf16=autocast_bf16):
        part = feats[layer]
        if out is None:
            shape = (1, part.shape[1], image.shape[-2] // stride, image.shape[-1] // stride)
            out = part.new_zeros(shape, dtype=torch.promote_types(part.dtype, torch.float32))
        out[:, :, ys.global_inner_features(stride), xs.global_inner_features(stride)] = part
    return out


def scale_gradient_tiled(vgg: VGG19Features, image: torch.Tensor, style_stats: dict[str, LayerStats],
                         content_feat: torch.Tensor | None, weights: LossWeights, *, tile: int,
                         halo: int = DEFAULT_HALO, layer_weights: LayerWeights | None = None,
                         allow_small_halo: bool = False,
                         autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exact dL/dimage of one scale's loss and its terms (0-dim tensors), by two passes over tiles.

    The tiled twin of core.sos.scale_gradient_autograd, with the same arguments plus the tile geometry: `tile` px
    inner tiles with a `halo` (at least 156 px for exactness). `layer_weights` (None: frame statistics) are
    the position weights of every needed layer over the whole image.
    """
    _check_halo(halo, allow_small_halo)
    sums, content_error = accumulate_sums(vgg, image, STYLE_LAYERS, content_feat, tile=tile,
                                          halo=min(halo, FORWARD_HALO), layer_weights=layer_weights,
                                          autocast_bf16=autocast_bf16)
    stats = {layer: stats_from_sums(s) for layer, s in sums.items()}
    count = None
    content_loss = None
    if content_feat is not None:
        count = content_count(content_feat, None if layer_weights is None else layer_weights[CONTENT_LAYER])
        content_loss = content_term(content_error, count, weights)
    terms = combine_terms(style_terms(stats, style_stats, weights), content_loss)
    grad = torch.zeros_like(image)
    for ys, xs in tile_grid(image.shape[-2], image.shape[-1], tile, halo):
        crop = image[:, :, ys.region, xs.region].detach().requires_grad_(True)
        with torch.enable_grad(), vgg_autocast(image.device, autocast_bf16):
            feats = vgg(crop, needed_layers(content_feat is not None))
        with torch.no_grad():
            grads = {layer: style_feature_gradient(feats[layer], stats[layer], style_stats[layer], weights,
                                                   sums[layer].mass, _tile_weights(layer_weights, layer, feats, ys, xs))
                     for layer in STYLE_LAYERS}
            if content_feat is not None:
                grads[CONTENT_LAYER] = _tile_content_gradient(feats[CONTENT_LAYER], content_feat, ys, xs, weights,
                                                              count, layer_weights)
        torch.autograd.backward([feats[layer] for layer in grads], [grads[layer] for layer in grads])
        grad[:, :, ys.inner, xs.inner] = crop.grad[:, :, ys.inner_in_tile, xs.inner_in_tile]
    return grad, terms


def _crop(layer_weights: LayerWeights | None, layer: str, ys: Span, xs: Span) -> torch.Tensor | None:
    """A layer's position weights over a tile's inner part (pass 1)."""
    if layer_weights is None:
        return None
    stride = LAYER_STRIDES[layer]
    return layer_weights[layer][ys.global_inner_features(stride), xs.global_inner_features(stride)]


def _tile_weights(layer_weights: LayerWeights | None, layer: str, feats: dict[str, torch.Tensor], ys: Span,
                  xs: Span) -> torch.Tensor | None:
    """A layer's position weights over a whole tile's feature map, halo included (pass 2)."""
    if layer_weights is None:
        return None
    stride, (h, w) = LAYER_STRIDES[layer], feats[layer].shape[-2:]
    return layer_weights[layer][ys.global_features(stride, h), xs.global_features(stride, w)]


def _tile_content_gradient(feats: torch.Tensor, content_feat: torch.Tensor, ys: Span, xs: Span,
                           weights: LossWeights, count: int | torch.Tensor,
                           layer_weights: LayerWeights | None) -> torch.Tensor:
    """dL/dF of the content term over a whole tile's relu4_2 map, against the matching part of the target."""
    stride = LAYER_STRIDES[CONTENT_LAYER]
    target = content_feat[:, :, ys.global_features(stride, feats.shape[-2]),
                          xs.global_features(stride, feats.shape[-1])]
    return content_feature_gradient(feats, target, weights, count,
                                    _tile_weights(layer_weights, CONTENT_LAYER, {CONTENT_LAYER: feats}, ys, xs))


def _check_halo(halo: int, allow_small_halo: bool) -> None:
    """A halo under 156 px makes the gradient approximate: refuse, or warn when explicitly allowed."""
    if halo >= MIN_HALO:
        return
    message = (f"halo {halo} px is below {MIN_HALO} px (relu5_1's receptive field): the tiled gradient "
               "is no longer exact")
    if not allow_small_halo:
        raise ValueError(message + "; pass allow_small_halo=True to accept an approximation")
    warnings.warn(message, stacklevel=3)
