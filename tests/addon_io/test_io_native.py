"""Blender 5.3 native splat attributes <-> raw 3DGS values (blender_addon/io/native.py), on plain numpy.

Blender's own conversion is written out here independently, from the conventions note: radiance:base
= (f_dc, sigmoid(opacity)), scale = exp, rotation = normalised, radiance:sh_<i> = (f_rest[i], f_rest[K+i],
f_rest[2K+i]), computed in float32 as Blender does (so logits above ~16.6 give exactly 1.0, below ~-88 exactly
0.0). Opacities and scales can only come back to the precision float32 gave them: the bounds below are that
precision (the float32 sigmoid or exp is within 3 units in the last place of the stored value, carried through
the derivative of logit or log, plus the result's own rounding), not a tolerance chosen to pass. Blender's
actual values are checked against the same bounds in tests/blender/test_blender_native.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from addon_package import load_addon

native = load_addon().io.native


def columns_of(count: int, degree: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(0, 0.7, count).astype(np.float32) for name in native.inria_names(degree)}
    columns.update({n: np.zeros(count, np.float32) for n in ("nx", "ny", "nz")})
    columns["opacity"] = rng.uniform(-12, 14, count).astype(np.float32)
    columns.update({f"scale_{i}": rng.uniform(-9, 1, count).astype(np.float32) for i in range(3)})
    return columns


def as_blender_stores(columns: dict[str, np.ndarray], degree: int):
    """What Blender 5.3's PLY importer makes of columns (float32, activated), as native.NativeSplats."""
    k = (degree + 1) ** 2 - 1
    with np.errstate(over="ignore"):
        alpha = np.float32(1) / (np.float32(1) + np.exp(-columns["opacity"].astype(np.float32)))
        scale = np.exp(np.stack([columns[f"scale_{i}"] for i in range(3)], axis=1).astype(np.float32))
    quats = np.stack([columns[f"rot_{i}"] for i in range(4)], axis=1).astype(np.float64)
    return native.NativeSplats(
        position=np.stack([columns[c] for c in "xyz"], axis=1),
        base=np.concatenate([np.stack([columns[f"f_dc_{i}"] for i in range(3)], axis=1), alpha[:, None]], axis=1),
        scale=scale,
        rotation=(quats / np.linalg.norm(quats, axis=1, keepdims=True)).astype(np.float32),
        sh=tuple(np.stack([columns[f"f_rest_{c * k + i}"] for c in range(3)], axis=1) for i in range(k)))


def ulp(values: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(values.astype(np.float32))).astype(np.float64)


def opacity_bound(alpha: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """How far a recovered logit can be from the original: 3 ulp of the float32 alpha through d logit / d alpha
    = 1 / (alpha (1 - alpha)), plus the logit's own float32 rounding."""
    a = alpha.astype(np.float64)
    return 3 * ulp(alpha) / (a * (1 - a)) + ulp(logits)


def scale_bound(scale: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """The same for a log scale: 3 ulp of the float32 scale through d log / d scale = 1 / scale."""
    return 3 * ulp(scale) / scale.astype(np.float64) + ulp(log_scale)


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_raw_values_come_back_from_what_blender_stores(degree: int) -> None:
    columns = columns_of(500, degree, seed=degree)
    stored = as_blender_stores(columns, degree)
    recovered = native.raw_from_native(stored)
    assert list(recovered.columns) == native.inria_names(degree) and recovered.sh_degree == degree
    assert all(values.dtype == np.float32 for values in recovered.columns.values())
    exact = ["x", "y", "z"] + [f"f_dc_{i}" for i in range(3)]
    exact += [f"f_rest_{i}" for i in range(3 * ((degree + 1) ** 2 - 1))]
    for name in exact:
        np.testing.assert_array_equal(recovered.columns[name], columns[name], err_msg=name)
    for name in ("nx", "ny", "nz"):
        np.testing.assert_array_equal(recovered.columns[name], 0.0)
    error = np.abs(recovered.columns["opacity"].astype(np.float64) - columns["opacity"])
    assert (error <= opacity_bound(stored.base[:, 3], columns["opacity"])).all()
    for i in range(3):
        error = np.abs(recovered.columns[f"scale_{i}"].astype(np.float64) - columns[f"scale_{i}"])
        assert (error <= scale_bound(stored.scale[:, i], columns[f"scale_{i}"])).all()
    for i in range(4):
        np.testing.assert_array_equal(recovered.columns[f"rot_{i}"], stored.rotation[:, i])
    assert recovered.opaque_saturated == recovered.transparent_saturated == recovered.scales_out_of_range == 0


def test_native_values_are_the_layout_blender_imports() -> None:
    """native_values (what this add-on's own objects carry) equals Blender's import of the same columns."""
    columns = columns_of(300, 3, seed=9)
    values = native.native_values(columns, 3)
    stored = as_blender_stores(columns, 3)
    assert sorted(values) == sorted([native.RADIANCE_BASE] + [native.sh_attribute(i) for i in range(15)])
    np.testing.assert_array_equal(values[native.RADIANCE_BASE][:, :3], stored.base[:, :3])
    np.testing.assert_allclose(values[native.RADIANCE_BASE][:, 3], stored.base[:, 3], rtol=0, atol=2 ** -23)
    for i in range(15):
        np.testing.assert_array_equal(values[native.sh_attribute(i)], stored.sh[i])
    np.testing.assert_array_equal(values[native.sh_attribute(4)][:, 2], columns["f_rest_34"])  # B of coefficient 4


def test_saturated_values_stay_finite_and_are_counted() -> None:
    columns = columns_of(6, 1)
    columns["opacity"][:] = [40.0, 16.7, 0.0, -95.0, -120.0, 3.0]
    columns["scale_1"][:4] = [-110.0, 100.0, 0.0, -2.0]
    stored = as_blender_stores(columns, 1)
    assert stored.base[:2, 3].tolist() == [1.0, 1.0] and stored.base[3:5, 3].tolist() == [0.0, 0.0]
    assert np.isinf(stored.scale[1, 1]) and stored.scale[0, 1] == 0.0
    recovered = native.raw_from_native(stored)
    assert all(np.isfinite(values).all() for values in recovered.columns.values())
    assert (recovered.opaque_saturated, recovered.transparent_saturated, recovered.scales_out_of_range) == (2, 2, 2)
    opacity = recovered.columns["opacity"]
    assert 16.0 < opacity[0] == opacity[1] < 17.0 and opacity[3] == opacity[4] < -80.0
    np.testing.assert_allclose(opacity[[2, 5]], [0.0, 3.0], atol=1e-6)
    assert recovered.columns["scale_1"][0] < -80 and recovered.columns["scale_1"][1] > 80
    assert recovered.columns["scale_1"][3] == pytest.approx(-2.0, abs=1e-6)


def test_the_warning_names_every_loss_once() -> None:
    columns = columns_of(5, 0)
    columns["opacity"][:3] = [30.0, 25.0, -200.0]
    text = native.loss_warning("scan", native.raw_from_native(as_blender_stores(columns, 0)))
    assert text.startswith("scan is a Blender Gaussian splat") and "\n" not in text
    assert "2 opacities saturated to 1.0" in text and "1 opacities of 0.0" in text
    assert "normals" in text and "quaternion" in text and "scales outside" not in text
    clean = native.loss_warning("scan", native.raw_from_native(as_blender_stores(columns_of(5, 0), 0)))
    assert "saturated" not in clean and "normals" in clean


def test_the_header_is_the_inria_layout() -> None:
    text = native.inria_header(7, 1)
    lines = text.splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 7"] and lines[-1] == "end_header"
    names = [line.split()[2] for line in lines if line.startswith("property float ")]
    assert names == native.inria_names(1) and len(names) == 3 + 3 + 3 + 9 + 1 + 3 + 4
    assert text.endswith("end_header\n")


def test_the_column_order_is_the_reference_implementations() -> None:
    """The Inria order, spelled out here independently of interchange's vocabulary: position, normals, DC, the
    channel-major rest, opacity, scales, rotation."""
    assert native.inria_names(0) == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    with_rest = native.inria_names(2)
    assert with_rest[9:33] == [f"f_rest_{i}" for i in range(24)] and with_rest[33] == "opacity"
