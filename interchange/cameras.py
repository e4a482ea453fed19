"""Inria 3DGS cameras.json: camera records read with validation and written atomically; pinhole pose maths.

Each entry: id, img_name, width, height, position (camera centre, world), rotation (3x3 camera-to-world, OpenCV
axes: x right, y down, z forward), fx, fy in pixels; this project adds optional cx, cy (default width/2,
height/2). Keys other tools add are kept in ``extra`` and written back. Pixel convention (gsplat's, COLMAP's):
pixel (i, j) spans [j, j+1] x [i, i+1], so a principal point of (width/2, height/2) is the image centre.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import InputError

REQUIRED_KEYS = ("width", "height", "position", "rotation", "fx", "fy")
KNOWN_KEYS = ("id", "img_name", "width", "height", "position", "rotation", "fy", "fx", "cx", "cy")
# Rotations written by other tools in float32 are orthonormal to about 1e-7; anything worse is not a rotation.
ORTHONORMAL_TOLERANCE = 1e-4


@dataclass
class CameraRecord:
    """One cameras.json entry: a pinhole camera, its pose as the camera centre and camera-to-world rotation."""

    id: Any
    img_name: str
    width: int
    height: int
    position: np.ndarray
    rotation: np.ndarray
    fx: float
    fy: float
    cx: float | None = None
    cy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def principal_point(self) -> tuple[float, float]:
        """(cx, cy), the image centre when the file gives none."""
        return (self.width / 2 if self.cx is None else self.cx, self.height / 2 if self.cy is None else self.cy)

    def viewmat(self) -> np.ndarray:
        """World-to-camera 4x4 (gsplat's viewmat, OpenCV axes)."""
        return viewmat_from_pose(self.position, self.rotation)


def viewmat_from_pose(position: np.ndarray, cam_to_world_rotation: np.ndarray) -> np.ndarray:
    """World-to-camera 4x4 [[Rᵀ, -Rᵀ p], [0, 0, 0, 1]] from a camera centre p and camera-to-world R."""
    rotation = np.asarray(cam_to_world_rotation, dtype=np.float64)
    viewmat = np.eye(4)
    viewmat[:3, :3] = rotation.T
    viewmat[:3, 3] = -rotation.T @ np.asarray(position, dtype=np.float64)
    return viewmat


def pose_from_viewmat(viewmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(camera centre, camera-to-world rotation) of a world-to-camera 4x4: the inverse of viewmat_from_pose."""
    viewmat = np.asarray(viewmat, dtype=np.float64)
    rotation = viewmat[:3, :3].T.copy()
    return -rotation @ viewmat[:3, 3], rotation


def look_at_rotation(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes) of a camera at ``position`` looking at ``target``, ``up`` up."""
    forward = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    forward = forward / np.linalg.norm(forward)
    down = -np.asarray(up, dtype=np.float64) - np.dot(-np.asarray(up, dtype=np.float64), forward) * forward
    if np.linalg.norm(down) < 1e-9:
        raise ValueError("look_at_rotation: the view direction is parallel to the up axis")
    down = down / np.linalg.norm(down)
    return np.stack([np.cross(down, forward), down, forward], axis=1)


def find_cameras_file(ply_path: Path) -> Path | None:
    """The cameras.json of a scene PLY: in its folder, else the one *cameras*.json there, else cameras.json one or
    two folders up (3DGS writes <out>/cameras.json beside <out>/point_cloud/iteration_N/point_cloud.ply)."""
    folder = Path(ply_path).parent
    if (folder / "cameras.json").is_file():
        return folder / "cameras.json"
    candidates = sorted(p for p in folder.glob("*cameras*.json") if p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    for parent in (folder.parent, folder.parent.parent):
        if (parent / "cameras.json").is_file():
            return parent / "cameras.json"
    return None


def read_json(path: Path) -> Any:
    """Parsed JSON of a file, or an InputError saying where it is malformed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a JSON text file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, "
                         f"column {error.colno})") from None


def read_cameras_json(path: str | Path) -> list[CameraRecord]:
    """All cameras of an Inria cameras.json; raises InputError naming the file, the camera and the problem.

    Example:
        >>> records = read_cameras_json("scene/cameras.json")
        >>> records[0].img_name, records[0].viewmat().shape
        ('00001', (4, 4))
    """
    path = Path(path)
    entries = read_json(path)
    if not isinstance(entries, list):
        raise InputError(f"{path}: expected a list of cameras (Inria cameras.json), found a JSON "
                         f"{type(entries).__name__}")
    if not entries:
        raise InputError(f"{path}: the camera list is empty")
    return [parse_record(entry, index, f"{path}: ") for index, entry in enumerate(entries)]


def parse_record(entry: Any, index: int, where: str = "") -> CameraRecord:
    """One entry, checked: required keys, positive sizes and focal lengths, finite numbers, a true rotation.

    Errors read ``<where>camera <index> ('<img_name>'): <problem>``.
    """
    if not isinstance(entry, dict):
        raise InputError(f"{where}camera {index}: expected a JSON object")
    label = f"{where}camera {index}" + (f" ({entry['img_name']!r})" if "img_name" in entry else "")
    missing = [key for key in REQUIRED_KEYS if key not in entry]
    if missing:
        raise InputError(f"{label}: missing {', '.join(missing)}")
    width, height = (positive_int(entry[key], f"{label}: {key}") for key in ("width", "height"))
    position = number_array(entry["position"], (3,), f"{label}: position")
    rotation = number_array(entry["rotation"], (3, 3), f"{label}: rotation")
    check_rotation(rotation, f"{label}: rotation")
    fx, fy = (positive_float(entry[key], f"{label}: {key}") for key in ("fx", "fy"))
    if ("cx" in entry) != ("cy" in entry):
        raise InputError(f"{label}: cx and cy must be given together")
    cx, cy = (finite_float(entry[key], f"{label}: {key}") if key in entry else None for key in ("cx", "cy"))
    return CameraRecord(id=entry.get("id", index), img_name=str(entry.get("img_name", "")), width=width,
                        height=height, position=position, rotation=rotation, fx=fx, fy=fy, cx=cx, cy=cy,
                        extra={k: v for k, v in entry.items() if k not in KNOWN_KEYS})


def finite_float(value: Any, where: str) -> float:
    """A finite number, else an InputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, found {value!r}")
    return float(value)


def positive_float(value: Any, where: str) -> float:
    """A finite number > 0, else an InputError."""
    number = finite_float(value, where)
    if number <= 0:
        raise InputError(f"{where}: expected a positive number, found {value!r}")
    return number


def positive_int(value: Any, where: str) -> int:
    """A whole number > 0 (``512`` or ``512.0``), else an InputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0 or not float(value).is_integer():
        raise InputError(f"{where}: expected a positive integer, found {value!r}")
    return int(value)


def number_array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A nested list of finite numbers of the given shape, else an InputError."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.isfinite(array).all() or isinstance(value, str):
        raise InputError(f"{where}: expected {'x'.join(map(str, shape))} finite numbers")
    return array


def check_rotation(rotation: np.ndarray, where: str) -> None:
    """Refuse a matrix that is not a rotation: not orthonormal, or a reflection."""
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    if error > ORTHONORMAL_TOLERANCE:
        raise InputError(f"{where}: not a rotation matrix: not orthonormal (|RᵀR - I| = {error:.2g})")
    if np.linalg.det(rotation) < 0:
        raise InputError(f"{where}: not a rotation matrix: a reflection (determinant -1)")


def record_to_json(record: CameraRecord) -> dict[str, Any]:
    """An entry in Inria key order; cx, cy only when given; other tools' keys after them."""
    entry: dict[str, Any] = {
        "id": record.id, "img_name": record.img_name, "width": int(record.width), "height": int(record.height),
        "position": [float(v) for v in record.position],
        "rotation": [[float(v) for v in row] for row in record.rotation],
        "fy": float(record.fy), "fx": float(record.fx),
    }
    if record.cx is not None:
        entry["cx"], entry["cy"] = float(record.cx), float(record.cy)
    entry.update(record.extra)
    return entry


def write_cameras_json(path: str | Path, records: list[CameraRecord]) -> None:
    """Write a cameras.json atomically (floats as Python writes them, so they round-trip exactly)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    with atomic_write(path, "w") as stream:
        stream.write(json.dumps([record_to_json(r) for r in records], indent=1))
