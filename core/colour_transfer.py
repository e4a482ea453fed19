"""Colour preservation: the painting's colours matched to the capture's before its style statistics are taken.

Gatys, Ecker, Bethge, Hertzmann, Shechtman, "Controlling Perceptual Factors in Neural Style Transfer" (CVPR 2017),
section 5.1, colour histogram matching: every painting pixel x becomes μ_c + A (x − μ_s) with
A = Σ_c^½ Σ_s^-½ (symmetric square roots), so the painting's colour mean and covariance become the capture's
(μ_c, Σ_c: the renders of the unmodified scene, weighted by coverage in object statistics). The style loss
then asks for the painting's brushwork in the capture's colours. docs/sos_loss.md, "Colour preservation".
"""

from __future__ import annotations

import torch

EIGEN_FLOOR = 1e-4
"""Smallest colour variance used when inverting the painting's covariance (a grey painting has almost none along
the chroma axes: without a floor those axes would be stretched without bound)."""


class ColourMoments:
    """Running Σ w, Σ w x, Σ w x xᵀ of RGB pixels (float64), for a mean and a covariance over many images."""

    def __init__(self) -> None:
        self.mass = torch.zeros((), dtype=torch.float64)
        self.total = torch.zeros(3, dtype=torch.float64)
        self.outer = torch.zeros(3, 3, dtype=torch.float64)

    def add(self, image: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add the pixels of an image [H, W, 3] with per-pixel weights [H, W] or [H, W, 1] (None: all 1)."""
        pixels = image.detach().reshape(-1, 3).to("cpu", torch.float64)
        w = (torch.ones(pixels.shape[0], dtype=torch.float64) if weights is None
             else weights.detach().reshape(-1).to("cpu", torch.float64))
        self.mass += w.sum()
        self.total += w @ pixels
        self.outer += (pixels * w[:, None]).T @ pixels

    def mean_covariance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted mean [3] and covariance [3, 3] of everything added."""
        if float(self.mass) <= 0:
            raise ValueError("no pixels with weight > 0: the capture covers nothing in any view")
        mean = self.total / self.mass
        return mean, self.outer / self.mass - torch.outer(mean, mean)


def match_colours(image: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """`image` [H, W, 3] in [0, 1] with its colour mean and covariance moved to `mean`, `covariance`.

    ``weights`` [H, W] or [H, W, 1] weigh the pixels whose statistics are moved (an object's coverage: then the
    object's colours are matched and the background follows the same map). Pixels pushed outside [0, 1] are
    clipped, so the statistics match up to that clipping.
    """
    moments = ColourMoments()
    moments.add(image, weights)
    matrix, offset = colour_map(*moments.mean_covariance(), mean, covariance)
    pixels = image.reshape(-1, 3).to("cpu", torch.float64)
    matched = pixels @ matrix.T + offset
    return matched.clamp(0, 1).reshape(image.shape).to(image.device, image.dtype)


def colour_map(source_mean: torch.Tensor, source_covariance: torch.Tensor, mean: torch.Tensor,
               covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map x ↦ A x + b (float64, on the CPU) that gives colours of mean ``source_mean`` and covariance
    ``source_covariance`` the ``mean`` and ``covariance``: A = Σ^½ Σ_source^-½, b = μ − A μ_source."""
    matrix = _sqrt_psd(covariance.to("cpu", torch.float64)) @ _inverse_sqrt_psd(source_covariance.to("cpu",
                                                                                                     torch.float64))
    return matrix, mean.to("cpu", torch.float64) - matrix @ source_mean.to("cpu", torch.float64)


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def _inverse_sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(EIGEN_FLOOR).rsqrt()) @ vectors.T
