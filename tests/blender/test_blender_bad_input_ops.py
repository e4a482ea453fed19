"""Bad input through the add-on's operators (bpy.ops names only): one one-line report, the scene unchanged.

Covers what reaches Blender users from issue 12's corpus: a truncated scene on import, an export to a place that
cannot be written, and Stylize with paintings the engine refuses (its one-line message is the report); from issue
21's, a job whose output folder cannot be written; and an engine error naming a setting, which reads as its label.
"""

import os
import shutil
import stat
import struct
import subprocess
import zlib
from pathlib import Path

import bpy
import pytest
from stylize_helpers import assert_unchanged, configure, set_up_stylize, snapshot, worker_python, write_scene

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_state() -> dict:
    """The names of everything an operator could add to or remove from the file."""
    data = bpy.data
    return {kind: sorted(item.name for item in getattr(data, kind))
            for kind in ("objects", "meshes", "cameras", "collections", "node_groups", "materials", "images")}


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value).strip()
    assert "\n" not in text, text
    return text


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("cut", ["body", "header"])
def test_importing_a_truncated_scene_changes_nothing(addon, tmp_path: Path, cut: str) -> None:
    good = write_scene(tmp_path / "good", count=50).read_bytes()
    end = good.index(b"end_header")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(good[:-5] if cut == "body" else good[:end])
    before = data_state()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.import_scene.gaussian_splat(filepath=str(bad))
    assert "bad.ply" in one_line(error)
    assert data_state() == before


@pytest.mark.parametrize("place", ["under a file", "onto a folder"])
def test_export_to_an_unwritable_place_writes_nothing(addon, tmp_path: Path, place: str) -> None:
    assert bpy.ops.import_scene.gaussian_splat(filepath=str(write_scene(tmp_path / "in", count=50))) == {'FINISHED'}
    blocker = tmp_path / "blocker"
    blocker.write_text("user data")
    (tmp_path / "folder.ply").mkdir()
    target = blocker / "out.ply" if place == "under a file" else tmp_path / "folder.ply"
    listing = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    before = data_state()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.export_scene.gaussian_splat(filepath=str(target))
    one_line(error)
    assert blocker.read_text() == "user data" and not any((tmp_path / "folder.ply").iterdir())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == listing
    assert data_state() == before


BAD_PAINTINGS = {
    "truncated": (lambda good: good[: len(good) // 2], r"style\.png: not a readable image"),
    "header claims 40000x40000": (lambda good: png_header_only(40000, 40000), r"style\.png: image is too large"),
    "8x8 px": (lambda good: png_header_only(8, 8), r"style\.png: image is too small"),
    "not an image": (lambda good: b"just words\n" * 50, r"style\.png: not a readable image"),
}


@pytest.fixture
def tree_worker(worker_addon, tmp_path: Path):
    """The CPU worker running this checkout's engine: the add-on clears PYTHONPATH for its workers, so a worktree
    would otherwise test whichever engine the venv's editable install points at."""
    shim = tmp_path / "worker_python"
    shim.write_text(f"#!{worker_python()}\nimport os, sys\nos.environ['PYTHONPATH'] = {str(REPO_ROOT)!r}\n"
                    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    configure(worker_addon, python=str(shim))
    return worker_addon


@pytest.mark.parametrize("case", sorted(BAD_PAINTINGS))
def test_stylize_with_a_bad_painting_reports_one_line_and_changes_nothing(tree_worker, tmp_path: Path,
                                                                           case: str) -> None:
    obj = set_up_stylize(tmp_path)
    make, message = BAD_PAINTINGS[case]
    style = tmp_path / "style.png"
    style.write_bytes(make(style.read_bytes()))
    before, names = snapshot(obj), data_state()
    with pytest.raises(RuntimeError, match=message) as error:
        bpy.ops.sos.stylize()
    one_line(error)
    assert_unchanged(before, obj)
    assert data_state() == names


@pytest.fixture
def locked_output_worker(tree_worker, tmp_path: Path, read_only):
    """This checkout's engine, started by a worker Python that first makes the job's output folder one nothing can
    be written into (chattr +i as root, who ignores permission bits; mode 0555 otherwise); undone afterwards."""
    read_only(tmp_path / "probe")  # skips where this machine cannot make a read-only folder
    log = tmp_path / "locked_folders.txt"
    engine = str(bpy.context.preferences.addons[tree_worker.__name__].preferences.worker_python)
    shim = tmp_path / "locking_python"
    shim.write_text(f"#!{worker_python()}\nimport os, subprocess, sys\n"
                    "if '@args.txt' in sys.argv:\n"
                    "    os.mkdir('out')\n"
                    f"    with open({str(log)!r}, 'a') as log:\n"
                    "        log.write(os.path.abspath('out') + '\\n')\n"
                    "    if os.geteuid() == 0:\n"
                    "        subprocess.run(['chattr', '+i', 'out'], check=True)\n"
                    "    else:\n"
                    "        os.chmod('out', 0o555)\n"
                    f"os.execv({engine!r}, [{engine!r}, *sys.argv[1:]])\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    configure(tree_worker, python=str(shim))
    yield tree_worker
    for line in (log.read_text().splitlines() if log.is_file() else []):
        folder = Path(line)
        if folder.exists():
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(folder)], check=True)
            folder.chmod(0o755)
            shutil.rmtree(folder.parent, ignore_errors=True)


def test_stylize_into_an_output_folder_that_cannot_be_written_reports_one_line(locked_output_worker,
                                                                               tmp_path: Path) -> None:
    """The engine refuses the job's output folder before any heavy work; the add-on shows its one line and leaves
    the scene as it was."""
    obj = set_up_stylize(tmp_path)
    before, names = snapshot(obj), data_state()
    with pytest.raises(RuntimeError, match=r"out: cannot write into the output folder \(") as error:
        bpy.ops.sos.stylize()
    one_line(error)
    assert_unchanged(before, obj)
    assert data_state() == names


def test_a_diverged_run_names_the_setting_by_its_label(tree_worker, tmp_path: Path) -> None:
    """The engine names the setting most likely responsible; in Blender it reads as the panel's label, not the
    command line's option."""
    obj = set_up_stylize(tmp_path)
    props = bpy.context.scene.sos_stylize
    props.style_strength, props.balance = 1e38, 'SGSST'  # SGSST's unnormalised weights: the loss overflows
    before, names = snapshot(obj), data_state()
    with pytest.raises(RuntimeError, match=r"diverged at iteration .*likely cause: the style strength 1e\+38 "
                                           r"\(Style Strength, default 30\); lower it") as error:
        bpy.ops.sos.stylize()
    assert "--style-strength" not in one_line(error)
    assert_unchanged(before, obj)
    assert data_state() == names
