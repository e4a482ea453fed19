"""Object transforms applied to Gaussians in torch (the renderer's fast path): means, covariances and SH colours
move with the object, and agree with interchange.transform's reference on every kind of transform."""

import math

import numpy as np
import pytest
import torch

from core.errors import InputError
from core.gaussians import Gaussians
from core.sh import eval_sh
from core.raster_torch import quat_to_rotmat
from core.transform import matrix_to_quat, transform_gaussians
from interchange.transform import check_transform, transform_arrays


def random_gaussians(n=50, degree=3, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians.from_sh(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
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
    r = quat_to_rotmat(g.quats.double())
    return r @ torch.diag_embed(torch.exp(2 * g.log_scales.double())) @ r.transpose(-1, -2)


def test_quaternion_matrix_round_trip():
    q = torch.nn.functional.normalize(torch.randn(200, 4, dtype=torch.float64), dim=1)
    back = matrix_to_quat(quat_to_rotmat(q))
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


MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
TRANSFORMS = {
    "rotation": lambda: rotation_matrix((0.2, 1.0, -0.4), 0.9),
    "uniform scale": lambda: 0.4 * rotation_matrix((1, 2, 3), 0.5),
    "mirror": lambda: rotation_matrix((0, 1, 1), 0.3) @ MIRROR,
    "scaled mirror": lambda: 2.0 * MIRROR,
    "non-uniform scale": lambda: rotation_matrix((0, 0, 1), 0.4) @ torch.diag(torch.tensor([1.0, 3.0, 0.5],
                                                                                          dtype=torch.float64)),
    "shear": lambda: torch.tensor([[1.0, 0.6, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 0.8]], dtype=torch.float64),
    "non-uniform mirror": lambda: torch.diag(torch.tensor([1.5, -0.5, 1.0], dtype=torch.float64)),
}


@pytest.mark.parametrize("kind", TRANSFORMS)
@pytest.mark.parametrize("degree", [0, 1, 3, 4])
def test_fast_path_agrees_with_the_interchange_reference(kind: str, degree: int):
    g = random_gaussians(n=40, degree=degree, seed=3)
    matrix = affine(TRANSFORMS[kind]())
    moved = transform_gaussians(g, matrix)
    means, quats, log_scales, sh = transform_arrays(check_transform(matrix.double().numpy(), "object"),
                                                    *(t.double().numpy() for t in (g.means, g.quats, g.log_scales,
                                                                                     g.sh)))
    reference = Gaussians.from_sh(*(torch.from_numpy(a) for a in (means, quats, log_scales, np.zeros(len(means)), sh)))
    torch.testing.assert_close(moved.means.double(), reference.means, rtol=1e-5, atol=1e-5)
    # quats and log scales are float32 in the fast path: compare each covariance relative to its size
    error = (covariance(moved) - covariance(reference)).abs().amax(dim=(-2, -1))
    assert (error <= 1e-5 * covariance(reference).abs().amax(dim=(-2, -1))).all()
    torch.testing.assert_close(moved.sh.double(), reference.sh, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("degree", [1, 3, 4])
def test_mirrored_sh_colour_equals_original_colour_seen_from_mirrored_direction(degree):
    g = random_gaussians(degree=degree)
    mirror = rotation_matrix((0, 1, 1), 0.3) @ MIRROR
    moved = transform_gaussians(g, affine(mirror))
    dirs = torch.nn.functional.normalize(torch.randn(g.count, 3), dim=1)
    world = eval_sh(degree, moved.sh, dirs)
    local = eval_sh(degree, g.sh, dirs @ mirror.float())  # Mᵀ d = M⁻¹ d for each row d
    assert torch.allclose(world, local, atol=1e-4)


def test_identity_returns_the_same_gaussians_and_singular_transforms_are_refused_naming_the_object():
    g = random_gaussians()
    assert transform_gaussians(g, torch.eye(4)) is g
    with pytest.raises(InputError, match="^Splat: the object transform is singular"):
        transform_gaussians(g, affine(torch.diag(torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))), "Splat")
