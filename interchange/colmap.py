"""COLMAP text models (cameras.txt + images.txt) read as camera records, one per registered image.

Binary models are refused with the command that converts them. Lens distortion is dropped with a warning (3DGS
trains on undistorted images).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .cameras import CameraRecord, pose_from_viewmat
from .errors import InputError
from .rotations import quaternion_to_matrix

CONVERT_HINT = "convert the model with 'colmap model_converter --output_type TXT'"
# Camera models read: name -> (whether the first parameters are (f, cx, cy) rather than (fx, fy, cx, cy),
# whether the remaining parameters are distortion, ignored with a warning).
COLMAP_MODELS = {
    "SIMPLE_PINHOLE": (True, False),
    "PINHOLE": (False, False),
    "SIMPLE_RADIAL": (True, True),
    "RADIAL": (True, True),
    "OPENCV": (False, True),
    "FULL_OPENCV": (False, True),
}


def is_colmap_path(path: Path) -> bool:
    """True for what read_colmap takes: a folder, a COLMAP .txt model file, or a binary model file."""
    return path.is_dir() or path.suffix.lower() == ".bin" or path.name.lower() in ("images.txt", "cameras.txt")


def read_colmap(path: str | Path) -> list[CameraRecord]:
    """Cameras of a COLMAP text model: its folder, its images.txt or cameras.txt; sorted by image name."""
    path = Path(path)
    if path.suffix.lower() == ".bin":
        raise InputError(f"{path}: binary COLMAP models are not supported; {CONVERT_HINT}")
    folder = path if path.is_dir() else path.parent
    images, intrinsics = folder / "images.txt", folder / "cameras.txt"
    if not images.is_file():
        if (folder / "images.bin").is_file():
            raise InputError(f"{folder}: holds a binary COLMAP model; {CONVERT_HINT}")
        raise InputError(f"{folder}: not a COLMAP text model (no images.txt)")
    if not intrinsics.is_file():
        raise InputError(f"{intrinsics}: file not found (a COLMAP model needs it beside images.txt)")
    records = _read_images(images, _read_intrinsics(intrinsics))
    if not records:
        raise InputError(f"{images}: the model has no images")
    records.sort(key=lambda record: record.img_name)
    for index, record in enumerate(records):
        record.id = index
    return records


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every line of a COLMAP text file that is not a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a COLMAP text file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror})") from None
    return [(number, line.strip()) for number, line in enumerate(lines, start=1)
            if not line.lstrip().startswith("#")]


def _numbers(path: Path, number: int, fields: list[str]) -> list[float]:
    """Finite floats of text fields, else an InputError naming the line."""
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise InputError(f"{path}: line {number}: expected numbers, got {' '.join(fields)!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise InputError(f"{path}: line {number}: non-finite number")
    return values


def _read_intrinsics(path: Path) -> dict[str, tuple[int, int, float, float, float, float]]:
    """cameras.txt as {camera id: (width, height, fx, fy, cx, cy)}; distortion is dropped with a warning."""
    intrinsics = {}
    for number, line in _data_lines(path):
        if not line:
            continue
        fields = line.split()
        if len(fields) < 4:
            raise InputError(f"{path}: line {number}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS'")
        if fields[1] not in COLMAP_MODELS:
            raise InputError(f"{path}: line {number}: unsupported camera model {fields[1]!r} "
                             f"(supported: {', '.join(COLMAP_MODELS)})")
        single_focal, distorted = COLMAP_MODELS[fields[1]]
        values = _numbers(path, number, fields[2:])
        needed = 2 + (3 if single_focal else 4)
        if len(values) < needed or (not distorted and len(values) != needed):
            raise InputError(f"{path}: line {number}: wrong number of parameters for {fields[1]}")
        width, height = values[0], values[1]
        f = values[2:needed]
        fx, fy, cx, cy = (f[0], f[0], f[1], f[2]) if single_focal else tuple(f)
        if min(width, height, fx, fy) <= 0 or not (width.is_integer() and height.is_integer()):
            raise InputError(f"{path}: line {number}: size and focal lengths must be positive")
        if distorted and any(values[needed:]):
            warnings.warn(f"{path}: camera {fields[0]} ({fields[1]}): lens distortion is ignored; "
                          "undistort the images for exact results", stacklevel=3)
        intrinsics[fields[0]] = (int(width), int(height), fx, fy, cx, cy)
    return intrinsics


def _read_images(path: Path, intrinsics: dict) -> list[CameraRecord]:
    """images.txt poses as records; each image line is followed by a (possibly empty) 2D points line."""
    records = []
    lines = iter(_data_lines(path))
    for number, line in lines:
        if not line:
            continue
        next(lines, None)
        fields = line.split(maxsplit=9)
        if len(fields) != 10:
            raise InputError(f"{path}: line {number}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        values = _numbers(path, number, fields[1:8])
        qvec, tvec = np.array(values[:4]), np.array(values[4:])
        if np.linalg.norm(qvec) < 1e-12:
            raise InputError(f"{path}: line {number}: the quaternion is zero")
        if fields[8] not in intrinsics:
            raise InputError(f"{path}: line {number}: camera {fields[8]} is not in cameras.txt")
        width, height, fx, fy, cx, cy = intrinsics[fields[8]]
        viewmat = np.eye(4)
        viewmat[:3, :3] = quaternion_to_matrix(qvec)
        viewmat[:3, 3] = tvec
        position, rotation = pose_from_viewmat(viewmat)
        records.append(CameraRecord(len(records), image_name(fields[9]), width, height, position, rotation,
                                    fx, fy, cx, cy))
    return records


def image_name(colmap_name: str) -> str:
    """A COLMAP image path without its extension (Inria's img_name), keeping sub-folders apart."""
    return Path(colmap_name).with_suffix("").as_posix()
