"""Exact gradient of one scale's SOS loss by overlapping tiles, for images whose VGG-19 graph does not fit.

The style statistics are sums over positions, so (sos.md, "Localized (tiled) exact gradient"):
pass 1 (no autograd) accumulates Σ F Fᵀ, Σ F and the content error over the inner part of every tile;
the closed-form dL/dF follows from those global statistics; pass 2 runs each tile again with autograd, feeds
it dL/dF and keeps the inner part of the pixel gradient.

Geometry (relu5_1 feature i sees pixels [16i − 70, 16i + 85]): inner tiles start on the 16-px grid so pooling
windows line up with the whole image's. Pass 1 needs the inner features exact: a halo of 70 px, 80 on the grid.
Pass 2 needs every feature that sees an inner pixel exact: a halo of 155 px (156 = relu5_1's receptive field),
rounded up to the grid when the tile origin is placed (160).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from core.sos import (LayerStats, LayerSums, LossWeights, combine_terms, content_feature_gradient, content_term,
                      layer_sums, needed_layers, squared_error_sum, stats_from_sums, style_feature_gradient,
                      style_terms, vgg_autocast)
from core.vgg import CONTENT_LAYER, LAYER_STRIDES, STYLE_LAYERS, VGG19Features

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
                    autocast_bf16: bool = False) -> tuple[dict[str, LayerSums], torch.Tensor | None]:
    """Pass 1: Σ F Fᵀ, Σ F per layer and Σ (F − F_c)² on relu4_2 (when content_feat is given), over all tiles."""
    wanted = tuple(layers) + ((CONTENT_LAYER,) if content_feat is not None else ())
    sums: dict[str, LayerSums] = {}
    content_error = None
    stride = LAYER_STRIDES[CONTENT_LAYER]
    for ys, xs, feats in inner_features(vgg, image, wanted, tile=tile, halo=halo, autocast_bf16=autocast_bf16):
        for layer in layers:
            part = layer_sums(feats[layer])
            sums[layer] = part if layer not in sums else sums[layer] + part
        if content_feat is not None:
            target = content_feat[:, :, ys.global_inner_features(stride), xs.global_inner_features(stride)]
            error = squared_error_sum(feats[CONTENT_LAYER], target)
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


def tiled_scale_gradient(vgg: VGG19Features, image: torch.Tensor, style_stats: dict[str, LayerStats],
                         content_feat: torch.Tensor | None, weights: LossWeights, *, tile: int,
                         halo: int = DEFAULT_HALO, allow_small_halo: bool = False,
                         autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """Exact dL/dimage of one scale's loss and its terms, by two passes over tiles of `tile` px plus `halo`."""
    grad, terms = tiled_gradient(vgg, image, style_stats, content_feat, weights, tile=tile, halo=halo,
                                 allow_small_halo=allow_small_halo, autocast_bf16=autocast_bf16)
    return grad, {key: float(value) for key, value in terms.items()}


def tiled_gradient(vgg: VGG19Features, image: torch.Tensor, style_stats: dict[str, LayerStats],
                   content_feat: torch.Tensor | None, weights: LossWeights, *, tile: int, halo: int = DEFAULT_HALO,
                   allow_small_halo: bool = False,
                   autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """tiled_scale_gradient with the terms left as 0-dim tensors (no wait for the GPU; sos_gradient's form)."""
    _check_halo(halo, allow_small_halo)
    sums, content_error = accumulate_sums(vgg, image, STYLE_LAYERS, content_feat, tile=tile,
                                          halo=min(halo, FORWARD_HALO), autocast_bf16=autocast_bf16)
    stats = {layer: stats_from_sums(s) for layer, s in sums.items()}
    content_loss = None if content_feat is None else content_term(content_error, content_feat.numel(), weights)
    terms = combine_terms(style_terms(stats, style_stats, weights), content_loss)
    grad = torch.zeros_like(image)
    for ys, xs in tile_grid(image.shape[-2], image.shape[-1], tile, halo):
        crop = image[:, :, ys.region, xs.region].detach().requires_grad_(True)
        with torch.enable_grad(), vgg_autocast(image.device, autocast_bf16):
            feats = vgg(crop, needed_layers(content_feat is not None))
        with torch.no_grad():
            grads = {layer: style_feature_gradient(feats[layer], stats[layer], style_stats[layer], weights,
                                                   sums[layer].count) for layer in STYLE_LAYERS}
            if content_feat is not None:
                grads[CONTENT_LAYER] = _tile_content_gradient(feats[CONTENT_LAYER], content_feat, ys, xs, weights)
        torch.autograd.backward([feats[layer] for layer in grads], [grads[layer] for layer in grads])
        grad[:, :, ys.inner, xs.inner] = crop.grad[:, :, ys.inner_in_tile, xs.inner_in_tile]
    return grad, terms


def _tile_content_gradient(feats: torch.Tensor, content_feat: torch.Tensor, ys: Span, xs: Span,
                           weights: LossWeights) -> torch.Tensor:
    """dL/dF of the content term over a whole tile's relu4_2 map, against the matching part of the target."""
    stride = LAYER_STRIDES[CONTENT_LAYER]
    target = content_feat[:, :, ys.global_features(stride, feats.shape[-2]),
                          xs.global_features(stride, feats.shape[-1])]
    return content_feature_gradient(feats, target, weights, content_feat.numel())


def _check_halo(halo: int, allow_small_halo: bool) -> None:
    """A halo under 156 px makes the gradient approximate: refuse, or warn when explicitly allowed."""
    if halo >= MIN_HALO:
        return
    message = (f"halo {halo} px is below {MIN_HALO} px (relu5_1's receptive field): the tiled gradient "
               "is no longer exact")
    if not allow_small_halo:
        raise ValueError(message + "; pass allow_small_halo=True to accept an approximation")
    warnings.warn(message, stacklevel=3)
