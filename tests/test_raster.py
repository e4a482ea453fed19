"""Rendering: SH evaluation, the pure-PyTorch rasterizer (against analytic footprints, a per-pixel reference
loop and gsplat's own reference maths), gradients, backend choice, and a real scene."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import raster_torch
from core.cameras import load_cameras
from core.errors import InputError
from core.gaussians import Gaussians
from core.raster_torch import project_gaussians, quat_scale_to_covar, rasterize_torch
from core.renderer import available_backends, pick_backend, render
from core.sh import C0, dc_to_rgb, eval_sh, rgb_to_dc
from interchange.cameras import look_at_rotation, viewmat_from_pose
from interchange.ply import read_ply

THRESHOLD = 1.0 / 255.0
BACKGROUND = torch.tensor([0.1, 0.2, 0.3])


def pinhole(size: int, focal: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity world-to-camera and a K whose principal point is the centre of pixel (size//2, size//2)."""
    centre = size // 2 + 0.5
    K = torch.tensor([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])
    return torch.eye(4)[None], K[None]


def gaussians_on_axis(depths, scales, opacities, colors, quats=None):
    """Activated parameters of Gaussians on the optical axis at ``depths``."""
    n = len(depths)
    means = torch.zeros(n, 3)
    means[:, 2] = torch.tensor(depths, dtype=torch.float32)
    quats = torch.tensor([[1.0, 0, 0, 0]] * n) if quats is None else torch.tensor(quats, dtype=torch.float32)
    return (means, quats, torch.tensor(scales, dtype=torch.float32), torch.tensor(opacities, dtype=torch.float32),
            torch.tensor(colors, dtype=torch.float32))


def pixel_offsets(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dx, dy [size, size] of each pixel centre from the centre of pixel (size//2, size//2)."""
    steps = torch.arange(size, dtype=torch.float32) - size // 2
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return dx, dy


def analytic_alpha(covariance: torch.Tensor, opacity: float, size: int) -> torch.Tensor:
    """opacity * exp(-d^T Σ^-1 d / 2) around the image centre, cut where below 1/255 (gsplat's rule)."""
    dx, dy = pixel_offsets(size)
    d = torch.stack([dx, dy], dim=-1)
    power = 0.5 * (d @ torch.linalg.inv(covariance) * d).sum(-1)
    alpha = (opacity * torch.exp(-power)).clamp_max(0.999)
    return torch.where(alpha >= THRESHOLD, alpha, torch.zeros_like(alpha))


def reference_composite(means2d, conics, opacities, colors, width, height, background):
    """Per-pixel front-to-back loop over every Gaussian (already sorted), no tiles: gsplat's kernel rules."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    light = torch.ones(height, width)
    out = torch.zeros(height, width, colors.shape[-1])
    done = torch.zeros(height, width, dtype=torch.bool)
    for k in range(len(means2d)):
        dx, dy = means2d[k, 0] - xs, means2d[k, 1] - ys
        a, b, c = conics[k]
        power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = (opacities[k] * torch.exp(-power)).clamp_max(0.999)
        use = (power >= 0) & (alpha >= THRESHOLD) & ~done
        next_light = light * (1 - alpha)
        stop = use & (next_light <= 1e-4)
        done |= stop
        use &= ~stop
        out += torch.where(use, alpha * light, torch.zeros_like(alpha))[..., None] * colors[k]
        light = torch.where(use, next_light, light)
    return out + light[..., None] * background, 1 - light


def random_scene(count: int, seed: int, log_scale: float = -3.2, dtype=torch.float32):
    """Activated Gaussians in front of an identity camera, some culled (behind, faint, off-image)."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(count, 3, generator=gen) * torch.tensor([0.6, 0.5, 0.5]) + torch.tensor([0.0, 0.0, 3.0])
    means[: count // 20, 2] = -1.0
    quats = torch.randn(count, 4, generator=gen)
    scales = torch.exp(torch.randn(count, 3, generator=gen) * 0.5 + log_scale)
    opacities = torch.rand(count, generator=gen) * 0.98 + 0.01
    opacities[count // 20: count // 10] = 0.002
    colors = torch.rand(count, 3, generator=gen)
    return tuple(t.to(dtype) for t in (means, quats, scales, opacities, colors))


def camera_tensors(camera) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(camera.viewmat, dtype=torch.float32), torch.tensor(camera.K(), dtype=torch.float32)


# --- spherical harmonics ---------------------------------------------------------------------------------


def test_dc_colour_conversion():
    assert dc_to_rgb(torch.tensor(0.0)).item() == 0.5
    assert dc_to_rgb(torch.tensor(1.0)).item() == pytest.approx(0.5 + 0.28209479177387814)
    rgb = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(dc_to_rgb(rgb_to_dc(rgb)), rgb)
    assert C0 == pytest.approx(1 / (2 * math.sqrt(math.pi)))


def basis_values(degree: int, direction) -> torch.Tensor:
    """Basis values read back through eval_sh with one-hot coefficients."""
    count = (degree + 1) ** 2
    coeffs = torch.eye(count, dtype=torch.float64)[:, :, None].expand(count, count, 3)
    dirs = torch.tensor(direction, dtype=torch.float64).expand(count, 3)
    return eval_sh(degree, coeffs, dirs)[:, 0]


@pytest.mark.parametrize("direction, expected", [
    ((0.0, 0.0, 1.0), [0.2820947918, 0, 0.4886025119, 0, 0, 0, 0.6307831305, 0, 0,
                       0, 0, 0, 0.7463526652, 0, 0, 0]),
    ((1.0, 0.0, 0.0), [0.2820947918, 0, 0, -0.4886025119, 0, 0, -0.3153915653, 0, 0.5462742153,
                       0, 0, 0, 0, 0.4570457995, 0, -0.5900435899]),
    ((0.0, 1.0, 0.0), [0.2820947918, -0.4886025119, 0, 0, 0, 0, -0.3153915653, 0, -0.5462742153,
                       0.5900435899, 0, 0.4570457995, 0, 0, 0, 0]),
    # (1, 1, 1)/sqrt(3), from the textbook polynomials with k = 1/sqrt(3)
    ((2.0, 2.0, 2.0), [0.2820947918, -0.2820947918, 0.2820947918, -0.2820947918,
                       1.0925484306 / 3, -1.0925484306 / 3, 0.0, -1.0925484306 / 3, 0.0,
                       -0.5900435899 * 2 / 3 ** 1.5, 2.8906114426 / 3 ** 1.5, -0.4570457995 * (2 / 3) / 3 ** 0.5,
                       -0.3731763326 * (4 / 3) / 3 ** 0.5, -0.4570457995 * (2 / 3) / 3 ** 0.5, 0.0,
                       0.5900435899 * 2 / 3 ** 1.5]),
])
def test_eval_sh_matches_hand_values(direction, expected):
    """Degree 0..3 basis values and signs (the (-1)^m convention of 3DGS) at hand-computed directions."""
    expected = torch.tensor(expected, dtype=torch.float64)
    for degree in range(4):
        count = (degree + 1) ** 2
        torch.testing.assert_close(basis_values(degree, direction), expected[:count], atol=1e-9, rtol=0)


def test_eval_sh_matches_gsplat_reference():
    """Degrees 0..4 agree with gsplat's own PyTorch SH (the maths its CUDA kernel implements)."""
    reference = pytest.importorskip("gsplat.cuda._torch_impl")
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(500, 3, generator=gen, dtype=torch.float64)
    coeffs = torch.randn(500, 25, 3, generator=gen, dtype=torch.float64)
    for degree in range(5):
        torch.testing.assert_close(eval_sh(degree, coeffs, dirs),
                                   reference._spherical_harmonics(degree, dirs, coeffs), atol=1e-12, rtol=0)


def test_eval_sh_rejects_too_few_coefficients():
    with pytest.raises(ValueError, match="needs 9 coefficients"):
        eval_sh(2, torch.zeros(1, 4, 3), torch.ones(1, 3))


# --- projection ------------------------------------------------------------------------------------------


def test_projection_matches_gsplat_reference():
    """Means, conics and depths equal gsplat's PyTorch projection, including the Jacobian clamp off-image."""
    reference = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, opacities, _ = random_scene(400, seed=1)
    # Large Gaussians centred beyond the clamp limit (1.3x the half field of view) still reach into the image.
    means[40:60] = torch.tensor([2.7, 0.0, 3.0]) + 0.3 * torch.rand(20, 3, generator=torch.Generator().manual_seed(9))
    scales[40:60] = 0.8
    viewmats, Ks = pinhole(64, 50.0)
    covars = quat_scale_to_covar(quats, scales)
    projection = project_gaussians(means, covars, opacities, viewmats[0], Ks[0], 64, 64, 0.01, 1e10, 0.3)
    _, means2d, depths, conics, _ = reference._fully_fused_projection(means, covars, viewmats, Ks, 64, 64)
    ids = projection.ids
    assert len(ids) > 200 and bool(((ids >= 40) & (ids < 60)).sum() > 10)
    torch.testing.assert_close(projection.means2d, means2d[0, ids], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(projection.depths, depths[0, ids])
    torch.testing.assert_close(projection.conics, conics[0, ids], atol=1e-6, rtol=1e-4)
    assert bool((projection.depths[1:] >= projection.depths[:-1]).all())


# --- footprints and compositing --------------------------------------------------------------------------


def test_isotropic_footprint_is_the_analytic_gaussian():
    """Value at the centre = opacity * colour over the background; falloff exp(-r²/2σ²), σ² = (f s/z)² + eps2d;
    nothing where alpha < 1/255."""
    size, focal, depth, scale, opacity = 33, 40.0, 2.0, 0.125, 0.8
    colour = [0.2, 0.6, 0.9]
    viewmats, Ks = pinhole(size, focal)
    means, quats, scales, opacities, colors = gaussians_on_axis([depth], [[scale] * 3], [opacity], [colour])
    image, alpha, meta = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, size, size,
                                         backgrounds=BACKGROUND[None])
    sigma2 = (focal * scale / depth) ** 2 + 0.3
    expected_alpha = analytic_alpha(torch.eye(2) * sigma2, opacity, size)
    torch.testing.assert_close(alpha[0, ..., 0], expected_alpha, atol=1e-6, rtol=1e-5)
    expected = expected_alpha[..., None] * torch.tensor(colour) + (1 - expected_alpha[..., None]) * BACKGROUND
    torch.testing.assert_close(image[0], expected, atol=1e-6, rtol=1e-5)
    centre = size // 2
    torch.testing.assert_close(image[0, centre, centre], opacity * torch.tensor(colour) + (1 - opacity) * BACKGROUND)
    # The cut: r² = 2σ² ln(255 opacity) = 69.7 px², so (dx, dy) = (8, 0) shows and (8, 3) does not.
    assert alpha[0, centre, centre + 8, 0] > 0 and alpha[0, centre + 3, centre + 8, 0] == 0
    # Footprint radius: ceil(sqrt(2 ln(255 opacity)) * σ), opacity-aware as in gsplat.
    assert meta["radii"][0, 0].tolist() == [9, 9]


def test_footprint_radius_depends_on_opacity():
    size = 33
    viewmats, Ks = pinhole(size, 40.0)
    means, quats, scales, opacities, colors = gaussians_on_axis(
        [2.0, 2.0, 2.0], [[0.125] * 3] * 3, [1.0, 0.05, 0.003], [[1.0, 1.0, 1.0]] * 3)
    _, _, meta = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, size, size)
    sigma = math.sqrt(2.5 ** 2 + 0.3)
    expected = [math.ceil(min(3.33, math.sqrt(2 * math.log(o * 255))) * sigma) for o in (1.0, 0.05)]
    assert meta["radii"][0, :2, 0].tolist() == expected == [9, 6]
    assert meta["radii"][0, 2].tolist() == [0, 0]  # opacity below 1/255: culled


def test_anisotropic_rotated_footprint_axes():
    """A Gaussian turned 30° about the view axis: the 2D covariance is R diag((f sx/z)², (f sy/z)²) Rᵀ + eps2d,
    and the rendered blob's principal axis points at 30°."""
    size, focal, depth, opacity, angle = 41, 40.0, 2.0, 0.9, math.radians(30.0)
    viewmats, Ks = pinhole(size, focal)
    quat = [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]
    means, quats, scales, opacities, colors = gaussians_on_axis(
        [depth], [[0.2, 0.05, 0.01]], [opacity], [[1.0, 1.0, 1.0]], quats=[quat])
    _, alpha, _ = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, size, size)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    variances = torch.diag(torch.tensor([(focal * 0.2 / depth) ** 2, (focal * 0.05 / depth) ** 2]))
    covariance = rotation @ variances @ rotation.T + 0.3 * torch.eye(2)
    torch.testing.assert_close(alpha[0, ..., 0], analytic_alpha(covariance, opacity, size), atol=1e-6, rtol=1e-5)
    dx, dy = pixel_offsets(size)
    w = alpha[0, ..., 0] / alpha.sum()
    mxx, myy, mxy = (w * dx * dx).sum(), (w * dy * dy).sum(), (w * dx * dy).sum()
    measured = 0.5 * math.atan2(2 * mxy, mxx - myy)
    assert math.degrees(measured) == pytest.approx(30.0, abs=0.5)
    assert mxx + myy > 10 * (0.05 * focal / depth) ** 2  # elongated, not a round blob


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_overlapping_gaussians_composite_front_to_back(order):
    """C = α1 c1 + (1-α1) α2 c2 + T bg with the nearer Gaussian first, whatever the input order."""
    size, focal = 25, 40.0
    viewmats, Ks = pinhole(size, focal)
    depths, scales, opacities = [2.0, 3.0], [[0.1] * 3, [0.15] * 3], [0.6, 0.7]
    colours = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    params = gaussians_on_axis(*([v[i] for i in order] for v in (depths, scales, opacities, colours)))
    image, alpha, _ = rasterize_torch(*params, viewmats, Ks, size, size, backgrounds=BACKGROUND[None])
    alphas = [analytic_alpha(torch.eye(2) * ((focal * s[0] / z) ** 2 + 0.3), o, size)[..., None]
              for z, s, o in zip(depths, scales, opacities)]
    c1, c2 = torch.tensor(colours[0]), torch.tensor(colours[1])
    light = (1 - alphas[0]) * (1 - alphas[1])
    expected = alphas[0] * c1 + (1 - alphas[0]) * alphas[1] * c2 + light * BACKGROUND
    torch.testing.assert_close(image[0], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(alpha[0], 1 - light, atol=1e-6, rtol=1e-5)
    centre = size // 2
    torch.testing.assert_close(image[0, centre, centre], 0.6 * c1 + 0.4 * 0.7 * c2 + 0.4 * 0.3 * BACKGROUND)


def test_compositing_stops_before_transmittance_reaches_1e_4():
    """Opaque layers: alpha caps at 0.999; the second would leave 1e-6 <= 1e-4 light, so it is not drawn."""
    size = 17
    viewmats, Ks = pinhole(size, 40.0)
    params = gaussians_on_axis([2.0, 3.0, 4.0], [[0.1] * 3] * 3, [1.0, 1.0, 1.0],
                               [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    image, alpha, _ = rasterize_torch(*params, viewmats, Ks, size, size, backgrounds=BACKGROUND[None])
    centre = size // 2
    assert alpha[0, centre, centre, 0].item() == pytest.approx(0.999, abs=1e-7)
    torch.testing.assert_close(image[0, centre, centre], 0.999 * torch.tensor([1.0, 0.0, 0.0]) + 0.001 * BACKGROUND)


def test_background_handling_and_culling():
    """No background is black; a background shows through (1 - alpha); culled Gaussians leave it untouched."""
    size = 21
    viewmats, Ks = pinhole(size, 40.0)
    params = gaussians_on_axis([2.0], [[0.1] * 3], [0.7], [[0.9, 0.5, 0.1]])
    plain, alpha, _ = rasterize_torch(*params, viewmats, Ks, size, size)
    over, alpha_over, _ = rasterize_torch(*params, viewmats, Ks, size, size, backgrounds=BACKGROUND[None])
    torch.testing.assert_close(over, plain + (1 - alpha) * BACKGROUND)
    torch.testing.assert_close(alpha_over, alpha)
    assert plain[0, 0, 0].tolist() == [0.0, 0.0, 0.0] and alpha[0, size // 2, size // 2, 0] > 0.6
    # behind the camera, nearer than the near plane, beyond a far plane: nothing is drawn
    for depth, far in ((-2.0, 1e10), (0.005, 1e10), (20.0, 10.0)):
        params = gaussians_on_axis([depth], [[0.1] * 3], [0.7], [[0.9, 0.5, 0.1]])
        image, alpha, _ = rasterize_torch(*params, viewmats, Ks, size, size, backgrounds=BACKGROUND[None],
                                          far_plane=far)
        assert torch.equal(image[0], BACKGROUND.expand(size, size, 3)) and not alpha.any()


@pytest.mark.parametrize("tile_size", [4, 16])
def test_tiled_chunked_compositing_matches_per_pixel_loop(monkeypatch, tile_size):
    """Tile binning and depth-rank chunks (forced small: many steps, tiles finishing early) give exactly what a
    plain per-pixel loop over every Gaussian gives, on an image size that is no multiple of the tile size."""
    monkeypatch.setitem(raster_torch.CHUNK_ELEMENTS, "cpu", 1)
    means, quats, scales, opacities, colors = random_scene(500, seed=2, log_scale=-1.8)
    width, height = 45, 38
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[40.0, 0.0, 22.0], [0.0, 42.0, 19.5], [0.0, 0.0, 1.0]]])
    image, alpha, _ = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                      backgrounds=BACKGROUND[None], tile_size=tile_size)
    projection = project_gaussians(means, quat_scale_to_covar(quats, scales), opacities, viewmats[0], Ks[0],
                                   width, height, 0.01, 1e10, 0.3)
    ids = projection.ids
    expected, expected_alpha = reference_composite(projection.means2d, projection.conics, opacities[ids],
                                                   colors[ids], width, height, BACKGROUND)
    assert (expected_alpha > 0.999).float().mean() > 0.05  # some pixels stop early
    torch.testing.assert_close(image[0], expected, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(alpha[0], expected_alpha[..., None], atol=2e-6, rtol=1e-5)


def test_sh_degree_1_colour_depends_on_view():
    """Seen from two sides, the centre pixel shows max(eval_sh(mean - camera) + 0.5, 0) at the given opacity."""
    size, logit = 17, 1.2
    opacity = torch.sigmoid(torch.tensor(logit)).item()
    sh = torch.tensor([[[0.4, -0.2, 0.1], [0.5, 0.0, -0.4], [0.0, 0.6, 0.2], [-0.7, 0.3, 0.5]]])
    g = Gaussians.from_sh(means=torch.tensor([[0.2, -0.1, 0.3]]), quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                          log_scales=torch.full((1, 3), math.log(0.1)), opacity=torch.tensor([logit]), sh=sh)
    K = torch.tensor([[40.0, 0.0, size / 2], [0.0, 40.0, size / 2], [0.0, 0.0, 1.0]])
    seen = []
    for position in ([2.5, -0.5, 0.3], [-1.0, 0.5, 2.5]):
        position = np.array(position)
        target = g.means[0].numpy().astype(np.float64)
        viewmat = torch.tensor(viewmat_from_pose(position, look_at_rotation(position, target, np.array([0, -1.0, 0]))),
                               dtype=torch.float32)
        out = render(g, viewmat, K, size, size, background=BACKGROUND)
        colour = (eval_sh(1, sh[0], g.means[0] - torch.tensor(position, dtype=torch.float32)) + 0.5).clamp_min(0)
        expected = opacity * colour + (1 - opacity) * BACKGROUND
        torch.testing.assert_close(out.image[size // 2, size // 2], expected, atol=1e-5, rtol=1e-5)
        seen.append(out.image[size // 2, size // 2])
        degree0 = render(g, viewmat, K, size, size, background=BACKGROUND, sh_degree=0).image[size // 2, size // 2]
        expected0 = opacity * (dc_to_rgb(sh[0, 0])).clamp_min(0) + (1 - opacity) * BACKGROUND
        torch.testing.assert_close(degree0, expected0, atol=1e-5, rtol=1e-5)
    assert (seen[0] - seen[1]).abs().max() > 0.1


# --- gradients -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gradcheck_float64_tiny_scene():
    """Analytic gradients (through the checkpointed chunks) match finite differences for every parameter."""
    gen = torch.Generator().manual_seed(3)
    means = torch.tensor([[0.0, 0.0, 2.0], [0.15, -0.1, 2.5], [-0.1, 0.12, 3.0]], dtype=torch.float64)
    quats = F.normalize(torch.randn(3, 4, generator=gen, dtype=torch.float64), dim=-1)
    scales = torch.tensor([[0.9, 0.7, 0.6], [0.8, 1.0, 0.7], [1.1, 0.9, 0.8]], dtype=torch.float64)
    opacities = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64)
    colors = torch.rand(3, 3, generator=gen, dtype=torch.float64)
    viewmats = torch.eye(4, dtype=torch.float64)[None]
    Ks = torch.tensor([[[10.0, 0.0, 4.0], [0.0, 10.0, 4.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    background = BACKGROUND.double()[None]

    def image(*params):
        colour, alpha, _ = rasterize_torch(*params, viewmats, Ks, 8, 8, backgrounds=background, tile_size=4)
        return colour, alpha

    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors))
    _, alpha = image(*inputs)
    assert 0.05 < alpha.min() and alpha.max() < 0.98  # every pixel in the smooth regime
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-5)


def test_gradients_reach_every_parameter_of_a_scene():
    g = Gaussians(*(torch.nn.Parameter(t) for t in scene_from_random(200).values().values()))
    viewmat, K = torch.eye(4), torch.tensor([[40.0, 0.0, 16.0], [0.0, 40.0, 16.0], [0.0, 0.0, 1.0]])
    out = render(g, viewmat, K, 32, 32, background=BACKGROUND)
    (out.image * torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))).sum().backward()
    for name, tensor in g.values().items():
        if not tensor.numel():  # sh_rest at SH degree 0
            continue
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all(), name
        assert (tensor.grad.reshape(200, -1).abs().sum(1) > 0).sum() > 50, name


def scene_from_random(count: int) -> Gaussians:
    means, quats, scales, opacities, colors = random_scene(count, seed=4)
    return Gaussians.from_sh(means, quats, scales.log(), torch.logit(opacities), rgb_to_dc(colors)[:, None, :])


# --- render() and backends -------------------------------------------------------------------------------


def test_render_uses_the_torch_backend_on_cpu():
    assert pick_backend(torch.device("cpu")) == "torch"
    assert pick_backend("cpu", "torch") == "torch"
    assert "torch" in available_backends()
    if not torch.cuda.is_available():
        assert "gsplat" not in available_backends()
    with pytest.raises(InputError, match="backend 'gsplat': needs a CUDA GPU"):
        pick_backend("cpu", "gsplat")
    with pytest.raises(InputError, match="backend 'vulkan': unknown"):
        pick_backend("cpu", "vulkan")


def test_render_activates_raw_parameters():
    """render() = rasterize_torch on exp(log-scales), sigmoid(logits), SH of the scene's degree."""
    g = scene_from_random(150)
    g = g.with_sh(torch.cat([g.sh, 0.3 * torch.randn(150, 3, 3, generator=torch.Generator().manual_seed(5))], 1))
    viewmat, K = torch.eye(4), torch.tensor([[30.0, 0.0, 12.0], [0.0, 30.0, 12.0], [0.0, 0.0, 1.0]])
    out = render(g, viewmat, K, 24, 24, background=BACKGROUND)
    image, alpha, _ = rasterize_torch(g.means, g.quats, g.log_scales.exp(), torch.sigmoid(g.opacity), g.sh,
                                      viewmat[None], K[None], 24, 24, sh_degree=1, backgrounds=BACKGROUND[None])
    assert out.image.shape == (24, 24, 3) and out.alpha.shape == (24, 24, 1)
    torch.testing.assert_close(out.image, image[0])
    torch.testing.assert_close(out.alpha, alpha[0])
    with pytest.raises(InputError, match="sh_degree 2: the scene has SH degree 1"):
        render(g, viewmat, K, 24, 24, sh_degree=2)


# --- a real scene ----------------------------------------------------------------------------------------


def test_guitar_renders_where_its_gaussians_project(shared_data):
    """An orbit view of the real guitar at 96 px: not empty, and the silhouette lies on the projected means."""
    scene = shared_data / "scenes" / "guitar"
    g = Gaussians.from_splat_data(read_ply(scene / "point_cloud.ply"))
    camera = load_cameras(scene / "orbit_cameras.json")[0].resized(96, 96)
    out = render(g, *camera_tensors(camera), 96, 96, background=torch.ones(3))
    covered = out.alpha[..., 0] > 0.5
    assert 0.02 < covered.float().mean() < 0.5 and out.alpha.max() > 0.99
    assert (out.image[covered] < 0.9).any(dim=-1).float().mean() > 0.5  # coloured, not background white
    opaque = torch.sigmoid(g.opacity) > 0.5
    pixels, depth = camera.project(g.means[opaque].numpy())
    inside = (depth > 0) & (pixels >= 0).all(1) & (pixels < 96).all(1)
    cols, rows = pixels[inside].astype(int).T
    occupied = torch.zeros(96, 96)
    occupied.index_put_((torch.as_tensor(rows), torch.as_tensor(cols)), torch.ones(len(rows)), accumulate=True)
    near_means = F.max_pool2d(occupied[None, None], 5, stride=1, padding=2)[0, 0] > 0
    dense = occupied >= 3
    assert covered[~near_means].float().mean() < 0.01  # nothing drawn far from every projected mean
    assert covered[dense].float().mean() > 0.9  # where many opaque means land, the image is covered
