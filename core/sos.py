"""The SOS style loss (SGSST): Gram + mean + std of VGG-19 features over a pyramid of scales, plus content.

The maths follows ../shared/docs/sos.md. `sos_loss` is the plain-autograd definition (the reference);
`sos_gradient` is what the stylization loop calls: dL/drender, scale by scale, with the closed-form derivative
of the loss with respect to the features, by autograd through VGG or by exact tiles (core.tiled).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.planner import ScalePlan, run_with_oom_retry
from core.vgg import ALL_LAYERS, CONTENT_LAYER, STYLE_LAYERS, VGG19Features

STD_EPS = 1e-8
"""Added to the variance before the square root (the released code has none): keeps d(std) finite."""

CHUNK_ELEMENTS = 1 << 26
"""Features are turned into float32 this many elements at a time (statistics and dL/dF): 256 MB blocks."""


@dataclass(frozen=True)
class LossWeights:
    """Loss weights: released SGSST defaults; style_strength scales all style terms relative to content."""

    style_strength: float = 1.0
    content_weight: float = 1.0
    gram_scale: float = 1e3
    mean_weight: float = 1e4
    std_weight: float = 1e4


@dataclass
class LayerSums:
    """Sufficient statistics of one layer's features: Σ F Fᵀ, Σ F and the number of positions."""

    outer: torch.Tensor
    total: torch.Tensor
    count: int

    def __add__(self, other: LayerSums) -> LayerSums:
        return LayerSums(self.outer + other.outer, self.total + other.total, self.count + other.count)


@dataclass
class LayerStats:
    """Style statistics of one layer: uncentred Gram / N [n, n], mean [n], std [n] (float32 or wider)."""

    gram: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


@dataclass
class StyleTargets:
    """Style statistics of the style image per pyramid scale (computed once per run)."""

    sizes: list[tuple[int, int]]
    stats: list[dict[str, LayerStats]]


@dataclass
class ContentTargets:
    """relu4_2 features of the content image per pyramid scale (computed once per view), float32."""

    sizes: list[tuple[int, int]]
    features: list[torch.Tensor]


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
    """Antialiased bilinear resize of [B, 3, H, W] to `size` (identity when the size already matches)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)


def style_image_pyramid(style: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """The style image resized so its short side equals each scale's short side, keeping its aspect; never upscaled."""
    style_short = min(style.shape[-2:])
    if style_short < min(sizes[0]):
        warnings.warn(f"the style image ({style.shape[-1]}x{style.shape[-2]}) is smaller than the render "
                      f"({sizes[0][1]}x{sizes[0][0]}): it is used at its own size at the finest scales and "
                      "lacks their finest detail", stacklevel=2)
    pyramid = []
    for size in sizes:
        ratio = min(1.0, min(size) / style_short)
        target = (max(1, round(style.shape[-2] * ratio)), max(1, round(style.shape[-1] * ratio)))
        pyramid.append(downsample(style, target))
    return pyramid


def layer_sums(feats: torch.Tensor) -> LayerSums:
    """Σ F Fᵀ and Σ F over the positions of [1, n, h, w] features, accumulated in float32 (float64 stays)."""
    matrix = _channel_matrix(feats)
    dtype = torch.promote_types(feats.dtype, torch.float32)
    n, positions = matrix.shape
    if positions == 0:
        return LayerSums(feats.new_zeros((n, n), dtype=dtype), feats.new_zeros((n,), dtype=dtype), 0)
    if _direct_float32_products(matrix, dtype):
        return LayerSums(torch.mm(matrix, matrix.T, out_dtype=torch.float32),
                         matrix.sum(dim=1, dtype=torch.float32), positions)
    outer = total = None
    with _no_autocast(feats):
        for block in _column_blocks(matrix):
            chunk = matrix[:, block].to(dtype)
            ones = chunk.new_ones(chunk.shape[1])
            if outer is None:
                outer, total = chunk @ chunk.T, torch.mv(chunk, ones)
            else:
                outer, total = torch.addmm(outer, chunk, chunk.T), torch.addmv(total, chunk, ones)
    return LayerSums(outer, total, positions)


def stats_from_sums(sums: LayerSums) -> LayerStats:
    """Gram, mean and std (σ = sqrt(max(diag G − μ², 0) + ε)) from accumulated sums."""
    gram = sums.outer / sums.count
    mean = sums.total / sums.count
    variance = torch.clamp(torch.diagonal(gram) - mean * mean, min=0.0)
    return LayerStats(gram, mean, torch.sqrt(variance + STD_EPS))


def layer_stats(feats: torch.Tensor) -> LayerStats:
    """Style statistics of one layer's features [1, n, h, w] (float32 even for bf16 features)."""
    return stats_from_sums(layer_sums(feats))


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


def content_term(squared_error_sum: torch.Tensor, numel: int, weights: LossWeights) -> torch.Tensor:
    """w_c · mean (F − F_c)² from the summed squared error over `numel` entries."""
    return weights.content_weight * squared_error_sum / numel


def combine_terms(style: dict[str, torch.Tensor], content: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """All terms of one scale: gram, mean, std, style (their sum), content (0 without), total."""
    style_sum = style["gram"] + style["mean"] + style["std"]
    content = torch.zeros_like(style_sum) if content is None else content
    return {**style, "style": style_sum, "content": content, "total": style_sum + content}


def squared_error_sum(feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σ (F − F_c)² in at least float32."""
    with _no_autocast(feats):
        return torch.sum((feats.to(target.dtype) - target) ** 2)


def style_feature_gradient(feats: torch.Tensor, stats: LayerStats, target: LayerStats, weights: LossWeights,
                           positions: int) -> torch.Tensor:
    """Closed-form dL/dF of the style terms of one layer, from the statistics of all `positions` (sos.md).

    dL/dF = 4 wG/(n² N) (G − G_s) F + 2 wμ/(n N) (μ − μ_s) + 2 wσ/(n N) (σ − σ_s)/σ ⊙ (F − μ), with
    wG = gram_scale / n², times the style strength, written as one channel-mixing affine map M F + c.
    """
    n = stats.mean.shape[0]
    unit = 2 * weights.style_strength / (n * positions)
    mix = (stats.gram - target.gram) * (unit * 2 * weights.gram_scale / n**3)
    alive = torch.diagonal(stats.gram) >= stats.mean.square()  # where σ's clamp passes the derivative
    ratio = (1 - target.std / stats.std) * alive * (unit * weights.std_weight)
    mix.diagonal().add_(ratio)
    offset = torch.addcmul((stats.mean - target.mean) * (unit * weights.mean_weight), ratio, stats.mean, value=-1)
    return _affine_channels(feats, mix, offset)


def content_feature_gradient(feats: torch.Tensor, target: torch.Tensor, weights: LossWeights,
                             numel: int) -> torch.Tensor:
    """Closed-form dL/dF of the content term: 2 w_c / numel · (F − F_c), numel counting the whole scale."""
    with _no_autocast(feats):
        return ((2 * weights.content_weight / numel) * (feats.to(target.dtype) - target)).to(feats.dtype)


def needed_layers(with_content: bool) -> tuple[str, ...]:
    """VGG layers the loss reads: the style layers, plus relu4_2 when there is a content target."""
    return ALL_LAYERS if with_content else STYLE_LAYERS


def vgg_autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    """bf16 autocast for the VGG convolutions (statistics stay float32: see layer_sums)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def image_stats(vgg: VGG19Features, image: torch.Tensor, *, tile: int | None = None,
                autocast_bf16: bool = False) -> dict[str, LayerStats]:
    """Style statistics of an image (no gradient); by tiles when `tile` is given (large images)."""
    if tile is not None:
        from core import tiled  # core.tiled builds on this module

        sums, _ = tiled.accumulate_sums(vgg, image, STYLE_LAYERS, None, tile=tile, autocast_bf16=autocast_bf16)
        return {layer: stats_from_sums(s) for layer, s in sums.items()}
    with torch.no_grad():
        with vgg_autocast(image.device, autocast_bf16):
            feats = vgg(image, STYLE_LAYERS)
        return {layer: layer_stats(feats[layer]) for layer in STYLE_LAYERS}


def image_content_features(vgg: VGG19Features, image: torch.Tensor, *, tile: int | None = None,
                           autocast_bf16: bool = False) -> torch.Tensor:
    """relu4_2 features of an image as float32 (no gradient); by tiles when `tile` is given."""
    if tile is not None:
        from core import tiled  # core.tiled builds on this module

        return tiled.tiled_layer(vgg, image, CONTENT_LAYER, tile=tile, autocast_bf16=autocast_bf16)
    with torch.no_grad():
        with vgg_autocast(image.device, autocast_bf16):
            feats = vgg(image, (CONTENT_LAYER,))[CONTENT_LAYER]
        return feats.to(torch.promote_types(feats.dtype, torch.float32)).contiguous()


def build_style_targets(vgg: VGG19Features, style_img: torch.Tensor, sizes: Sequence[tuple[int, int]], *,
                        plan: Sequence[ScalePlan] | None = None, autocast_bf16: bool = False) -> StyleTargets:
    """Style statistics of the style image's pyramid (short side matched to each scale, never upscaled)."""
    images = style_image_pyramid(style_img, sizes)
    stats = [image_stats(vgg, image, tile=_plan_tile(plan, i), autocast_bf16=autocast_bf16)
             for i, image in enumerate(images)]
    return StyleTargets([tuple(s) for s in sizes], stats)


def build_content_targets(vgg: VGG19Features, content_img: torch.Tensor, sizes: Sequence[tuple[int, int]], *,
                          plan: Sequence[ScalePlan] | None = None, autocast_bf16: bool = False) -> ContentTargets:
    """relu4_2 features of the content image (the original scene's render of the view) at each scale."""
    _check_size(content_img, sizes, "content image")
    features = [image_content_features(vgg, downsample(content_img, size), tile=_plan_tile(plan, i),
                                       autocast_bf16=autocast_bf16)
                for i, size in enumerate(sizes)]
    return ContentTargets([tuple(s) for s in sizes], features)


def sos_loss(vgg: VGG19Features, render: torch.Tensor, style: StyleTargets, content: ContentTargets | None,
             weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """The SOS loss by plain autograd: average over scales of style terms + content (the reference definition)."""
    _check_size(render, style.sizes, "render")
    per_scale = []
    for i, size in enumerate(style.sizes):
        feats = vgg(downsample(render, size), needed_layers(content is not None))
        stats = {layer: layer_stats(feats[layer]) for layer in STYLE_LAYERS}
        content_loss = None
        if content is not None:
            target = content.features[i]
            content_loss = content_term(squared_error_sum(feats[CONTENT_LAYER], target), target.numel(), weights)
        per_scale.append(combine_terms(style_terms(stats, style.stats[i], weights), content_loss))
    terms = {key: sum(t[key] for t in per_scale) / len(per_scale) for key in per_scale[0]}
    return terms["total"], {key: float(value.detach()) for key, value in terms.items()}


def scale_gradient(vgg: VGG19Features, image: torch.Tensor, style_stats: dict[str, LayerStats],
                   content_feat: torch.Tensor | None, weights: LossWeights, *,
                   autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """dL/dimage of one scale's loss by one autograd pass through VGG, fed the closed-form dL/dF.

    The terms stay 0-dim tensors so that no scale waits for the GPU (sos_gradient reads them all at once).
    """
    image = image.detach().requires_grad_(True)
    with torch.enable_grad(), vgg_autocast(image.device, autocast_bf16):
        feats = vgg(image, needed_layers(content_feat is not None))
    with torch.no_grad():
        stats = {layer: layer_stats(feats[layer]) for layer in STYLE_LAYERS}
        content_loss = None
        grads = {layer: style_feature_gradient(feats[layer], stats[layer], style_stats[layer], weights,
                                               _positions(feats[layer])) for layer in STYLE_LAYERS}
        if content_feat is not None:
            feat = feats[CONTENT_LAYER]
            content_loss = content_term(squared_error_sum(feat, content_feat), content_feat.numel(), weights)
            grads[CONTENT_LAYER] = content_feature_gradient(feat, content_feat, weights, content_feat.numel())
        terms = combine_terms(style_terms(stats, style_stats, weights), content_loss)
    torch.autograd.backward([feats[layer] for layer in grads], [grads[layer] for layer in grads])
    return image.grad, terms


def sos_gradient(vgg: VGG19Features, render: torch.Tensor, style: StyleTargets, content: ContentTargets | None,
                 weights: LossWeights, *, plan: list[ScalePlan] | None = None,
                 autocast_bf16: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """dL/drender [1, 3, H, W] of the SOS loss and its terms (averaged over scales), scale by scale.

    Each scale runs by autograd or by tiles as `plan` says (None: autograd); its gradient is carried back to
    the full-resolution render through the antialiased downsampling. A scale that runs out of GPU memory is
    retried with smaller tiles, and its entry in `plan` is replaced so later calls start there.
    """
    from core.tiled import tiled_gradient  # core.tiled builds on this module

    _check_size(render, style.sizes, "render")
    source = render.detach().requires_grad_(True)
    total_grad = torch.zeros_like(render)
    per_scale = []
    for i, size in enumerate(style.sizes):
        with torch.enable_grad():
            image = downsample(source, size)
        content_feat = None if content is None else content.features[i]

        def run(p: ScalePlan) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            if p.method == "tiled":
                return tiled_gradient(vgg, image.detach(), style.stats[i], content_feat, weights, tile=p.tile,
                                      autocast_bf16=autocast_bf16)
            return scale_gradient(vgg, image.detach(), style.stats[i], content_feat, weights,
                                  autocast_bf16=autocast_bf16)

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


def _check_size(image: torch.Tensor, sizes: Sequence[tuple[int, int]], what: str) -> None:
    if image.dim() != 4 or image.shape[:2] != (1, 3) or tuple(image.shape[-2:]) != tuple(sizes[0]):
        raise ValueError(f"{what} must be [1, 3, {sizes[0][0]}, {sizes[0][1]}], got {list(image.shape)}")


def _plan_tile(plan: Sequence[ScalePlan] | None, index: int) -> int | None:
    if plan is None or plan[index].method != "tiled":
        return None
    return plan[index].tile


def _positions(feats: torch.Tensor) -> int:
    return feats.shape[-2] * feats.shape[-1]


def _no_autocast(feats: torch.Tensor) -> AbstractContextManager:
    return torch.autocast(device_type=feats.device.type, enabled=False)


def _channel_matrix(feats: torch.Tensor) -> torch.Tensor:
    """[1, n, h, w] features as an [n, h·w] view (a transposed view for channels_last), copying only if neither."""
    if feats.shape[0] != 1:
        raise ValueError(f"features must have batch size 1, got {list(feats.shape)}")
    n, h, w = feats.shape[1:]
    if feats.is_contiguous():
        return feats.view(n, h * w)
    if feats.is_contiguous(memory_format=torch.channels_last):
        return feats.permute(0, 2, 3, 1).reshape(h * w, n).T
    return feats.contiguous().view(n, h * w)


def _direct_float32_products(matrix: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether cuBLAS can take bf16/fp16 features and return float32 sums itself (no upcast copy, one launch).

    Products of two bf16 numbers are exact in float32 and cuBLAS accumulates in float32, so this gives the same
    sums as upcasting first. torch.mm's out_dtype exists on CUDA only (and only in recent PyTorch).
    """
    return (matrix.is_cuda and matrix.dtype in (torch.bfloat16, torch.float16) and dtype == torch.float32
            and _MM_OUT_DTYPE)


def _mm_out_dtype_supported() -> bool:
    try:
        return "out_dtype" in str(torch.ops.aten.mm.dtype._schema)
    except (AttributeError, RuntimeError):
        return False


_MM_OUT_DTYPE = _mm_out_dtype_supported()


def _column_blocks(matrix: torch.Tensor) -> list[slice]:
    """Column ranges of an [n, N] matrix holding about CHUNK_ELEMENTS each."""
    step = max(1, CHUNK_ELEMENTS // matrix.shape[0])
    return [slice(start, start + step) for start in range(0, matrix.shape[1], step)]


def _affine_channels(feats: torch.Tensor, mix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """mix @ F + offset per position, returned in F's dtype and layout.

    On CUDA with bf16/fp16 features: one GEMM in that dtype. Elsewhere: in mix's dtype (float32/64), block by block.
    """
    if not (feats.is_contiguous() or feats.is_contiguous(memory_format=torch.channels_last)):
        feats = feats.contiguous()
    out = torch.empty_like(feats)
    source, target = _channel_matrix(feats), _channel_matrix(out)
    positions_major = source.stride(0) == 1 and source.shape[1] > 1
    if feats.is_cuda and feats.dtype in (torch.bfloat16, torch.float16):
        # One GEMM in the features' dtype (float32 accumulation, rounded once): no float32 copy of the features.
        mix_h, offset_h = mix.to(feats.dtype), offset.to(feats.dtype)
        with _no_autocast(feats):
            if positions_major:
                torch.addmm(offset_h[None, :], source.T, mix_h.T, out=target.T)
            else:
                torch.addmm(offset_h[:, None], mix_h, source, out=target)
        return out
    with _no_autocast(feats):
        for block in _column_blocks(source):
            chunk = source[:, block].to(mix.dtype)
            if positions_major:  # channels_last: write [positions, channels] rows contiguously
                target[:, block].T.copy_(torch.addmm(offset[None, :], chunk.T, mix.T))
            else:
                target[:, block].copy_(torch.addmm(offset[:, None], mix, chunk))
    return out
