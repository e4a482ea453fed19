"""3DGS PLY files (the Inria layout): header parsing and validation, the binary vertex table read and written
with numpy, byte for byte.

The header text is kept verbatim (latin-1 round trips every byte) and the vertex table keeps every property in
file order and type, so reading and writing an unchanged scene gives back the same bytes; unknown properties
(normals, ids, ...) survive edits. Only binary little-endian files with one non-empty ``vertex`` element of
scalar properties are read: other files (ASCII, meshes, compressed splat PLYs) are refused with one line that
names the file and the problem, before the body is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterator, Mapping

import numpy as np

from .atomic import atomic_write
from .errors import InputError

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}
TYPE_WORDS = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
              "f4": "float", "f8": "double"}
# The one vocabulary of a scene's per-Gaussian values (raw 3DGS parameters: log scales, opacity logits,
# un-normalised w,x,y,z quaternions, SH coefficients), shared by the PLY, the engine's tensors and the add-on:
# each value's name, and the PLY columns that hold it. sh_rest's columns depend on the SH degree (rest_names).
POSITION = ("x", "y", "z")
NORMAL = ("nx", "ny", "nz")
SH_DC = ("f_dc_0", "f_dc_1", "f_dc_2")
OPACITY = "opacity"
SCALE = ("scale_0", "scale_1", "scale_2")
ROTATION = ("rot_0", "rot_1", "rot_2", "rot_3")
REST_PREFIX = "f_rest_"
GAUSSIAN_VALUES = ("means", "quats", "log_scales", "opacity", "sh_dc", "sh_rest")
COLUMNS = {"means": POSITION, "quats": ROTATION, "log_scales": SCALE, "opacity": (OPACITY,), "sh_dc": SH_DC}
REQUIRED = POSITION + SH_DC + (OPACITY,) + SCALE + ROTATION
REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}
SUPPORTED_FORMAT = "binary_little_endian"
MAX_HEADER_BYTES = 1 << 20
ROWS_PER_BLOCK = 65536  # rows per block when transposing to columns: large enough for speed, small for the cache


def _problem(source: str | Path, problem: str) -> InputError:
    """The one-line error for a user's file: ``<source>: <problem>``."""
    return InputError(f"{source}: {problem}" if str(source) else problem)


def sh_degree_from_rest_count(count: int, source: str | Path = "") -> int:
    """SH degree (0..4) of a file with ``count`` f_rest properties: 3 channels x ((d+1)^2 - 1) coefficients."""
    if count not in REST_COUNT_TO_DEGREE:
        expected = ", ".join(str(c) for c in REST_COUNT_TO_DEGREE)
        raise _problem(source, f"{count} f_rest properties match no SH degree (expected one of {expected})")
    return REST_COUNT_TO_DEGREE[count]


def rest_names(count: int) -> list[str]:
    """f_rest_0 .. f_rest_{count-1}."""
    return [f"{REST_PREFIX}{i}" for i in range(count)]


@dataclass(frozen=True)
class PlyProperty:
    """One scalar vertex property: its name and its PLY type word (e.g. 'float')."""

    name: str
    ply_type: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(PLY_TYPES[self.ply_type])


@dataclass(frozen=True)
class PlyHeader:
    """A parsed, validated 3DGS PLY header; ``text`` is the header exactly as in the file (latin-1)."""

    text: str
    vertex_count: int
    properties: tuple[PlyProperty, ...]
    comments: tuple[str, ...]

    @property
    def size(self) -> int:
        """Bytes of the header in the file."""
        return len(self.text.encode("latin-1"))

    @property
    def dtype(self) -> np.dtype:
        """The structured dtype of one vertex record (little-endian, file order)."""
        return np.dtype([(p.name, p.dtype) for p in self.properties])

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    @property
    def sh_degree(self) -> int:
        return REST_COUNT_TO_DEGREE[sum(name.startswith(REST_PREFIX) for name in self.names)]

    def with_vertex_count(self, count: int) -> PlyHeader:
        """The same header with its ``element vertex`` line set to count (every other byte untouched)."""
        lines = self.text.split("\n")
        index = next(i for i, line in enumerate(lines) if line.split()[:2] == ["element", "vertex"])
        ending = "\r" if lines[index].endswith("\r") else ""
        lines[index] = f"element vertex {count}{ending}"
        return PlyHeader("\n".join(lines), count, self.properties, self.comments)


def header_text(dtype: np.dtype, count: int, comments: tuple[str, ...] | list[str] = ()) -> str:
    """A standard header for a table of ``dtype``: format, comments, ``element vertex``, properties."""
    lines = ["ply", f"format {SUPPORTED_FORMAT} 1.0", *(f"comment {c}" for c in comments), f"element vertex {count}"]
    for name in dtype.names:
        field = dtype[name]
        if field.shape or field.kind not in "iuf" or f"{field.kind}{field.itemsize}" not in TYPE_WORDS:
            raise ValueError(f"property {name!r} has type {field}, which PLY cannot hold as a scalar")
        lines.append(f"property {TYPE_WORDS[f'{field.kind}{field.itemsize}']} {name}")
    return "\n".join(lines + ["end_header"]) + "\n"


def parse_header(text: str, source: str | Path) -> PlyHeader:
    """Parse and validate a PLY header as a 3DGS file: binary little-endian, one vertex element of scalars."""
    properties: list[PlyProperty] = []
    lists: list[str] = []
    comments: list[str] = []
    elements: list[tuple[str, int]] = []
    formats: list[list[str]] = []
    for number, raw in enumerate(text.split("\n")[1:], start=2):
        words = raw.strip().split()
        if not words or words == ["end_header"]:
            continue
        keyword = words[0]
        if keyword in ("comment", "obj_info"):
            comments.append(raw.strip()[len(keyword) + 1:])
            continue
        if not raw.isascii():
            raise _problem(source, f"PLY header line {number} is not ASCII text (corrupt header)")
        if keyword == "format":
            formats.append(words)
        elif keyword == "element":
            elements.append(_parse_element(words, source, number))
        elif keyword == "property":
            if not elements:
                raise _problem(source, f"PLY header line {number}: property before any element")
            if elements[-1][0] != "vertex":
                continue  # properties of an empty element (other elements holding data are refused below)
            if words[1:2] == ["list"]:
                lists.append(words[-1])
            else:
                properties.append(_parse_property(words, source, number))
        else:
            raise _problem(source, f"PLY header line {number}: unknown keyword {keyword!r}")
    _check_format(formats, source)
    count = _check_elements(elements, source)
    if lists:
        raise _problem(source, f"unsupported list properties in 'vertex': {', '.join(lists)} "
                               "(3DGS properties are scalars)")
    _check_properties(properties, source)
    if count == 0:
        raise _problem(source, "holds no Gaussians (element vertex 0)")
    return PlyHeader(text, count, tuple(properties), tuple(comments))


def _parse_element(words: list[str], source: str | Path, number: int) -> tuple[str, int]:
    """An ``element <name> <count>`` line."""
    if len(words) != 3 or not words[2].isdigit():
        raise _problem(source, f"PLY header line {number}: bad line '{' '.join(words)}' "
                               "(expected 'element <name> <count>')")
    return words[1], int(words[2])


def _parse_property(words: list[str], source: str | Path, number: int) -> PlyProperty:
    """A scalar ``property <type> <name>`` line."""
    if len(words) != 3:
        raise _problem(source, f"PLY header line {number}: malformed property line '{' '.join(words)}'")
    if words[1] not in PLY_TYPES:
        raise _problem(source, f"PLY header line {number}: unknown property type {words[1]!r}")
    return PlyProperty(words[2], words[1])


def _check_format(formats: list[list[str]], source: str | Path) -> None:
    """One format line, binary little-endian, as every 3DGS trainer writes."""
    if len(formats) != 1:
        raise _problem(source, f"PLY header has {len(formats)} 'format' lines, expected one")
    kind = formats[0][1] if len(formats[0]) > 1 else ""
    if kind != SUPPORTED_FORMAT:
        raise _problem(source, f"unsupported format '{kind}' (only {SUPPORTED_FORMAT} PLY files are read)")


def _check_elements(elements: list[tuple[str, int]], source: str | Path) -> int:
    """Exactly one ``vertex`` element and no other element holding data; returns the vertex count.

    Empty elements of other names hold no bytes, so they are accepted (and kept in the header text).
    """
    names = [name for name, _ in elements]
    if "vertex" not in names:
        raise _problem(source, f"no 'vertex' element (found: {', '.join(names) or 'none'})")
    holding = [name for name, count in elements if name == "vertex" or count > 0]
    if holding != ["vertex"]:
        raise _problem(source, f"expected a single 'vertex' element, found: {', '.join(holding)} "
                               "(compressed splat and mesh PLY files are not supported)")
    return dict(elements)["vertex"]


def _check_properties(properties: list[PlyProperty], source: str | Path) -> None:
    """The 3DGS property set: unique names, the required ones, float SH and required types, f_rest_0..K-1."""
    names = [p.name for p in properties]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _problem(source, f"duplicate vertex property {duplicates[0]!r}")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise _problem(source, f"not a 3DGS PLY: missing required properties: {', '.join(missing)}")
    not_float = [f"{p.name} ({p.ply_type})" for p in properties
                 if (p.name in REQUIRED or p.name.startswith("f_")) and p.dtype.kind != "f"]
    if not_float:
        raise _problem(source, f"required and SH properties must be float, found: {', '.join(not_float)}")
    rest = [n for n in names if n.startswith(REST_PREFIX)]
    sh_degree_from_rest_count(len(rest), source)
    if sorted(rest) != sorted(rest_names(len(rest))):
        raise _problem(source, f"f_rest properties are not numbered f_rest_0..f_rest_{len(rest) - 1}")


@dataclass(frozen=True, eq=False)
class SplatData:
    """A 3DGS PLY in memory: its header and its vertex table (every property in file order and type).

    Accessors return float32 copies in the engine's layouts; ``with_*`` return copies with only those columns
    changed. Tables made by this module are read-only, so a SplatData never changes under its holders.

    Example:
        >>> data = read_ply("point_cloud.ply")
        >>> data.count, data.sh_degree, data.means().shape
        (90854, 0, (90854, 3))
        >>> write_ply("copy.ply", data)  # the same bytes
    """

    header: PlyHeader
    vertices: np.ndarray

    @classmethod
    def from_table(cls, vertices: np.ndarray, comments: tuple[str, ...] | list[str] = ()) -> SplatData:
        """A scene from a structured table (validated like a file), with a standard header."""
        header = parse_header(header_text(vertices.dtype, len(vertices), comments), "table")
        table = np.array(vertices, dtype=header.dtype)
        table.setflags(write=False)
        return cls(header, table)

    @property
    def count(self) -> int:
        return len(self.vertices)

    @property
    def sh_degree(self) -> int:
        return self.header.sh_degree

    @property
    def comments(self) -> tuple[str, ...]:
        return self.header.comments

    def columns(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Contiguous columns keyed by PLY name (all of them by default), transposed in one pass."""
        return table_columns(self.vertices, names or self.header.names)

    def _column_block(self, names: list[str]) -> np.ndarray:
        """Columns ``names`` as a new [N, len(names)] float32 array."""
        block = np.empty((self.count, len(names)), np.float32)
        for index, name in enumerate(names):
            block[:, index] = self.vertices[name]
        return block

    def means(self) -> np.ndarray:
        """Centres [N, 3]."""
        return self._column_block(list(POSITION))

    def sh_dc(self) -> np.ndarray:
        """Degree-0 SH coefficients [N, 3] (R, G, B)."""
        return self._column_block(list(SH_DC))

    def sh_rest(self) -> np.ndarray:
        """Higher SH coefficients [N, M, 3], M = (d+1)^2 - 1, from the file's channel-major f_rest."""
        count = 3 * ((self.sh_degree + 1) ** 2 - 1)
        channel_major = self._column_block(rest_names(count)).reshape(self.count, 3, count // 3)
        return np.ascontiguousarray(channel_major.transpose(0, 2, 1))

    def opacity(self) -> np.ndarray:
        """Opacity logits (before the sigmoid) [N]."""
        return self._column_block([OPACITY])[:, 0]

    def log_scales(self) -> np.ndarray:
        """Natural logs of the three axis scales [N, 3]."""
        return self._column_block(list(SCALE))

    def quats(self) -> np.ndarray:
        """Rotations [N, 4] (w, x, y, z) as stored, not normalised."""
        return self._column_block(list(ROTATION))

    def with_sh(self, dc: np.ndarray, rest: np.ndarray | None = None) -> SplatData:
        """A copy with new SH coefficients: ``dc`` [N, 3] and, unless None, ``rest`` [N, M, 3] (same degree)."""
        rest = None if rest is None else np.asarray(rest)
        if rest is not None and rest.shape[1:2] != ((self.sh_degree + 1) ** 2 - 1,):
            raise ValueError(f"rest has shape {rest.shape}, expected SH degree {self.sh_degree}")
        return self.with_columns(sh_columns(np.asarray(dc), rest, self.count))

    def with_opacity(self, logits: np.ndarray) -> SplatData:
        """A copy with new opacity logits [N]."""
        logits = np.asarray(logits)
        _check_shape("logits", logits, (self.count,))
        return self.with_columns({OPACITY: logits})

    def with_columns(self, columns: Mapping[str, np.ndarray]) -> SplatData:
        """A copy with the given columns replaced (cast to their PLY types; integers must fit)."""
        vertices = self.vertices.copy()
        for name, values in columns.items():
            vertices[name] = cast_column(np.asarray(values), self.header.properties[self.header.names.index(name)],
                                         "")
        vertices.setflags(write=False)
        return SplatData(self.header, vertices)


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")


def sh_columns(dc: np.ndarray, rest: np.ndarray | None, count: int) -> dict[str, np.ndarray]:
    """PLY columns of SH coefficients dc [N, 3] and rest [N, M, 3]; f_rest is channel-major: f_rest[c*M + k]."""
    _check_shape("dc", dc, (count, 3))
    columns = {name: dc[:, c] for c, name in enumerate(SH_DC)}
    if rest is not None:
        coefficients = rest.shape[1] if rest.ndim == 3 else -1
        _check_shape("rest", rest, (count, coefficients, 3))
        sh_degree_from_rest_count(3 * coefficients)
        columns.update({f"{REST_PREFIX}{c * coefficients + k}": rest[:, k, c]
                        for c in range(3) for k in range(coefficients)})
    return columns


def make_splat_data(means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray, opacity: np.ndarray,
                    sh_dc: np.ndarray, sh_rest: np.ndarray | None = None,
                    comments: tuple[str, ...] | list[str] = ()) -> SplatData:
    """A new scene in the standard Inria property order (x y z nx ny nz f_dc f_rest opacity scale rot), float32.

    Normals are zeros, as the reference implementation writes them; ``sh_rest`` None means SH degree 0.
    """
    means, quats, log_scales, opacity = (np.asarray(a) for a in (means, quats, log_scales, opacity))
    count = len(means)
    sh_rest = np.zeros((count, 0, 3), np.float32) if sh_rest is None else np.asarray(sh_rest)
    for name, array, shape in (("means", means, (count, 3)), ("quats", quats, (count, 4)),
                               ("log_scales", log_scales, (count, 3)), ("opacity", opacity, (count,))):
        _check_shape(name, array, shape)
    columns = {name: means[:, i] for i, name in enumerate(POSITION)}
    columns.update({name: 0.0 for name in NORMAL})
    columns.update(sh_columns(np.asarray(sh_dc), sh_rest, count))
    columns[OPACITY] = opacity
    columns.update({name: log_scales[:, i] for i, name in enumerate(SCALE)})
    columns.update({name: quats[:, i] for i, name in enumerate(ROTATION)})
    vertices = np.empty(count, dtype=[(name, "<f4") for name in columns])
    for name, values in columns.items():
        vertices[name] = values
    return SplatData.from_table(vertices, comments)


def read_ply(path: str | Path) -> SplatData:
    """Read and validate a 3DGS PLY (opened read-only, closed before returning).

    Args:
        path: a binary little-endian PLY with one ``vertex`` element holding at least the 3DGS properties.

    Returns:
        SplatData with the header text verbatim and the vertex table read-only.

    Raises:
        InputError: one line ``<path>: <problem>`` for every file that is not such a PLY.
    """
    try:
        with open(path, "rb") as stream:
            header = parse_header(read_header_bytes(stream, path).decode("latin-1"), path)
            _check_body_size(header, os.fstat(stream.fileno()).st_size - header.size, path)
            stream.seek(header.size)
            vertices = np.fromfile(stream, dtype=header.dtype, count=header.vertex_count)
    except FileNotFoundError:
        raise _problem(path, "file not found") from None
    except IsADirectoryError:
        raise _problem(path, "is a folder, expected a .ply file") from None
    except OSError as error:
        raise _problem(path, f"cannot read ({error.strerror or error})") from None
    if len(vertices) != header.vertex_count:  # the file shrank while being read
        raise _problem(path, f"truncated: the header promises {header.vertex_count} vertex records "
                             f"but the file holds only {len(vertices)}")
    _check_finite(vertices, path)
    vertices.setflags(write=False)
    return SplatData(header, vertices)


def read_header_bytes(stream: BinaryIO, source: str | Path) -> bytes:
    """The header bytes: from 'ply' up to and including the line that is exactly 'end_header'."""
    first = stream.readline(8)
    if first not in (b"ply\n", b"ply\r\n"):
        raise _problem(source, "not a PLY file (it does not start with 'ply')")
    lines = [first]
    size = len(first)
    while size <= MAX_HEADER_BYTES:
        line = stream.readline(MAX_HEADER_BYTES)
        if not line:
            raise _problem(source, "PLY header has no 'end_header' line (truncated or corrupt header)")
        lines.append(line)
        size += len(line)
        if line.strip() == b"end_header" and line.endswith(b"\n"):
            return b"".join(lines)
    raise _problem(source, f"PLY header has no 'end_header' line in its first {MAX_HEADER_BYTES} bytes")


def _check_body_size(header: PlyHeader, available: int, source: str | Path) -> None:
    """The body must hold exactly vertex_count records: fewer is a truncated file, more a wrong header."""
    record = header.dtype.itemsize
    expected = header.vertex_count * record
    if available < expected:
        raise _problem(source, f"truncated: the header promises {header.vertex_count} vertex records "
                               f"but the file holds only {available // record}")
    if available > expected:
        raise _problem(source, f"{available - expected} unexpected bytes after the vertex data (the header "
                               f"promises {header.vertex_count} vertex records)")


def _check_finite(vertices: np.ndarray, source: str | Path) -> None:
    """Refuse NaN/inf in any float property, naming each bad property, how many values, and the first Gaussian."""
    if _all_finite(vertices):
        return
    bad = {name: ~np.isfinite(vertices[name]) for name in vertices.dtype.names if vertices.dtype[name].kind == "f"}
    counts = ", ".join(f"{name} ({int(mask.sum())})" for name, mask in bad.items() if mask.any())
    first = min(int(np.flatnonzero(mask)[0]) for mask in bad.values() if mask.any())
    raise _problem(source, f"non-finite values (NaN or inf) in: {counts}; the first at Gaussian {first}")


def _all_finite(vertices: np.ndarray) -> bool:
    """One pass over the table when every property is a float of one dtype (the usual file), else per column."""
    dtypes = {vertices.dtype[name] for name in vertices.dtype.names}
    if len(dtypes) == 1 and next(iter(dtypes)).kind == "f":
        flat = vertices.view(next(iter(dtypes))).reshape(len(vertices), -1)
        return bool(np.isfinite(flat).all())
    return all(np.isfinite(vertices[name]).all() for name in vertices.dtype.names if vertices.dtype[name].kind == "f")


def table_columns(vertices: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Contiguous columns of a structured table; a table of one type is transposed block by block in one pass."""
    dtypes = {vertices.dtype[name] for name in vertices.dtype.names}
    if len(dtypes) != 1 or set(names) != set(vertices.dtype.names):
        return {name: np.ascontiguousarray(vertices[name]) for name in names}
    dtype, all_names = next(iter(dtypes)), list(vertices.dtype.names)
    count = len(vertices)
    flat = vertices.view(dtype).reshape(count, len(all_names))
    table = np.empty((len(all_names), count), dtype)
    for start in range(0, count, ROWS_PER_BLOCK):
        table[:, start:start + ROWS_PER_BLOCK] = flat[start:start + ROWS_PER_BLOCK].T
    columns = dict(zip(all_names, table))
    return {name: columns[name] for name in names}


def cast_column(values: np.ndarray, prop: PlyProperty, source: str | Path) -> np.ndarray:
    """Values in the property's PLY type; integers must fit (uint32 travels as the int32 bit pattern)."""
    if prop.dtype.kind == "f":
        return values.astype(prop.dtype, copy=False)
    if prop.dtype.itemsize == 4 and values.dtype.kind in "iu" and values.dtype.itemsize == 4:
        return values.view(prop.dtype) if values.dtype.kind != prop.dtype.kind else values
    limits = np.iinfo(prop.dtype)
    if len(values) and (values.min() < limits.min or values.max() > limits.max):
        raise _problem(source, f"values of {prop.name!r} do not fit PLY type {prop.ply_type}")
    return values.astype(prop.dtype)


def write_ply(path: str | Path, data: SplatData) -> None:
    """Write ``data`` (its header text as it is, with the vertex count of its table), atomically.

    Raises:
        InputError: the path is a folder, its folder does not exist, or the write failed (disk full, ...);
            any existing file is left untouched.
    """
    _write(Path(path), data.header.with_vertex_count(data.count), iter([data.vertices]))


def write_columns(path: str | Path, header: PlyHeader, columns: Mapping[str, np.ndarray]) -> None:
    """Write columns keyed by PLY name under ``header``, block by block (no whole table in memory), atomically.

    Integer columns are cast to their PLY types (uint32 from its int32 bit pattern, as Blender stores it).
    """
    path = Path(path)
    count = len(columns[header.names[0]])
    typed = {p.name: cast_column(np.asarray(columns[p.name]), p, path) for p in header.properties}

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, count, ROWS_PER_BLOCK):
            rows = np.empty(min(ROWS_PER_BLOCK, count - start), header.dtype)
            for name, values in typed.items():
                rows[name] = values[start:start + len(rows)]
            yield rows

    _write(path, header.with_vertex_count(count), blocks())


def _write(path: Path, header: PlyHeader, blocks: Iterator[np.ndarray]) -> None:
    """Header then record blocks into path, atomically; write failures as one-line InputErrors."""
    if path.is_dir():
        raise _problem(path, "is a folder, expected a .ply file name")
    if not path.parent.is_dir():
        raise _problem(path, f"folder {path.parent} does not exist")
    try:
        with atomic_write(path) as stream:
            stream.write(header.text.encode("latin-1"))
            for block in blocks:
                stream.write(np.ascontiguousarray(block, dtype=header.dtype).tobytes())
    except OSError as error:
        raise _problem(path, f"cannot write ({error.strerror or error})") from None
