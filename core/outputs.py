"""The run's output folder: its names, the checks made before any heavy work, and outputs that appear together.

A run writes stylized.ply, origin.npy (each output row's input row), cameras.json, before/after images of the
first views (``before_after_views``: none for a run of 0 iterations) and report.json.

Before VGG is loaded or anything is rendered (README "Input rules"), ``prepare`` refuses a folder that would
overwrite an input, one on a volume without room for the outputs (``needed_bytes``, an upper bound), and one that
cannot be created or written (a probe file is written and removed); a refused run creates nothing. Then the run
writes its final outputs under temporary names (``Staging``) and puts them in place together, report.json last, so
the folder holds either a run's complete set of outputs or none of them; a failed or cancelled run also removes the
live preview it wrote, and the folder if it made it and nothing else is left (a checkpoint stays, to resume from).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.cameras import Camera
from core.errors import InputError
from interchange.ply import SplatData
from interchange.protocol import ORIGIN_FILE, OUTPUT_CAMERAS_FILE, PREVIEW_FILE, REPORT_FILE, STYLIZED_FILE
from interchange.settings import StylizeSettings, mention

PREVIEW_VIEWS = 3
PREVIEW_SIDE = 1024  # before/after images have at most this long side
CHECKPOINT_FILE = "checkpoint.pt"
# Every file a run may write into its output folder (atomic writes and staging add only hidden temporary names).
OUTPUT_NAMES = (STYLIZED_FILE, ORIGIN_FILE, OUTPUT_CAMERAS_FILE, REPORT_FILE, PREVIEW_FILE, CHECKPOINT_FILE,
                *(f"before_after_{i:02d}.png" for i in range(PREVIEW_VIEWS)))
# Densification grows a scene to at most (1 + detail) times its Gaussians, and never beyond this factor.
MAX_GROWTH = 4.0
# Upper bounds of the files whose size is not a table's: a PNG holds at most its raw RGB pixels plus a filter byte
# per row and zlib's few bytes per 64 KiB; a camera record and a history record take well under these.
PNG_OVERHEAD = 1.01
CAMERA_RECORD_BYTES = 1024
HISTORY_RECORD_BYTES = 1024
REPORT_BASE_BYTES = 64 * 1024
# A checkpoint holds every per-Gaussian tensor as float32 (at most the PLY's row of floats) and Adam's two moments
# of the trained ones: at most three times the table.
CHECKPOINT_FACTOR = 3
ORIGIN_ROW_BYTES = 4  # origin.npy: one int32 per output row, after NumPy's header
NPY_HEADER_BYTES = 128
PROBE_BYTES = 4096
SIZE_UNITS = ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def check_placement(out: Path, scene: Path | None, inputs: dict[Path, str]) -> None:
    """Refuse an output folder that would overwrite an input: a file in the folder's place, a folder that is or
    holds the scene's folder, and any folder where an output name is an input file (``inputs``: path -> role)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output exists and is not a folder")
    folder = out.resolve()
    if scene is not None and folder in scene.resolve().parents:
        raise InputError(f"{out}: the output folder holds the input scene {scene}; choose a folder of its own "
                         "for the results, so no input is overwritten")
    resolved = {path.resolve(): (path, role) for path, role in inputs.items()}
    for name in OUTPUT_NAMES:
        if folder / name in resolved:
            path, role = resolved[folder / name]
            raise InputError(f"{out}: the run would overwrite the input {path} ({role}); choose another output "
                             "folder")


def before_after_views(settings: StylizeSettings) -> int:
    """How many before/after images a run writes: one per first view up to PREVIEW_VIEWS, none for a run of 0
    iterations (its result is the closed-form preview, or the capture: no optimisation to show, and on a CPU the
    renders would take most of the run's time)."""
    return PREVIEW_VIEWS if settings.iterations else 0


def needed_bytes(scene: SplatData, settings: StylizeSettings, cameras: list[Camera]) -> dict[str, int]:
    """An upper bound of the bytes each kind of output takes: stylized.ply (the scene grown by ``detail``) and
    origin.npy, the previews, cameras.json, report.json and, with ``checkpoint_every``, the checkpoint."""
    growth = min(1.0 + settings.detail, MAX_GROWTH)
    table = int(scene.vertices.itemsize * scene.count * growth)
    shown = [camera.with_long_side(min(settings.resolution, PREVIEW_SIDE))
             for camera in cameras[:before_after_views(settings)]]
    previews = sum(_png_bytes(2 * c.width + 4, c.height) for c in shown)
    if settings.preview_every:
        live = cameras[0].with_long_side(settings.resolution)
        previews += _png_bytes(live.width, live.height)
    needs = {"stylized.ply": len(scene.header.text) + table, "previews": previews,
             ORIGIN_FILE: NPY_HEADER_BYTES + ORIGIN_ROW_BYTES * int(scene.count * growth),
             "cameras.json": CAMERA_RECORD_BYTES * len(cameras),
             "report.json": REPORT_BASE_BYTES + HISTORY_RECORD_BYTES * settings.iterations}
    if settings.checkpoint_every:
        needs[CHECKPOINT_FILE] = CHECKPOINT_FACTOR * table + HISTORY_RECORD_BYTES * settings.iterations
    return needs


def _png_bytes(width: int, height: int) -> int:
    return int(PNG_OVERHEAD * (3 * width + 1) * height) + 1024


def size_text(count: float) -> str:
    """Bytes for people: '3.2 GiB', '512 KiB', '900 bytes'."""
    for unit, name in SIZE_UNITS:
        if count >= unit:
            return f"{count / unit:.1f} {name}"
    return f"{int(count)} bytes"


def check_space(out: Path, needs: dict[str, int]) -> None:
    """Refuse an output folder whose volume has less free space than the outputs may take."""
    existing = next(folder for folder in (out, *out.parents) if folder.exists())
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # no figure to compare with: the probe write and the writes themselves still report a full disk
    total = sum(needs.values())
    if total > free:
        largest = max(needs, key=needs.get)
        detail = f", with {mention('detail')} up to {MAX_GROWTH:g}x the scene" if largest == "stylized.ply" else ""
        raise InputError(f"{out}: not enough free space for the outputs: they may take up to {size_text(total)} "
                         f"({largest} {size_text(needs[largest])}{detail}), {size_text(free)} free")


class OutputFolder:
    """The output folder of one run: what the run created there, so that a failed run removes it again."""

    def __init__(self, path: Path, created: list[Path]):
        self.path = path
        self.created = created  # folders this run made, innermost first
        self.live: set[Path] = set()  # files written during the run (the live preview)

    def write_live(self, name: str, write: Callable[[Path], object]) -> Path:
        """Write a file the run keeps up to date while it goes (the live preview), atomically."""
        path = self.path / name
        try:
            write(path)
        except OSError as error:
            raise InputError(f"{path}: cannot write ({error.strerror or error})") from None
        self.live.add(path)
        return path

    def clean_up_failure(self) -> None:
        """After a failed or cancelled run: remove the live files it wrote, then the folders it made if empty."""
        for path in self.live:
            path.unlink(missing_ok=True)
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:
                return


def prepare(out: Path, scene: Path | None, inputs: dict[Path, str], needs: dict[str, int]) -> OutputFolder:
    """Check the output folder (placement, free space), create it and prove it writable; nothing stays behind when
    it is refused. Called once every input has been validated, before any heavy work."""
    check_placement(out, scene, inputs)
    check_space(out, needs)
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    folder = OutputFolder(out, created)
    try:
        _probe(out)
    except OSError as exc:
        folder.clean_up_failure()
        raise InputError(f"{out}: cannot write into the output folder ({exc.strerror or exc})") from None
    return folder


def _probe(folder: Path) -> None:
    """Write, flush to disk and remove a small file in folder (raises OSError when that cannot be done)."""
    descriptor, name = tempfile.mkstemp(prefix=".write_probe.", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(b"\0" * PROBE_BYTES)
            stream.flush()
            os.fsync(stream.fileno())
    finally:
        Path(name).unlink(missing_ok=True)


class Staging:
    """The final outputs, written under hidden temporary names and put in place together by ``commit`` (the
    marker of a complete run last); ``discard`` removes what was staged."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.token = secrets.token_hex(4)
        self.staged: dict[str, Path] = {}

    def write(self, name: str, write: Callable[[Path], object]) -> Path:
        """Stage output ``name`` with ``write(path)``; returns where it will be. A failed write raises InputError
        naming the output."""
        final, staged = self.folder / name, self.folder / f".{name}.{self.token}.staged"
        self.staged[name] = staged
        try:
            write(staged)
        except OSError as error:
            raise InputError(f"{final}: cannot write ({error.strerror or error}); the run's outputs were not "
                             "kept") from None
        except InputError as error:
            raise InputError(f"{error.template.replace(str(staged), str(final))}; the run's outputs were not "
                             "kept") from None
        return final

    def commit(self, last: str) -> None:
        """Rename every staged output to its name, ``last`` at the end; if a rename fails, the outputs already
        renamed are removed again (they are this run's) and the rest discarded."""
        done: list[Path] = []
        try:
            for name in sorted(self.staged, key=lambda n: n == last):
                os.replace(self.staged[name], self.folder / name)
                done.append(self.folder / name)
        except OSError as error:
            for path in done:
                path.unlink(missing_ok=True)
            self.discard()
            raise InputError(f"{self.folder}: cannot put the outputs in place ({error.strerror or error}); the "
                             "run's outputs were not kept") from None
        self.staged.clear()

    def discard(self) -> None:
        """Remove every staged output (after a failure)."""
        for staged in self.staged.values():
            staged.unlink(missing_ok=True)
        self.staged.clear()
