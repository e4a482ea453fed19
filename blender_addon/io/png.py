"""8-bit RGBA PNG files written with the standard library (zlib), atomically; no Blender image data-block."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..interchange.atomic import write_atomically

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG of uint8 RGBA [H, W, 4], top row first (sRGB, straight alpha)."""
    height, width, _ = rgba.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgba.reshape(height, width * 4)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (SIGNATURE + chunk(b"IHDR", header) + chunk(b"sRGB", b"\x00")
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def write_png(path: Path, rgba: np.ndarray) -> None:
    """Write uint8 RGBA [H, W, 4] to path atomically."""
    data = png_bytes(np.ascontiguousarray(rgba, dtype=np.uint8))
    write_atomically(path, lambda handle: handle.write(data))
