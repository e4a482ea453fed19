"""The benchmarks' judge: one fixed yardstick for stylized scenes, computed once for the capture and the painting.

bench/quality.py and bench/densify.py judge every result with it. Per view (averaged over the judged views) and
per pyramid scale (finest first):

- ``style_frame`` / ``style_object``: SGSST's unnormalised style distance (released weights) to the painting's
  frame statistics at stroke scale 1, over the whole frame and over the object — weighted by the CAPTURE's
  coverage, so that floaters and streaks outside the capture's silhouette cannot lower it;
- ``content_frame`` / ``content_object``: the relu4_2 mean squared error to the capture (frame; capture-weighted);
- ``sw_object``: a distance the loss does not optimise: the sliced Wasserstein-2 distance between the object's VGG
  feature distribution (positions drawn with the capture's coverage as weights) and the painting's, on every style
  layer (``SW_DIRECTIONS`` random directions per layer, ``SW_QUANTILES`` quantiles, ``SW_SAMPLES`` positions);
- at full resolution: ``grain`` (mean absolute neighbour difference over the object, core.loss_terms'
  total variation with the capture's coverage) and the painting's own (``painting_grain``); ``spill`` and
  ``lost`` coverage against the capture (core.silhouette); ``consistency``: each view's neighbour warped into it
  with the rendered expected depth, mean |colour difference| over pixels both see unoccluded.

Float32 without TF32 by default (``strict``); bf16 autocast for 8K runs where float32 VGG would not fit. Scales
larger than ``tile`` px are judged by exact tiles (core.tiled).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core import sos, tiled
from core.cameras import Camera
from core.gaussians import Gaussians
from core.image_terms import total_variation
from core.loss_terms import LossWeights, style_distance
from core.planner import ScalePlan
from core.renderer import pick_backend, render
from core.silhouette import coverage_change, coverage_sums
from core.statistics import content_count, layer_stats, pool_to_layers, squared_error_sum
from core.vgg import ALL_LAYERS, CONTENT_LAYER, LAYER_STRIDES, STYLE_LAYERS, load_vgg19
from interchange.ply import SplatData

SW_DIRECTIONS = 64
SW_QUANTILES = 256
SW_SAMPLES = 32768
DEPTH_TOLERANCE = 0.02  # a warped pixel is occluded when its depth differs from the other view's by > 2 %
COVERED = 0.5  # pixels with less alpha are background for the consistency measure
PER_SCALE = ("style_frame", "style_object", "content_frame", "content_object", "sw_object")
PER_VIEW = ("grain", "spill", "lost", "consistency")


@contextmanager
def strict_float32():
    """TF32 off for float32 matmuls and convolutions while judging; the previous state restored after."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


@dataclass
class Capture:
    """What the judge keeps of the capture's view: image [1, 3, H, W], alpha [1, 1, H, W], depth [1, 1, H, W]
    (on the CPU between uses) and relu4_2 features per scale."""

    image: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    features: list[torch.Tensor]


class Judge:
    """Judges scenes against one painting from fixed cameras (``views``: the indices judged; each one's next camera
    in the list is its neighbour for consistency)."""

    def __init__(self, scene: SplatData, painting: torch.Tensor, cameras: list[Camera], device: torch.device, *,
                 views: list[int] | None = None, min_short_side: int = 511, tile: int | None = None,
                 strict: bool = True):
        self.device, self.cameras, self.tile, self.strict = device, cameras, tile, strict
        self.views = list(range(len(cameras))) if views is None else views
        self.backend = pick_backend(device)
        self.vgg = load_vgg19(device=device)
        self.weights = LossWeights()
        self.sizes = sos.pyramid_sizes(cameras[0].height, cameras[0].width, min_short_side)
        with self._precision(), torch.no_grad():
            style = painting.permute(2, 0, 1).unsqueeze(0).to(device)
            self.style = sos.build_style_targets(self.vgg, style, self.sizes, plan=self._plan(),
                                                 autocast_bf16=not strict)
            pyramid = sos.style_image_pyramid(style, self.sizes)
            self.painting_samples = [self._samples(image, None, s) for s, image in enumerate(pyramid)]
            self.painting_grain = float(total_variation(pyramid[0])[0])
            self.captures: dict[int, Capture] = {}
            g = Gaussians.from_splat_data(scene, device)
            for i in sorted(set(self.views) | {self._neighbour(i) for i in self.views}):
                image, alpha, depth = self.render(g, i)
                features = [self._content(sos.downsample(image, size), s) for s, size in enumerate(self.sizes)]
                self.captures[i] = Capture(image.cpu(), alpha.cpu(), depth.cpu(), [f.cpu() for f in features])
        self.capture = self.measure(scene)

    def _precision(self):
        return strict_float32() if self.strict else nullcontext()

    def _neighbour(self, i: int) -> int:
        return (i + 1) % len(self.cameras)

    def render(self, g: Gaussians, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """View i: image [1, 3, H, W], alpha and expected depth [1, 1, H, W] (black background)."""
        cam = self.cameras[i]
        viewmat = torch.as_tensor(cam.viewmat, dtype=torch.float32, device=self.device)
        K = torch.as_tensor(cam.K(), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            out = render(g, viewmat, K, cam.width, cam.height, backend=self.backend, depth=True)
        return tuple(t.permute(2, 0, 1).unsqueeze(0) for t in (out.image, out.alpha, out.depth))

    def measure(self, scene: SplatData) -> dict:
        """The judge's numbers for a scene: ``per_scale`` (PER_SCALE), ``per_view`` means (PER_VIEW) and ``mean``
        (everything averaged: scales, then views)."""
        g = Gaussians.from_splat_data(scene, self.device)
        scales = [[] for _ in self.sizes]
        views: dict[str, list[float]] = {key: [] for key in PER_VIEW}
        sums = torch.zeros(3)
        with self._precision(), torch.no_grad():
            renders = {i: self.render(g, i) for i in self.captures}
            for i in self.views:
                image, alpha, depth = renders[i]
                capture = self.captures[i]
                capture_alpha = capture.alpha.to(self.device)
                for s in range(len(self.sizes)):
                    scales[s].append(self._scale_numbers(image, capture_alpha, capture, s))
                views["grain"].append(float(total_variation(image, capture_alpha)[0]))
                sums += coverage_sums(alpha, capture_alpha).cpu()
                j = self._neighbour(i)
                views["consistency"].append(warp_error(renders[i], self.cameras[i], renders[j], self.cameras[j]))
        change = coverage_change(sums)
        per_scale = [{"size": list(size), **{key: _mean([v[key] for v in scale]) for key in PER_SCALE}}
                     for size, scale in zip(self.sizes, scales)]
        per_view = {"grain": _mean(views["grain"]), "painting_grain": self.painting_grain,
                    "spill": change.spill, "lost": change.lost, "consistency": _mean(views["consistency"])}
        mean = {key: _mean([p[key] for p in per_scale]) for key in PER_SCALE}
        finest = {f"{key}_finest": per_scale[0][key] for key in ("style_frame", "style_object", "sw_object")}
        return {"per_scale": per_scale, "per_view": per_view, "mean": {**mean, **finest, **per_view}}

    def _scale_numbers(self, image: torch.Tensor, capture_alpha: torch.Tensor, capture: Capture, s: int) -> dict:
        size = self.sizes[s]
        image_s, alpha_s = sos.downsample(image, size), sos.downsample(capture_alpha, size)
        weights = pool_to_layers(alpha_s, ALL_LAYERS)
        tile = self._tile(s)
        if tile is None:
            with sos.vgg_autocast(self.device, not self.strict):
                feats = self.vgg(image_s, ALL_LAYERS)
            frame = {layer: layer_stats(feats[layer]) for layer in STYLE_LAYERS}
            covered = {layer: layer_stats(feats[layer], weights[layer]) for layer in STYLE_LAYERS}
            feat = feats[CONTENT_LAYER].float()
        else:
            frame = sos.image_stats(self.vgg, image_s, tile=tile, autocast_bf16=not self.strict)
            covered = sos.image_stats(self.vgg, image_s, coverage=alpha_s, tile=tile, autocast_bf16=not self.strict)
            feat = self._content(image_s, s)
        target = capture.features[s].to(self.device)
        content_weights = weights[CONTENT_LAYER]
        samples = self._samples(image_s, alpha_s, s)
        return {"style_frame": float(style_distance(frame, self.style.stats[s], self.weights)),
                "style_object": float(style_distance(covered, self.style.stats[s], self.weights)),
                "content_frame": float(squared_error_sum(feat, target) / target.numel()),
                "content_object": float(squared_error_sum(feat, target, content_weights)
                                        / content_count(target, content_weights)),
                "sw_object": sliced_wasserstein(samples, self.painting_samples[s])}

    def _content(self, image: torch.Tensor, s: int) -> torch.Tensor:
        return sos.image_content_features(self.vgg, image, tile=self._tile(s), autocast_bf16=not self.strict).float()

    def _samples(self, image: torch.Tensor, alpha: torch.Tensor | None, s: int) -> dict[str, torch.Tensor]:
        """Per style layer, [SW_SAMPLES, n] feature vectors drawn with the coverage as weights (None: uniform)."""
        weights = None if alpha is None else pool_to_layers(alpha, STYLE_LAYERS)
        generator = torch.Generator(device="cpu").manual_seed(1000 + s)
        tile = self._tile(s)
        parts = ([(None, None, self._features(image))] if tile is None else
                 tiled.inner_features(self.vgg, image, STYLE_LAYERS, tile=tile, autocast_bf16=not self.strict))
        keys: dict[str, list[torch.Tensor]] = {layer: [] for layer in STYLE_LAYERS}
        rows: dict[str, list[torch.Tensor]] = {layer: [] for layer in STYLE_LAYERS}
        for ys, xs, feats in parts:
            for layer in STYLE_LAYERS:
                matrix = feats[layer][0].flatten(1).T.float()
                w = torch.ones(matrix.shape[0], device=matrix.device)
                if weights is not None:
                    stride = LAYER_STRIDES[layer]
                    local = weights[layer] if ys is None else weights[layer][ys.global_inner_features(stride),
                                                                             xs.global_inner_features(stride)]
                    w = local.reshape(-1).float()
                # Weighted sampling without replacement across tiles (Efraimidis-Spirakis): keep the largest
                # u^(1/w) keys; a tile's candidates never need more than the final count.
                u = torch.rand(matrix.shape[0], generator=generator).to(matrix.device)
                key = torch.where(w > 0, u.log() / w.clamp_min(1e-12), torch.full_like(u, -torch.inf))
                top = torch.topk(key, min(SW_SAMPLES, len(key))).indices
                keys[layer].append(key[top])
                rows[layer].append(matrix[top])
        out = {}
        for layer in STYLE_LAYERS:
            key, row = torch.cat(keys[layer]), torch.cat(rows[layer])
            chosen = torch.topk(key, min(SW_SAMPLES, len(key))).indices
            out[layer] = row[chosen[torch.isfinite(key[chosen])]]
        return out

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with sos.vgg_autocast(self.device, not self.strict):
            return self.vgg(image, STYLE_LAYERS)

    def _plan(self) -> list | None:
        if self.tile is None:
            return None
        return [ScalePlan(tuple(size), "tiled", self.tile) if self._tile(s) else ScalePlan(tuple(size), "autograd")
                for s, size in enumerate(self.sizes)]

    def _tile(self, s: int) -> int | None:
        return None if self.tile is None or max(self.sizes[s]) <= self.tile else self.tile


def sliced_wasserstein(samples: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """Sliced W2² between two feature samples per layer ([m, n] each), averaged over the style layers.

    Each layer: SW_DIRECTIONS random unit directions (fixed per layer), both samples projected, compared at
    SW_QUANTILES quantile levels; divided by the reference's projected variance so that every layer counts alike.
    """
    levels = None
    total = 0.0
    for index, layer in enumerate(STYLE_LAYERS):
        a, b = samples[layer], reference[layer].to(samples[layer].device)
        if len(a) == 0:
            return float("nan")
        generator = torch.Generator(device="cpu").manual_seed(index)
        directions = F.normalize(torch.randn(a.shape[1], SW_DIRECTIONS, generator=generator), dim=0).to(a.device)
        levels = torch.linspace(0.5 / SW_QUANTILES, 1 - 0.5 / SW_QUANTILES, SW_QUANTILES, device=a.device)
        qa = torch.quantile(a @ directions, levels, dim=0)
        qb = torch.quantile(b @ directions, levels, dim=0)
        total += float((qa - qb).square().mean() / (b @ directions).var(dim=0).mean().clamp_min(1e-12))
    return total / len(STYLE_LAYERS)


def warp_error(view_i: tuple, cam_i: Camera, view_j: tuple, cam_j: Camera) -> float:
    """Mean |I_i − I_j(warped)| over pixels of view i that view j sees unoccluded (expected depth, 2 % test).
    Views as (image, alpha, depth), each [1, C, H, W]."""
    image_i, alpha_i, depth_i = (t[0].permute(1, 2, 0) for t in view_i)
    image_j, alpha_j, depth_j = (t[0].permute(1, 2, 0) for t in view_j)
    device = image_i.device
    h, w = depth_i.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, device=device) + 0.5, torch.arange(w, device=device) + 0.5,
                            indexing="ij")
    z = depth_i[..., 0]
    K_i, K_j = (torch.tensor(c.K(), dtype=torch.float32, device=device) for c in (cam_i, cam_j))
    V_i, V_j = (torch.tensor(c.viewmat, dtype=torch.float32, device=device) for c in (cam_i, cam_j))
    rays = torch.stack([(xs - K_i[0, 2]) / K_i[0, 0], (ys - K_i[1, 2]) / K_i[1, 1], torch.ones_like(xs)], -1)
    world = (rays * z[..., None] - V_i[:3, 3]) @ V_i[:3, :3]  # R_iᵀ (X_c − t_i), row vectors
    in_j = world @ V_j[:3, :3].T + V_j[:3, 3]
    zj = in_j[..., 2].clamp_min(1e-6)
    u, v = K_j[0, 0] * in_j[..., 0] / zj + K_j[0, 2], K_j[1, 1] * in_j[..., 1] / zj + K_j[1, 2]
    grid = torch.stack([u / image_j.shape[1] * 2 - 1, v / image_j.shape[0] * 2 - 1], -1)[None]

    def sample(t: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(t.permute(2, 0, 1)[None], grid, align_corners=False)[0].permute(1, 2, 0)

    colour_j, alpha_at_j, depth_at_j = sample(image_j), sample(alpha_j)[..., 0], sample(depth_j)[..., 0]
    valid = ((alpha_i[..., 0] > COVERED) & (alpha_at_j > COVERED) & (in_j[..., 2] > 0) & (grid.abs() < 1).all(-1)[0]
             & ((depth_at_j - in_j[..., 2]).abs() < DEPTH_TOLERANCE * in_j[..., 2]))
    if not bool(valid.any()):
        return float("nan")
    return float((image_i - colour_j).abs()[valid].mean())


def ratios(numbers: dict, capture: dict) -> dict:
    """A result's means over the capture's, for the measures where the capture is not 0 (style, SW, grain,
    consistency)."""
    keys = ("style_frame", "style_object", "sw_object", "style_frame_finest", "style_object_finest",
            "sw_object_finest", "grain", "consistency")
    return {key: numbers["mean"][key] / capture["mean"][key] for key in keys if capture["mean"][key]}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return float(sum(finite) / len(finite)) if finite else float("nan")
