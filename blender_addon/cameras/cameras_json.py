"""Inria 3DGS cameras.json: read with validation, write atomically.

Each entry: id, img_name, width, height, position (camera centre, world), rotation (3x3 camera-to-world,
OpenCV axes), fx, fy in pixels; this project adds optional cx, cy (default width/2, height/2). Keys
other tools add are kept in `extra` and written back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..atomic_file import write_atomically
from ..errors import SplatInputError

KNOWN_KEYS = ("id", "img_name", "width", "height", "position", "rotation", "fy", "fx", "cx", "cy")
ROTATION_TOLERANCE = 1e-4


@dataclass
class CameraRecord:
    """One cameras.json entry."""

    id: int
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


def read_cameras(path: Path) -> list[CameraRecord]:
    """All cameras of a cameras.json; raises SplatInputError naming the file, the camera and the problem."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SplatInputError(f"{path}: cannot read: {error.strerror or error}") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise SplatInputError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(entries, list) or not entries:
        raise SplatInputError(f"{path}: expected a non-empty list of cameras (Inria cameras.json)")
    return [parse_record(entry, index, f"{path}: camera {index}") for index, entry in enumerate(entries)]


def parse_record(entry: Any, index: int, where: str) -> CameraRecord:
    """One entry, checked: required keys, positive sizes and focal lengths, finite numbers, a true rotation."""
    if not isinstance(entry, dict):
        raise SplatInputError(f"{where}: expected an object")
    missing = [key for key in ("width", "height", "position", "rotation", "fx", "fy") if key not in entry]
    if missing:
        raise SplatInputError(f"{where}: missing {', '.join(missing)}")
    width, height = (positive_int(entry[key], f"{where}: {key}") for key in ("width", "height"))
    position = number_array(entry["position"], (3,), f"{where}: position")
    rotation = number_array(entry["rotation"], (3, 3), f"{where}: rotation")
    if (not np.allclose(rotation.T @ rotation, np.eye(3), atol=ROTATION_TOLERANCE)
            or np.linalg.det(rotation) <= 0):
        raise SplatInputError(f"{where}: rotation is not a rotation matrix (orthonormal, determinant +1)")
    fx, fy = (positive_float(entry[key], f"{where}: {key}") for key in ("fx", "fy"))
    if ("cx" in entry) != ("cy" in entry):
        raise SplatInputError(f"{where}: cx and cy must be given together")
    cx, cy = (finite_float(entry[key], f"{where}: {key}") if key in entry else None for key in ("cx", "cy"))
    return CameraRecord(id=entry.get("id", index), img_name=str(entry.get("img_name", "")), width=width,
                        height=height, position=position, rotation=rotation, fx=fx, fy=fy, cx=cx, cy=cy,
                        extra={k: v for k, v in entry.items() if k not in KNOWN_KEYS})


def finite_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SplatInputError(f"{where}: expected a finite number, found {value!r}")
    return float(value)


def positive_float(value: Any, where: str) -> float:
    number = finite_float(value, where)
    if number <= 0:
        raise SplatInputError(f"{where}: expected a positive number, found {value!r}")
    return number


def positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SplatInputError(f"{where}: expected a positive integer, found {value!r}")
    return value


def number_array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A nested list of finite numbers of the given shape."""
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.isfinite(array).all():
        raise SplatInputError(f"{where}: expected {'x'.join(map(str, shape))} finite numbers")
    return array


def record_to_json(record: CameraRecord) -> dict[str, Any]:
    """An entry in Inria key order; cx, cy only when given."""
    entry: dict[str, Any] = {
        "id": record.id, "img_name": record.img_name, "width": record.width, "height": record.height,
        "position": [float(v) for v in record.position],
        "rotation": [[float(v) for v in row] for row in record.rotation],
        "fy": float(record.fy), "fx": float(record.fx),
    }
    if record.cx is not None:
        entry["cx"], entry["cy"] = float(record.cx), float(record.cy)
    entry.update(record.extra)
    return entry


def write_cameras(path: Path, records: list[CameraRecord]) -> None:
    """Write a cameras.json atomically (floats as Python writes them, so they round-trip exactly)."""
    text = json.dumps([record_to_json(r) for r in records], indent=1)

    def write(handle: BinaryIO) -> None:
        handle.write(text.encode("utf-8"))

    write_atomically(path, write)
