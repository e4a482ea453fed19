"""Loss terms computed once on the full-resolution render rather than on VGG features: total variation (the
``smoothness`` setting) and the lightness edge term (``edges``), each with a closed-form dL/dimage.

Both are local (a pixel's gradient depends on pixels within a few px), so on the full-resolution render they are
exact at any size without tiles; docs/sos_loss.md states them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
