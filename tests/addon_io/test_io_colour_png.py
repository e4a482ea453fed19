"""Colour between the worker and Blender, and PNG files (blender_addon/io/colour.py, io/png.py), on plain numpy.

The PNG files are read back here with the standard library alone (chunks, CRCs, zlib), so they are checked
against the format, not against the writer's own code.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from addon_package import load_addon

addon = load_addon()
colour, png = addon.io.colour, addon.io.png


def srgb_decode_reference(value: float) -> float:
    """IEC 61966-2-1, written out per value."""
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def test_the_srgb_curves_are_the_standards_and_invert_each_other() -> None:
    values = np.linspace(0.0, 1.0, 1001)
    linear = colour.srgb_to_linear(values)
    np.testing.assert_allclose(linear, [srgb_decode_reference(v) for v in values], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(colour.linear_to_srgb(linear), values, atol=1e-12)
    np.testing.assert_array_equal(colour.srgb_to_linear(np.array([-0.5, 1.5])), [0.0, 1.0])  # clipped first


def test_blender_pixels_are_linear_premultiplied_and_bottom_row_first() -> None:
    """A worker image (sRGB, premultiplied, top row first) as a render result's flat buffer."""
    rgba = np.zeros((2, 3, 4), np.float32)
    rgba[0, 0] = [0.25, 0.125, 0.0, 0.5]  # top-left: straight sRGB (0.5, 0.25, 0), alpha 0.5
    rgba[1, 2] = [1.0, 1.0, 1.0, 1.0]  # bottom-right: opaque white
    pixels = colour.blender_pixels(rgba).reshape(2, 3, 4)
    assert pixels.dtype == np.float32
    top_left = pixels[1, 0]  # rows flipped: the top row is last
    expected = [srgb_decode_reference(0.5) * 0.5, srgb_decode_reference(0.25) * 0.5, 0.0, 0.5]
    np.testing.assert_allclose(top_left, expected, rtol=1e-6)
    np.testing.assert_allclose(pixels[0, 2], [1.0, 1.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(pixels[0, 0], 0.0)


def test_png_pixels_are_straight_alpha_bytes_top_row_first() -> None:
    rgba = np.array([[[0.25, 0.125, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_array_equal(colour.png_pixels(rgba), [[[128, 64, 0, 128], [0, 0, 0, 0]]])


def read_png(path: Path) -> tuple[dict[bytes, bytes], np.ndarray]:
    """(chunks by type, RGBA rows) of an 8-bit RGBA PNG written without filters, checking every CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = body
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour_type, interlace) == (8, 6, 0)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + width * 4)
    assert (rows[:, 0] == 0).all()  # filter type None on every row
    return chunks, rows[:, 1:].reshape(height, width, 4)


def test_a_png_file_holds_the_pixels_and_says_srgb(tmp_path: Path) -> None:
    pixels = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)
    png.write_png(tmp_path / "view.png", pixels)
    chunks, read = read_png(tmp_path / "view.png")
    np.testing.assert_array_equal(read, pixels)
    assert list(chunks) == [b"IHDR", b"sRGB", b"IDAT", b"IEND"] and chunks[b"sRGB"] == b"\x00"


def test_a_png_that_cannot_be_written_leaves_nothing(tmp_path: Path) -> None:
    """Written atomically: a failure (here, a folder in the file's place) leaves no partial or temporary file."""
    (tmp_path / "view.png").mkdir()
    with pytest.raises(OSError):
        png.write_png(tmp_path / "view.png", np.zeros((1, 1, 4), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["view.png"] and (tmp_path / "view.png").is_dir()
