"""A splat object's attribute names and values (blender_addon/io/attributes.py), on plain numpy: how raw PLY
properties are stored and the display values derived from them."""

from __future__ import annotations

import numpy as np
import pytest

from addon_package import load_addon

addon = load_addon()
attributes = addon.io.attributes
C0 = 0.28209479177387814  # the degree-0 SH constant, 1 / (2 sqrt(pi))


def test_properties_that_would_collide_with_blenders_names_are_stored_with_a_prefix() -> None:
    renamed = {name: attributes.attribute_name(name)
               for name in ("opacity", "position", "scale", "rotation", "color", "ply_x", "radiance:base")}
    assert renamed == {name: f"ply_{name}" for name in renamed}
    kept = ["x", "f_dc_0", "f_rest_44", "scale_0", "rot_3", "nx", "segment_id", "opacity_2"]
    assert [attributes.attribute_name(name) for name in kept] == kept


def test_a_property_name_too_long_for_blender_is_refused_naming_the_file() -> None:
    attributes.check_attribute_names(["a" * attributes.MAX_NAME_LENGTH], "scene.ply")
    with pytest.raises(addon.interchange.errors.InputError, match=r"^scene\.ply: vertex property name 'aaaa"):
        attributes.check_attribute_names(["x", "a" * (attributes.MAX_NAME_LENGTH + 1)], "scene.ply")


def test_display_values_are_the_activated_raw_values() -> None:
    raw = {"opacity": np.array([0.0, 100.0, -100.0], np.float32),
           "f_dc_0": np.array([0.0, 1.0, -5.0], np.float32), "f_dc_1": np.zeros(3, np.float32),
           "f_dc_2": np.full(3, 0.5, np.float32),
           "scale_0": np.log(np.array([1.0, 2.0, 0.5], np.float32)), "scale_1": np.zeros(3, np.float32),
           "scale_2": np.zeros(3, np.float32),
           "rot_0": np.array([2.0, 0.0, 0.0], np.float32), "rot_1": np.array([0.0, 3.0, 0.0], np.float32),
           "rot_2": np.zeros(3, np.float32), "rot_3": np.array([0.0, 4.0, 0.0], np.float32)}
    values = attributes.display_values(raw)
    assert all(array.dtype == np.float32 for array in values.values())
    np.testing.assert_allclose(values["opacity"], [0.5, 1.0, 0.0], atol=1e-7)  # no overflow at |logit| 100
    np.testing.assert_allclose(values["scale"][:, 0], [1.0, 2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(values["rotation"], [[1, 0, 0, 0], [0, 0.6, 0, 0.8], [1, 0, 0, 0]], atol=1e-7)
    expected_red = np.maximum(0.5 + C0 * np.array([0.0, 1.0, -5.0]), 0.0)  # clamped at 0 like the rasterizer
    np.testing.assert_allclose(values["color"][:, 0], expected_red, rtol=1e-6)
    np.testing.assert_allclose(values["color"][:, 2], 0.5 + C0 * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(values["color"][:, 3], values["opacity"])


def test_attribute_values_keep_every_integer_bit_and_float32() -> None:
    """uint32 is stored as int32 with the same bits, so export restores it exactly; other types as Blender
    holds them (float32, int32)."""
    big = np.array([0, 1, 2 ** 31, 2 ** 32 - 1], np.uint32)
    stored = attributes.to_attribute_values(big)
    assert stored.dtype == np.int32 and stored.view(np.uint32).tolist() == big.tolist()
    assert attributes.to_attribute_values(np.array([-3, 7], np.int16)).dtype == np.int32
    assert attributes.to_attribute_values(np.array([0.1], np.float64)).dtype == np.float32
    assert [attributes.raw_attribute_type(np.dtype(t)) for t in ("<f4", "<f8", "<u4", "i1")] == \
        ['FLOAT', 'FLOAT', 'INT', 'INT']
