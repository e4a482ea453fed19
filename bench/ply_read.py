"""Benchmark: read a synthetic 1M-Gaussian 3DGS PLY (SH degree 3, 62 float32 properties) with interchange.ply.read_ply.

Usage: python bench/ply_read.py [--count N] [--repeats R]
Times are best of R. "cold" evicts the file from the OS page cache first (posix_fadvise DONTNEED, Linux);
"warm" reads it from the page cache. Two references are timed the same way: plyfile without memory
mapping plus a copy into memory (the engine's first design), and numpy reading the raw vertex bytes (the
floor for any reader that copies the data). plyfile without memory mapping reads vertex by vertex in Python
(about 48 s for 1M Gaussians on 2 cores), so it is left out. plyfile is needed for the reference only (it is no
longer a dependency of the engine): pip install plyfile.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from plyfile import PlyData

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interchange.ply import make_splat_data, read_ply, write_ply  # noqa: E402


def synthetic_scene_file(folder: Path, count: int) -> Path:
    """Write ``count`` random SH-degree-3 Gaussians to ``folder``/scene.ply."""
    rng = np.random.default_rng(0)
    data = make_splat_data(
        means=rng.normal(size=(count, 3)).astype(np.float32),
        quats=rng.normal(size=(count, 4)).astype(np.float32),
        log_scales=rng.normal(-4.0, 1.0, size=(count, 3)).astype(np.float32),
        opacity=rng.normal(size=count).astype(np.float32),
        sh_dc=rng.normal(size=(count, 3)).astype(np.float32),
        sh_rest=rng.normal(0.0, 0.1, size=(count, 15, 3)).astype(np.float32),
    )
    path = folder / "scene.ply"
    write_ply(path, data)
    return path


def evict_from_page_cache(path: Path) -> bool:
    """Drop the file's pages from the OS cache so the next read comes from disk; False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)
    return True


def best_time(read: Callable[[Path], object], path: Path, repeats: int, cold: bool) -> float:
    """Shortest wall time of ``repeats`` calls of ``read(path)``."""
    times = []
    for _ in range(repeats):
        if cold:
            evict_from_page_cache(path)
        start = time.perf_counter()
        read(path)
        times.append(time.perf_counter() - start)
    return min(times)


def read_plyfile_mmap_copy(path: Path) -> np.ndarray:
    """Reference: plyfile's memory map copied into memory (page faults dominate)."""
    return np.array(PlyData.read(path, mmap="r")["vertex"].data)


def read_raw_body(path: Path) -> np.ndarray:
    """Floor: numpy reading the vertex bytes after a known header (no parsing, no checks)."""
    with open(path, "rb") as stream:
        while stream.readline().strip() != b"end_header":
            pass
        return np.fromfile(stream, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    readers = {"interchange.ply.read_ply": read_ply, "plyfile mmap + copy (reference)": read_plyfile_mmap_copy,
               "numpy raw body (floor)": read_raw_body}
    with tempfile.TemporaryDirectory() as folder:
        path = synthetic_scene_file(Path(folder), args.count)
        data = read_ply(path)
        print(f"{data.count:,} Gaussians, SH degree {data.sh_degree}, {len(data.vertices.dtype.names)} properties, "
              f"{path.stat().st_size / 2**20:.0f} MiB; best of {args.repeats}; {os.cpu_count()} CPU cores")
        cold_supported = evict_from_page_cache(path)
        print("| reader | cold (s) | warm (s) |\n| --- | --- | --- |")
        for name, read in readers.items():
            cold = best_time(read, path, args.repeats, cold=True) if cold_supported else float("nan")
            warm = best_time(read, path, args.repeats, cold=False)
            print(f"| {name} | {cold:.3f} | {warm:.3f} |")


if __name__ == "__main__":
    main()
