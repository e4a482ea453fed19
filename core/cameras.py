"""Pinhole cameras (OpenCV axes, world-to-camera): Inria cameras.json and COLMAP text I/O, resizing, orbit rig.

Pixel convention (gsplat's, and COLMAP's): pixel (i, j) of row i, column j spans [j, j+1] x [i, i+1], so its
centre is at (j + 0.5, i + 0.5) and the image spans [0, width] x [0, height]. A principal point of
(width/2, height/2) is therefore the centre of the image, and scaling an image scales cx, cy exactly.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_write
from core.errors import InputError

# Rotations written by other tools in float32 are orthonormal to about 1e-7; anything worse is not a rotation.
ORTHONORMAL_TOLERANCE = 1e-4
# Orbit cameras stand this much farther than the distance at which the framing sphere touches the image.
FRAMING_MARGIN = 1.05
JSON_KEYS = ("img_name", "width", "height", "position", "rotation", "fx", "fy")
# COLMAP camera models this loader reads: name -> whether the first parameters are (f, cx, cy) or
# (fx, fy, cx, cy), and whether the remaining parameters are distortion (ignored, with a warning).
COLMAP_MODELS = {
    "SIMPLE_PINHOLE": (True, False),
    "PINHOLE": (False, False),
    "SIMPLE_RADIAL": (True, True),
    "RADIAL": (True, True),
    "OPENCV": (False, True),
    "FULL_OPENCV": (False, True),
}


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: intrinsics in pixels at ``width`` x ``height`` and a world-to-camera ``viewmat``.

    ``viewmat`` is 4x4 float64 with OpenCV camera axes (x right, y down, z forward), as gsplat expects.
    """

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    viewmat: np.ndarray

    def __post_init__(self) -> None:
        viewmat = np.array(self.viewmat, dtype=np.float64)
        if viewmat.shape != (4, 4):
            raise ValueError(f"camera {self.name!r}: viewmat must be 4x4, got {viewmat.shape}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera {self.name!r}: size must be positive, got {self.width}x{self.height}")
        # A private copy, left writable: torch warns when it wraps a read-only array.
        object.__setattr__(self, "viewmat", viewmat)

    @classmethod
    def from_pose(cls, name: str, width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                  position: np.ndarray, cam_to_world_rotation: np.ndarray) -> Camera:
        """A camera from its centre in world and its camera-to-world rotation (the cameras.json pose)."""
        return cls(name, int(width), int(height), float(fx), float(fy), float(cx), float(cy),
                   viewmat_from_pose(np.asarray(position, float), np.asarray(cam_to_world_rotation, float)))

    def K(self) -> np.ndarray:
        """Intrinsic matrix [3, 3]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def cam_to_world_rotation(self) -> np.ndarray:
        """Rotation [3, 3] whose columns are the camera x, y, z axes in world coordinates."""
        return self.viewmat[:3, :3].T.copy()

    def position(self) -> np.ndarray:
        """Camera centre in world coordinates [3]."""
        return -self.viewmat[:3, :3].T @ self.viewmat[:3, 3]

    def resized(self, width: int, height: int) -> Camera:
        """The same view rendered at another size: intrinsics scale with each axis."""
        if width <= 0 or height <= 0:
            raise ValueError(f"camera {self.name!r}: size must be positive, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        return Camera(self.name, int(width), int(height), self.fx * sx, self.fy * sy,
                      self.cx * sx, self.cy * sy, self.viewmat)

    def with_long_side(self, long_side: int) -> Camera:
        """The same view with its longer side ``long_side`` pixels, the other rounded to keep the aspect."""
        scale = long_side / max(self.width, self.height)
        if self.width >= self.height:
            size = (int(long_side), max(1, round(self.height * scale)))
        else:
            size = (max(1, round(self.width * scale)), int(long_side))
        return self.resized(*size)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates [N, 2] (x right, y down, pixel convention of the module) and depths [N].

        Points at or behind the camera plane (depth <= 0) get NaN pixel coordinates.
        """
        cam = np.asarray(points, dtype=np.float64) @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        depth = cam[:, 2]
        in_front = depth > 0
        pixels = np.full((len(cam), 2), np.nan)
        pixels[in_front, 0] = self.fx * cam[in_front, 0] / depth[in_front] + self.cx
        pixels[in_front, 1] = self.fy * cam[in_front, 1] / depth[in_front] + self.cy
        return pixels, depth


def viewmat_from_pose(position: np.ndarray, cam_to_world_rotation: np.ndarray) -> np.ndarray:
    """World-to-camera 4x4 [[Rᵀ, -Rᵀ p], [0, 0, 0, 1]] from a camera centre p and camera-to-world R."""
    viewmat = np.eye(4)
    viewmat[:3, :3] = cam_to_world_rotation.T
    viewmat[:3, 3] = -cam_to_world_rotation.T @ position
    return viewmat


def load_cameras(path: str | Path) -> list[Camera]:
    """Cameras of an Inria cameras.json, or of a COLMAP text model (its folder or its images.txt)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        return _load_colmap_folder(path)
    if path.suffix.lower() == ".bin":
        raise InputError(f"{path}: binary COLMAP models are not supported; convert the model with "
                         "'colmap model_converter --output_type TXT'")
    if path.name.lower() in ("images.txt", "cameras.txt"):
        return _load_colmap_folder(path.parent)
    return _cameras_from_json(path, _read_json(path))


def cameras_to_json(cameras: list[Camera]) -> list[dict]:
    """Inria cameras.json entries; ``cx``, ``cy`` are added only where the principal point is off-centre."""
    return [_camera_to_json_entry(index, camera) for index, camera in enumerate(cameras)]


def save_cameras_json(path: str | Path, cameras: list[Camera]) -> None:
    """Write cameras as an Inria cameras.json, atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    with atomic_write(path, "w") as stream:
        stream.write(json.dumps(cameras_to_json(cameras), indent=1))


def orbit_cameras(means: np.ndarray, opacity_logits: np.ndarray | None = None, *, count: int = 24,
                  elevations_deg: tuple[float, ...] = (15.0, 35.0), fov_deg: float = 50.0,
                  width: int = 1024, height: int = 1024, up: tuple[float, float, float] = (0.0, -1.0, 0.0),
                  coverage: float = 0.95) -> list[Camera]:
    """``count`` cameras on rings at ``elevations_deg`` around ``up``, all looking at the dense part of the scene.

    The target is the median of the opaque Gaussians (sigmoid(logit) > 0.5; all of them if none is); the
    sphere around it holding a ``coverage`` fraction of them fits the image with a small margin. ``fov_deg``
    spans the longer image side (as Blender's sensor fit AUTO). ``count`` is split evenly over the rings.
    """
    _check_orbit_settings(count, elevations_deg, fov_deg, width, height, coverage)
    points = _dense_points(np.asarray(means, dtype=np.float64), opacity_logits)
    centre = np.median(points, axis=0)
    radius = float(np.quantile(np.linalg.norm(points - centre, axis=1), coverage))
    # All points coincide: any distance frames them, so use a unit sphere.
    radius = radius if radius > 0 else 1.0
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    half_angle_short_side = math.atan(0.5 * min(width, height) / focal)
    distance = FRAMING_MARGIN * radius / math.sin(half_angle_short_side)
    up_axis = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    cameras = []
    for position in _ring_positions(centre, distance, up_axis, count, elevations_deg):
        name = f"orbit_{len(cameras):03d}"
        rotation = look_at_rotation(position, centre, up_axis)
        cameras.append(Camera.from_pose(name, width, height, focal, focal, width / 2, height / 2,
                                        position, rotation))
    return cameras


def look_at_rotation(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes) of a camera at ``position`` looking at ``target``, ``up`` up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    down = -up - np.dot(-up, forward) * forward
    if np.linalg.norm(down) < 1e-9:
        raise ValueError("look_at_rotation: the view direction is parallel to the up axis")
    down = down / np.linalg.norm(down)
    right = np.cross(down, forward)
    return np.stack([right, down, forward], axis=1)


def quaternion_to_rotation(qvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion (w, x, y, z), normalised first.

    Hand-written because the formula is nine lines and scipy is not a dependency of the engine.
    """
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _check_orbit_settings(count: int, elevations_deg: tuple[float, ...], fov_deg: float, width: int,
                          height: int, coverage: float) -> None:
    """Reject orbit settings that cannot give a valid rig (programming or CLI-validation errors)."""
    if count < 1 or not elevations_deg:
        raise ValueError("orbit_cameras: needs at least one camera and one elevation")
    if any(not -90.0 < e < 90.0 for e in elevations_deg):
        raise ValueError(f"orbit_cameras: elevations must lie strictly between -90 and 90, got {elevations_deg}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"orbit_cameras: fov_deg must lie strictly between 0 and 180, got {fov_deg}")
    if width <= 0 or height <= 0:
        raise ValueError(f"orbit_cameras: size must be positive, got {width}x{height}")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"orbit_cameras: coverage must lie in (0, 1], got {coverage}")


def _dense_points(means: np.ndarray, opacity_logits: np.ndarray | None) -> np.ndarray:
    """The finite Gaussian centres that are reasonably opaque (all finite ones if none is)."""
    finite = np.isfinite(means).all(axis=1)
    if not finite.any():
        raise ValueError("orbit_cameras: the scene has no Gaussian with a finite position")
    if opacity_logits is None:
        return means[finite]
    # sigmoid(logit) > 0.5 exactly when logit > 0.
    opaque = finite & (np.asarray(opacity_logits).reshape(-1) > 0)
    return means[opaque] if opaque.any() else means[finite]


def _ring_positions(centre: np.ndarray, distance: float, up: np.ndarray, count: int,
                    elevations_deg: tuple[float, ...]) -> list[np.ndarray]:
    """Camera centres on one ring per elevation, rings staggered in azimuth so views interleave."""
    side_a = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    side_a /= np.linalg.norm(side_a)
    side_b = np.cross(up, side_a)
    rings = len(elevations_deg)
    positions = []
    for ring, elevation_deg in enumerate(elevations_deg):
        ring_count = count // rings + (1 if ring < count % rings else 0)
        elevation = math.radians(elevation_deg)
        for k in range(ring_count):
            azimuth = 2 * math.pi * (k + ring / rings) / ring_count
            horizontal = math.cos(azimuth) * side_a + math.sin(azimuth) * side_b
            direction = math.cos(elevation) * horizontal + math.sin(elevation) * up
            positions.append(centre + distance * direction)
    return positions


def _camera_to_json_entry(index: int, camera: Camera) -> dict[str, Any]:
    """One Inria cameras.json entry."""
    entry: dict[str, Any] = {
        "id": index,
        "img_name": camera.name,
        "width": camera.width,
        "height": camera.height,
        "position": camera.position().tolist(),
        "rotation": camera.cam_to_world_rotation().tolist(),
        "fy": camera.fy,
        "fx": camera.fx,
    }
    if not (math.isclose(camera.cx, camera.width / 2, abs_tol=1e-9)
            and math.isclose(camera.cy, camera.height / 2, abs_tol=1e-9)):
        entry["cx"], entry["cy"] = camera.cx, camera.cy
    return entry


def _read_json(path: Path) -> Any:
    """Parsed JSON of a file, or an InputError saying where it is malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a JSON text file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, "
                         f"column {error.colno})") from None


def _cameras_from_json(path: Path, data: Any) -> list[Camera]:
    """Cameras of a parsed Inria cameras.json, each entry validated."""
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a list of cameras, found a JSON {type(data).__name__}")
    if not data:
        raise InputError(f"{path}: the camera list is empty")
    return [_camera_from_json_entry(path, index, entry) for index, entry in enumerate(data)]


def _camera_from_json_entry(path: Path, index: int, entry: Any) -> Camera:
    """One validated camera of a cameras.json; errors name the entry by index (and name when known)."""
    if not isinstance(entry, dict):
        raise InputError(f"{path}: camera {index} is not a JSON object")
    label = f"camera {index} ({entry['img_name']!r})" if "img_name" in entry else f"camera {index}"
    missing = [key for key in JSON_KEYS if key not in entry]
    if missing:
        raise InputError(f"{path}: {label} has no {missing[0]!r}")
    if ("cx" in entry) != ("cy" in entry):
        raise InputError(f"{path}: {label} has only one of 'cx' and 'cy'")
    context = f"{path}: {label}"
    width = _positive_integer(context, "width", entry["width"])
    height = _positive_integer(context, "height", entry["height"])
    fx = _positive_number(context, "fx", entry["fx"])
    fy = _positive_number(context, "fy", entry["fy"])
    cx = _finite_array(context, "cx", entry.get("cx", width / 2), ())
    cy = _finite_array(context, "cy", entry.get("cy", height / 2), ())
    position = _finite_array(context, "position", entry["position"], (3,))
    rotation = _finite_array(context, "rotation", entry["rotation"], (3, 3))
    _check_rotation(context, rotation)
    return Camera.from_pose(str(entry["img_name"]), width, height, fx, fy, float(cx), float(cy),
                            position, rotation)


def _finite_array(context: str, key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float64 array of the given shape with finite entries, else an InputError."""
    wanted = "a number" if shape == () else "x".join(map(str, shape)) + " numbers"
    if isinstance(value, (str, bool)) or (shape == () and not isinstance(value, (int, float))):
        raise InputError(f"{context}: {key!r} must be {wanted}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{context}: {key!r} must be {wanted}") from None
    if array.shape != shape:
        raise InputError(f"{context}: {key!r} must be {wanted}")
    if not np.isfinite(array).all():
        raise InputError(f"{context}: {key!r} has a non-finite number")
    return array


def _positive_number(context: str, key: str, value: Any) -> float:
    """A finite number > 0, else an InputError."""
    number = float(_finite_array(context, key, value, ()))
    if number <= 0:
        raise InputError(f"{context}: {key!r} must be positive, got {value}")
    return number


def _positive_integer(context: str, key: str, value: Any) -> int:
    """A whole number > 0 (``512`` or ``512.0``), else an InputError."""
    number = _positive_number(context, key, value)
    if not number.is_integer():
        raise InputError(f"{context}: {key!r} must be a whole number of pixels, got {value}")
    return int(number)


def _check_rotation(context: str, rotation: np.ndarray) -> None:
    """Reject a matrix that is not a rotation (not orthonormal, or a reflection)."""
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > ORTHONORMAL_TOLERANCE:
        raise InputError(f"{context}: 'rotation' is not orthonormal (|RᵀR - I| = {error:.2g})")
    if np.linalg.det(rotation) < 0:
        raise InputError(f"{context}: 'rotation' is a reflection (determinant -1), not a rotation")


def _load_colmap_folder(folder: Path) -> list[Camera]:
    """Cameras of a COLMAP text model folder (cameras.txt and images.txt)."""
    images, intrinsics = folder / "images.txt", folder / "cameras.txt"
    if not images.is_file():
        if (folder / "images.bin").is_file():
            raise InputError(f"{folder}: holds a binary COLMAP model; convert it with "
                             "'colmap model_converter --output_type TXT'")
        raise InputError(f"{folder}: not a COLMAP text model (no images.txt)")
    return _load_colmap(intrinsics, images)


def _load_colmap(cameras_txt: Path, images_txt: Path) -> list[Camera]:
    """Cameras of a COLMAP text model, one per registered image, sorted by image name."""
    if not cameras_txt.is_file():
        raise InputError(f"{cameras_txt}: file not found (a COLMAP model needs it beside images.txt)")
    intrinsics = _read_colmap_intrinsics(cameras_txt)
    cameras = _read_colmap_images(images_txt, intrinsics)
    if not cameras:
        raise InputError(f"{images_txt}: the model has no images")
    return sorted(cameras, key=lambda camera: camera.name)


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


def _read_colmap_intrinsics(path: Path) -> dict[str, tuple[int, int, float, float, float, float]]:
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
                          "undistort the images for exact results", stacklevel=2)
        intrinsics[fields[0]] = (int(width), int(height), fx, fy, cx, cy)
    return intrinsics


def _read_colmap_images(path: Path, intrinsics: dict) -> list[Camera]:
    """images.txt poses as cameras; each image line is followed by a (possibly empty) 2D points line."""
    cameras = []
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
        viewmat[:3, :3] = quaternion_to_rotation(qvec)
        viewmat[:3, 3] = tvec
        cameras.append(Camera(_image_name(fields[9]), width, height, fx, fy, cx, cy, viewmat))
    return cameras


def _image_name(colmap_name: str) -> str:
    """A COLMAP image path without its extension (Inria's img_name), keeping sub-folders apart."""
    return Path(colmap_name).with_suffix("").as_posix()
