"""Apply an object transform (Blender's matrix_world) to Gaussians in torch: the renderer's fast path.

Rendering several splat objects, each with its own transform, needs them in one world frame so depth order is
right across objects. The rules (what is exact, what is refused) and the reference maths are
interchange/transform.py; this module does the per-Gaussian work on the Gaussians' device and is tested against
that reference (tests/test_transform.py), as gsplat tests its CUDA kernels against its _torch_impl.
"""

from __future__ import annotations

import torch

from core.gaussians import Gaussians
from core.raster_torch import quat_to_rotmat
from interchange.rotations import matrix_to_quaternion
from interchange.transform import check_transform


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


def transform_gaussians(g: Gaussians, matrix: torch.Tensor, name: str = "object") -> Gaussians:
    """Gaussians moved by a 4x4 affine ``matrix`` (rotation, mirror, translation, uniform or non-uniform scale).

    Raises InputError naming ``name`` for a transform interchange.transform refuses (singular, not affine).
    """
    transform = check_transform(matrix.detach().to("cpu", torch.float64).numpy(), name)
    if transform.is_identity:
        return g
    device = g.means.device
    linear = torch.as_tensor(transform.linear, dtype=torch.float32, device=device)
    offset = torch.as_tensor(transform.offset, dtype=torch.float32, device=device)
    means = g.means @ linear.T + offset
    if transform.similarity:
        turn = torch.as_tensor(matrix_to_quaternion(transform.rotation), dtype=torch.float32, device=device)
        quats = _compose_quats(turn.expand_as(g.quats), g.quats)
        log_scales = g.log_scales + float(torch.log(torch.tensor(transform.scale, dtype=torch.float64)))
    else:
        quats, log_scales = _affine_covariance(g, linear)
    sh = g.sh
    if g.sh_degree > 0:
        coefficient_map = torch.as_tensor(transform.sh_matrix(g.sh_degree), dtype=g.sh.dtype, device=device)
        sh = torch.einsum("kj,njc->nkc", coefficient_map, g.sh)
    return Gaussians.from_sh(means, quats, log_scales, g.opacity, sh)


def _compose_quats(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b (rotation b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = torch.nn.functional.normalize(b, dim=-1).unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def _affine_covariance(g: Gaussians, linear: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """New quats and log scales for Σ' = A Σ Aᵀ (non-uniform scale or shear), by eigen-decomposition."""
    r = quat_to_rotmat(g.quats.double())
    s2 = torch.exp(2 * g.log_scales.double())
    cov = r @ torch.diag_embed(s2) @ r.transpose(-1, -2)
    a = linear.double()
    eigvals, eigvecs = torch.linalg.eigh(a @ cov @ a.T)
    flip = torch.det(eigvecs) < 0
    eigvecs[flip, :, 0] = -eigvecs[flip, :, 0]
    quats = matrix_to_quat(eigvecs).float()
    return quats, (0.5 * torch.log(eigvals.clamp_min(1e-30))).float()
