"""Apply an object transform (Blender's matrix_world) to Gaussians: means, covariances and SH colours.

Rendering several splat objects, each with its own transform, needs them in one world frame so depth order is
right across objects. Rotating view-dependent colour needs the SH coefficients rotated too: per band, the
rotation matrix is fitted by least squares on sample directions, which is exact for any degree because each
band is closed under rotation (and needs no hand-written Wigner-D formulas).
"""

from __future__ import annotations

import math

import torch

from core.gaussians import Gaussians
from core.sh import sh_basis


def sh_rotation(rotation: torch.Tensor, degree: int) -> torch.Tensor:
    """Block-diagonal [(d+1)^2, (d+1)^2] matrix M with coeffs_world = M @ coeffs_local for a rotation [3, 3]."""
    gen = torch.Generator().manual_seed(0)
    samples = 4 * (degree + 1) ** 2 + 16
    dirs = torch.nn.functional.normalize(torch.randn(samples, 3, generator=gen, dtype=torch.float64), dim=1)
    r = rotation.detach().to("cpu", torch.float64)
    basis = sh_basis(degree, dirs)
    rotated = sh_basis(degree, dirs @ r)  # Y(Rᵀ d) for each row d
    fit = torch.linalg.lstsq(basis, rotated).solution  # basis @ fit = rotated, so coeffs_world = fit @ coeffs
    return fit.to(rotation.dtype)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit-normalised quaternions [N, 4] (w, x, y, z) → rotation matrices [N, 3, 3]."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] → unit quaternions [N, 4] (w, x, y, z), via the largest-pivot method."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                     m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m00 - m11 + m22], -1),
    ], -2)
    pivot = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = candidates.gather(-2, pivot.argmax(-1)[..., None, None].expand(*m.shape[:-2], 1, 4)).squeeze(-2)
    return torch.nn.functional.normalize(best, dim=-1)


def polar_rotation(linear: torch.Tensor) -> torch.Tensor:
    """The rotation part R of a 3x3 linear map A = R S (S symmetric positive), reflections refused."""
    u, _, vh = torch.linalg.svd(linear)
    if torch.det(linear) <= 0:
        raise ValueError("object transform mirrors or flattens the splats (negative or zero scale)")
    return u @ vh


def transform_gaussians(g: Gaussians, matrix: torch.Tensor) -> Gaussians:
    """Gaussians moved by a 4x4 affine ``matrix`` (rotation, translation, uniform or non-uniform scale)."""
    m = matrix.to(g.means.device, torch.float32)
    linear, offset = m[:3, :3], m[:3, 3]
    if torch.allclose(m, torch.eye(4, device=m.device), atol=1e-7):
        return g
    rotation = polar_rotation(linear.double()).float()
    means = g.means @ linear.T + offset
    singular = torch.linalg.svdvals(linear.double())
    if float(singular.max() - singular.min()) <= 1e-6 * float(singular.max()):
        quats = _compose_quats(matrix_to_quat(rotation[None]).expand_as(g.quats), g.quats)
        log_scales = g.log_scales + math.log(float(singular[0]))
    else:
        quats, log_scales = _affine_covariance(g, linear)
    sh = g.sh
    if g.sh_degree > 0:
        sh = torch.einsum("kj,njc->nkc", sh_rotation(rotation, g.sh_degree).to(g.sh.device), g.sh)
    return Gaussians(means, quats, log_scales, g.opacity_logits, sh)


def _compose_quats(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b (rotation b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = torch.nn.functional.normalize(b, dim=-1).unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def _affine_covariance(g: Gaussians, linear: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """New quats and log scales for Σ' = A Σ Aᵀ (non-uniform scale), by eigen-decomposition."""
    r = quat_to_matrix(g.quats.double())
    s2 = torch.exp(2 * g.log_scales.double())
    cov = r @ torch.diag_embed(s2) @ r.transpose(-1, -2)
    a = linear.double()
    eigvals, eigvecs = torch.linalg.eigh(a @ cov @ a.T)
    flip = torch.det(eigvecs) < 0
    eigvecs[flip, :, 0] = -eigvecs[flip, :, 0]
    quats = matrix_to_quat(eigvecs).float()
    return quats, (0.5 * torch.log(eigvals.clamp_min(1e-30))).float()
