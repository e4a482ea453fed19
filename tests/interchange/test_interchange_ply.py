"""interchange.ply: lossless 3DGS PLY round trips, SH layout, column edits, bad input and atomic writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import recfunctions

import interchange.atomic
from interchange import ply
from interchange.errors import InputError
from interchange.ply import (SplatData, make_splat_data, read_ply, sh_degree_from_rest_count, write_columns,
                             write_ply)

REAL_SCENES = [("guitar", 90_854, 0), ("flowers", 210_422, 2)]


def random_scene(count: int = 50, degree: int = 3, seed: int = 0) -> SplatData:
    """A scene of random Gaussians in the standard layout (with zero normals)."""
    rng = np.random.default_rng(seed)
    coefficients = (degree + 1) ** 2 - 1
    return make_splat_data(
        means=rng.normal(size=(count, 3)).astype(np.float32),
        quats=rng.normal(size=(count, 4)).astype(np.float32),
        log_scales=rng.normal(-3.0, 1.0, size=(count, 3)).astype(np.float32),
        opacity=rng.normal(size=count).astype(np.float32),
        sh_dc=rng.normal(size=(count, 3)).astype(np.float32),
        sh_rest=rng.normal(size=(count, coefficients, 3)).astype(np.float32) if degree else None,
        comments=("made by test_ply",),
    )


def with_extra_properties(data: SplatData) -> np.ndarray:
    """The scene's table plus properties of other numeric types: uint32 id, uint8 label, float64 weight."""
    count = data.count
    extras = [np.arange(7, 7 + count, dtype="<u4"), (np.arange(count) % 256).astype("u1"),
              np.linspace(-1.0, 1.0, count).astype("<f8")]
    return recfunctions.append_fields(data.vertices, ["id", "label", "weight"], extras, usemask=False)


PLY_WORDS = {"f4": "float", "f8": "double", "u1": "uchar", "i1": "char", "i2": "short", "u2": "ushort",
             "i4": "int", "u4": "uint"}


def write_table(path: Path, table: np.ndarray, text: bool = False, byte_order: str = "<", element: str = "vertex",
                after: list[str] = (), comments: tuple[str, ...] = ()) -> Path:
    """Write a PLY from a structured table with a writer of its own (so tests do not trust the codec to make
    inputs); ``after`` adds header lines after the vertex properties (other elements)."""
    fmt = "ascii" if text else {"<": "binary_little_endian", ">": "binary_big_endian"}[byte_order]
    lines = ["ply", f"format {fmt} 1.0", *(f"comment {c}" for c in comments), f"element {element} {len(table)}"]
    for name in table.dtype.names:
        field = table.dtype[name]
        if field.shape:
            lines.append(f"property list uchar {PLY_WORDS[field.base.str[1:]]} {name}")
        else:
            lines.append(f"property {PLY_WORDS[field.str[1:]]} {name}")
    header = "\n".join(lines + list(after) + ["end_header"]) + "\n"
    if text:
        body = "".join(" ".join(str(v) for v in row) + "\n" for row in table.tolist()).encode()
    else:
        body = table.astype(table.dtype.newbyteorder(byte_order)).tobytes()
    path.write_bytes(header.encode("ascii") + body)
    return path


def body(path: Path) -> bytes:
    """The bytes after the PLY header."""
    content = path.read_bytes()
    return content[content.index(b"end_header\n") + len(b"end_header\n"):]


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_round_trip_is_byte_identical(tmp_path: Path, degree: int) -> None:
    original = random_scene(degree=degree)
    first, second = tmp_path / "first.ply", tmp_path / "second.ply"
    write_ply(first, original)
    data = read_ply(first)
    write_ply(second, data)
    assert second.read_bytes() == first.read_bytes()
    assert body(first) == original.vertices.tobytes()
    assert data.vertices.dtype == original.vertices.dtype
    assert (data.count, data.sh_degree, data.comments) == (50, degree, ("made by test_ply",))


def test_extra_properties_of_any_type_survive_a_round_trip(tmp_path: Path) -> None:
    table = with_extra_properties(random_scene(degree=1))
    source = write_table(tmp_path / "extras.ply", table)
    data = read_ply(source)
    assert data.vertices.dtype == table.dtype
    np.testing.assert_array_equal(data.vertices["id"], np.arange(7, 57))
    write_ply(tmp_path / "copy.ply", data)
    assert body(tmp_path / "copy.ply") == body(source) == table.tobytes()


def test_file_without_normals_reads_and_round_trips(tmp_path: Path) -> None:
    table = recfunctions.drop_fields(random_scene(degree=2).vertices, ["nx", "ny", "nz"], usemask=False)
    source = write_table(tmp_path / "no_normals.ply", table)
    data = read_ply(source)
    assert "nx" not in data.vertices.dtype.names and data.sh_degree == 2
    write_ply(tmp_path / "copy.ply", data)
    assert body(tmp_path / "copy.ply") == body(source)


@pytest.mark.parametrize("name, count, degree", REAL_SCENES)
def test_real_scene_reads_and_round_trips_byte_identical(shared_data: Path, tmp_path: Path,
                                                         name: str, count: int, degree: int) -> None:
    source = shared_data / "scenes" / name / "point_cloud.ply"
    data = read_ply(source)
    assert (data.count, data.sh_degree) == (count, degree)
    assert data.sh_rest().shape == (count, (degree + 1) ** 2 - 1, 3)
    assert np.all(np.linalg.norm(data.quats(), axis=1) > 0)
    write_ply(tmp_path / "copy.ply", data)
    assert body(tmp_path / "copy.ply") == body(source)


def hand_made_degree_1_table(count: int = 4) -> np.ndarray:
    """Degree-1 table whose f_rest_i of row n holds 1000 n + i, so every value says where it came from."""
    names = list(ply.REQUIRED) + [f"f_rest_{i}" for i in range(9)]
    table = np.zeros(count, dtype=[(name, "<f4") for name in names])
    for i in range(9):
        table[f"f_rest_{i}"] = 1000.0 * np.arange(count) + i
    return table


def test_sh_rest_turns_channel_major_file_into_coefficient_major(tmp_path: Path) -> None:
    data = read_ply(write_table(tmp_path / "layout.ply", hand_made_degree_1_table()))
    rest = data.sh_rest()
    assert rest.shape == (4, 3, 3) and rest.dtype == np.float32
    # coefficient k of channel c is f_rest[c * 3 + k]
    assert rest[0, 1, 2] == 7.0
    assert rest[3, 2, 0] == 3002.0
    expected = np.array([[1000.0 * n + c * 3 + k for c in range(3)] for n in range(4) for k in range(3)])
    np.testing.assert_array_equal(rest.reshape(12, 3), expected)


def test_make_splat_data_writes_sh_rest_channel_major_in_the_inria_order() -> None:
    rest = np.arange(2 * 8 * 3, dtype=np.float32).reshape(2, 8, 3)
    data = make_splat_data(np.zeros((2, 3)), np.ones((2, 4)), np.zeros((2, 3)), np.zeros(2), np.zeros((2, 3)), rest)
    names = data.vertices.dtype.names
    assert names[:9] == ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2")
    assert names[9:33] == tuple(f"f_rest_{i}" for i in range(24))
    assert names[33:] == ("opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
    assert data.vertices["f_rest_13"][1] == rest[1, 5, 1]
    np.testing.assert_array_equal(data.sh_rest(), rest)


def test_accessors_return_float32_copies_of_the_right_columns() -> None:
    data = random_scene(count=5, degree=0)
    table = data.vertices
    np.testing.assert_array_equal(data.means()[:, 2], table["z"])
    np.testing.assert_array_equal(data.quats()[:, 0], table["rot_0"])
    np.testing.assert_array_equal(data.log_scales()[:, 1], table["scale_1"])
    np.testing.assert_array_equal(data.opacity(), table["opacity"])
    np.testing.assert_array_equal(data.sh_dc()[:, 2], table["f_dc_2"])
    assert data.sh_rest().shape == (5, 0, 3)
    means = data.means()
    means[:] = 42.0
    assert means.dtype == np.float32 and not np.any(table["x"] == 42.0)


def changed_fields(before: np.ndarray, after: np.ndarray) -> set[str]:
    return {name for name in before.dtype.names if before[name].tobytes() != after[name].tobytes()}


def test_with_sh_changes_only_the_sh_columns(tmp_path: Path) -> None:
    data = read_ply(write_table(tmp_path / "extras.ply", with_extra_properties(random_scene(degree=1))))
    dc, rest = np.full((50, 3), 0.25, np.float32), np.full((50, 3, 3), -0.5, np.float32)
    rest[7, 2, 1] = 9.0
    edited = data.with_sh(dc, rest)
    sh_names = {"f_dc_0", "f_dc_1", "f_dc_2"} | {f"f_rest_{i}" for i in range(9)}
    assert changed_fields(data.vertices, edited.vertices) == sh_names
    assert edited.vertices["f_rest_5"][7] == 9.0  # channel 1, coefficient 2 -> 1 * 3 + 2
    np.testing.assert_array_equal(edited.sh_rest(), rest)
    np.testing.assert_array_equal(edited.sh_dc(), dc)
    dc_only = data.with_sh(dc)
    assert changed_fields(data.vertices, dc_only.vertices) == {"f_dc_0", "f_dc_1", "f_dc_2"}


def test_with_opacity_logits_changes_only_opacity() -> None:
    data = random_scene(degree=2)
    edited = data.with_opacity(np.arange(50, dtype=np.float32))
    assert changed_fields(data.vertices, edited.vertices) == {"opacity"}
    np.testing.assert_array_equal(edited.opacity(), np.arange(50))
    assert edited.comments == data.comments
    assert not edited.vertices.flags.writeable and not data.vertices.flags.writeable


def test_with_sh_refuses_another_degree() -> None:
    with pytest.raises(ValueError, match="SH degree 1"):
        random_scene(degree=1).with_sh(np.zeros((50, 3)), np.zeros((50, 8, 3)))


@pytest.mark.parametrize("count, degree", [(0, 0), (9, 1), (24, 2), (45, 3), (72, 4)])
def test_sh_degree_from_rest_count(count: int, degree: int) -> None:
    assert sh_degree_from_rest_count(count) == degree


def test_sh_degree_from_rest_count_names_file_and_count() -> None:
    with pytest.raises(InputError, match=r"^scene\.ply: 12 f_rest properties match no SH degree"):
        sh_degree_from_rest_count(12, "scene.ply")


def valid_table(count: int = 6) -> np.ndarray:
    return random_scene(count=count, degree=1).vertices.copy()


def header_then(header_lines: list[bytes], data: bytes = b"") -> bytes:
    return b"\n".join(header_lines) + b"\n" + data


def make_bad_input(case: str, folder: Path) -> Path:
    """A file (or folder) named after ``case`` that read_ply must refuse."""
    path = folder / f"bad_{case}.ply"
    table = valid_table()
    if case == "missing":
        return path
    if case == "folder":
        path.mkdir()
    elif case == "not_ply":
        path.write_bytes(b"solid mesh\nfacet normal 0 0 1\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "ascii":  # a header promising far more rows than there are: refused before the body is read
        write_table(path, table, text=True)
        path.write_bytes(path.read_bytes().replace(b"element vertex 6", b"element vertex 6000000"))
    elif case == "big_endian":
        write_table(path, table, byte_order=">")
    elif case == "no_vertex":
        write_table(path, table, element="point")
    elif case == "other_element":
        write_table(path, table, after=["element face 1", "property list uchar int vertex_indices"])
    elif case == "missing_properties":
        write_table(path, recfunctions.drop_fields(table, ["opacity", "rot_3"], usemask=False))
    elif case == "truncated":
        write_table(path, table)
        path.write_bytes(path.read_bytes()[:-10])
    elif case == "non_finite":
        table["opacity"][[1, 4]] = [np.nan, np.inf]
        table["scale_1"][0] = -np.inf
        write_table(path, table)
    elif case == "non_finite_extra":
        write_table(path, recfunctions.append_fields(table, "weight", np.full(6, np.nan), usemask=False))
    elif case == "rest_count":
        write_table(path, recfunctions.drop_fields(table, ["f_rest_8"], usemask=False))
    elif case == "rest_numbering":
        write_table(path, recfunctions.rename_fields(table, {"f_rest_8": "f_rest_9"}))
    elif case == "non_ascii_header":
        path.write_bytes(header_then([b"ply", b"format binary_little_endian 1.0", b"element vertex 6",
                                      b"property float \xff\xfe\x00x", b"end_header"], bytes(200)))
    elif case == "no_end_header":
        path.write_bytes(header_then([b"ply", b"format binary_little_endian 1.0", b"element vertex 6"]))
    elif case == "bad_count":
        path.write_bytes(header_then([b"ply", b"format binary_little_endian 1.0", b"element vertex -5",
                                      b"property float x", b"end_header"], bytes(20)))
    elif case == "bad_property_type":
        path.write_bytes(header_then([b"ply", b"format binary_little_endian 1.0", b"element vertex 1",
                                      b"property float16 x", b"end_header"], bytes(2)))
    elif case == "list_property":
        lists = np.zeros(6, dtype=table.dtype.descr + [("neighbours", "<i4", (2,))])
        for name in table.dtype.names:
            lists[name] = table[name]
        write_table(path, lists)
        path.write_bytes(path.read_bytes().replace(b"element vertex 6", b"element vertex 6000000"))
    elif case == "integer_required":
        write_table(path, table.astype([(n, "u1" if n == "opacity" else "<f4") for n in table.dtype.names]))
    elif case == "no_gaussians":
        write_table(path, table[:0])
    elif case == "trailing_bytes":
        path.write_bytes(write_table(path, table).read_bytes() + bytes(8))
    elif case == "duplicate_property":
        write_table(path, table)
        path.write_bytes(path.read_bytes().replace(b"property float y\n", b"property float x\n", 1))
    elif case == "unknown_keyword":
        write_table(path, table)
        path.write_bytes(path.read_bytes().replace(b"element vertex", b"elephant 3\nelement vertex", 1))
    elif case == "property_first":
        path.write_bytes(header_then([b"ply", b"format binary_little_endian 1.0", b"property float x",
                                      b"element vertex 1", b"end_header"], bytes(4)))
    elif case == "two_formats":
        write_table(path, table)
        path.write_bytes(path.read_bytes().replace(b"format binary_little_endian 1.0\n",
                                                   b"format binary_little_endian 1.0\nformat ascii 1.0\n", 1))
    elif case == "malformed_property":
        write_table(path, table)
        path.write_bytes(path.read_bytes().replace(b"property float opacity\n", b"property float\n", 1))
    return path


BAD_INPUTS = {
    "missing": "file not found",
    "folder": "is a folder",
    "not_ply": "not a PLY file",
    "empty": "not a PLY file",
    "ascii": "unsupported format 'ascii' (only binary_little_endian PLY files are read)",
    "big_endian": "unsupported format 'binary_big_endian'",
    "no_vertex": "no 'vertex' element (found: point)",
    "other_element": "expected a single 'vertex' element, found: vertex, face (compressed splat and mesh PLY",
    "missing_properties": "not a 3DGS PLY: missing required properties: opacity, rot_3",
    "truncated": "truncated: the header promises 6 vertex records but the file holds only 5",
    "non_finite": "non-finite values (NaN or inf) in: opacity (2), scale_1 (1); the first at Gaussian 0",
    "non_finite_extra": "non-finite values (NaN or inf) in: weight (6); the first at Gaussian 0",
    "rest_count": "8 f_rest properties match no SH degree",
    "rest_numbering": "f_rest properties are not numbered f_rest_0..f_rest_8",
    "non_ascii_header": "PLY header line 4 is not ASCII text",
    "no_end_header": "PLY header has no 'end_header' line (truncated or corrupt header)",
    "bad_count": "PLY header line 3: bad line 'element vertex -5' (expected 'element <name> <count>')",
    "bad_property_type": "PLY header line 4: unknown property type 'float16'",
    "list_property": "unsupported list properties in 'vertex': neighbours (3DGS properties are scalars)",
    "integer_required": "required and SH properties must be float, found: opacity (uchar)",
    "no_gaussians": "holds no Gaussians (element vertex 0)",
    "trailing_bytes": "8 unexpected bytes after the vertex data (the header promises 6 vertex records)",
    "duplicate_property": "duplicate vertex property 'x'",
    "unknown_keyword": "PLY header line 3: unknown keyword 'elephant'",
    "property_first": "PLY header line 3: property before any element",
    "two_formats": "PLY header has 2 'format' lines, expected one",
    "malformed_property": "malformed property line 'property float'",
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    path = make_bad_input(case, tmp_path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(InputError) as raised:
        read_ply(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert BAD_INPUTS[case] in message
    assert "\n" not in message
    assert (path.read_bytes() if path.is_file() else None) == before


def test_reading_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = write_table(tmp_path / "scene.ply", valid_table())
    content, modified = path.read_bytes(), path.stat().st_mtime_ns
    read_ply(path).with_opacity(np.zeros(6))
    assert path.read_bytes() == content and path.stat().st_mtime_ns == modified


class FullDisk:
    """Stands in for a file: takes the first write, then the disk fills up (or the user interrupts)."""

    def __init__(self, stream, error: BaseException):
        self.stream, self.error = stream, error

    def write(self, data: bytes) -> None:
        if self.stream.tell():
            raise self.error
        self.stream.write(data)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def failing_atomic_write(error: BaseException):
    """interchange.atomic.atomic_write whose stream fails on its second write."""
    real = interchange.atomic.atomic_write

    @interchange.atomic.contextmanager
    def atomic_write(path, mode="wb"):
        with real(path, mode) as stream:
            yield FullDisk(stream, error)

    return atomic_write


def test_failed_write_leaves_old_file_intact_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "scene.ply"
    path.write_bytes(b"old contents")
    monkeypatch.setattr(ply, "atomic_write", failing_atomic_write(OSError(28, "No space left on device")))
    with pytest.raises(InputError, match=r"scene\.ply: cannot write \(No space left on device\)"):
        write_ply(path, random_scene())
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["scene.ply"]


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ply, "atomic_write", failing_atomic_write(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_ply(tmp_path / "new.ply", random_scene())
    assert os.listdir(tmp_path) == []


def test_write_replaces_a_file_keeping_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "scene.ply"
    path.write_bytes(b"old")
    path.chmod(0o640)
    write_ply(path, random_scene())
    assert read_ply(path).count == 50
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["scene.ply"]


def test_new_file_gets_the_usual_permissions_not_the_temporary_ones(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_ply(tmp_path / "new.ply", random_scene())
    finally:
        os.umask(umask)
    assert (tmp_path / "new.ply").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("target, problem", [("missing_folder/out.ply", "does not exist"), (".", "is a folder")])
def test_write_to_impossible_path_names_it(tmp_path: Path, target: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as raised:
        write_ply(tmp_path / target, random_scene())
    assert str(raised.value).startswith(str(tmp_path / target))


def test_write_columns_streams_the_same_bytes_and_restores_uint32_from_its_int32_bit_pattern(tmp_path: Path) -> None:
    """The add-on's export path: columns as Blender holds them (uint32 ids as int32) give back the file."""
    source = write_table(tmp_path / "extras.ply", with_extra_properties(random_scene(degree=2)),
                         comments=("kept",))
    data = read_ply(source)
    columns = data.columns()
    columns["id"] = columns["id"].view(np.int32)
    write_columns(tmp_path / "copy.ply", data.header, columns)
    assert (tmp_path / "copy.ply").read_bytes() == source.read_bytes()
    write_columns(tmp_path / "half.ply", data.header, {name: values[::2] for name, values in columns.items()})
    half = read_ply(tmp_path / "half.ply")
    assert half.count == 25 and half.vertices.tobytes() == data.vertices[::2].tobytes()


def test_columns_are_contiguous_copies_of_the_table() -> None:
    data = random_scene(count=70_000, degree=1)  # more rows than one transposition block
    columns = data.columns()
    assert list(columns) == list(data.vertices.dtype.names)
    for name, values in columns.items():
        assert values.flags.c_contiguous and values.dtype == np.float32
        np.testing.assert_array_equal(values, data.vertices[name])
    assert data.columns(["opacity"])["opacity"].tobytes() == data.vertices["opacity"].tobytes()


def test_header_text_is_kept_byte_for_byte(tmp_path: Path) -> None:
    """CRLF line ends, obj_info lines and an empty extra element survive a read and write."""
    table = valid_table()
    path = write_table(tmp_path / "odd.ply", table, after=["element face 0", "property list uchar int vertex_indices"])
    head, body = path.read_bytes().split(b"end_header\n")
    head = head.replace(b"\n", b"\r\n").replace(b"ply\r\n", b"ply\r\nobj_info made elsewhere\r\n", 1)
    path.write_bytes(head + b"end_header\r\n" + body)
    data = read_ply(path)
    assert data.comments == ("made elsewhere",) and data.count == 6
    write_ply(tmp_path / "copy.ply", data)
    assert (tmp_path / "copy.ply").read_bytes() == path.read_bytes()
    write_ply(tmp_path / "fewer.ply", SplatData(data.header, data.vertices[:2]))
    assert b"element vertex 2\r\n" in (tmp_path / "fewer.ply").read_bytes()


def test_from_table_validates_like_a_file() -> None:
    with pytest.raises(InputError, match="missing required properties: opacity"):
        SplatData.from_table(recfunctions.drop_fields(valid_table(), ["opacity"], usemask=False))
    data = SplatData.from_table(valid_table(), comments=("hello",))
    assert data.comments == ("hello",) and data.header.text.startswith("ply\nformat binary_little_endian 1.0\n")
