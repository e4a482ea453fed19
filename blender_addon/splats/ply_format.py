"""3DGS PLY files: header parsing, validation, and the binary vertex table read and written with numpy.

Blender ships numpy but not plyfile, so the add-on reads PLY itself: the header is parsed as text and the
binary body is read in blocks through a structured dtype into one contiguous column per property, which
is fast (no per-vertex Python) and keeps every value exactly as stored, so an unchanged scene is written
back byte for byte (the header text is kept verbatim too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..atomic_file import write_atomically
from ..errors import SplatInputError

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}
POSITION = ("x", "y", "z")
REQUIRED = POSITION + ("f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                       "rot_0", "rot_1", "rot_2", "rot_3")
SH_DEGREE_BY_REST_COUNT = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}
MAX_NAME_LENGTH = 59  # Blender attribute names hold 63 characters; a stored name may gain a "ply_" prefix
MAX_HEADER_BYTES = 1 << 20
ROWS_PER_BLOCK = 65536  # rows per read: large enough for speed, small enough to stay in cache


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
    """A parsed 3DGS PLY header; `text` is the header exactly as in the file (latin-1, so byte for byte)."""

    text: str
    vertex_count: int
    properties: tuple[PlyProperty, ...]
    comments: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.text.encode("latin-1"))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype([(p.name, p.dtype) for p in self.properties])

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    @property
    def sh_degree(self) -> int:
        return SH_DEGREE_BY_REST_COUNT[sum(name.startswith("f_rest_") for name in self.names)]

    def with_vertex_count(self, count: int) -> PlyHeader:
        """The same header with its `element vertex` line set to count (other lines untouched)."""
        lines = self.text.split("\n")
        index = next(i for i, line in enumerate(lines) if line.split()[:2] == ["element", "vertex"])
        ending = "\r" if lines[index].endswith("\r") else ""
        lines[index] = f"element vertex {count}{ending}"
        return PlyHeader("\n".join(lines), count, self.properties, self.comments)


@dataclass(frozen=True)
class SplatPly:
    """A 3DGS PLY in memory: its header and one contiguous column per property, keyed by PLY name."""

    header: PlyHeader
    columns: dict[str, np.ndarray]


def read_header_bytes(handle: BinaryIO, source: str) -> bytes:
    """The header bytes up to and including the newline after end_header."""
    data = handle.read(65536)
    if not data.startswith((b"ply\n", b"ply\r\n")):
        raise SplatInputError(f"{source}: not a PLY file (it does not start with 'ply')")
    while True:
        end = data.find(b"end_header")
        newline = data.find(b"\n", end) if end >= 0 else -1
        if newline >= 0:
            return data[:newline + 1]
        more = handle.read(65536)
        if not more or len(data) > MAX_HEADER_BYTES:
            raise SplatInputError(f"{source}: PLY header has no end_header line")
        data += more


def parse_header(text: str, source: str) -> PlyHeader:
    """Parse and validate a PLY header as a 3DGS file: binary little-endian, one vertex element of scalars."""
    properties: list[PlyProperty] = []
    comments: list[str] = []
    elements: list[tuple[str, int]] = []
    formats: list[list[str]] = []
    for number, raw in enumerate(text.split("\n")[1:], start=2):
        words = raw.strip().split()
        if not words or words[0] == "end_header":
            continue
        keyword = words[0]
        if keyword in ("comment", "obj_info"):
            comments.append(raw.strip()[len(keyword) + 1:])
        elif keyword == "format":
            formats.append(words)
        elif keyword == "element":
            elements.append(parse_element(words, source, number))
        elif keyword == "property":
            if not elements:
                raise SplatInputError(f"{source}: PLY header line {number}: property before any element")
            if elements[-1][0] == "vertex":
                properties.append(parse_property(words, source, number))
        else:
            raise SplatInputError(f"{source}: PLY header line {number}: unknown keyword {keyword!r}")
    check_format(formats, source)
    count = check_elements(elements, source)
    check_properties(properties, source)
    return PlyHeader(text, count, tuple(properties), tuple(comments))


def check_format(formats: list[list[str]], source: str) -> None:
    """One format line, binary little-endian, as every 3DGS trainer writes."""
    kind = formats[0][1] if len(formats) == 1 and len(formats[0]) > 1 else ""
    if kind != "binary_little_endian":
        raise SplatInputError(f"{source}: PLY format {kind or '(none)'} is not supported; "
                              "3DGS files are binary_little_endian")


def parse_element(words: list[str], source: str, number: int) -> tuple[str, int]:
    """An `element <name> <count>` line."""
    if len(words) != 3 or not words[2].isdigit():
        raise SplatInputError(f"{source}: PLY header line {number}: malformed element line")
    return words[1], int(words[2])


def parse_property(words: list[str], source: str, number: int) -> PlyProperty:
    """A scalar `property <type> <name>` line (list properties have no place in a 3DGS vertex)."""
    if len(words) >= 2 and words[1] == "list":
        raise SplatInputError(f"{source}: vertex property {words[-1]!r} is a list; 3DGS properties are scalars")
    if len(words) != 3 or words[1] not in PLY_TYPES:
        raise SplatInputError(f"{source}: PLY header line {number}: malformed property line")
    return PlyProperty(words[2], words[1])


def check_elements(elements: list[tuple[str, int]], source: str) -> int:
    """Exactly one non-empty element, `vertex`; returns its count."""
    counts = dict(elements)
    if "vertex" not in counts or len(counts) != len(elements):
        raise SplatInputError(f"{source}: PLY has no single 'vertex' element")
    others = [name for name, count in elements if name != "vertex" and count > 0]
    if others:
        raise SplatInputError(f"{source}: PLY element {others[0]!r} is not part of a 3DGS file "
                              "(compressed or mesh PLY?)")
    if counts["vertex"] == 0:
        raise SplatInputError(f"{source}: PLY has no Gaussians (element vertex 0)")
    return counts["vertex"]


def check_properties(properties: list[PlyProperty], source: str) -> None:
    """The 3DGS property set: required names, float types, f_rest_0..K-1 with K of an SH degree, unique names."""
    names = [p.name for p in properties]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SplatInputError(f"{source}: duplicate vertex property {duplicates[0]!r}")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise SplatInputError(f"{source}: not a 3DGS PLY: missing vertex properties {', '.join(missing)}")
    rest = [n for n in names if n.startswith("f_rest_")]
    if len(rest) not in SH_DEGREE_BY_REST_COUNT or set(rest) != {f"f_rest_{i}" for i in range(len(rest))}:
        raise SplatInputError(f"{source}: {len(rest)} f_rest properties do not form SH degree 0-4 "
                              "(expected f_rest_0..K-1 with K in 0, 9, 24, 45, 72)")
    for prop in properties:
        if (prop.name in REQUIRED or prop.name.startswith("f_")) and prop.dtype.kind != "f":
            raise SplatInputError(f"{source}: vertex property {prop.name!r} is {prop.ply_type}, expected float")
        if len(prop.name) > MAX_NAME_LENGTH:
            raise SplatInputError(f"{source}: vertex property name {prop.name[:20]!r}... is longer than "
                                  f"{MAX_NAME_LENGTH} characters")


def read_splat_ply(path: Path) -> SplatPly:
    """Read and validate a 3DGS PLY; raises SplatInputError naming the file and the problem."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            header = parse_header(read_header_bytes(handle, source).decode("latin-1"), source)
            check_body_size(header, path.stat().st_size - header.size, source)
            handle.seek(header.size)
            columns = read_columns(handle, header)
    except OSError as error:
        raise SplatInputError(f"{source}: cannot read: {error.strerror or error}") from error
    check_finite(columns, source)
    return SplatPly(header, columns)


def check_body_size(header: PlyHeader, available: int, source: str) -> None:
    """The body must hold exactly vertex_count rows."""
    expected = header.vertex_count * header.dtype.itemsize
    if available < expected:
        raise SplatInputError(f"{source}: truncated: {available} bytes of vertex data, expected {expected} "
                              f"for {header.vertex_count} Gaussians")
    if available > expected:
        raise SplatInputError(f"{source}: {available - expected} unexpected bytes after the vertex data")


def read_columns(handle: BinaryIO, header: PlyHeader) -> dict[str, np.ndarray]:
    """The rows, read in blocks and transposed into contiguous columns (what foreach_set wants), in one pass."""
    names, dtype, count = header.names, header.dtype, header.vertex_count
    uniform = len({p.dtype for p in header.properties}) == 1
    if uniform:
        table = np.empty((len(names), count), header.properties[0].dtype)
        columns = dict(zip(names, table))
    else:
        columns = {p.name: np.empty(count, p.dtype) for p in header.properties}
    for start in range(0, count, ROWS_PER_BLOCK):
        rows = np.frombuffer(handle.read(min(ROWS_PER_BLOCK, count - start) * dtype.itemsize), dtype)
        stop = start + len(rows)
        if uniform:
            table[:, start:stop] = rows.view(header.properties[0].dtype).reshape(len(rows), -1).T
        else:
            for name in names:
                columns[name][start:stop] = rows[name]
    return columns


def check_finite(columns: dict[str, np.ndarray], source: str) -> None:
    """Every float property must be finite: NaN or inf would poison rendering and stylization."""
    for name, values in columns.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise SplatInputError(f"{source}: vertex property {name!r} is not finite (NaN or inf) at Gaussian {row}")


def write_splat_ply(path: Path, header: PlyHeader, columns: dict[str, np.ndarray]) -> None:
    """Write a 3DGS PLY atomically: the header text as given, then one row per Gaussian in header order."""
    count = len(columns[header.names[0]])
    header = header.with_vertex_count(count)
    typed = {p.name: cast_column(columns[p.name], p, str(path)) for p in header.properties}

    def write(handle: BinaryIO) -> None:
        handle.write(header.text.encode("latin-1"))
        for start in range(0, count, ROWS_PER_BLOCK):
            rows = np.empty(min(ROWS_PER_BLOCK, count - start), header.dtype)
            for name, values in typed.items():
                rows[name] = values[start:start + len(rows)]
            handle.write(rows.tobytes())

    write_atomically(path, write)


def cast_column(values: np.ndarray, prop: PlyProperty, source: str) -> np.ndarray:
    """Values in the property's PLY type; integers must fit (uint32 travels as the int32 bit pattern)."""
    if prop.dtype.kind == "f":
        return values.astype(prop.dtype, copy=False)
    if prop.dtype.itemsize == 4:
        return values.astype(np.int32, copy=False).view(prop.dtype)
    limits = np.iinfo(prop.dtype)
    if len(values) and (values.min() < limits.min or values.max() > limits.max):
        raise SplatInputError(f"{source}: values of {prop.name!r} do not fit PLY type {prop.ply_type}")
    return values.astype(prop.dtype)
