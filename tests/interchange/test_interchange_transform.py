"""interchange.transform: the one rule for baking object transforms (what is exact, what is refused)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interchange.errors import InputError
from interchange.rotations import matrix_to_quaternion, quaternion_multiply, quaternion_to_matrix
from interchange.sh import sh_basis
from interchange.transform import check_transform, transform_arrays, transform_columns


def rotation_about(axis, angle: float) -> np.ndarray:
    n = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def affine(linear: np.ndarray, offset=(0.3, -1.0, 2.0)) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = linear, offset
    return matrix


def gaussians(count: int = 30, degree: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(count, 3)), rng.normal(size=(count, 4)), rng.normal(-2, 0.3, size=(count, 3)),
            rng.normal(size=(count, (degree + 1) ** 2, 3)))


def covariances(quats: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    r = quaternion_to_matrix(quats)
    return r @ (np.exp(2 * log_scales)[:, :, None] * r.transpose(0, 2, 1))


LINEAR = {
    "rotation": rotation_about((1, 2, 3), 0.5),
    "mirror": rotation_about((0, 1, 1), 0.3) @ np.diag([-1.0, 1.0, 1.0]),
    "scaled mirror": -0.7 * np.eye(3),
    "non-uniform": rotation_about((0, 0, 1), 0.4) @ np.diag([1.0, 3.0, 0.5]),
    "shear": np.array([[1.0, 0.6, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 0.8]]),
}


@pytest.mark.parametrize("kind", LINEAR)
def test_means_and_covariances_are_exact_for_every_invertible_map(kind: str) -> None:
    linear = LINEAR[kind]
    means, quats, log_scales, sh = gaussians()
    transform = check_transform(affine(linear), "obj")
    assert transform.similarity == (kind in ("rotation", "mirror", "scaled mirror"))
    moved = transform_arrays(transform, means, quats, log_scales, sh)
    np.testing.assert_allclose(moved[0], means @ linear.T + [0.3, -1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(covariances(moved[1], moved[2]), linear @ covariances(quats, log_scales) @ linear.T,
                               rtol=1e-9, atol=1e-14)


def test_mirrored_view_dependent_colour_is_exact() -> None:
    mirror = LINEAR["mirror"]
    means, quats, log_scales, sh = gaussians(degree=3)
    moved_sh = transform_arrays(check_transform(affine(mirror), "obj"), means, quats, log_scales, sh)[3]
    d = np.random.default_rng(1).normal(size=(30, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    after = np.einsum("nk,nkc->nc", sh_basis(3, d), moved_sh)
    before = np.einsum("nk,nkc->nc", sh_basis(3, d @ mirror), sh)  # seen along M⁻¹ d = Mᵀ d
    np.testing.assert_allclose(after, before, atol=1e-12)


@pytest.mark.parametrize("matrix, message", [
    (affine(np.diag([1.0, 0.0, 1.0])), "^Splat: the object transform is singular \\(zero scale\\); cannot apply it$"),
    (np.vstack([affine(np.eye(3))[:3], [0.0, 0.0, 0.5, 1.0]]), "^Splat: the object transform is not affine"),
    (np.full((4, 4), np.nan), "^Splat: the object transform must be a finite 4x4 matrix"),
])
def test_transforms_that_cannot_apply_are_refused_naming_the_object(matrix: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_transform(matrix, "Splat")


def test_transform_columns_bakes_only_the_gaussian_columns_and_keeps_dc_bit_exact_under_rotation() -> None:
    means, quats, log_scales, sh = gaussians(count=10, degree=1)
    columns = {k: means[:, i].astype(np.float32) for i, k in enumerate("xyz")}
    columns.update({f"rot_{i}": quats[:, i].astype(np.float32) for i in range(4)})
    columns.update({f"scale_{i}": log_scales[:, i].astype(np.float32) for i in range(3)})
    columns.update({f"f_dc_{c}": sh[:, 0, c].astype(np.float32) for c in range(3)})
    columns.update({f"f_rest_{c * 3 + k}": sh[:, 1 + k, c].astype(np.float32) for c in range(3) for k in range(3)})
    columns["id"] = np.arange(10, dtype=np.int32)
    baked = transform_columns(columns, affine(2.0 * LINEAR["rotation"]), 1, "obj")
    assert baked["id"] is columns["id"] and all(v.dtype == np.float32 for k, v in baked.items() if k != "id")
    for c in range(3):
        np.testing.assert_array_equal(baked[f"f_dc_{c}"], columns[f"f_dc_{c}"])
    np.testing.assert_allclose(baked["scale_0"], columns["scale_0"] + np.log(2.0), atol=1e-6)
    assert not np.array_equal(baked["f_rest_0"], columns["f_rest_0"])


def test_quaternions_round_trip_and_compose_like_matrices() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    back = matrix_to_quaternion(quaternion_to_matrix(a))
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    np.testing.assert_allclose(back, unit * np.sign(unit[:, :1]), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(quaternion_multiply(a, b)),
                               quaternion_to_matrix(a) @ quaternion_to_matrix(b), atol=1e-12)
