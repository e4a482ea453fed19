"""Baking an object transform into raw 3DGS columns (export with apply_transform).

Means move as points. A Gaussian's covariance R S^2 R^T becomes A R S^2 R^T A^T under the linear part A,
which is exact for any invertible A: with A = s Q (rotation or mirror Q, uniform scale s) the quaternion is
turned by Q and log scales grow by log s; otherwise (non-uniform scale, shear) the new covariance is
diagonalised into a rotation and scales. View-dependent colour (SH degree >= 1) is rotated by Q; under a
non-uniform scale or shear view directions do not map by a rotation, so that case is refused for SH >= 1.
"""

from __future__ import annotations

import numpy as np

from ..errors import SplatInputError
from .sh_rotation import MAX_ROTATABLE_DEGREE, rotate_sh_rest

UNIFORM_TOLERANCE = 1e-6


def transform_columns(columns: dict[str, np.ndarray], matrix: np.ndarray, sh_degree: int,
                      name: str) -> dict[str, np.ndarray]:
    """New raw columns (x, y, z, rot_*, scale_*, f_rest_*) with a 4x4 object matrix applied; others unchanged."""
    linear, offset = np.asarray(matrix, float)[:3, :3], np.asarray(matrix, float)[:3, 3]
    singular = np.linalg.svd(linear, compute_uv=False)
    if singular.min() <= 1e-12 * max(singular.max(), 1e-300):
        raise SplatInputError(f"{name}: the object transform is singular (zero scale); cannot apply it")
    uniform = singular.max() - singular.min() <= UNIFORM_TOLERANCE * singular.max()
    orthogonal = linear / singular.mean()
    rotates = not np.allclose(orthogonal, np.eye(3), rtol=0, atol=1e-12)
    if sh_degree > 0 and not uniform:
        raise SplatInputError(f"{name}: apply transform with a non-uniform scale or shear cannot carry the "
                              f"view-dependent colour (SH degree {sh_degree}); apply only rotation and uniform "
                              "scale, or export without Apply Transform")
    if sh_degree > MAX_ROTATABLE_DEGREE and rotates:
        raise SplatInputError(f"{name}: rotating SH degree {sh_degree} is not supported (degrees up to "
                              f"{MAX_ROTATABLE_DEGREE}); export without Apply Transform")
    result = dict(columns)
    positions = np.stack([columns[k] for k in "xyz"], axis=1).astype(float) @ linear.T + offset
    result.update(zip("xyz", positions.T.astype(np.float32)))
    quats = np.stack([columns[f"rot_{i}"] for i in range(4)], axis=1).astype(float)
    log_scales = np.stack([columns[f"scale_{i}"] for i in range(3)], axis=1).astype(float)
    if uniform:
        proper = orthogonal * np.sign(np.linalg.det(orthogonal))  # a mirror's covariance is that of -mirror
        quats = quaternion_multiply(quaternion_from_matrix(proper[None])[0], quats)
        log_scales = log_scales + np.log(singular.mean())
    else:
        quats, log_scales = transformed_covariances(quats, log_scales, linear)
    result.update((f"rot_{i}", quats[:, i].astype(np.float32)) for i in range(4))
    result.update((f"scale_{i}", log_scales[:, i].astype(np.float32)) for i in range(3))
    if sh_degree > 0 and rotates:
        result.update(rotated_rest(columns, orthogonal, sh_degree))
    return result


def rotated_rest(columns: dict[str, np.ndarray], orthogonal: np.ndarray, sh_degree: int) -> dict[str, np.ndarray]:
    """f_rest columns rotated by an orthogonal matrix (f_rest is channel-major: all of R, then G, then B)."""
    per_channel = (sh_degree + 1) ** 2 - 1
    names = [f"f_rest_{i}" for i in range(3 * per_channel)]
    rest = np.stack([columns[n] for n in names], axis=1).astype(float).reshape(-1, 3, per_channel)
    rotated = rotate_sh_rest(rest, orthogonal, sh_degree).reshape(len(rest), -1)
    return {n: rotated[:, i].astype(np.float32) for i, n in enumerate(names)}


def transformed_covariances(quats: np.ndarray, log_scales: np.ndarray,
                            linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quaternions and log scales of A R S^2 R^T A^T, by symmetric eigendecomposition."""
    rotations = matrix_from_quaternion(quats)
    covariances = rotations @ (np.exp(2 * log_scales)[:, :, None] * rotations.transpose(0, 2, 1))
    eigenvalues, eigenvectors = np.linalg.eigh(linear @ covariances @ linear.T)
    eigenvectors[np.linalg.det(eigenvectors) < 0, :, 2] *= -1
    return quaternion_from_matrix(eigenvectors), 0.5 * np.log(eigenvalues)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b of (w, x, y, z) quaternions (broadcasting)."""
    aw, ax, ay, az = np.moveaxis(np.broadcast_to(a, np.broadcast(a, b).shape), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.broadcast_to(b, np.broadcast(a, b).shape), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def matrix_from_quaternion(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] of (w, x, y, z) quaternions, normalised first as 3DGS does."""
    w, x, y, z = (quats / np.linalg.norm(quats, axis=1, keepdims=True)).T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1).reshape(-1, 3, 3)


def quaternion_from_matrix(matrices: np.ndarray) -> np.ndarray:
    """Unit (w, x, y, z) quaternions of rotation matrices [N, 3, 3], from the largest of four candidates (stable)."""
    m = matrices
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = np.stack([
        np.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], axis=1),
        np.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0],
                  m[:, 0, 2] + m[:, 2, 0]], axis=1),
        np.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                  m[:, 1, 2] + m[:, 2, 1]], axis=1),
        np.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                  1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], axis=1),
    ], axis=1)
    norms = np.linalg.norm(candidates, axis=2)
    best = candidates[np.arange(len(m)), norms.argmax(axis=1)]
    best /= np.linalg.norm(best, axis=1, keepdims=True)
    return best * np.where(best[:, :1] < 0, -1.0, 1.0)
