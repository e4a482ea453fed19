"""Differentiable tile-based 3DGS rasterizer in plain PyTorch, reproducing gsplat's "classic" rasterization.

It takes and returns what ``gsplat.rasterization`` does (the subset this project uses), so ``render.py`` can use
it wherever gsplat's CUDA kernels cannot run (CPU, Apple MPS). Written from reading gsplat 1.5.3's kernels:
- projection: EWA splatting with the Jacobian clamped to 1.3x the field of view, ``eps2d`` added to the 2D
  covariance; Gaussians culled when outside [near, far] in depth, opacity < 1/255, or footprint off-image;
- footprint radius per axis = ceil(min(3.33, sqrt(2 ln(opacity * 255))) * sqrt(covariance diagonal));
- per pixel (centre at +0.5), front to back by depth: alpha = min(0.999, opacity * exp(-power)), skipped when
  alpha < 1/255; compositing stops *before* the Gaussian that would bring transmittance to <= 1e-4;
- colour = sum of weighted colours + transmittance * background; alpha = 1 - transmittance;
- SH colours (``sh_degree`` given): max(eval_sh(mean - camera centre) + 0.5, 0).
Work is tile-binned (each tile composites only the Gaussians whose footprint box touches it) and done in
depth-rank chunks across all tiles at once; each chunk is gradient-checkpointed, so memory stays bounded.
Also as gsplat: ``absgrad=True`` leaves Σ over pixels of |dL/dmeans2d| (per axis) in ``meta["means2d"].absgrad``
after the backward pass (AbsGS, Ye et al. 2024), and ``render_mode="RGB+ED"`` appends the expected depth channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from core.sh import eval_sh

ALPHA_THRESHOLD = 1.0 / 255.0  # contributions below this are skipped (and bound each footprint)
MAX_ALPHA = 0.999  # one Gaussian never hides what is behind it completely
MIN_TRANSMITTANCE = 1e-4  # a pixel stops before the Gaussian that would take it to this or below
MAX_EXTENT_SIGMAS = 3.33  # footprint half-width cap in standard deviations
FRUSTUM_SLACK = 0.3  # the projection Jacobian is evaluated no farther than 30% of the half FOV off-image
MIN_CHUNK = 8  # fewest depth ranks composited per step
# Elements of one [tiles, pixels, ranks] working tensor: small on CPU (cache), large on GPUs (fewer steps).
CHUNK_ELEMENTS = {"cpu": 1 << 18}
DEFAULT_CHUNK_ELEMENTS = 1 << 24


@dataclass
class Projection:
    """The Gaussians one camera sees, front to back: ``ids`` index the input arrays."""

    ids: Tensor  # [V] int64
    means2d: Tensor  # [V, 2] pixels
    conics: Tensor  # [V, 3] upper triangle of the inverse 2D covariance (a, b, c)
    depths: Tensor  # [V] camera-space z
    radii: Tensor  # [V, 2] footprint half-widths in pixels (whole numbers)


@dataclass
class TileLists:
    """For every tile, the visible Gaussians (positions in a Projection) touching it, front to back."""

    entries: Tensor  # [M] positions, grouped by tile, depth-ordered within a tile
    counts: Tensor  # [tiles] int64
    offsets: Tensor  # [tiles] int64, start of each tile's group in ``entries``
    tiles_x: int
    tiles_y: int


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """Batched small matrix product done elementwise: a global TF32 setting would otherwise round it."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(dim=-2)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] (w, x, y, z; normalised here)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariances [N, 3, 3] = R S S Rᵀ from quaternions [N, 4] and activated scales [N, 3]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return _matmul(m, m.transpose(-1, -2))


def _perspective(means_c: Tensor, covars_c: Tensor, K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Pixel means [V, 2] and 2D covariances [V, 2, 2] (EWA, Jacobian clamped near the frustum)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x, y, z = means_c.unbind(-1)
    slack_x, slack_y = FRUSTUM_SLACK * 0.5 * width / fx, FRUSTUM_SLACK * 0.5 * height / fy
    tx = z * torch.clamp(x / z, min=-(cx / fx + slack_x), max=(width - cx) / fx + slack_x)
    ty = z * torch.clamp(y / z, min=-(cy / fy + slack_y), max=(height - cy) / fy + slack_y)
    zeros = torch.zeros_like(z)
    jacobian = torch.stack([fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1)
    jacobian = jacobian.reshape(-1, 2, 3)
    cov2d = _matmul(_matmul(jacobian, covars_c), jacobian.transpose(-1, -2))
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    return means2d, cov2d


def project_gaussians(means: Tensor, covars: Tensor, opacities: Tensor, viewmat: Tensor, K: Tensor,
                      width: int, height: int, near_plane: float, far_plane: float, eps2d: float) -> Projection:
    """The Gaussians that can show in this camera's image, projected and sorted front to back."""
    rotation, translation = viewmat[:3, :3], viewmat[:3, 3]
    depths_all = (means * rotation[2]).sum(-1) + translation[2]
    candidates = (depths_all >= near_plane) & (depths_all <= far_plane) & (opacities >= ALPHA_THRESHOLD)
    ids = torch.nonzero(candidates).squeeze(1)
    # Only in-range Gaussians go further: a point at z = 0 would put inf/NaN into the gradients.
    means_c = (means[ids, None, :] * rotation).sum(-1) + translation
    covars_c = _matmul(_matmul(rotation, covars[ids]), rotation.T)
    means2d, cov2d = _perspective(means_c, covars_c, K, width, height)
    a, b, c = cov2d[:, 0, 0] + eps2d, 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]), cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    conics = torch.stack([c, -b, a], dim=-1) / det.clamp_min(1e-12)[:, None]
    radii = _footprint_radii(a.detach(), c.detach(), opacities[ids].detach())
    keep = (det > 0) & (radii > 0).all(-1) & _overlaps_image(means2d.detach(), radii, width, height)
    depths = means_c[:, 2]
    order = torch.argsort(depths[keep].detach(), stable=True)
    keep_ids = torch.nonzero(keep).squeeze(1)[order]
    return Projection(ids[keep_ids], means2d[keep_ids], conics[keep_ids], depths[keep_ids], radii[keep_ids])


def _footprint_radii(var_x: Tensor, var_y: Tensor, opacities: Tensor) -> Tensor:
    """Half-widths [V, 2] of the box outside which alpha < 1/255 (opacity-aware, capped at 3.33 sigma)."""
    extent = torch.sqrt(2.0 * torch.log(opacities / ALPHA_THRESHOLD).clamp_min(0.0)).clamp_max(MAX_EXTENT_SIGMAS)
    return torch.stack([torch.ceil(extent * var_x.sqrt()), torch.ceil(extent * var_y.sqrt())], dim=-1)


def _overlaps_image(means2d: Tensor, radii: Tensor, width: int, height: int) -> Tensor:
    low, high = means2d - radii, means2d + radii
    return (high[:, 0] > 0) & (low[:, 0] < width) & (high[:, 1] > 0) & (low[:, 1] < height)


def bin_to_tiles(projection: Projection, width: int, height: int, tile_size: int) -> TileLists:
    """Every (tile, Gaussian) pair whose footprint box touches the tile, grouped by tile, front to back."""
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    device = projection.means2d.device
    centre = projection.means2d.detach() / tile_size
    reach = projection.radii / tile_size
    limits = torch.tensor([tiles_x, tiles_y], device=device)
    first = torch.floor(centre - reach).long().clamp(min=torch.zeros_like(limits), max=limits)
    last = torch.ceil(centre + reach).long().clamp(min=torch.zeros_like(limits), max=limits)
    span = last - first  # [V, 2] tiles covered along x and y
    per_gaussian = span[:, 0] * span[:, 1]
    owner = torch.repeat_interleave(torch.arange(len(span), device=device), per_gaussian)
    local = torch.arange(len(owner), device=device) - torch.repeat_interleave(
        torch.cumsum(per_gaussian, 0) - per_gaussian, per_gaussian)
    tile_x = first[owner, 0] + local % span[owner, 0]
    tile_y = first[owner, 1] + local // span[owner, 0]
    tile_ids = tile_y * tiles_x + tile_x
    # Owners are already front to back, so a stable sort by tile keeps depth order inside each tile.
    order = torch.argsort(tile_ids, stable=True)
    counts = torch.zeros(tiles_x * tiles_y, dtype=torch.int64, device=device)
    counts.scatter_add_(0, tile_ids, torch.ones_like(tile_ids))
    return TileLists(owner[order], counts, torch.cumsum(counts, 0) - counts, tiles_x, tiles_y)


class _PerPixelMeans(torch.autograd.Function):
    """``means2d`` [A, B, 2] seen by every pixel of a tile: [A, rows, columns, B, 2] (a broadcast view).

    The backward returns the usual sum over pixels for ``means2d`` and, for ``sink`` (a zero tensor of the same
    shape that only collects gradients), the sum over pixels of the absolute per-pixel gradients: gsplat's absgrad.
    """

    @staticmethod
    def forward(ctx, means2d: Tensor, sink: Tensor, tile_size: int) -> Tensor:
        tiles, ranks = means2d.shape[:2]
        return means2d[:, None, None].expand(tiles, tile_size, tile_size, ranks, 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        return grad.sum(dim=(1, 2)), grad.abs().sum(dim=(1, 2)), None


def _power(means2d: Tensor, conics: Tensor, origins: Tensor, tile_size: int, sink: Tensor | None) -> Tensor:
    """The Gaussian exponent ½ dᵀ Σ⁻¹ d at every pixel of the tiles: [A, P, B], d = mean − pixel centre.

    Separable on a pixel grid (per-column dx and per-row dy terms, one broadcast sum); with a ``sink`` the
    means go through ``_PerPixelMeans`` so the backward can see each pixel's gradient (same values, more memory).
    """
    tiles, ranks = means2d.shape[:2]
    centres = torch.arange(tile_size, device=means2d.device, dtype=means2d.dtype) + 0.5
    column_x = origins[:, 0, None, None] + centres[:, None]  # [A, columns, 1]
    row_y = origins[:, 1, None, None] + centres[:, None]  # [A, rows, 1]
    a, b, c = conics[:, None].unbind(-1)
    if sink is None:
        dx = means2d[:, None, :, 0] - column_x  # [A, columns, B]
        dy = means2d[:, None, :, 1] - row_y  # [A, rows, B]
        power = ((0.5 * c * dy * dy)[:, :, None] + (b * dy)[:, :, None] * dx[:, None]
                 + (0.5 * a * dx * dx)[:, None])
    else:
        per_pixel = _PerPixelMeans.apply(means2d, sink, tile_size)  # [A, rows, columns, B, 2]
        dx = per_pixel[..., 0] - column_x[:, None]
        dy = per_pixel[..., 1] - row_y[:, :, None]
        a, b, c = a[:, None], b[:, None], c[:, None]
        power = 0.5 * c * dy * dy + (b * dy) * dx + 0.5 * a * dx * dx
    return power.reshape(tiles, -1, ranks)


def _blend_chunk(transmittance: Tensor, coverage: Tensor, origins: Tensor, means2d: Tensor, conics: Tensor,
                 opacities: Tensor, colors: Tensor, sink: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Composite one depth-rank chunk [A tiles, B ranks] over the pixels of those tiles (corners ``origins``).

    ``transmittance`` [A, P] is the light left after what was composited so far; ``coverage`` [A, P] is the same
    product without the stop rule (no gradient), which tells where a pixel has already stopped. Returns both
    updated and the colour added [A, P, D]. Pixels are row-major inside a tile, P = tile_size^2. ``sink``
    [A, B, 2] (optional) receives Σ over pixels |dL/dmeans2d| as its gradient.
    """
    tile_size = round((transmittance.shape[1]) ** 0.5)
    power = _power(means2d, conics, origins, tile_size, sink)
    alpha = torch.clamp_max(opacities[:, None, :] * torch.exp(-power), MAX_ALPHA)
    alpha = torch.where((power >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        coverage_after = coverage[..., None] * torch.cumprod(1 - alpha, dim=-1)
        not_stopped = coverage_after > MIN_TRANSMITTANCE
    survive = torch.cumprod(1 - alpha * not_stopped, dim=-1)
    before = torch.cat([torch.ones_like(survive[..., :1]), survive[..., :-1]], dim=-1)
    weights = (before - survive) * transmittance[..., None]  # = alpha * light reaching it
    return transmittance * survive[..., -1], coverage_after[..., -1], _weighted_sum(weights, colors)


def _weighted_sum(weights: Tensor, colors: Tensor) -> Tensor:
    """[A, P, B] x [A, B, D] -> [A, P, D]; a batched matmul unless CUDA's TF32 mode would round it."""
    if weights.is_cuda and torch.backends.cuda.matmul.allow_tf32:
        return torch.stack([(weights * colors[:, None, :, ch]).sum(-1) for ch in range(colors.shape[-1])], -1)
    return torch.bmm(weights, colors)


def _blend_chunk_bounded(*args: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``_blend_chunk``, recomputed in the backward pass when gradients are needed (bounded memory)."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args):
        return checkpoint(_blend_chunk, *args, use_reentrant=False, preserve_rng_state=False)
    return _blend_chunk(*args)


def _tile_origins(tile_ids: Tensor, tiles_x: int, tile_size: int, dtype: torch.dtype) -> Tensor:
    """Top-left pixel corners [A, 2] (x, y) of tiles ``tile_ids``."""
    return torch.stack([tile_ids % tiles_x, tile_ids // tiles_x], dim=-1).to(dtype) * tile_size


def composite(projection: Projection, opacities: Tensor, colors: Tensor, lists: TileLists, tile_size: int,
              sink: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-tile colour [tiles, P, D] and transmittance [tiles, P] of the projected Gaussians, front to back.

    ``opacities`` [V] and ``colors`` [V, D] follow the projection's order; ``sink`` [V, 2] (optional, zeros that
    require grad) gets Σ over pixels of |dL/dmeans2d| as its gradient.
    """
    device, dtype = colors.device, colors.dtype
    n_tiles, pixels_per_tile, channels = lists.counts.numel(), tile_size * tile_size, colors.shape[-1]
    budget = CHUNK_ELEMENTS.get(device.type, DEFAULT_CHUNK_ELEMENTS)
    active = torch.nonzero(lists.counts > 0).squeeze(1)
    transmittance = torch.ones(len(active), pixels_per_tile, device=device, dtype=dtype)
    coverage = transmittance.clone()
    accumulated = torch.zeros(len(active), pixels_per_tile, channels, device=device, dtype=dtype)
    finished: list[tuple[Tensor, Tensor, Tensor]] = []
    start = 0
    while len(active):
        counts = lists.counts[active]
        ranks = start + torch.arange(_chunk_length(counts, start, len(active) * pixels_per_tile, budget),
                                     device=device)
        real = ranks < counts[:, None]
        entries = lists.entries[(lists.offsets[active, None] + ranks).clamp(max=len(lists.entries) - 1)]
        transmittance, coverage, added = _blend_chunk_bounded(
            transmittance, coverage, _tile_origins(active, lists.tiles_x, tile_size, dtype),
            projection.means2d[entries], projection.conics[entries], opacities[entries] * real, colors[entries],
            None if sink is None else sink[entries])
        accumulated = accumulated + added
        start += ranks.numel()
        going = (counts > start) & (coverage > MIN_TRANSMITTANCE).any(dim=1)
        if not bool(going.all()):
            finished.append((active[~going], transmittance[~going], accumulated[~going]))
            active, transmittance, coverage, accumulated = (
                active[going], transmittance[going], coverage[going], accumulated[going])
    return _gather_tiles(finished, n_tiles, pixels_per_tile, channels, device, dtype)


def _chunk_length(counts: Tensor, start: int, pixels: int, budget: int) -> int:
    """Depth ranks to composite in the next step: fill the element budget, never past the longest list."""
    return max(1, min(int(counts.max()) - start, max(MIN_CHUNK, budget // pixels)))


def _gather_tiles(finished: list[tuple[Tensor, Tensor, Tensor]], n_tiles: int, pixels_per_tile: int,
                  channels: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Full per-tile colour and transmittance; tiles no Gaussian touches stay clear (colour 0, light 1)."""
    colour = torch.zeros(n_tiles, pixels_per_tile, channels, device=device, dtype=dtype)
    transmittance = torch.ones(n_tiles, pixels_per_tile, device=device, dtype=dtype)
    if finished:
        ids = torch.cat([f[0] for f in finished])
        transmittance = transmittance.index_put((ids,), torch.cat([f[1] for f in finished]))
        colour = colour.index_put((ids,), torch.cat([f[2] for f in finished]))
    return colour, transmittance


def _untile(per_tile: Tensor, lists: TileLists, tile_size: int, width: int, height: int) -> Tensor:
    """[tiles, P, D] -> image [height, width, D]."""
    channels = per_tile.shape[-1]
    grid = per_tile.reshape(lists.tiles_y, lists.tiles_x, tile_size, tile_size, channels).permute(0, 2, 1, 3, 4)
    return grid.reshape(lists.tiles_y * tile_size, lists.tiles_x * tile_size, channels)[:height, :width]


def _view_colors(colors: Tensor, means: Tensor, viewmat: Tensor, sh_degree: int | None) -> Tensor:
    """Per-Gaussian colours for this view: as given, or SH evaluated from the camera centre (+0.5, >= 0)."""
    if sh_degree is None:
        return colors
    camera_centre = -(viewmat[:3, :3] * viewmat[:3, 3, None]).sum(0)
    return torch.clamp_min(eval_sh(sh_degree, colors, means - camera_centre) + 0.5, 0.0)


def _full(values: Tensor, ids: Tensor, count: int) -> Tensor:
    """Per-Gaussian array [count, ...] with ``values`` at ``ids`` and zeros elsewhere (for ``meta``)."""
    return values.new_zeros((count,) + values.shape[1:]).index_put((ids,), values)


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                    viewmats: Tensor, Ks: Tensor, width: int, height: int, *, sh_degree: int | None = None,
                    backgrounds: Tensor | None = None, near_plane: float = 0.01, far_plane: float = 1e10,
                    eps2d: float = 0.3, tile_size: int = 16, absgrad: bool = False,
                    render_mode: str = "RGB") -> tuple[Tensor, Tensor, dict]:
    """gsplat.rasterization's classic mode in PyTorch: images [C, H, W, D], alphas [C, H, W, 1], meta.

    Takes activated ``scales`` [N, 3] and ``opacities`` [N], ``quats`` [N, 4] (any norm), ``colors`` [N, D]
    or SH coefficients [N, K, 3] when ``sh_degree`` is given, ``viewmats`` [C, 4, 4] (world-to-camera),
    ``Ks`` [C, 3, 3], ``backgrounds`` [C, D]. Differentiable w.r.t. all Gaussian parameters. ``meta`` holds
    per-camera [C, N, ...] ``radii``, ``means2d``, ``depths``, ``conics`` (zeros where culled). With ``absgrad``
    the backward pass sets ``meta["means2d"].absgrad`` [C, N, 2]: Σ over pixels of |dL/dmeans2d|, per axis.
    ``render_mode`` "RGB+ED" appends the expected depth Σ w z / Σ w as the last channel (D + 1 channels).
    """
    if render_mode not in ("RGB", "RGB+ED"):
        raise ValueError(f"render_mode {render_mode!r}: the PyTorch rasterizer renders 'RGB' or 'RGB+ED'")
    count = means.shape[0]
    covars = quat_scale_to_covar(quats, scales)
    sink = None
    if absgrad and torch.is_grad_enabled():
        sink = means.new_zeros((viewmats.shape[0], count, 2), requires_grad=True)
    images, alphas, metas = [], [], []
    for camera in range(viewmats.shape[0]):
        projection = project_gaussians(means, covars, opacities, viewmats[camera], Ks[camera], width, height,
                                       near_plane, far_plane, eps2d)
        ids = projection.ids
        view_colors = _view_colors(colors[ids], means[ids], viewmats[camera], sh_degree)
        if render_mode == "RGB+ED":
            view_colors = torch.cat([view_colors, projection.depths[:, None]], dim=-1)
        lists = bin_to_tiles(projection, width, height, tile_size)
        colour, transmittance = composite(projection, opacities[ids], view_colors, lists, tile_size,
                                          None if sink is None else sink[camera, ids])
        if backgrounds is not None:
            colour = colour + transmittance[..., None] * backgrounds[camera]
        images.append(_untile(colour, lists, tile_size, width, height))
        alphas.append(1 - _untile(transmittance[..., None], lists, tile_size, width, height))
        metas.append(projection)
    images, alphas = torch.stack(images), torch.stack(alphas)
    if render_mode == "RGB+ED":
        images = torch.cat([images[..., :-1], images[..., -1:] / alphas.clamp_min(1e-10)], dim=-1)
    meta = {
        "radii": torch.stack([_full(p.radii.int(), p.ids, count) for p in metas]),
        "means2d": torch.stack([_full(p.means2d, p.ids, count) for p in metas]),
        "depths": torch.stack([_full(p.depths, p.ids, count) for p in metas]),
        "conics": torch.stack([_full(p.conics, p.ids, count) for p in metas]),
        "width": width, "height": height, "tile_size": tile_size, "n_cameras": viewmats.shape[0],
    }
    if sink is not None:
        _expose_absgrad(sink, meta["means2d"])
    return images, alphas, meta


def _expose_absgrad(sink: Tensor, means2d: Tensor) -> None:
    """After each backward pass, ``means2d.absgrad`` is the sink's gradient, as gsplat sets it."""
    sink.register_post_accumulate_grad_hook(lambda leaf: setattr(means2d, "absgrad", leaf.grad))
