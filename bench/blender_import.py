#!/usr/bin/env python3
"""Time the Blender add-on on a synthetic 1M-Gaussian SH-degree-3 scene (headless bpy, no GPU needed).

    .venv/bin/python bench/blender_import.py [--gaussians 1000000] [--repeat 3]

Writes the PLY to a temporary folder, installs the add-on zip into a throw-away extension repository (the
user's Blender configuration is not touched), then times File > Import (the operator, target <= 3 s for 1M),
the first evaluation of the viewport display modifier, and File > Export.
"""

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.mkdtemp(prefix="sos_bench_blender_"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
for kind in ("CONFIG", "SCRIPTS", "EXTENSIONS", "DATAFILES"):
    os.environ[f"BLENDER_USER_{kind}"] = str(WORK / kind.lower())

import bpy  # noqa: E402  (after the user folders are redirected)

sys.path.insert(0, str(ROOT))
import install  # noqa: E402


def synthetic_ply(path: Path, count: int) -> Path:
    """A plausible SH-3 scene with normals: 62 float32 properties per Gaussian, in Inria order."""
    names = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(45)]
             + ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])
    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.3, (count, len(names))).astype(np.float32)
    table[:, 3:6] = 0
    table[:, names.index("scale_0"):names.index("scale_0") + 3] -= 4
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\n"
              + "".join(f"property float {n}\n" for n in names) + "end_header\n")
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        table.tofile(handle)
    return path


def enable_addon() -> None:
    """Install the add-on zip as an extension in a temporary repository and enable it."""
    zip_path = install.build_addon_zip(WORK / "dist")
    bpy.context.preferences.extensions.repos.new(name="bench", module="sos_bench", source='USER',
                                                 custom_directory=str(WORK / "repo"))
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="sos_bench",
                                                      enable_on_install=True)
    assert result == {'FINISHED'}, result


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ply = synthetic_ply(WORK / "synthetic.ply", args.gaussians)
    enable_addon()
    print(f"Blender {bpy.app.version_string}, {args.gaussians:,} Gaussians, SH degree 3, "
          f"{ply.stat().st_size / 1e6:.0f} MB PLY")
    imports = []
    for _ in range(args.repeat):
        for obj in list(bpy.data.objects):
            bpy.data.objects.remove(obj)
        imports.append(timed(lambda: bpy.ops.import_scene.gaussian_splat(filepath=str(ply))))
    obj = bpy.context.view_layer.objects.active
    assert len(obj.data.vertices) == args.gaussians and len(obj.data.attributes) >= 63
    print(f"import operator: {min(imports):.2f} s best of {args.repeat} (all: "
          f"{', '.join(f'{t:.2f}' for t in imports)})")
    obj.update_tag()
    display = timed(lambda: bpy.context.evaluated_depsgraph_get().update())
    shown = sum(1 for inst in bpy.context.evaluated_depsgraph_get().object_instances if inst.is_instance)
    print(f"display evaluation (ellipsoids): {display:.2f} s for {shown:,} shown")
    export = timed(lambda: bpy.ops.export_scene.gaussian_splat(filepath=str(WORK / "exported.ply")))
    same = (WORK / "exported.ply").read_bytes() == ply.read_bytes()
    print(f"export operator: {export:.2f} s, byte-identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
