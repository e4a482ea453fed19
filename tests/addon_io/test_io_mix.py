"""Mix (blender_addon/io/mix.py), on plain numpy: which capture values a result keeps (each row its origin row's),
reading the engine's origin.npy, and the blend the viewport, the render engine and export show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from addon_package import load_addon

addon = load_addon()
mix = addon.io.mix
InputError = addon.interchange.errors.InputError
NAMES = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(9)), "opacity", "scale_0"]


def columns(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=count).astype(np.float32) for name in NAMES}


def test_each_result_row_keeps_its_origin_rows_capture_colours() -> None:
    """With detail a split Gaussian's children carry their parent's capture values; only changed groups are kept,
    the DC colour always."""
    capture = columns(4, seed=1)
    origin = np.array([0, 1, 2, 3, 1, 1])  # rows 4 and 5 are children of row 1
    result = {name: values[origin].copy() for name, values in capture.items()}
    for name in ("f_dc_0", "f_dc_1", "f_dc_2", "f_rest_4"):
        result[name] = result[name] + 0.5
    kept = mix.capture_columns(capture, result, origin)
    assert sorted(kept) == sorted(["f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(9))])
    for name, values in kept.items():
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, capture[name][origin], err_msg=name)
    assert mix.MixLayout.of(kept) == mix.MixLayout(rest=3, opacity=False)
    result["opacity"] = result["opacity"] - 1.0
    assert mix.MixLayout.of(mix.capture_columns(capture, result, origin)).opacity


def test_mix_blends_kept_columns_and_is_exact_at_one() -> None:
    capture = columns(5, seed=2)
    result = {name: values + 1.0 for name, values in capture.items()}
    kept = mix.capture_columns(capture, result, np.arange(5))
    assert mix.mixed_columns(result, kept, 1.0) == result  # the same arrays: bit for bit
    at_zero = mix.mixed_columns(result, kept, 0.0)
    half = mix.mixed_columns(result, kept, 0.5)
    double = mix.mixed_columns(result, kept, 2.0)
    for name in NAMES:
        if name in kept:
            np.testing.assert_array_equal(at_zero[name], capture[name])
            np.testing.assert_allclose(half[name], capture[name] + 0.5, atol=1e-6)
            np.testing.assert_allclose(double[name], capture[name] + 2.0, atol=1e-6)
        else:  # positions, scales: the result's, untouched
            assert half[name] is result[name]
    np.testing.assert_array_equal(mix.mixed_columns(result, kept, 7.0)["f_dc_0"], double["f_dc_0"])  # clamped to 2


def test_origin_files(tmp_path: Path) -> None:
    path = tmp_path / "origin.npy"
    assert mix.read_origin(path, 3, 3).tolist() == [0, 1, 2]  # an engine from before origin.npy, no detail
    assert mix.read_origin(path, 3, 5) is None  # ... with detail: no Mix, rather than a wrong one
    np.save(path, np.array([0, 2, 2, 1], np.int32))
    assert mix.read_origin(path, 3, 4).tolist() == [0, 2, 2, 1]
    with pytest.raises(InputError, match=r"origin\.npy: expected 5 whole numbers"):
        mix.read_origin(path, 3, 5)
    with pytest.raises(InputError, match=r"origin\.npy: rows outside the input's 0\.\.1"):
        mix.read_origin(path, 2, 4)
    np.save(path, np.zeros(4, np.float32))
    with pytest.raises(InputError, match=r"origin\.npy: expected 4 whole numbers"):
        mix.read_origin(path, 3, 4)
    path.write_bytes(b"not an array")
    with pytest.raises(InputError, match=r"origin\.npy: not a readable NumPy array"):
        mix.read_origin(path, 3, 4)
