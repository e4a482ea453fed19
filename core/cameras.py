"""The engine's pinhole cameras (OpenCV axes, world-to-camera viewmat): resizing, projection, and conversion from
and to the camera records of interchange (cameras.json, COLMAP), and the orbit rig as cameras.

Pixel convention (gsplat's, and COLMAP's): pixel (i, j) of row i, column j spans [j, j+1] x [i, i+1], so its
centre is at (j + 0.5, i + 0.5) and the image spans [0, width] x [0, height]. A principal point of
(width/2, height/2) is therefore the centre of the image, and scaling an image scales cx, cy exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interchange import orbit
from interchange.cameras import (CameraRecord, look_at_rotation, pose_from_viewmat, read_cameras_json,
                                 viewmat_from_pose, write_cameras_json)
from interchange.colmap import is_colmap_path, read_colmap
from interchange.errors import InputError


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


def camera_from_record(record: CameraRecord) -> Camera:
    """The engine's camera of a cameras.json or COLMAP record (unnamed records are named by their id)."""
    cx, cy = record.principal_point
    return Camera.from_pose(record.img_name or f"camera_{record.id}", record.width, record.height, record.fx,
                            record.fy, cx, cy, record.position, record.rotation)


def record_from_camera(index: int, camera: Camera) -> CameraRecord:
    """A cameras.json record of a camera; ``cx``, ``cy`` only where the principal point is off-centre."""
    position, rotation = pose_from_viewmat(camera.viewmat)
    centred = (math.isclose(camera.cx, camera.width / 2, abs_tol=1e-9)
               and math.isclose(camera.cy, camera.height / 2, abs_tol=1e-9))
    return CameraRecord(index, camera.name, camera.width, camera.height, position, rotation, camera.fx, camera.fy,
                        None if centred else camera.cx, None if centred else camera.cy)


def load_cameras(path: str | Path) -> list[Camera]:
    """Cameras of an Inria cameras.json, or of a COLMAP text model (its folder or its images.txt)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    records = read_colmap(path) if is_colmap_path(path) else read_cameras_json(path)
    return [camera_from_record(record) for record in records]


def save_cameras_json(path: str | Path, cameras: list[Camera]) -> None:
    """Write cameras as an Inria cameras.json, atomically."""
    write_cameras_json(path, [record_from_camera(index, camera) for index, camera in enumerate(cameras)])


def orbit_cameras(means: np.ndarray, opacity_logits: np.ndarray | None = None, *, count: int = orbit.DEFAULT_COUNT,
                  elevations_deg: tuple[float, ...] = orbit.ELEVATIONS_DEG, fov_deg: float = orbit.FOV_DEG,
                  width: int = 1024, height: int = 1024, up: tuple[float, float, float] = (0.0, -1.0, 0.0),
                  coverage: float = orbit.COVERAGE) -> list[Camera]:
    """``count`` cameras of the orbit ring (interchange.orbit) around ``up``, looking at the dense part of the scene.

    ``fov_deg`` spans the longer image side (as Blender's sensor fit AUTO). ``count`` is split evenly over the rings.
    """
    _check_orbit_settings(count, elevations_deg, fov_deg, width, height, coverage)
    centre, radius = orbit.framing_sphere(means, opacity_logits, coverage)
    focal = orbit.focal_for_fov(width, height, fov_deg)
    distance = orbit.framing_distance(radius, width, height, fov_deg)
    up_axis = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    cameras = []
    for position in orbit.ring_positions(centre, distance, up_axis, count, elevations_deg):
        rotation = look_at_rotation(position, centre, up_axis)
        cameras.append(Camera.from_pose(f"orbit_{len(cameras):03d}", width, height, focal, focal, width / 2,
                                        height / 2, position, rotation))
    return cameras


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
