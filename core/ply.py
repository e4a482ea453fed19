"""3DGS PLY read/write (the Inria layout) with plyfile; the raw vertex table is kept for lossless round trips.

Only one ``vertex`` element is accepted: files with other elements (meshes, compressed splat PLYs) are
refused with a message naming them, never half-read. Header comments are kept; ``obj_info`` lines and
per-element comments are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.recfunctions import structured_to_unstructured
from plyfile import PlyData, PlyElement, PlyElementParseError, PlyHeaderParseError

from core.atomic import atomic_write
from core.errors import InputError

REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}
SUPPORTED_FORMAT = "binary_little_endian"
MAX_HEADER_LINES = 100_000


def _problem(path: str | Path, problem: str) -> InputError:
    """The one-line error for a user's file: ``<path>: <problem>``."""
    return InputError(f"{path}: {problem}" if str(path) else problem)


def sh_degree_from_rest_count(count: int, path: str | Path = "") -> int:
    """SH degree (0..4) of a file with ``count`` f_rest properties: 3 channels x ((d+1)^2 - 1) coefficients."""
    if count not in REST_COUNT_TO_DEGREE:
        expected = ", ".join(str(c) for c in REST_COUNT_TO_DEGREE)
        raise _problem(path, f"{count} f_rest properties match no SH degree (expected one of {expected})")
    return REST_COUNT_TO_DEGREE[count]


def _rest_names(count: int) -> list[str]:
    return [f"f_rest_{i}" for i in range(count)]


def _rest_count(names: tuple[str, ...] | list[str]) -> int:
    return sum(1 for name in names if name.startswith("f_rest_"))


@dataclass(frozen=True, eq=False)
class SplatData:
    """The vertex table of a 3DGS PLY: every property in file order and dtype, plus the header comments.

    Accessors return float32 copies in the engine's layouts; ``with_*`` return copies with only those
    columns changed, so unknown properties (normals, ids, ...) survive a read -> edit -> write cycle.
    Tables made by this module are read-only, so a SplatData never changes under its holders.
    """

    vertices: np.ndarray
    comments: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.vertices)

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_rest_count(_rest_count(self.vertices.dtype.names))

    def _column_view(self, names: list[str]) -> np.ndarray:
        """Columns ``names`` as [N, len(names)] float32: a view of the table where the layout allows, else a copy."""
        return structured_to_unstructured(self.vertices[names], dtype=np.float32)

    def _columns(self, names: list[str]) -> np.ndarray:
        """Columns ``names`` as a new [N, len(names)] float32 array (never a view of the table)."""
        return np.array(self._column_view(names))

    def means(self) -> np.ndarray:
        """Centres [N, 3]."""
        return self._columns(["x", "y", "z"])

    def sh_dc(self) -> np.ndarray:
        """Degree-0 SH coefficients [N, 3] (R, G, B)."""
        return self._columns(["f_dc_0", "f_dc_1", "f_dc_2"])

    def sh_rest(self) -> np.ndarray:
        """Higher SH coefficients [N, M, 3], M = (d+1)^2 - 1, from the file's channel-major f_rest."""
        rest_count = _rest_count(self.vertices.dtype.names)
        channel_major = self._column_view(_rest_names(rest_count)).reshape(self.count, 3, rest_count // 3)
        return np.array(channel_major.transpose(0, 2, 1), order="C")

    def opacity_logits(self) -> np.ndarray:
        """Opacities before the sigmoid [N]."""
        return self._columns(["opacity"])[:, 0]

    def log_scales(self) -> np.ndarray:
        """Natural logs of the three axis scales [N, 3]."""
        return self._columns(["scale_0", "scale_1", "scale_2"])

    def quats(self) -> np.ndarray:
        """Rotations [N, 4] (w, x, y, z) as stored, not normalised."""
        return self._columns(["rot_0", "rot_1", "rot_2", "rot_3"])

    def with_sh(self, dc: np.ndarray, rest: np.ndarray | None = None) -> SplatData:
        """A copy with new SH coefficients: ``dc`` [N, 3] and, unless None, ``rest`` [N, M, 3] (same degree)."""
        rest = None if rest is None else np.asarray(rest)
        if rest is not None and rest.shape[1:2] != ((self.sh_degree + 1) ** 2 - 1,):
            raise ValueError(f"rest has shape {rest.shape}, expected SH degree {self.sh_degree}")
        return self._with_columns(_sh_columns(np.asarray(dc), rest, self.count))

    def with_opacity_logits(self, logits: np.ndarray) -> SplatData:
        """A copy with new opacity logits [N]."""
        logits = np.asarray(logits)
        _check_shape("logits", logits, (self.count,))
        return self._with_columns({"opacity": logits})

    def _with_columns(self, columns: dict[str, np.ndarray]) -> SplatData:
        vertices = self.vertices.copy()
        for name, values in columns.items():
            vertices[name] = values
        vertices.setflags(write=False)
        return SplatData(vertices, self.comments)


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")


def make_splat_data(means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray, opacity_logits: np.ndarray,
                    sh_dc: np.ndarray, sh_rest: np.ndarray | None = None,
                    comments: tuple[str, ...] | list[str] = ()) -> SplatData:
    """A new scene in the standard Inria property order (x y z nx ny nz f_dc f_rest opacity scale rot), float32.

    Normals are zeros, as the reference implementation writes them; ``sh_rest`` None means SH degree 0.
    """
    means, quats, log_scales, opacity_logits = (np.asarray(a) for a in (means, quats, log_scales, opacity_logits))
    count = len(means)
    sh_rest = np.zeros((count, 0, 3), np.float32) if sh_rest is None else np.asarray(sh_rest)
    for name, array, shape in (("means", means, (count, 3)), ("quats", quats, (count, 4)),
                               ("log_scales", log_scales, (count, 3)), ("opacity_logits", opacity_logits, (count,))):
        _check_shape(name, array, shape)
    columns = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    columns.update({"nx": 0.0, "ny": 0.0, "nz": 0.0})
    columns.update(_sh_columns(np.asarray(sh_dc), sh_rest, count))
    columns["opacity"] = opacity_logits
    columns.update({f"scale_{i}": log_scales[:, i] for i in range(3)})
    columns.update({f"rot_{i}": quats[:, i] for i in range(4)})
    vertices = np.empty(count, dtype=[(name, "<f4") for name in columns])
    for name, values in columns.items():
        vertices[name] = values
    vertices.setflags(write=False)
    return SplatData(vertices, tuple(comments))


def _sh_columns(dc: np.ndarray, rest: np.ndarray | None, count: int) -> dict[str, np.ndarray]:
    """PLY columns of SH coefficients dc [N, 3] and rest [N, M, 3]; f_rest is channel-major: f_rest[c*M + k]."""
    _check_shape("dc", dc, (count, 3))
    columns = {f"f_dc_{c}": dc[:, c] for c in range(3)}
    if rest is not None:
        coefficients = rest.shape[1] if rest.ndim == 3 else -1
        _check_shape("rest", rest, (count, coefficients, 3))
        sh_degree_from_rest_count(3 * coefficients)
        columns.update({f"f_rest_{c * coefficients + k}": rest[:, k, c]
                        for c in range(3) for k in range(coefficients)})
    return columns


def read_ply(path: str | Path) -> SplatData:
    """Read a 3DGS PLY into memory (the file is opened read-only and closed before returning)."""
    try:
        with open(path, "rb") as stream:
            _check_header(stream, path)
            stream.seek(0)
            ply = _parse(stream, path)
            _check_vertex_element(ply["vertex"], path)
            vertices = _read_vertex_table(stream, ply["vertex"], path)
    except FileNotFoundError:
        raise _problem(path, "file not found") from None
    except IsADirectoryError:
        raise _problem(path, "is a folder, expected a .ply file") from None
    except OSError as error:
        raise _problem(path, f"cannot read ({error.strerror or error})") from None
    _check_finite(vertices, path)
    vertices.setflags(write=False)
    return SplatData(vertices, tuple(ply.comments))


def _check_header(stream, path: str | Path) -> None:
    """Refuse, from the header alone, files that are not one binary little-endian table of scalar properties.

    Hand-written because plyfile reads the whole body before its header can be looked at (vertex by vertex
    in Python for ASCII files and list properties: minutes for a large file) and lets a non-ASCII header
    escape as a UnicodeDecodeError. plyfile then parses the header in full.
    """
    lines = _header_words(stream, path)
    formats = [words[1] if len(words) > 1 else "" for words in lines if words[0] == "format"]
    if formats and formats[0] != SUPPORTED_FORMAT:
        raise _problem(path, f"unsupported format '{formats[0]}' (only {SUPPORTED_FORMAT} PLY files are read)")
    elements = [words[1:] for words in lines if words[0] == "element"]
    names = [element[0] for element in elements if element]
    if "vertex" not in names:
        raise _problem(path, f"no 'vertex' element (found: {', '.join(names) or 'none'})")
    if names != ["vertex"]:
        raise _problem(path, f"expected a single 'vertex' element, found: {', '.join(names)} "
                             "(compressed splat and mesh PLY files are not supported)")
    if len(elements[0]) != 2 or not elements[0][1].isdigit():
        raise _problem(path, f"bad PLY header line 'element {' '.join(elements[0])}' "
                             "(expected 'element vertex <count>')")
    lists = [words[-1] for words in lines if words[:2] == ["property", "list"]]
    if lists:
        raise _problem(path, f"unsupported list properties in 'vertex': {', '.join(lists)}")


def _header_words(stream, path: str | Path) -> list[list[str]]:
    """The words of each non-empty header line between 'ply' and 'end_header'."""
    if stream.read(4) not in (b"ply\n", b"ply\r"):
        raise _problem(path, "not a PLY file (it does not start with 'ply')")
    stream.seek(0)
    lines = []
    for number in range(1, MAX_HEADER_LINES + 1):
        raw = stream.readline(4096)
        if not raw:
            raise _problem(path, "PLY header has no 'end_header' line (truncated or corrupt header)")
        try:
            words = raw.decode("ascii").split()
        except UnicodeDecodeError:
            raise _problem(path, f"PLY header line {number} is not ASCII text (corrupt header)") from None
        if words == ["end_header"]:
            return lines[1:]
        if words:
            lines.append(words)
    raise _problem(path, f"PLY header has no 'end_header' line in its first {MAX_HEADER_LINES} lines")


def _parse(stream, path: str | Path) -> PlyData:
    """plyfile's header parsing and size check (its memory map of the body is not copied), errors as InputError."""
    try:
        return PlyData.read(stream, mmap="r")
    except PlyHeaderParseError as error:
        raise _problem(path, f"bad PLY header ({error})") from None
    except PlyElementParseError as error:
        raise _problem(path, f"truncated: the header promises {error.element.count} vertex records "
                             f"but the file holds only {error.row}") from None


def _check_vertex_element(element: PlyElement, path: str | Path) -> None:
    """Refuse a vertex table without the 3DGS properties, or without any Gaussian."""
    property_names = [p.name for p in element.properties]
    missing = [name for name in REQUIRED if name not in property_names]
    if missing:
        raise _problem(path, f"missing required properties: {', '.join(missing)}")
    _check_required_types(element, path)
    _check_rest_names(property_names, path)
    if element.count == 0:
        raise _problem(path, "holds no Gaussians (vertex count is 0)")


def _read_vertex_table(stream, element: PlyElement, path: str | Path) -> np.ndarray:
    """The vertex bytes read straight into a new array, ten times faster than copying plyfile's memory map.

    plyfile has parsed the header and checked the size, leaving ``stream`` just after the vertex data.
    """
    dtype = element.dtype("<")
    stream.seek(stream.tell() - element.count * dtype.itemsize)
    vertices = np.fromfile(stream, dtype=dtype, count=element.count)
    if len(vertices) != element.count:  # the file shrank since plyfile checked its size
        raise _problem(path, f"truncated: the header promises {element.count} vertex records "
                             f"but the file holds only {len(vertices)}")
    return vertices


def _check_required_types(element: PlyElement, path: str | Path) -> None:
    not_float = [f"{p.name} ({p.val_dtype})" for p in element.properties
                 if p.name in REQUIRED and np.dtype(p.val_dtype).kind != "f"]
    if not_float:
        raise _problem(path, f"required properties must be float, found: {', '.join(not_float)}")


def _check_rest_names(property_names: list[str], path: str | Path) -> None:
    rest = [name for name in property_names if name.startswith("f_rest_")]
    sh_degree_from_rest_count(len(rest), path)
    if sorted(rest) != sorted(_rest_names(len(rest))):
        raise _problem(path, f"f_rest properties are not numbered f_rest_0..f_rest_{len(rest) - 1}")


def _check_finite(vertices: np.ndarray, path: str | Path) -> None:
    """Refuse NaN/inf in any float property, naming each bad property and how many values."""
    if _all_finite(vertices):
        return
    float_names = [name for name in vertices.dtype.names if vertices.dtype[name].kind == "f"]
    counts = {name: int(np.count_nonzero(~np.isfinite(vertices[name]))) for name in float_names}
    bad = ", ".join(f"{name} ({count})" for name, count in counts.items() if count)
    raise _problem(path, f"non-finite values (NaN or inf) in: {bad}")


def _all_finite(vertices: np.ndarray) -> bool:
    """One pass over the table when every property is a float of one dtype (the usual file), else per column."""
    dtypes = {vertices.dtype[name] for name in vertices.dtype.names}
    if len(dtypes) == 1 and next(iter(dtypes)).kind == "f":
        flat = vertices.view(next(iter(dtypes))).reshape(len(vertices), -1)
        return bool(np.isfinite(flat).all())
    return all(np.isfinite(vertices[name]).all() for name in vertices.dtype.names if vertices.dtype[name].kind == "f")


def write_ply(path: str | Path, data: SplatData) -> None:
    """Write ``data`` as a binary little-endian PLY, atomically: a failure leaves any existing file untouched."""
    path = Path(path)
    if path.is_dir():
        raise _problem(path, "is a folder, expected a .ply file name")
    if not path.parent.is_dir():
        raise _problem(path, f"folder {path.parent} does not exist")
    ply = PlyData([PlyElement.describe(data.vertices, "vertex")], byte_order="<", comments=list(data.comments))
    try:
        with atomic_write(path) as stream:
            ply.write(stream)
    except OSError as error:
        raise _problem(path, f"cannot write ({error.strerror or error})") from None
