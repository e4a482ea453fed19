"""A generated corpus of malformed and extreme inputs against sos-stylize, each held to the promise:

- refused: exit 2, exactly one ``error: ...`` line on stderr naming the file or option, no output folder
  created, every input byte-identical afterwards;
- accepted with a documented warning: exit 0, one ``warning: ...`` line per warning, inputs untouched;
- with ``--json-progress`` every refusal is also exactly one ``error`` event on stdout, option errors included;
- an output folder that cannot take the outputs is refused before any heavy work, and a write that fails on the
  way leaves none of the run's outputs.

The corpus is a table of small files made in code (a 150-Gaussian scene, 48x32 cameras, 64x64 paintings), run
in-process through ``core.cli.main`` so the whole table takes seconds; one case also runs as a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.cameras import load_cameras, orbit_cameras, save_cameras_json
from core.cli import main
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.images import load_image, painting_pixel_limit, to_uint8
from interchange.ply import SplatData, header_text, make_splat_data, read_ply
from interchange.settings import for_command_line
from core.stylization import StylizeSettings, stylize

ROOT = Path(__file__).resolve().parents[1]
GOOD = demo_scene(count=150)
FAST = ["--iterations", "2", "--resolution", "32", "--device", "cpu"]


# ---------------------------------------------------------------- corpus generators


def ply(scene: SplatData = GOOD) -> bytes:
    """A scene as the bytes of a binary little-endian PLY (a standard header, then the vertex table)."""
    header = header_text(scene.vertices.dtype, scene.count, scene.comments)
    return header.encode("ascii") + scene.vertices.astype(scene.vertices.dtype.newbyteorder("<")).tobytes()


def scene_with(**changes: Callable[[np.ndarray], None]) -> bytes:
    """The good scene with some arrays edited in place by the given functions (means, quats, log_scales, ...)."""
    arrays = {"means": GOOD.means(), "quats": GOOD.quats(), "log_scales": GOOD.log_scales(),
              "opacity": GOOD.opacity(), "sh_dc": GOOD.sh_dc(), "sh_rest": GOOD.sh_rest()}
    for name, edit in changes.items():
        edit(arrays[name])
    return ply(make_splat_data(**arrays))


def header_edit(old: bytes, new: bytes) -> bytes:
    """The good PLY with one header line changed (same body)."""
    data = ply()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    assert old in data[:end]
    return data[:end].replace(old, new, 1) + data[end:]


def set_rows(value: float, rows=slice(0, 10)) -> Callable[[np.ndarray], None]:
    def edit(array: np.ndarray) -> None:
        array[rows] = value
    return edit


def set_all(value: float) -> Callable[[np.ndarray], None]:
    def edit(array: np.ndarray) -> None:
        array[...] = value
    return edit


def cameras_json(edit: Callable[[list[dict]], object] | None = None, raw: str | None = None) -> bytes:
    """The good cameras as Inria JSON, optionally edited (or any raw text)."""
    if raw is not None:
        return raw.encode()
    entries = json.loads(GOOD_CAMERAS)
    if edit is not None:
        result = edit(entries)
        entries = entries if result is None else result
    return json.dumps(entries).encode()


def _orbit_json() -> str:
    """Two 48x32 orbit cameras around the good scene, as save_cameras_json writes them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cameras.json"
        save_cameras_json(path, orbit_cameras(GOOD.means(), GOOD.opacity(), count=2, width=48, height=32))
        return path.read_text()


GOOD_CAMERAS = _orbit_json()


def camera_field(index: int, key: str, value) -> Callable[[list[dict]], None]:
    def edit(entries: list[dict]) -> None:
        entries[index][key] = value
    return edit


def without_key(key: str) -> Callable[[list[dict]], None]:
    def edit(entries: list[dict]) -> None:
        del entries[0][key]
    return edit


def turned_away(entries: list[dict]) -> None:
    """Every camera turned half round about its own y axis: it looks away from the scene."""
    for entry in entries:
        entry["rotation"] = (np.array(entry["rotation"]) @ np.diag([-1.0, 1.0, -1.0])).tolist()


def png_chunks(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG assembled chunk by chunk (so a header can claim any size, any depth)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def image_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def painting(mode: str = "RGB", size: int = 64) -> Image.Image:
    rgb = Image.fromarray(to_uint8(demo_style(size)))
    return rgb if mode == "RGB" else rgb.convert(mode)


GOOD_PNG = image_bytes(painting())


# ---------------------------------------------------------------- the table


@dataclass
class Case:
    """Input files (relative to the case folder) over the good ones, the command line and what the error names.

    In ``argv``, {d} is the case folder and {o} the output folder.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    argv: tuple[str, ...] = ("{d}/scene.ply", "{d}/painting.png", "--cameras", "{d}/cams/cameras.json")
    fragments: tuple[str, ...] = ()


def scene_case(content: bytes, *fragments: str) -> Case:
    return Case({"scene.ply": content}, fragments=("scene.ply", *fragments))


def cameras_case(content: bytes, *fragments: str) -> Case:
    return Case({"cams/cameras.json": content}, fragments=("cameras.json", *fragments))


def painting_case(content: bytes, *fragments: str, name: str = "painting.png") -> Case:
    return Case({name: content}, ("{d}/scene.ply", f"{{d}}/{name}", "--cameras", "{d}/cams/cameras.json"),
                fragments=(name, *fragments))


def vgg_case(content: bytes | None, *fragments: str, extra: tuple[str, ...] = ()) -> Case:
    """A bad --vgg-weights with a scene that is also missing: the weights must be named first (checked first)."""
    files = {} if content is None else {"weights.pth": content}
    return Case(files, ("{d}/missing_scene.ply", "{d}/painting.png", "--vgg-weights", "{d}/weights.pth", *extra),
                fragments=("weights.pth", *fragments))


def torch_file(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


GOOD_PLY = ply()
REFUSED = {
    # scenes
    "scene: empty file": scene_case(b"", "not a PLY file"),
    "scene: not a PLY": scene_case(b"solid cube\nfacet normal 0 0 1\n", "not a PLY file"),
    "scene: truncated body": scene_case(GOOD_PLY[:-7], "truncated"),
    "scene: truncated header": scene_case(GOOD_PLY[:GOOD_PLY.index(b"end_header")], "end_header"),
    "scene: ascii format": scene_case(header_edit(b"binary_little_endian", b"ascii"), "unsupported format"),
    "scene: big-endian": scene_case(header_edit(b"binary_little_endian", b"binary_big_endian"), "unsupported"),
    "scene: integer opacity": scene_case(header_edit(b"property float opacity", b"property int opacity"),
                                         "must be float", "opacity"),
    "scene: missing rotation": scene_case(header_edit(b"property float rot_3", b"property float rot_x"),
                                          "missing required properties", "rot_3"),
    "scene: list property": scene_case(header_edit(b"property float x\n", b"property list uchar float x\n"), "list"),
    "scene: mesh faces": scene_case(header_edit(b"end_header", b"element face 2\nproperty list uchar int "
                                                              b"vertex_indices\nend_header"), "face"),
    "scene: zero Gaussians": scene_case(header_edit(b"element vertex 150", b"element vertex 0"), "vertex"),
    "scene: binary header garbage": scene_case(b"ply\n\xff\xfe\x00\x01\nend_header\n", "not ASCII"),
    "scene: NaN position": scene_case(scene_with(means=set_rows(np.nan)), "non-finite", "x"),
    "scene: infinite scale": scene_case(scene_with(log_scales=set_rows(np.inf)), "non-finite", "scale_0"),
    "scene: NaN colour": scene_case(scene_with(sh_dc=set_rows(np.nan)), "non-finite", "f_dc_0"),
    "scene: all transparent": scene_case(scene_with(opacity=set_all(-20.0)), "transparent"),
    "scene: scales overflow": scene_case(scene_with(log_scales=set_rows(60.0, slice(0, 3))), "3 of 150",
                                         "scales too large"),
    "scene: absurd colours": scene_case(scene_with(sh_dc=set_rows(1e20, slice(0, 4))), "4 of 150",
                                        "colour coefficients"),
    "scene: missing file": Case(argv=("{d}/nowhere.ply", "{d}/painting.png"), fragments=("nowhere.ply", "not found")),
    "scene: a folder": Case(argv=("{d}/cams", "{d}/painting.png"), fragments=("cams", "folder")),
    # cameras
    "cameras: bad JSON": cameras_case(cameras_json(raw="[{"), "not valid JSON"),
    "cameras: not UTF-8": cameras_case(b"\xff\xfe[]", "not a JSON text file"),
    "cameras: not a list": cameras_case(cameras_json(raw='{"cameras": []}'), "expected a list"),
    "cameras: empty list": cameras_case(cameras_json(raw="[]"), "empty"),
    "cameras: entry not an object": cameras_case(cameras_json(raw="[1, 2]"), "camera 0", "expected a JSON object"),
    "cameras: missing fx": cameras_case(cameras_json(without_key("fx")), "camera 0", "missing fx"),
    "cameras: missing rotation": cameras_case(cameras_json(without_key("rotation")), "missing rotation"),
    "cameras: zero width": cameras_case(cameras_json(camera_field(1, "width", 0)), "camera 1", "positive"),
    "cameras: negative height": cameras_case(cameras_json(camera_field(0, "height", -32)), "positive"),
    "cameras: fractional width": cameras_case(cameras_json(camera_field(0, "width", 47.5)),
                                              "width: expected a positive integer"),
    "cameras: string focal": cameras_case(cameras_json(camera_field(0, "fx", "50")), "fx: expected a finite number"),
    "cameras: zero focal": cameras_case(cameras_json(camera_field(0, "fy", 0.0)), "fy: expected a positive number"),
    "cameras: NaN position": cameras_case(cameras_json(camera_field(0, "position", [float("nan"), 0, 0])),
                                          "position: expected 3 finite numbers"),
    "cameras: infinite rotation": cameras_case(cameras_json(camera_field(0, "rotation", [[float("inf")] * 3] * 3)),
                                               "rotation: expected 3x3 finite numbers"),
    "cameras: short position": cameras_case(cameras_json(camera_field(0, "position", [1, 2])),
                                            "position: expected 3 finite numbers"),
    "cameras: not a rotation": cameras_case(cameras_json(camera_field(0, "rotation", [[1, 0, 0], [0, 2, 0],
                                                                                      [0, 0, 1]])), "orthonormal"),
    "cameras: mirror": cameras_case(cameras_json(camera_field(0, "rotation", [[-1, 0, 0], [0, 1, 0], [0, 0, 1]])),
                                    "reflection"),
    "cameras: absurd width": cameras_case(cameras_json(camera_field(1, "width", 10_000_000)), "camera 1",
                                          "not a plausible image size"),
    "cameras: needle-thin": cameras_case(cameras_json(lambda e: [{**c, "width": 4000, "height": 10} for c in e]),
                                         "camera 0", "too elongated", "(and 1 more cameras)"),
    "cameras: all look away": cameras_case(cameras_json(turned_away), "none of the 2 cameras sees any Gaussian"),
    "cameras: enormous focal length": cameras_case(cameras_json(lambda e: [{**c, "fx": 1e12, "fy": 1e12} for c in e]),
                                                   "none of the 2 cameras"),
    "cameras: missing file": Case(argv=("{d}/scene.ply", "{d}/painting.png", "--cameras", "{d}/nope.json"),
                                  fragments=("nope.json", "not found")),
    "cameras: binary COLMAP": Case({"sparse/images.bin": b"\0" * 8},
                                   ("{d}/scene.ply", "{d}/painting.png", "--cameras", "{d}/sparse/images.bin"),
                                   ("images.bin", "binary COLMAP")),
    "cameras: COLMAP folder without images.txt": Case({"sparse/cameras.txt": b"1 PINHOLE 48 32 40 40 24 16\n"},
                                                      ("{d}/scene.ply", "{d}/painting.png", "--cameras", "{d}/sparse"),
                                                      ("sparse", "no images.txt")),
    "cameras: bad cameras.json beside the scene": Case({"cameras.json": cameras_json(raw="[")},
                                                       ("{d}/scene.ply", "{d}/painting.png"),
                                                       ("cameras.json", "not valid JSON")),
    # paintings
    "painting: empty file": painting_case(b"", "not a readable image"),
    "painting: not an image": painting_case(b"Dear painter, ...\n" * 20, "not a readable image"),
    "painting: truncated PNG": painting_case(GOOD_PNG[: len(GOOD_PNG) // 2], "not a readable image"),
    "painting: truncated JPEG": painting_case(image_bytes(painting(), "JPEG")[:400], "not a readable image",
                                              name="painting.jpg"),
    "painting: zero-size header": painting_case(png_chunks(0, 64, 8, 2, b""), "not a readable image"),
    "painting: 8x8 px": painting_case(image_bytes(painting(size=8)), "too small", "8x8"),
    "painting: header claims 40000x40000": painting_case(png_chunks(40000, 40000, 8, 2, b""), "too large",
                                                         "40000x40000"),
    "painting: header claims 20001x20001": painting_case(png_chunks(20001, 20001, 8, 2, b""), "too large",
                                                         "at most 67 MP"),
    "painting: JPEG header claims 30000x30000": painting_case(
        image_bytes(painting(), "JPEG").replace(b"\xff\xc0\x00\x11\x08\x00\x40\x00\x40",
                                                b"\xff\xc0\x00\x11\x08\x75\x30\x75\x30"),
        "too large", "30000x30000", name="painting.jpg"),
    "painting: unsupported format (PCX)": painting_case(image_bytes(painting(), "PCX"), "supported formats",
                                                        name="painting.pcx"),
    "painting: 32-bit float TIFF": painting_case(image_bytes(painting("L").convert("F"), "TIFF"), "floating-point",
                                                 name="painting.tif"),
    "painting: missing file": Case(argv=("{d}/scene.ply", "{d}/nope.png"), fragments=("nope.png", "no such image")),
    "painting: a folder": Case(argv=("{d}/scene.ply", "{d}/cams"), fragments=("cams", "no such image")),
    # VGG weights (checked before the scene is even read)
    "vgg: missing file": vgg_case(None, "not found"),
    "vgg: not a torch file": vgg_case(b"\x80\x02garbage", "not a readable torch weights file"),
    "vgg: not a dict": vgg_case(torch_file([torch.zeros(3)]), "expected a dict"),
    "vgg: missing layers": vgg_case(torch_file({"features.0.weight": torch.zeros(64, 3, 3, 3)}), "features.0"),
    "vgg: wrong shapes": vgg_case(torch_file({f"features.{i}.{k}": torch.zeros(2) for i in
                                              (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28) for k in
                                              ("weight", "bias")}), "conv1_1 has shape"),
    "vgg: torch preprocessing without weights": Case(argv=("{d}/missing_scene.ply", "{d}/painting.png",
                                                           "--vgg-preprocess", "torch"),
                                                     fragments=("--vgg-preprocess torch", "Caffe")),
    # output folders that would overwrite inputs
    "output: the scene's own folder": Case({"cameras.json": GOOD_CAMERAS.encode()},
                                           ("{d}/scene.ply", "{d}/painting.png", "-o", "{d}"),
                                           ("holds the input scene",)),
    "output: a folder above the scene (3DGS layout)": Case(
        {"run/point_cloud/iteration_7/point_cloud.ply": GOOD_PLY, "run/cameras.json": GOOD_CAMERAS.encode()},
        ("{d}/run/point_cloud/iteration_7/point_cloud.ply", "{d}/painting.png", "-o", "{d}/run"),
        ("holds the input scene",)),
    "output: cameras of an earlier run as input": Case(
        {"out/cameras.json": GOOD_CAMERAS.encode()},
        ("{d}/scene.ply", "{d}/painting.png", "--cameras", "{d}/out/cameras.json", "-o", "{d}/out"),
        ("would overwrite the input", "cameras.json", "(cameras)")),
    "output: painting named like a preview": Case(
        {"out/preview.png": GOOD_PNG},
        ("{d}/scene.ply", "{d}/out/preview.png", "--cameras", "{d}/cams/cameras.json", "-o", "{d}/out"),
        ("would overwrite the input", "preview.png", "(painting)")),
    "output: arguments file named like the report": Case(
        {"out/report.json": b"--demo\n"}, ("@{d}/out/report.json", "-o", "{d}/out"),
        ("would overwrite the input", "report.json", "(arguments file)")),
    "output: demo cameras in the output folder": Case(
        {"out/cameras.json": GOOD_CAMERAS.encode()}, ("--demo", "--cameras", "{d}/out/cameras.json", "-o", "{d}/out"),
        ("would overwrite the input",)),
    # a refusal after the start (the checkpoint is read once the run is set up): still its one line, no progress bar
    "output: a checkpoint of something else": Case(
        {"out/checkpoint.pt": b"not a checkpoint"},
        ("{d}/scene.ply", "{d}/painting.png", "--cameras", "{d}/cams/cameras.json", "-o", "{d}/out",
         "--checkpoint-every", "1"), ("checkpoint.pt", "checkpoint")),
    # arguments files (@FILE): cycles, missing, unusable
    "arguments: a file that names itself": Case({"args.txt": b"--demo\n@{d}/args.txt\n"}, ("@{d}/args.txt",),
                                                ("args.txt", "cycle")),
    "arguments: two files that name each other": Case(
        {"a.txt": b"@{d}/b.txt\n", "b.txt": b"--demo\n@{d}/a.txt\n"}, ("@{d}/a.txt",),
        ("a.txt -> ", "b.txt -> ", "cycle")),
    "arguments: missing file": Case(argv=("@{d}/nope.txt",), fragments=("nope.txt", "arguments file not found")),
    "arguments: missing file named in a file": Case({"args.txt": b"--demo\n@{d}/nope.txt\n"}, ("@{d}/args.txt",),
                                                    ("nope.txt", "not found")),
    "arguments: a folder": Case(argv=("@{d}/cams",), fragments=("cams", "is a folder")),
    "arguments: a binary file": Case(argv=("@{d}/scene.ply",), fragments=("scene.ply", "not an arguments file")),
    **({"arguments: an unreadable file": Case(argv=("@/proc/self/mem",), fragments=(
        "mem", "cannot read the arguments file (Input/output error)"))} if Path("/proc/self/mem").exists() else {}),
    "arguments: files that multiply": Case({"x.txt": b"@{d}/y.txt\n" * 400, "y.txt": b"--demo\n" * 400},
                                           ("@{d}/x.txt",), ("more than 100000 arguments",)),
}


def write_case(folder: Path, case: Case) -> None:
    """The good inputs, then the case's own files over them ({d} in an arguments file .txt is the case folder)."""
    files = {"scene.ply": GOOD_PLY, "painting.png": GOOD_PNG, "cams/cameras.json": GOOD_CAMERAS.encode(),
             **case.files}
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            content = content.replace(b"{d}", str(folder).encode())
        (folder / name).write_bytes(content)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expand(argv: tuple[str, ...], folder: Path, out: Path) -> list[str]:
    args = [a.format(d=folder, o=out) for a in argv]
    return args if "-o" in args else [*args, "-o", str(out)]


def run_main(argv: list[str], capsys) -> tuple[int, list[str], str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_one_line_and_nothing_written(name: str, tmp_path: Path, capsys) -> None:
    case = REFUSED[name]
    folder = tmp_path / "in"
    write_case(folder, case)
    before = snapshot(folder)
    argv = expand(case.argv, folder, tmp_path / "out")
    code, err, _ = run_main([*argv, *FAST], capsys)
    assert code == 2, (name, err)
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in case.fragments:
        assert fragment in err[0], (fragment, err[0])
    assert snapshot(folder) == before, "an input changed"
    assert not (tmp_path / "out").exists(), "a refused run created its output folder"


def test_refusal_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    """The same promise end to end (exit status, stderr) for a bomb-sized painting header."""
    write_case(tmp_path, Case({"painting.png": png_chunks(40000, 40000, 8, 2, b"")}))
    proc = subprocess.run([sys.executable, "-m", "core", tmp_path / "scene.ply", tmp_path / "painting.png", "-o",
                           tmp_path / "out", *FAST], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert "too large (40000x40000 px" in proc.stderr and not (tmp_path / "out").exists()


def test_error_event_for_programs(tmp_path: Path, capsys) -> None:
    write_case(tmp_path, Case({"painting.png": b""}))
    code, err, out = run_main([str(tmp_path / "scene.ply"), str(tmp_path / "painting.png"), "-o",
                               str(tmp_path / "out"), "--json-progress", *FAST], capsys)
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and events == [{"event": "error", "message": err[0].removeprefix("error: ")}]


def events_of(stdout: str) -> list[dict]:
    """The events of --json-progress output; an error's template (the message with the settings it names marked
    for other front ends) is checked to read as the message on the command line, then left out."""
    events = [json.loads(line) for line in stdout.splitlines()]
    for event in events:
        if "template" in event:
            assert for_command_line(event.pop("template")) == event["message"]
    return events


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_as_one_error_event(name: str, tmp_path: Path, capsys) -> None:
    """With --json-progress each refusal is exactly one error event, holding the line stderr shows (a refusal
    once the run is set up, as a checkpoint's, comes after the start event, still before any progress)."""
    case = REFUSED[name]
    write_case(tmp_path / "in", case)
    code, err, out = run_main([*expand(case.argv, tmp_path / "in", tmp_path / "out"), *FAST, "--json-progress"],
                              capsys)
    assert code == 2 and len(err) == 1, err
    events = [event for event in events_of(out) if event["event"] != "start"]
    assert events == [{"event": "error", "message": err[0].removeprefix("error: ")}]


def exit_of(argv: list[str], capsys) -> tuple[int, list[str], list[dict]]:
    """Exit status, stderr lines and stdout events of main(argv), whether it returns or exits (argparse)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), events_of(captured.out)


OPTION_ERRORS = {
    "--views 0": (["--views", "0"], "--views: must be at least 1 (got 0)"),
    "--views -2": (["--views", "-2"], "--views: must be at least 1"),
    "--views many": (["--views", "many"], "--views: expected a whole number"),
    "--lr 1e30": (["--lr", "1e30"], "--lr: must be"),
    "unknown option": (["--colour-magic"], "unrecognized arguments: --colour-magic"),
    "missing value": (["--resolution"], "--resolution: expected one argument"),
}


@pytest.mark.parametrize("how", ["option", "abbreviated", "in an arguments file", "in a nested arguments file"])
@pytest.mark.parametrize("name", sorted(OPTION_ERRORS))
def test_option_errors_are_one_line_and_one_event(name: str, how: str, tmp_path: Path, capsys) -> None:
    """Option errors happen before the options are known: --json-progress is found in the arguments themselves."""
    argv, expected = OPTION_ERRORS[name]
    (tmp_path / "inner.txt").write_text("--json-progress\n")
    (tmp_path / "args.txt").write_text("--demo\n" + ("--json-progress\n" if how == "in an arguments file" else
                                                     f"@{tmp_path / 'inner.txt'}\n"))
    json_flag = {"option": ["--json-progress"], "abbreviated": ["--json"]}.get(how, [f"@{tmp_path / 'args.txt'}"])
    code, err, events = exit_of([*json_flag, "--demo", "-o", str(tmp_path / "out"), *argv], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert events == [{"event": "error", "message": err[0].removeprefix("error: ")}]
    assert not (tmp_path / "out").exists()


def test_views_must_be_positive_even_with_cameras(tmp_path: Path, capsys) -> None:
    """--views 0 was accepted when cameras were given (it was checked only for the orbit rig)."""
    write_case(tmp_path, Case())
    code, err, _ = exit_of([*expand(Case().argv, tmp_path, tmp_path / "out"), *FAST, "--views", "0"], capsys)
    assert code == 2 and err == ["error: --views: must be at least 1 (got 0)"]


def test_an_arguments_file_refusal_names_it_also_as_an_event(tmp_path: Path, capsys) -> None:
    """The cycle is refused before the options are parsed; --json-progress inside the cycle still counts."""
    (tmp_path / "args.txt").write_text(f"--json-progress\n@{tmp_path / 'args.txt'}\n")
    code, err, events = exit_of([f"@{tmp_path / 'args.txt'}", "-o", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err) == 1 and "cycle" in err[0]
    assert events == [{"event": "error", "message": err[0].removeprefix("error: ")}]


def test_an_arguments_file_cycle_has_no_traceback_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "args.txt").write_text("@args.txt\n")
    proc = subprocess.run([sys.executable, "-m", "core", "@args.txt"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: args.txt: arguments files that name each other in a cycle "
                                                "(args.txt -> args.txt); an arguments file may name others, but "
                                                "never one that leads back to it"]


def test_existing_output_folder_is_left_as_it_was_on_refusal(tmp_path: Path, capsys) -> None:
    write_case(tmp_path, Case({"cams/cameras.json": cameras_json(raw="[")}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "stylized.ply").write_bytes(b"an earlier result")
    code, err, _ = run_main([str(tmp_path / "scene.ply"), str(tmp_path / "painting.png"), "--cameras",
                             str(tmp_path / "cams" / "cameras.json"), "-o", str(out), *FAST], capsys)
    assert code == 2 and len(err) == 1
    assert snapshot(out) == {"stylized.ply": b"an earlier result"}


# ---------------------------------------------------------------- output folders that cannot take the outputs


@pytest.fixture
def small_volume(tmp_path: Path):
    """A 64 KiB tmpfs (the outputs of a 150-Gaussian run take more); skips where mounting is not allowed."""
    mount = tmp_path / "volume"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "sos_test", str(mount)], capture_output=True,
                              text=True, check=False)
    except OSError as error:
        pytest.skip(f"cannot mount a tmpfs here ({error})")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("where", ["the folder", "its parent"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(where: str, tmp_path: Path, capsys,
                                                                            read_only) -> None:
    """Refused up front (no start event: nothing was rendered), in one line, creating nothing."""
    write_case(tmp_path / "in", Case())
    locked = read_only(tmp_path / "locked")
    out = locked if where == "the folder" else locked / "out"
    code, err, stdout = run_main([*expand(Case().argv, tmp_path / "in", out), *FAST, "--json-progress"], capsys)
    assert code == 2 and len(err) == 1, err
    reason = "cannot write into the output folder" if where == "the folder" else "cannot create the output folder"
    assert err[0].startswith(f"error: {out}: {reason}"), err
    assert events_of(stdout) == [{"event": "error", "message": err[0].removeprefix("error: ")}]
    assert list(locked.iterdir()) == []


def test_an_output_volume_without_room_is_refused_before_any_work(tmp_path: Path, capsys, small_volume) -> None:
    write_case(tmp_path / "in", Case())
    out = small_volume / "results" / "out"
    code, err, stdout = run_main([*expand(Case().argv, tmp_path / "in", out), *FAST, "--json-progress"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {out}: not enough free space for the outputs: they may take up to "), err
    assert "KiB free" in err[0]
    assert events_of(stdout) == [{"event": "error", "message": err[0].removeprefix("error: ")}]
    assert list(small_volume.iterdir()) == []


def test_the_space_estimate_bounds_what_a_run_writes(tmp_path: Path, capsys) -> None:
    """needed_bytes is an upper bound of every kind of output (else the up-front check could pass a disk that then
    fills): a run with live previews and a checkpoint, compared file by file."""
    from core.outputs import needed_bytes
    write_case(tmp_path, Case())
    out = tmp_path / "out"
    extra = ["--iterations", "2", "--preview-every", "1", "--checkpoint-every", "1", "--detail", "1"]
    code, err, _ = run_main([*expand(Case().argv, tmp_path, out), *FAST, *extra], capsys)
    assert code == 0, err
    settings = StylizeSettings(iterations=2, resolution=32, preview_every=1, checkpoint_every=1, detail=1.0)
    needs = needed_bytes(read_ply(tmp_path / "scene.ply"), settings, load_cameras(tmp_path / "cams/cameras.json"))
    sizes = {path.name: path.stat().st_size for path in out.iterdir()}
    previews = sum(size for name, size in sizes.items() if name.endswith(".png"))
    assert previews <= needs["previews"]
    for name in ("stylized.ply", "origin.npy", "cameras.json", "report.json", "checkpoint.pt"):
        assert sizes[name] <= needs[name], name
    assert not [name for name in sizes if name.startswith(".")], "a temporary file was left behind"


# RLIMIT_FSIZE makes writes past a size fail with EFBIG, as a full disk makes them fail with ENOSPC (a real failed
# write, for any user, where mounting a small tmpfs is not allowed); Python ignores SIGXFSZ, so the write raises.
LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
           "sys.argv[0] = 'core'; runpy.run_module('core', run_name='__main__')")


@pytest.mark.parametrize("failing, limit, extra", [
    # stylized.ply (16 KiB) is staged, then a 256-px before/after preview (about 50 KiB) cannot be written
    ("before_after_00.png", 32 * 1024, []),
    # the live preview (about 25 KiB) fails during the run, before any final output
    ("preview.png", 8 * 1024, ["--preview-every", "1"]),
])
def test_a_disk_that_fills_while_the_outputs_are_written_leaves_none_of_them(failing: str, limit: int, extra: list,
                                                                            tmp_path: Path) -> None:
    """A failed write is one line with exit 2; the folder keeps its earlier complete result as it was, with no new
    output and no temporary file."""
    write_case(tmp_path / "in", Case({"painting.png": image_bytes(painting(size=512))}))
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"stylized.ply": b"an earlier result", "report.json": b"{}\n"}
    for name, content in earlier.items():
        (out / name).write_bytes(content)
    argv = [*expand(Case().argv, tmp_path / "in", out), "--iterations", "1", "--resolution", "256", "--device", "cpu",
            "--json-progress", *extra]
    proc = subprocess.run([sys.executable, "-c", LIMITED.format(limit=limit), *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {out / failing}: cannot write (File too large)" + (
        "; the run's outputs were not kept" if failing != "preview.png" else "")], proc.stderr
    assert "done" not in {event["event"] for event in events_of(proc.stdout)}
    assert snapshot(out) == earlier


# ---------------------------------------------------------------- accepted, with or without a warning


def quats_kept(source: SplatData, result: SplatData) -> None:
    """Zero quaternions are drawn as the identity, but the result keeps the file's values bit for bit."""
    assert np.array_equal(result.quats(), source.quats()) and not result.quats()[:5].any()


ACCEPTED = {
    "zero quaternions": ({"scene.ply": scene_with(quats=set_rows(0.0, slice(0, 5)))},
                         ["scene.ply: 5 of 150 Gaussians have a zero rotation quaternion"], quats_kept),
    "enormous scales": ({"scene.ply": scene_with(log_scales=set_rows(12.0, slice(0, 2)))},
                        ["scene.ply: 2 of 150 Gaussians are more than 10x wider than the scene"], None),
    "one camera looks away": ({"cams/cameras.json": cameras_json(lambda e: turned_away(e[:1]) or e)},
                              ["cameras.json: 1 of 2 cameras see no Gaussian"], None),
    "transparent painting": ({"painting.png": image_bytes(Image.fromarray(np.dstack(
        [to_uint8(demo_style(64)), np.where(np.arange(64) < 16, 0, 255).astype(np.uint8)[None, :].repeat(64, 0)])))},
                             ["painting.png: 1024 of 4096 pixels are transparent"], None),
    "16-bit greyscale painting": ({"painting.png": image_bytes(Image.fromarray(
        (to_uint8(demo_style(64)).mean(axis=2) * 257).astype(np.uint16)))}, [], None),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_with_documented_warnings(name: str, tmp_path: Path, capsys) -> None:
    """Each run writes into a folder below the inputs' folder: only new names appear, the inputs stay as they were."""
    files, warnings, check = ACCEPTED[name]
    write_case(tmp_path, Case(files))
    before = snapshot(tmp_path)
    out = tmp_path / "stylized"
    handler = signal.getsignal(signal.SIGINT)
    code, err, stdout = run_main([*expand(Case().argv, tmp_path, out), *FAST, "--iterations", "1",
                                  "--json-progress"], capsys)
    assert code == 0, err
    assert signal.getsignal(signal.SIGINT) is handler, "main() left its Ctrl+C handler installed"
    assert len(err) == len(warnings), err
    for line, expected in zip(err, warnings):
        assert line.startswith("warning: ") and expected in line, (line, expected)
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["message"] for e in events if e["event"] == "warning"] == [line[len("warning: "):] for line in err]
    assert events[-1]["event"] == "done"
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("stylized/")} == before
    source, result = read_ply(tmp_path / "scene.ply"), read_ply(out / "stylized.ply")
    assert result.count == 150 and not np.array_equal(result.sh_dc(), source.sh_dc())
    if check is not None:
        check(source, result)


# ---------------------------------------------------------------- broken results are never written


@pytest.mark.parametrize("option, value, named", [("--style-strength", "1e38", "style strength 1e+38"),
                                                  ("--content-weight", "1e38", "keep structure 1e+38")])
def test_divergence_stops_the_run_and_writes_no_result(option, value, named, tmp_path: Path, capsys) -> None:
    write_case(tmp_path, Case())
    before = snapshot(tmp_path)
    # SGSST's unnormalised balance: under the relative balance Adam takes even a 1e38 weight in its stride
    argv = [*expand(Case().argv, tmp_path, tmp_path / "out"), *FAST, "--json-progress", option, value,
            "--iterations", "3", "--balance", "sgsst"]
    code, err, stdout = run_main(argv, capsys)
    assert code == 2 and len(err) == 1 and "diverged at iteration" in err[0] and named in err[0], err
    assert not (tmp_path / "out").exists()
    assert snapshot(tmp_path) == before
    assert "done" not in {json.loads(line)["event"] for line in stdout.splitlines()}


def test_an_absurd_learning_rate_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    """--lr 1e30 once diverged to an all-NaN result; the settings schema's bound now refuses it up front."""
    write_case(tmp_path, Case())
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*expand(Case().argv, tmp_path, tmp_path / "out"), *FAST, "--lr", "1e30"])
    code, err = exit_info.value.code, capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --lr:"), err
    assert not (tmp_path / "out").exists()
    assert snapshot(tmp_path) == before


def test_a_run_that_sees_nothing_says_so(tmp_path: Path) -> None:
    """stylize() itself refuses to return an unchanged copy when no view shows any Gaussian."""
    cameras = load_cameras(_write(tmp_path / "cameras.json", cameras_json(turned_away)))
    with pytest.raises(InputError, match=r"nothing was stylized: no Gaussian is visible in the views used \(\d of 2"):
        stylize(GOOD, demo_style(64), cameras, StylizeSettings(iterations=2, resolution=32, device="cpu"))


def test_absurd_result_is_not_written(tmp_path: Path) -> None:
    """The check before writing refuses non-finite and colour-overflowing results."""
    from core.checks import check_result
    with pytest.raises(InputError, match="not written; lower"):
        check_result(GOOD.with_sh(np.full((150, 3), np.nan, np.float32)), "lower it")
    with pytest.raises(InputError, match="not written; lower"):
        check_result(GOOD.with_sh(np.full((150, 3), 1e30, np.float32)), "lower it")
    check_result(GOOD, "fine")


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# ---------------------------------------------------------------- the painting loader's conversions


def saved(tmp_path: Path, content: bytes, name: str = "p.png") -> Path:
    return _write(tmp_path / name, content)


def test_sixteen_bit_greyscale_keeps_its_brightness(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    image = load_image(saved(tmp_path, image_bytes(Image.fromarray(ramp))))
    assert image.shape == (32, 64, 3)
    np.testing.assert_allclose(image[0, :, 1].numpy(), ramp[0] / 65535, atol=1e-6)
    assert float(image.mean()) == pytest.approx(0.5, abs=0.01)


def test_sixteen_bit_colour_png_is_read(tmp_path: Path) -> None:
    rows = b"".join(b"\x00" + np.full((32, 3), [65535, 32768, 0], ">u2").tobytes() for _ in range(32))
    image = load_image(saved(tmp_path, png_chunks(32, 32, 16, 2, rows)))
    np.testing.assert_allclose(image[5, 5].numpy(), [1.0, 128 / 255, 0.0], atol=1e-6)


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK"])
def test_greyscale_palette_bilevel_and_cmyk_become_rgb(mode: str, tmp_path: Path) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    source = painting(mode)
    image = load_image(saved(tmp_path, image_bytes(source, fmt, **({"quality": 100} if fmt == "JPEG" else {})),
                             "p.jpg" if fmt == "JPEG" else "p.png"))
    expected = np.asarray(source.convert("RGB"), np.float32) / 255
    assert image.shape == (64, 64, 3)
    assert np.abs(image.numpy() - expected).mean() < (0.02 if fmt == "JPEG" else 1e-6)


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0] = 255           # red everywhere, hidden where alpha is 0
    rgba[:, 16:, 3] = 255        # right half opaque red
    rgba[:8, :16, 3] = 128       # a half-transparent corner
    with pytest.warns(UserWarning, match="512 of 1024 pixels are transparent"):
        image = load_image(saved(tmp_path, image_bytes(Image.fromarray(rgba))))
    np.testing.assert_allclose(image[20, 4].numpy(), [1, 1, 1])              # transparent: white, not red
    np.testing.assert_allclose(image[20, 20].numpy(), [1, 0, 0])
    np.testing.assert_allclose(image[2, 2].numpy(), [1, 127 / 255, 127 / 255], atol=1.5 / 255)


def test_opaque_alpha_channel_is_no_warning(tmp_path: Path, recwarn) -> None:
    load_image(saved(tmp_path, image_bytes(painting("RGBA"))))
    assert not recwarn.list


def test_grey_with_alpha_and_palette_transparency(tmp_path: Path) -> None:
    la = Image.fromarray(np.dstack([np.full((32, 32), 0, np.uint8), np.zeros((32, 32), np.uint8)]), "LA")
    with pytest.warns(UserWarning, match="1024 of 1024"):
        assert float(load_image(saved(tmp_path, image_bytes(la))).min()) == 1.0
    gif = painting("P")
    index = int(np.asarray(gif)[0, 0])
    with pytest.warns(UserWarning, match="pixels are transparent"):
        image = load_image(saved(tmp_path, image_bytes(gif, "GIF", transparency=index), "p.gif"))
    np.testing.assert_allclose(image[0, 0].numpy(), [1, 1, 1])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: viewers show it portrait
    image = load_image(saved(tmp_path, image_bytes(painting().crop((0, 0, 64, 32)), "JPEG", exif=exif), "p.jpg"))
    assert image.shape == (64, 32, 3)


def test_large_paintings_are_reduced_to_what_the_run_uses(tmp_path: Path) -> None:
    path = saved(tmp_path, image_bytes(painting(size=256)))
    assert load_image(path).shape == (256, 256, 3)
    assert load_image(path, resolution=64).shape == (64, 64, 3)
    assert load_image(path, resolution=100).shape == (128, 128, 3)   # reduced by 2: never below the render size
    jpeg = saved(tmp_path, image_bytes(painting(size=256), "JPEG"), "p.jpg")
    assert load_image(jpeg, resolution=64).shape == (64, 64, 3)


def test_pixel_limit_follows_the_resolution() -> None:
    assert painting_pixel_limit() == painting_pixel_limit(1024) == 8192 * 8192
    assert painting_pixel_limit(6000) == 12000 * 12000
    assert painting_pixel_limit(16384) == 16384 * 16384


def test_header_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    """The body of this file is empty: a decoder that ran would fail with 'truncated', not with the size."""
    path = saved(tmp_path, png_chunks(9000, 9000, 8, 2, b""))
    with pytest.raises(InputError, match=r"too large \(9000x9000 px = 81 MP; at most 67 MP"):
        load_image(path)
    with pytest.raises(InputError, match="too large"):
        load_image(path, resolution=2048)
