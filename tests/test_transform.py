"""Object transforms applied to Gaussians: means, covariances and SH colours move with the object."""

import math

import pytest
import torch

from core.gaussians import Gaussians
from core.sh import eval_sh
from core.transform import matrix_to_quat, quat_to_matrix, sh_rotation, transform_gaussians


def random_gaussians(n=50, degree=3, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
                     0.3 * torch.randn(n, 3, generator=g) - 2, torch.randn(n, generator=g),
                     torch.randn(n, (degree + 1) ** 2, 3, generator=g))


def rotation_matrix(axis, angle) -> torch.Tensor:
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def affine(linear, offset=(0.3, -1.0, 2.0)) -> torch.Tensor:
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = linear
    m[:3, 3] = torch.tensor(offset, dtype=torch.float64)
    return m.float()


def covariance(g: Gaussians) -> torch.Tensor:
    r = quat_to_matrix(g.quats.double())
    return r @ torch.diag_embed(torch.exp(2 * g.log_scales.double())) @ r.transpose(-1, -2)


def test_quaternion_matrix_round_trip():
    q = torch.nn.functional.normalize(torch.randn(200, 4, dtype=torch.float64), dim=1)
    back = matrix_to_quat(quat_to_matrix(q))
    assert torch.allclose(back * torch.sign(back[:, :1]), q * torch.sign(q[:, :1]), atol=1e-10)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_rotated_sh_colour_equals_original_colour_seen_from_rotated_direction(degree):
    g = random_gaussians(degree=degree)
    r = rotation_matrix((0.2, 1.0, -0.4), 0.9)
    moved = transform_gaussians(g, affine(r))
    dirs = torch.nn.functional.normalize(torch.randn(g.count, 3), dim=1)
    world = eval_sh(degree, moved.sh, dirs)
    local = eval_sh(degree, g.sh, dirs @ r.float())  # Rᵀ d for each row d
    assert torch.allclose(world, local, atol=1e-4)


def test_sh_rotation_is_orthogonal_and_composes():
    a, b = rotation_matrix((1, 0, 0), 0.7), rotation_matrix((0, 1, 1), -1.1)
    ma, mb, mab = (sh_rotation(r.float(), 3).double() for r in (a, b, a @ b))
    assert torch.allclose(ma @ ma.T, torch.eye(16, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(ma @ mb, mab, atol=1e-5)


def test_similarity_transform_moves_means_and_covariances():
    g = random_gaussians(degree=0)
    r = rotation_matrix((1, 2, 3), 0.5)
    m = affine(2.5 * r)
    moved = transform_gaussians(g, m)
    assert torch.allclose(moved.means, g.means @ m[:3, :3].T + m[:3, 3], atol=1e-5)
    expected = (2.5 * r) @ covariance(g) @ (2.5 * r).T
    assert torch.allclose(covariance(moved), expected, rtol=1e-4, atol=1e-9)


def test_non_uniform_scale_gives_the_affine_covariance():
    g = random_gaussians(degree=1)
    linear = rotation_matrix((0, 0, 1), 0.4) @ torch.diag(torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64))
    moved = transform_gaussians(g, affine(linear))
    expected = linear @ covariance(g) @ linear.T
    assert torch.allclose(covariance(moved), expected, rtol=1e-3, atol=1e-8)


def test_identity_returns_the_same_gaussians_and_mirrors_are_refused():
    g = random_gaussians()
    assert transform_gaussians(g, torch.eye(4)) is g
    with pytest.raises(ValueError, match="mirror"):
        transform_gaussians(g, affine(torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))))
