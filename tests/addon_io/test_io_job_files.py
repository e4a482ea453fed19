"""A job folder's files that need no Blender (blender_addon/io/job_files.py): args.txt's lines, the region
file, new folders and pruning old ones."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from addon_package import load_addon

addon = load_addon()
job_files = addon.io.job_files
settings = addon.interchange.settings


def test_the_arguments_name_the_files_then_every_setting() -> None:
    chosen = settings.StylizeSettings()
    whole = job_files.job_arguments(chosen, "style.png")
    assert whole[:6] == ["scene.ply", "style.png", "--output", "out", "--cameras", "cameras.json"]
    assert whole[6:] == settings.arguments(chosen)
    part = job_files.job_arguments(chosen, "style.jpg", region=True)
    assert part[:8] == ["scene.ply", "style.jpg", "--output", "out", "--cameras", "cameras.json", "--region",
                        "region.npy"]


def test_the_region_file_is_a_float32_npy_array(tmp_path: Path) -> None:
    job_files.write_region(tmp_path / "region.npy", np.array([0.0, 0.25, 1.0]))
    read = np.load(tmp_path / "region.npy", allow_pickle=False)
    assert read.dtype == np.float32 and read.tolist() == [0.0, 0.25, 1.0]


def test_new_folders_are_fresh_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    folders = [job_files.new_job_folder(root) for _ in range(5)]
    assert len(set(folders)) == 5 and all(f.is_dir() and f.name.startswith("job_") for f in folders)
    for age, folder in enumerate(reversed(folders)):  # the last made is the newest
        os.utime(folder, (1_000_000 - age, 1_000_000 - age))
    (root / "not_a_job").mkdir()
    job_files.prune_jobs(root, keep=2)
    assert sorted(p.name for p in root.iterdir()) == sorted([folders[-1].name, folders[-2].name, "not_a_job"])
    job_files.prune_jobs(tmp_path / "never_made")  # nothing to prune
