"""Test helpers written independently of the add-on: a numpy PLY writer, procedural scenes, SH evaluation."""

import json
from pathlib import Path

import numpy as np

C0 = 0.28209479177387814
NUMPY_TYPES = {"float": "<f4", "double": "<f8", "uchar": "u1", "short": "<i2", "int": "<i4", "uint": "<u4"}
IMAGE_DOWN = np.array([0.0, 1.0, 0.0])  # look_at's default: OpenCV image y (down) along world +y


def splat_names(degree: int, normals: bool = False) -> list[str]:
    """Inria property order for an SH degree."""
    rest = 3 * ((degree + 1) ** 2 - 1)
    return (["x", "y", "z"] + (["nx", "ny", "nz"] if normals else []) + [f"f_dc_{i}" for i in range(3)]
            + [f"f_rest_{i}" for i in range(rest)] + ["opacity"] + [f"scale_{i}" for i in range(3)]
            + [f"rot_{i}" for i in range(4)])


def procedural_columns(count: int, degree: int, seed: int = 0, normals: bool = False) -> dict[str, np.ndarray]:
    """Random but plausible Gaussians: positions in a unit cube, small scales, non-unit quaternions."""
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(0, 0.5, count).astype(np.float32) for name in splat_names(degree, normals)}
    for i in range(3):
        columns[f"scale_{i}"] = rng.uniform(-4, -2, count).astype(np.float32)
    columns["opacity"] = rng.uniform(-3, 3, count).astype(np.float32)
    for name in ("nx", "ny", "nz"):
        if normals:
            columns[name] = np.zeros(count, np.float32)
    return columns


def ply_bytes(columns: dict[str, np.ndarray], types: dict[str, str] | None = None, comments: tuple[str, ...] = (),
              fmt: str = "binary_little_endian") -> bytes:
    """A PLY file with one vertex element holding columns in order (float unless types says otherwise)."""
    types = types or {}
    names = list(columns)
    count = len(columns[names[0]])
    lines = ["ply", f"format {fmt} 1.0"] + [f"comment {c}" for c in comments] + [f"element vertex {count}"]
    lines += [f"property {types.get(n, 'float')} {n}" for n in names] + ["end_header"]
    dtype = np.dtype([(n, NUMPY_TYPES[types.get(n, "float")]) for n in names])
    table = np.empty(count, dtype)
    for name in names:
        table[name] = columns[name]
    return ("\n".join(lines) + "\n").encode("ascii") + table.tobytes()


def write_ply(path: Path, columns: dict[str, np.ndarray], **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ply_bytes(columns, **options))
    return path


def read_ply_columns(path: Path) -> dict[str, np.ndarray]:
    """Columns of a binary little-endian float/int PLY (independent reader for checking exports)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("latin-1").split("\n")
    count = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    props = [line.split()[1:] for line in header if line.startswith("property")]
    dtype = np.dtype([(name, NUMPY_TYPES[kind]) for kind, name in props])
    table = np.frombuffer(data, dtype, count=count, offset=end)
    assert len(data) == end + count * dtype.itemsize
    return {name: table[name].copy() for name in dtype.names}


def sh_colour(columns: dict[str, np.ndarray], degree: int, directions: np.ndarray) -> np.ndarray:
    """3DGS view-dependent colour (before +0.5 and clamping) of each Gaussian seen along directions [N, 3]."""
    m = (degree + 1) ** 2 - 1
    rest = np.stack([columns[f"f_rest_{i}"] for i in range(3 * m)], axis=1).astype(float).reshape(-1, 3, m)
    dc = np.stack([columns[f"f_dc_{i}"] for i in range(3)], axis=1).astype(float)
    x, y, z = directions.T
    terms = []
    if degree >= 1:
        terms += [-0.4886025119029199 * y, 0.4886025119029199 * z, -0.4886025119029199 * x]
    if degree >= 2:
        terms += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                  0.31539156525252005 * (2 * z * z - x * x - y * y), -1.0925484305920792 * x * z,
                  0.5462742152960396 * (x * x - y * y)]
    if degree >= 3:
        terms += [-0.5900435899266435 * y * (3 * x * x - y * y), 2.890611442640554 * x * y * z,
                  -0.4570457994644658 * y * (4 * z * z - x * x - y * y),
                  0.3731763325901154 * z * (2 * z * z - 3 * x * x - 3 * y * y),
                  -0.4570457994644658 * x * (4 * z * z - x * x - y * y), 1.445305721320277 * z * (x * x - y * y),
                  -0.5900435899266435 * x * (x * x - 3 * y * y)]
    colour = C0 * dc
    for k, term in enumerate(terms):
        colour = colour + rest[:, :, k] * term[:, None]
    return colour


def covariances(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Covariance matrices [N, 3, 3] of raw 3DGS columns."""
    q = np.stack([columns[f"rot_{i}"] for i in range(4)], axis=1).astype(float)
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]).transpose(2, 0, 1)
    s2 = np.exp(2 * np.stack([columns[f"scale_{i}"] for i in range(3)], axis=1).astype(float))
    return r @ (s2[:, :, None] * r.transpose(0, 2, 1))


def camera_entry(index: int, width: int, height: int, fx: float, fy: float, position, rotation,
                 cx: float | None = None, cy: float | None = None, **extra) -> dict:
    """One Inria cameras.json entry."""
    entry = {"id": index, "img_name": f"cam_{index:03d}", "width": width, "height": height,
             "position": [float(v) for v in position], "rotation": [[float(v) for v in row] for row in rotation],
             "fy": fy, "fx": fx}
    if cx is not None:
        entry["cx"], entry["cy"] = cx, cy
    entry.update(extra)
    return entry


def look_at(position: np.ndarray, target: np.ndarray, down: np.ndarray = IMAGE_DOWN) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes: x right, y down, z forward) looking from position at target."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(down, forward)
    right = right / np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward], axis=1)


def write_cameras(path: Path, entries: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path


def read_cameras(path: Path) -> list[dict]:
    """An Inria cameras.json as {name, width, height, viewmat (world-to-camera, OpenCV axes), K} per camera."""
    cameras = []
    for entry in json.loads(path.read_text()):
        rotation = np.array(entry["rotation"], float)  # camera-to-world
        viewmat = np.eye(4)
        viewmat[:3, :3] = rotation.T
        viewmat[:3, 3] = -rotation.T @ np.array(entry["position"], float)
        width, height = entry["width"], entry["height"]
        k = np.array([[entry["fx"], 0, entry.get("cx", width / 2)], [0, entry["fy"], entry.get("cy", height / 2)],
                      [0, 0, 1]], float)
        cameras.append({"name": entry["img_name"], "width": width, "height": height, "viewmat": viewmat, "K": k})
    return cameras
