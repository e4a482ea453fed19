"""The SOS loss terms of one scale and their closed-form derivatives with respect to VGG features.

docs/sos_loss.md states the loss; this module is its arithmetic, shared by the plain-autograd route (core.sos)
and the tiled one (core.tiled): the weighted Gram, mean and std terms, the content term, and dL/dF of each; and the
terms computed once on the full-resolution render, total variation and edges, with their dL/dimage.
Position weights (coverage pooled to a layer's grid) are constants: docs/sos_loss.md says why.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from core.statistics import MIN_MASS, STD_EPS, LayerStats, channel_matrix, column_blocks, no_autocast
from core.vgg import ALL_LAYERS, STYLE_LAYERS


@dataclass(frozen=True)
class LossWeights:
    """SGSST's released weights; style_strength multiplies every style term, content_weight the content term."""

    style_strength: float = 1.0
    content_weight: float = 1.0
    gram_scale: float = 1e3
    mean_weight: float = 1e4
    std_weight: float = 1e4

    def rescaled(self, style: float, content: float) -> LossWeights:
        """These weights with the style terms multiplied by `style` and the content term by `content`."""
        return replace(self, style_strength=self.style_strength * style, content_weight=self.content_weight * content)


def style_terms(stats: dict[str, LayerStats], targets: dict[str, LayerStats],
                weights: LossWeights) -> dict[str, torch.Tensor]:
    """Weighted Gram, mean and std terms summed over the style layers (style_strength included).

    One mse_loss per statistic and one sum per term: this runs at every scale of every iteration, and each
    tensor operation costs a kernel launch.
    """
    k = weights.style_strength
    gram, mean, std = [], [], []
    for layer in STYLE_LAYERS:
        s, t = stats[layer], targets[layer]
        n = s.mean.shape[0]
        gram.append(F.mse_loss(s.gram, t.gram) * (k * weights.gram_scale / n**2))
        mean.append(F.mse_loss(s.mean, t.mean) * (k * weights.mean_weight))
        std.append(F.mse_loss(s.std, t.std) * (k * weights.std_weight))
    return {"gram": torch.stack(gram).sum(), "mean": torch.stack(mean).sum(), "std": torch.stack(std).sum()}


def style_distance(stats: dict[str, LayerStats], targets: dict[str, LayerStats],
                   weights: LossWeights = LossWeights()) -> torch.Tensor:
    """The style terms' sum: SGSST's style distance (with the default weights) of `stats` from `targets`."""
    terms = style_terms(stats, targets, weights)
    return terms["gram"] + terms["mean"] + terms["std"]


def featureless_stats(targets: dict[str, LayerStats]) -> dict[str, LayerStats]:
    """The statistics of all-zero features (Gram 0, mean 0, std √ε), shaped like `targets`.

    Their style distance from a painting depends on the painting alone: a painting-derived unit of style distance.
    """
    return {layer: LayerStats(torch.zeros_like(t.gram), torch.zeros_like(t.mean),
                              torch.full_like(t.std, STD_EPS**0.5)) for layer, t in targets.items()}


def content_term(squared_error_sum: torch.Tensor, count: int | torch.Tensor, weights: LossWeights) -> torch.Tensor:
    """w_c · Σ w (F − F_c)² / (n Σ w): the (weighted) mean squared error over `count` = n Σ w entries."""
    return weights.content_weight * squared_error_sum / count


def combine_terms(style: dict[str, torch.Tensor], content: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """All terms of one scale: gram, mean, std, style (their sum), content (0 without), total."""
    style_sum = style["gram"] + style["mean"] + style["std"]
    content = torch.zeros_like(style_sum) if content is None else content
    return {**style, "style": style_sum, "content": content, "total": style_sum + content}


def style_feature_gradient(feats: torch.Tensor, stats: LayerStats, target: LayerStats, weights: LossWeights,
                           mass: int | torch.Tensor, position_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Closed-form dL/dF of the style terms of one layer, from the statistics over the whole image.

    With W = Σ w over all positions (`mass`; the position count without weights), at position p:
    dL/dF_p = w_p [4 wG/(n² W) (G − G_s) F_p + 2 wμ/(n W) (μ − μ_s) + 2 wσ/(n W) (σ − σ_s)/σ ⊙ (F_p − μ)],
    wG = gram_scale / n², all times the style strength: one channel-mixing affine map M F + c, then × w_p.
    """
    n = stats.mean.shape[0]
    mass = mass.clamp_min(MIN_MASS) if isinstance(mass, torch.Tensor) else max(mass, MIN_MASS)
    unit = 2 * weights.style_strength / (n * mass)
    mix = (stats.gram - target.gram) * (unit * 2 * weights.gram_scale / n**3)
    alive = torch.diagonal(stats.gram) >= stats.mean.square()  # where σ's clamp passes the derivative
    ratio = (1 - target.std / stats.std) * alive * (unit * weights.std_weight)
    mix.diagonal().add_(ratio)
    offset = torch.addcmul((stats.mean - target.mean) * (unit * weights.mean_weight), ratio, stats.mean, value=-1)
    grad = _affine_channels(feats, mix, offset)
    if position_weights is not None:
        grad.mul_(position_weights.to(grad.dtype))
    return grad


def content_feature_gradient(feats: torch.Tensor, target: torch.Tensor, weights: LossWeights,
                             count: int | torch.Tensor, position_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Closed-form dL/dF of the content term: 2 w_c w_p / count · (F − F_c), `count` = n Σ w over the whole scale."""
    with no_autocast(feats):
        grad = (2 * weights.content_weight / count) * (feats.to(target.dtype) - target)
        if position_weights is not None:
            grad = grad * position_weights.to(target.dtype)
        return grad.to(feats.dtype)


def needed_layers(with_content: bool) -> tuple[str, ...]:
    """VGG layers the loss reads: the style layers, plus relu4_2 when there is a content target."""
    return ALL_LAYERS if with_content else STYLE_LAYERS


def vgg_autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    """bf16 autocast for the VGG convolutions (statistics stay float32: see core.statistics.layer_sums)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _affine_channels(feats: torch.Tensor, mix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """mix @ F + offset per position, returned in F's dtype and layout.

    On CUDA with bf16/fp16 features: one GEMM in that dtype. Elsewhere: in mix's dtype (float32/64), block by block.
    """
    if not (feats.is_contiguous() or feats.is_contiguous(memory_format=torch.channels_last)):
        feats = feats.contiguous()
    out = torch.empty_like(feats)
    source, target = channel_matrix(feats), channel_matrix(out)
    positions_major = source.stride(0) == 1 and source.shape[1] > 1
    if feats.is_cuda and feats.dtype in (torch.bfloat16, torch.float16):
        # One GEMM in the features' dtype (float32 accumulation, rounded once): no float32 copy of the features.
        mix_h, offset_h = mix.to(feats.dtype), offset.to(feats.dtype)
        with no_autocast(feats):
            if positions_major:
                torch.addmm(offset_h[None, :], source.T, mix_h.T, out=target.T)
            else:
                torch.addmm(offset_h[:, None], mix_h, source, out=target)
        return out
    with no_autocast(feats):
        for block in column_blocks(source):
            chunk = source[:, block].to(mix.dtype)
            if positions_major:  # channels_last: write [positions, channels] rows contiguously
                target[:, block].T.copy_(torch.addmm(offset[None, :], chunk.T, mix.T))
            else:
                target[:, block].copy_(torch.addmm(offset[:, None], mix, chunk))
    return out


TV_EPSILON = 1e-3
"""Charbonnier smoothing of the total variation, |d| ≈ √(d² + ε²): differentiable at 0, L1 beyond a few 1/1000s of
the [0, 1] colour range (edges cost their height, not its square, so they survive)."""


def total_variation(image: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Total variation of an image [1, 3, H, W] and its gradient (closed form, no autograd graph).

    TV = Σ_pairs w_p ρ(I_q − I_p) / (3 Σ_p w_p) over horizontal and vertical neighbour pairs (p, q) and channels,
    ρ(d) = √(d² + ε²) (``TV_EPSILON``): the mean absolute neighbour difference, the grain a render shows.
    ``weights`` [1, 1, H, W] (a coverage, constant; None: every pixel 1) weigh each pair by its first pixel. Local:
    it needs one neighbour, so on the full-resolution render it is exact at any size without tiles.
    """
    image = image.detach().float()
    w = torch.ones_like(image[:, :1]) if weights is None else weights.detach().float()
    norm = 3 * w.sum().clamp_min(1e-12)
    grad = torch.zeros_like(image)
    total = image.new_zeros(())
    for dim in (-1, -2):
        length = image.shape[dim]
        first, second = image.narrow(dim, 0, length - 1), image.narrow(dim, 1, length - 1)
        pair_weights = w.narrow(dim, 0, length - 1)
        difference = second - first
        magnitude = torch.sqrt(difference.square() + TV_EPSILON**2)
        total = total + (pair_weights * magnitude).sum()
        slope = pair_weights * difference / magnitude
        grad.narrow(dim, 1, length - 1).add_(slope)
        grad.narrow(dim, 0, length - 1).sub_(slope)
    return total / norm, grad / norm


LUMINANCE = (0.2126, 0.7152, 0.0722)
"""Rec. 709 luminance weights of R, G, B: the edge term compares lightness only, so the painting's palette and
chroma stay free."""
EDGE_SIGMAS = (1.0, 2.0)
"""The edge map's difference of Gaussians, σ in pixels of the full-resolution render. Its response peaks at a
6.5 px period and is above half the peak from 3.7 to 14 px (along either axis): the edges of eyes, mouths and
letters (5–30 px features at 1–2K renders) register, while the finest brush grain (a 2 px period: 3 % of the peak,
3 px: 24 %) stays free for the painting. Each kernel is cut at 3σ (6 px for the wider one)."""
EDGE_ENERGY_FLOOR = 1e-6
"""The relative balance's unit of the edge term (the reference's mean squared edge map) is at least this: an edge
map of RMS 1/1000 of the colour range (a quarter of an 8-bit level), so a flat view's unit is not its noise."""


def edge_map(image: torch.Tensor) -> torch.Tensor:
    """The band-pass of an image's luminance [1, 1, H, W] (``EDGE_SIGMAS``): where its lightness edges are.

    E(x) = Ĝ_σ1(Y) − Ĝ_σ2(Y), Y = Rec. 709 luminance of ``image`` [1, 3, H, W], Ĝ a Gaussian blur normalised by
    the kernel mass inside the frame (zero padding divided by the blur of ones): a constant image has no edges up
    to the border, and the map stays linear in the image, so its transpose is exact (``edge_difference``).
    Computed in float32 or wider, the image's dtype where wider.
    """
    image = image.detach()
    image = image.to(torch.promote_types(image.dtype, torch.float32))
    luminance = torch.tensordot(image.new_tensor(LUMINANCE), image[0], dims=1)[None, None]
    return _normalised_blur(luminance, EDGE_SIGMAS[0]) - _normalised_blur(luminance, EDGE_SIGMAS[1])


def edge_difference(image: torch.Tensor, reference_edges: torch.Tensor,
                    weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The edge term of an image [1, 3, H, W] against a reference's edge map [1, 1, H, W], and its gradient
    (closed form, no autograd graph).

    L = Σ_p w_p (E(x)_p − E_ref_p)² / Σ_p w_p (``edge_map``), ``weights`` [1, 1, H, W] a constant coverage (None:
    every pixel 1). E is linear (luminance, then separable convolutions with fixed symmetric kernels), so
    dL/dx = Eᵀ(2 w (E(x) − E_ref)) / Σ w, with Eᵀ(g) = Σ_σ± G_σ(g / m_σ) spread over the channels by the
    luminance weights (G zero-padded, hence its own transpose; m_σ its mass inside the frame). Local: a pixel's
    gradient depends on pixels within 12 px (twice the wider kernel's radius), so on the full-resolution render it
    is exact at any size without tiles. Peak memory: about eight float32 planes of the image's size besides the
    image and its gradient (1 GB at 8K).
    """
    difference = edge_map(image) - reference_edges.to(torch.promote_types(image.dtype, torch.float32))
    w = torch.ones_like(difference) if weights is None else weights.detach().to(difference.dtype)
    norm = w.sum().clamp_min(1e-12)
    value = mean_square(difference, w)
    slope = (2 / norm) * w * difference
    back = _normalised_blur_transpose(slope, EDGE_SIGMAS[0]) - _normalised_blur_transpose(slope, EDGE_SIGMAS[1])
    grad = back * difference.new_tensor(LUMINANCE)[None, :, None, None]
    return value, grad


def mean_square(plane: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_p w_p plane_p² / Σ_p w_p (``weights`` like ``plane``; None: the plain mean; 0 where Σ w is 0)."""
    w = torch.ones_like(plane) if weights is None else weights.to(plane.dtype)
    return (w * plane.square()).sum() / w.sum().clamp_min(1e-12)


def _gaussian_kernel(sigma: float, like: torch.Tensor) -> torch.Tensor:
    """A 1-D Gaussian of ``sigma`` px cut at 3σ, summing to 1, in ``like``'s dtype and device."""
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    kernel = torch.exp(-0.5 * (offsets / sigma).square())
    return kernel / kernel.sum()


def _blur(plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable zero-padded Gaussian blur of [1, 1, H, W] (its own transpose: the kernel is symmetric)."""
    kernel = _gaussian_kernel(sigma, plane)
    radius = kernel.numel() // 2
    across = F.conv2d(plane, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(across, kernel.view(1, 1, -1, 1), padding=(radius, 0))


def _blur_mass(plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """The blur of ones [1, 1, H, W]: each pixel's kernel mass inside the frame (1 away from the borders)."""
    kernel = _gaussian_kernel(sigma, plane).view(1, 1, -1)
    radius = kernel.numel() // 2
    height, width = plane.shape[-2:]
    rows = F.conv1d(plane.new_ones(1, 1, height), kernel, padding=radius)[0, 0]
    columns = F.conv1d(plane.new_ones(1, 1, width), kernel, padding=radius)[0, 0]
    return torch.outer(rows, columns)[None, None]


def _normalised_blur(plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """Ĝ(y) = G(y) / m: the blur normalised by the kernel mass inside the frame."""
    return _blur(plane, sigma) / _blur_mass(plane, sigma)


def _normalised_blur_transpose(plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """Ĝᵀ(g) = G(g / m), the exact transpose of ``_normalised_blur``."""
    return _blur(plane / _blur_mass(plane, sigma), sigma)
