#!/usr/bin/env python3
"""Write a stylization job folder with the Blender add-on (headless bpy), to run on a GPU machine.

    .venv/bin/python bench/make_job.py JOB_FOLDER [--scene DIR] [--style IMAGE] [--resolution 1920]
                                      [--iterations 600] [--optimize color|sh|sh+opacity] [--max-gpu-mem GiB]
    # then, on the GPU machine:  cd JOB_FOLDER && python -m core @args.txt

Installs the add-on zip in a throw-away extension repository (as bench/blender_import.py does), imports
SCENE/point_cloud.ply with the cameras file beside it (File > Import > Gaussian Splat), sets the Stylize panel
and runs Export Stylize Job. The folder holds scene.ply, cameras.json, the style image and args.txt with paths
relative to itself, so it can be copied anywhere; the engine writes its results to JOB_FOLDER/out.
"""

import argparse
import sys
from pathlib import Path

from blender_import import ROOT, enable_addon  # redirects Blender's user folders before bpy is imported

import bpy  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
OPTIMIZE = {"color": 'COLOR', "sh": 'SH', "sh+opacity": 'SH_OPACITY'}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="job folder to write (created; must not hold another job)")
    parser.add_argument("--scene", type=Path, default=SHARED / "scenes" / "flowers",
                        help="folder with point_cloud.ply and its cameras (*cameras*.json)")
    parser.add_argument("--style", type=Path,
                        default=SHARED / "styles" / "vangogh_starry_night_over_the_rhone_2000px.jpg")
    parser.add_argument("--resolution", type=int, default=1920, help="long side of the views in pixels")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--optimize", choices=sorted(OPTIMIZE), default="color")
    parser.add_argument("--max-gpu-mem", type=float, default=0.0, help="GiB cap for the loss (0: no cap)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if (args.job / "args.txt").exists():
        sys.exit(f"make_job.py: {args.job} already holds a job; choose an empty folder")
    enable_addon()
    if bpy.ops.import_scene.gaussian_splat(filepath=str(args.scene / "point_cloud.ply")) != {'FINISHED'}:
        sys.exit(f"make_job.py: cannot import {args.scene / 'point_cloud.ply'}")
    props = bpy.context.scene.sos_stylize
    props.style_image = bpy.data.images.load(str(args.style.resolve()))
    props.resolution, props.iterations, props.preview_every = args.resolution, args.iterations, 0
    props.optimize, props.max_gpu_mem_gib, props.camera_source = OPTIMIZE[args.optimize], args.max_gpu_mem, 'IMPORTED'
    if bpy.ops.sos.export_job(directory=str(args.job.resolve())) != {'FINISHED'}:
        sys.exit("make_job.py: writing the job failed")
    print(f"wrote {args.job}: {', '.join(sorted(p.name for p in args.job.iterdir()))}")
    print(f"run it with:  cd {args.job} && python -m core @args.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
