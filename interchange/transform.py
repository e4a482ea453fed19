"""Baking an object transform (Blender's matrix_world, 4x4) into Gaussians: the rules and the reference maths.

One decision for every caller, so an object that exports also renders, and the other way round:
- Means move as points. A covariance R S^2 R^T becomes A R S^2 R^T A^T under the linear part A, exactly, for any
  invertible A: with A = s Q (rotation or mirror Q, uniform scale s) the quaternion turns by Q (by -Q for a
  mirror, which has the same covariances) and log scales grow by log s; otherwise (non-uniform scale, shear)
  A Σ A^T is diagonalised into a rotation and scales.
- View-dependent colour (SH) follows ``sh.sh_transform``: exact under rotations, mirrors and uniform scale; the
  least-squares closest colour under non-uniform scale or shear (the file cannot hold the exact one).
- A singular transform (a zero scale) or a non-affine or non-finite matrix is refused, naming the object.

``transform_arrays`` is the reference implementation (float64 numpy); the engine's torch fast path
(core/transform.py) is tested against it, and the add-on's export uses ``transform_columns``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .rotations import matrix_to_quaternion, quaternion_multiply, quaternion_to_matrix
from .sh import is_similarity, sh_transform

SINGULAR_TOLERANCE = 1e-12


@dataclass(frozen=True)
class ObjectTransform:
    """A checked 4x4 object transform and what kind of map its linear part is.

    ``similarity`` is True for a rotation or mirror times a uniform scale; then ``scale`` is that scale and
    ``rotation`` the proper rotation with the same effect on covariances (the mirror negated).
    """

    matrix: np.ndarray
    similarity: bool
    scale: float
    rotation: np.ndarray

    @property
    def linear(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def offset(self) -> np.ndarray:
        return self.matrix[:3, 3]

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.matrix, np.eye(4)))

    def sh_matrix(self, degree: int) -> np.ndarray:
        """[(d+1)^2, (d+1)^2]: coefficients after = M @ coefficients before (see sh.sh_transform)."""
        return sh_transform(self.linear, degree)


def check_transform(matrix: np.ndarray, name: str) -> ObjectTransform:
    """The transform of object ``name`` checked and classified; raises InputError for one that cannot apply."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise InputError(f"{name}: the object transform must be a finite 4x4 matrix")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=1e-9):
        raise InputError(f"{name}: the object transform is not affine (its last row is not 0 0 0 1)")
    singular = np.linalg.svd(matrix[:3, :3], compute_uv=False)
    if singular.min() <= SINGULAR_TOLERANCE * max(singular.max(), 1e-300):
        raise InputError(f"{name}: the object transform is singular (zero scale); cannot apply it")
    scale = float(singular.mean())
    orthogonal = matrix[:3, :3] / scale
    return ObjectTransform(matrix, is_similarity(matrix[:3, :3]), scale,
                           orthogonal * np.sign(np.linalg.det(orthogonal)))


def transform_arrays(transform: ObjectTransform, means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray,
                     sh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussians moved by ``transform`` (the reference, in float64).

    Args:
        transform: from check_transform.
        means: [N, 3] centres.
        quats: [N, 4] rotations (w, x, y, z), not necessarily unit.
        log_scales: [N, 3] natural logs of the axis scales.
        sh: [N, (d+1)^2, 3] SH coefficients, DC first (gsplat layout).

    Returns:
        (means, quats, log_scales, sh) after the move, same shapes, float64.
    """
    linear = transform.linear
    means = np.asarray(means, dtype=np.float64) @ linear.T + transform.offset
    quats, log_scales = np.asarray(quats, dtype=np.float64), np.asarray(log_scales, dtype=np.float64)
    if transform.similarity:
        quats = quaternion_multiply(matrix_to_quaternion(transform.rotation), quats)
        log_scales = log_scales + np.log(transform.scale)
    else:
        quats, log_scales = transformed_covariances(quats, log_scales, linear)
    sh = np.asarray(sh, dtype=np.float64)
    degree = int(round(np.sqrt(sh.shape[1]))) - 1
    sh = np.einsum("kj,njc->nkc", transform.sh_matrix(degree), sh) if degree > 0 else sh
    return means, quats, log_scales, sh


def transformed_covariances(quats: np.ndarray, log_scales: np.ndarray,
                            linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quaternions and log scales of A R S^2 R^T A^T, by symmetric eigendecomposition."""
    rotations = quaternion_to_matrix(quats)
    covariances = rotations @ (np.exp(2 * log_scales)[:, :, None] * rotations.transpose(0, 2, 1))
    eigenvalues, eigenvectors = np.linalg.eigh(linear @ covariances @ linear.T)
    eigenvectors[np.linalg.det(eigenvectors) < 0, :, 2] *= -1
    return matrix_to_quaternion(eigenvectors), 0.5 * np.log(eigenvalues)


def transform_columns(columns: dict[str, np.ndarray], matrix: np.ndarray, sh_degree: int,
                      name: str) -> dict[str, np.ndarray]:
    """Raw 3DGS PLY columns with the 4x4 object ``matrix`` of object ``name`` baked in (x, y, z, rot_*, scale_*,
    f_dc_*, f_rest_*); other columns unchanged. Raises InputError for a transform that cannot apply."""
    transform = check_transform(matrix, name)
    per_channel = (sh_degree + 1) ** 2 - 1
    rest_names = [f"f_rest_{i}" for i in range(3 * per_channel)]
    dc = np.stack([columns[f"f_dc_{c}"] for c in range(3)], axis=1)[:, None, :]
    rest = np.stack([columns[n] for n in rest_names], axis=1).reshape(-1, 3, per_channel).transpose(0, 2, 1) \
        if per_channel else np.zeros((len(dc), 0, 3))
    means, quats, log_scales, sh = transform_arrays(
        transform, np.stack([columns[k] for k in "xyz"], axis=1),
        np.stack([columns[f"rot_{i}"] for i in range(4)], axis=1),
        np.stack([columns[f"scale_{i}"] for i in range(3)], axis=1), np.concatenate([dc, rest], axis=1))
    result = dict(columns)
    result.update(zip("xyz", means.T.astype(np.float32)))
    result.update((f"rot_{i}", quats[:, i].astype(np.float32)) for i in range(4))
    result.update((f"scale_{i}", log_scales[:, i].astype(np.float32)) for i in range(3))
    result.update((f"f_dc_{c}", sh[:, 0, c].astype(np.float32)) for c in range(3))
    flat_rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(len(sh), -1)
    result.update((n, flat_rest[:, i].astype(np.float32)) for i, n in enumerate(rest_names))
    return result
