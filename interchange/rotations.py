"""Rotations as (w, x, y, z) quaternions and 3x3 matrices, batched over a leading axis, in float64 numpy."""

from __future__ import annotations

import numpy as np


def quaternion_to_matrix(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] (w, x, y, z), normalised first as 3DGS does."""
    q = np.asarray(quats, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1).reshape(
        *q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """Unit quaternions [..., 4] (w, x, y, z, w >= 0) of rotation matrices [..., 3, 3], from the largest of four
    candidate forms (numerically stable for every rotation)."""
    m = np.asarray(matrices, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = np.stack([
        np.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1]], axis=-1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], axis=-1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                  m[..., 1, 2] + m[..., 2, 1]], axis=-1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 - m00 - m11 + m22], axis=-1),
    ], axis=-2)
    norms = np.linalg.norm(candidates, axis=-1)
    best = np.take_along_axis(candidates, norms.argmax(axis=-1)[..., None, None], axis=-2)[..., 0, :]
    best = best / np.linalg.norm(best, axis=-1, keepdims=True)
    return best * np.where(best[..., :1] < 0, -1.0, 1.0)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products a * b of (w, x, y, z) quaternions (rotation b, then a), broadcasting."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The proper rotation nearest to a 3x3 matrix (polar decomposition, reflections turned into rotations): the
    orientation of an object or camera matrix once scale is dropped."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    if np.linalg.det(u @ vt) < 0:
        return u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return u @ vt
