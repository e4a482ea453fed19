"""core.ply: lossless 3DGS PLY round trips, SH layout, column edits, bad input and atomic writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import recfunctions
from plyfile import PlyData, PlyElement

import core.ply
from core.errors import InputError
from core.ply import SplatData, make_splat_data, read_ply, sh_degree_from_rest_count, write_ply

REAL_SCENES = [("guitar", 90_854, 0), ("flowers", 210_422, 2)]


def random_scene(count: int = 50, degree: int = 3, seed: int = 0) -> SplatData:
    """A scene of random Gaussians in the standard layout (with zero normals)."""
    rng = np.random.default_rng(seed)
    coefficients = (degree + 1) ** 2 - 1
    return make_splat_data(
        means=rng.normal(size=(count, 3)).astype(np.float32),
        quats=rng.normal(size=(count, 4)).astype(np.float32),
        log_scales=rng.normal(-3.0, 1.0, size=(count, 3)).astype(np.float32),
        opacity_logits=rng.normal(size=count).astype(np.float32),
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


def write_with_plyfile(path: Path, table: np.ndarray, text: bool = False, byte_order: str = "<",
                       element: str = "vertex", others: tuple[PlyElement, ...] = ()) -> Path:
    """Write a PLY with plyfile directly (an independent writer, so tests do not trust core.ply to make inputs)."""
    PlyData([PlyElement.describe(table, element), *others], text=text, byte_order=byte_order).write(str(path))
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
    source = write_with_plyfile(tmp_path / "extras.ply", table)
    data = read_ply(source)
    assert data.vertices.dtype == table.dtype
    np.testing.assert_array_equal(data.vertices["id"], np.arange(7, 57))
    write_ply(tmp_path / "copy.ply", data)
    assert body(tmp_path / "copy.ply") == body(source) == table.tobytes()


def test_file_without_normals_reads_and_round_trips(tmp_path: Path) -> None:
    table = recfunctions.drop_fields(random_scene(degree=2).vertices, ["nx", "ny", "nz"], usemask=False)
    source = write_with_plyfile(tmp_path / "no_normals.ply", table)
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
    names = list(core.ply.REQUIRED) + [f"f_rest_{i}" for i in range(9)]
    table = np.zeros(count, dtype=[(name, "<f4") for name in names])
    for i in range(9):
        table[f"f_rest_{i}"] = 1000.0 * np.arange(count) + i
    return table


def test_sh_rest_turns_channel_major_file_into_coefficient_major(tmp_path: Path) -> None:
    data = read_ply(write_with_plyfile(tmp_path / "layout.ply", hand_made_degree_1_table()))
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
    np.testing.assert_array_equal(data.opacity_logits(), table["opacity"])
    np.testing.assert_array_equal(data.sh_dc()[:, 2], table["f_dc_2"])
    assert data.sh_rest().shape == (5, 0, 3)
    means = data.means()
    means[:] = 42.0
    assert means.dtype == np.float32 and not np.any(table["x"] == 42.0)


def changed_fields(before: np.ndarray, after: np.ndarray) -> set[str]:
    return {name for name in before.dtype.names if before[name].tobytes() != after[name].tobytes()}


def test_with_sh_changes_only_the_sh_columns(tmp_path: Path) -> None:
    data = read_ply(write_with_plyfile(tmp_path / "extras.ply", with_extra_properties(random_scene(degree=1))))
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
    edited = data.with_opacity_logits(np.arange(50, dtype=np.float32))
    assert changed_fields(data.vertices, edited.vertices) == {"opacity"}
    np.testing.assert_array_equal(edited.opacity_logits(), np.arange(50))
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
        write_with_plyfile(path, table, text=True)
        path.write_bytes(path.read_bytes().replace(b"element vertex 6", b"element vertex 6000000"))
    elif case == "big_endian":
        write_with_plyfile(path, table, byte_order=">")
    elif case == "no_vertex":
        write_with_plyfile(path, table, element="point")
    elif case == "other_element":
        faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
        write_with_plyfile(path, table, others=(PlyElement.describe(faces, "face"),))
    elif case == "missing_properties":
        write_with_plyfile(path, recfunctions.drop_fields(table, ["opacity", "rot_3"], usemask=False))
    elif case == "truncated":
        write_with_plyfile(path, table)
        path.write_bytes(path.read_bytes()[:-10])
    elif case == "non_finite":
        table["opacity"][[1, 4]] = [np.nan, np.inf]
        table["scale_1"][0] = -np.inf
        write_with_plyfile(path, table)
    elif case == "non_finite_extra":
        write_with_plyfile(path, recfunctions.append_fields(table, "weight", np.full(6, np.nan), usemask=False))
    elif case == "rest_count":
        write_with_plyfile(path, recfunctions.drop_fields(table, ["f_rest_8"], usemask=False))
    elif case == "rest_numbering":
        write_with_plyfile(path, recfunctions.rename_fields(table, {"f_rest_8": "f_rest_9"}))
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
        write_with_plyfile(path, lists)
        path.write_bytes(path.read_bytes().replace(b"element vertex 6", b"element vertex 6000000"))
    elif case == "integer_required":
        write_with_plyfile(path, table.astype([(n, "u1" if n == "opacity" else "<f4") for n in table.dtype.names]))
    elif case == "no_gaussians":
        write_with_plyfile(path, table[:0])
    return path


BAD_INPUTS = {
    "missing": "file not found",
    "folder": "is a folder",
    "not_ply": "not a PLY file",
    "empty": "not a PLY file",
    "ascii": "unsupported format 'ascii'",
    "big_endian": "unsupported format 'binary_big_endian'",
    "no_vertex": "no 'vertex' element (found: point)",
    "other_element": "expected a single 'vertex' element, found: vertex, face",
    "missing_properties": "missing required properties: opacity, rot_3",
    "truncated": "truncated: the header promises 6 vertex records but the file holds only 5",
    "non_finite": "non-finite values (NaN or inf) in: opacity (2), scale_1 (1)",
    "non_finite_extra": "non-finite values (NaN or inf) in: weight (6)",
    "rest_count": "8 f_rest properties match no SH degree",
    "rest_numbering": "f_rest properties are not numbered f_rest_0..f_rest_8",
    "non_ascii_header": "PLY header line 4 is not ASCII text",
    "no_end_header": "PLY header has no 'end_header' line",
    "bad_count": "bad PLY header line 'element vertex -5' (expected 'element vertex <count>')",
    "bad_property_type": "bad PLY header (line 4: field type 'float16' not in",
    "list_property": "unsupported list properties in 'vertex': neighbours",
    "integer_required": "required properties must be float, found: opacity (u1)",
    "no_gaussians": "holds no Gaussians",
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
    path = write_with_plyfile(tmp_path / "scene.ply", valid_table())
    content, modified = path.read_bytes(), path.stat().st_mtime_ns
    read_ply(path).with_opacity_logits(np.zeros(6))
    assert path.read_bytes() == content and path.stat().st_mtime_ns == modified


def failing_write(stream, *args) -> None:
    """Stands in for PlyData.write: writes part of a file, then the disk fills up."""
    stream.write(b"ply\nformat binary_little_endian 1.0\n")
    raise OSError(28, "No space left on device")


def test_failed_write_leaves_old_file_intact_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "scene.ply"
    path.write_bytes(b"old contents")
    monkeypatch.setattr(core.ply.PlyData, "write", lambda self, stream: failing_write(stream))
    with pytest.raises(InputError, match=r"scene\.ply: cannot write \(No space left on device\)"):
        write_ply(path, random_scene())
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["scene.ply"]


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    def interrupted(self, stream) -> None:
        stream.write(b"ply\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(core.ply.PlyData, "write", interrupted)
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
