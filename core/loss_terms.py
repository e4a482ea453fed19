"""The SOS loss terms of one scale and their closed-form derivatives with respect to VGG features.

docs/sos_loss.md states the loss; this module is its arithmetic, shared by the plain-autograd route (core.sos)
and the tiled one (core.tiled): the weighted Gram, mean and std terms, the content term, and dL/dF of each. The
terms computed once on the full-resolution render (smoothness, edges) are core.image_terms.
Position weights (coverage pooled to a layer's grid) are constants: docs/sos_loss.md says why.
"""

from __future__ import annotations

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
