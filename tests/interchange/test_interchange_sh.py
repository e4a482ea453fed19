"""interchange.sh: the SH basis (3DGS constants, orthonormal) and how coefficients follow a linear map."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interchange.sh import C0, band_terms, sample_directions, sh_basis, sh_transform

# The reference 3DGS implementation's constants for bands 1-3 (SH_C1..SH_C3 in its sh_utils), written out.
REFERENCE_BANDS_1_TO_3 = [0.4886025119029199] * 3 + [1.0925484305920792, 1.0925484305920792, 0.31539156525252005,
                                                      1.0925484305920792, 0.5462742152960396]
REFERENCE_C3 = [0.5900435899266435, 2.890611442640554, 0.4570457994644658, 0.3731763325901154,
                0.4570457994644658, 1.445305721320277, 0.5900435899266435]


def rotation_about(axis, angle: float) -> np.ndarray:
    n = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def test_basis_matches_the_reference_3dgs_formulas_for_bands_0_to_3() -> None:
    d = sample_directions(50)
    x, y, z = d.T
    values = sh_basis(3, d)
    c1, c2, c3 = REFERENCE_BANDS_1_TO_3[0], REFERENCE_BANDS_1_TO_3[3:], REFERENCE_C3
    expected = [np.full_like(x, C0), -c1 * y, c1 * z, -c1 * x,
                c2[0] * x * y, -c2[1] * y * z, c2[2] * (2 * z * z - x * x - y * y), -c2[3] * x * z,
                c2[4] * (x * x - y * y),
                -c3[0] * y * (3 * x * x - y * y), c3[1] * x * y * z, -c3[2] * y * (4 * z * z - x * x - y * y),
                c3[3] * z * (2 * z * z - 3 * x * x - 3 * y * y), -c3[4] * x * (4 * z * z - x * x - y * y),
                c3[5] * z * (x * x - y * y), -c3[6] * x * (x * x - 3 * y * y)]
    np.testing.assert_allclose(values, np.stack(expected, axis=1), rtol=1e-14, atol=1e-15)


def test_basis_up_to_degree_4_is_orthonormal_on_the_sphere() -> None:
    d = sample_directions(40_000)
    values = sh_basis(4, d)
    gram = 4 * math.pi / len(d) * values.T @ values
    np.testing.assert_allclose(gram, np.eye(25), atol=2e-3)


def test_band_terms_take_any_array_type_and_refuse_other_bands() -> None:
    assert band_terms(1, 0.0, 1.0, 0.0)[0] == pytest.approx(-0.4886025119029199)
    with pytest.raises(ValueError, match="band must be 1..4"):
        band_terms(5, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["rotation", "mirror", "scaled rotation"])
def test_orthogonal_maps_are_exact_and_keep_dc_bit_exact(degree: int, kind: str) -> None:
    rotation = rotation_about((0.3, -1.0, 0.5), 1.1)
    linear = {"rotation": rotation, "mirror": rotation @ np.diag([1.0, -1.0, 1.0]),
              "scaled rotation": 2.5 * rotation}[kind]
    orthogonal = linear / abs(np.linalg.det(linear)) ** (1 / 3)
    matrix = sh_transform(linear, degree)
    assert matrix[0, 0] == 1.0 and not matrix[0, 1:].any() and not matrix[1:, 0].any()
    np.testing.assert_allclose(matrix @ matrix.T, np.eye((degree + 1) ** 2), atol=1e-12)
    coefficients = np.random.default_rng(degree).normal(size=(degree + 1) ** 2)
    d = sample_directions(97)
    after = sh_basis(degree, d) @ (matrix @ coefficients)
    before = sh_basis(degree, d @ orthogonal) @ coefficients  # the colour seen along Qᵀ d = Q⁻¹ d
    np.testing.assert_allclose(after, before, atol=1e-12)


def test_maps_compose() -> None:
    a, b = rotation_about((1, 0, 0), 0.7), rotation_about((0, 1, 1), -1.1) @ np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(sh_transform(a, 3) @ sh_transform(b, 3), sh_transform(a @ b, 3), atol=1e-12)


def test_non_uniform_scale_gives_the_least_squares_closest_colour() -> None:
    """f'(d) = f(normalize(A⁻¹ d)) leaves degree 3; the map is its best fit, better than rotating the SH by the
    rotation part of A (what the renderer used to do) and much better than leaving the SH unchanged."""
    linear = rotation_about((0, 0, 1), 0.4) @ np.diag([1.0, 3.0, 0.5])
    coefficients = np.random.default_rng(0).normal(size=16)
    d = sample_directions(5000)
    exact = sh_basis(3, d @ np.linalg.inv(linear).T) @ coefficients
    fitted = sh_basis(3, d) @ (sh_transform(linear, 3) @ coefficients)
    u, _, vt = np.linalg.svd(linear)
    polar = sh_basis(3, d) @ (sh_transform(u @ vt, 3) @ coefficients)
    unchanged = sh_basis(3, d) @ coefficients
    error = np.sqrt(np.mean((fitted - exact) ** 2))
    assert error < 0.5 * np.sqrt(np.mean((polar - exact) ** 2))
    assert error < 0.5 * np.sqrt(np.mean((unchanged - exact) ** 2))
