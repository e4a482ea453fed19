"""core.gaussians: tensors from a PLY scene and back, exactly, with SH in gsplat's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.lib import recfunctions

from core.gaussians import Gaussians
from interchange.ply import SplatData, make_splat_data, read_ply, write_ply


def hand_made_scene(count: int = 5, degree: int = 2) -> SplatData:
    """A scene whose every SH value says where it lives: f_dc_c = 100 n + c, f_rest_i = 1000 n + i; plus an id."""
    coefficients = (degree + 1) ** 2 - 1
    rows = np.arange(count, dtype=np.float32)[:, None]
    data = make_splat_data(
        means=rows + np.array([0.1, 0.2, 0.3], np.float32),
        quats=np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (count, 1)),
        log_scales=np.full((count, 3), -2.0, np.float32),
        opacity=np.linspace(-1.0, 1.0, count, dtype=np.float32),
        sh_dc=100.0 * rows + np.arange(3, dtype=np.float32),
        sh_rest=np.zeros((count, coefficients, 3), np.float32),
    )
    table = recfunctions.append_fields(data.vertices, "id", np.arange(count, dtype="<u4"), usemask=False)
    for i in range(3 * coefficients):
        table[f"f_rest_{i}"] = 1000.0 * rows[:, 0] + i
    return SplatData.from_table(table)


def test_sh_is_coefficient_major_with_channels_last() -> None:
    gaussians = Gaussians.from_splat_data(hand_made_scene(degree=2))
    assert gaussians.sh.shape == (5, 9, 3) and gaussians.sh.dtype == torch.float32
    assert gaussians.sh_degree == 2
    assert gaussians.sh[3, 0, 2].item() == 302.0  # f_dc_2 of row 3
    # coefficient k >= 1 of channel c is f_rest[c * 8 + k - 1]
    assert gaussians.sh[3, 4, 1].item() == 3000.0 + 1 * 8 + 3
    assert gaussians.sh[0, 8, 2].item() == 2 * 8 + 7


def test_tensors_hold_the_ply_columns() -> None:
    data = hand_made_scene()
    gaussians = Gaussians.from_splat_data(data)
    assert torch.equal(gaussians.means, torch.from_numpy(data.means()))
    assert torch.equal(gaussians.quats[:, 0], torch.ones(5))
    assert torch.equal(gaussians.log_scales, torch.full((5, 3), -2.0))
    assert torch.equal(gaussians.opacity, torch.from_numpy(data.vertices["opacity"].copy()))


def test_round_trip_of_unchanged_tensors_is_exact(tmp_path: Path) -> None:
    data = hand_made_scene(degree=3)
    written = tmp_path / "scene.ply"
    write_ply(written, data)
    template = read_ply(written)
    back = Gaussians.from_splat_data(template).to_splat_data(template)
    assert back.vertices.tobytes() == template.vertices.tobytes()
    assert back.vertices.dtype == template.vertices.dtype


def test_changed_sh_and_opacity_land_in_the_right_ply_columns() -> None:
    data = hand_made_scene(degree=1)
    gaussians = Gaussians.from_splat_data(data)
    sh, opacity = gaussians.sh.clone(), gaussians.opacity.clone()
    sh[2, 0, 1] = -1.0   # DC of green -> f_dc_1
    sh[2, 3, 0] = -2.0   # coefficient 3 of red -> f_rest[0 * 3 + 2]
    sh[4, 1, 2] = -3.0   # coefficient 1 of blue -> f_rest[2 * 3 + 0]
    opacity[1] = 7.0
    gaussians.opacity = opacity
    out = gaussians.with_sh(sh).to_splat_data(data)
    table = out.vertices
    assert table["f_dc_1"][2] == -1.0 and table["f_rest_2"][2] == -2.0 and table["f_rest_6"][4] == -3.0
    assert table["opacity"][1] == 7.0
    changed = {name for name in table.dtype.names if table[name].tobytes() != data.vertices[name].tobytes()}
    assert changed == {"f_dc_1", "f_rest_2", "f_rest_6", "opacity"}


def test_moving_gaussians_does_not_change_the_written_positions() -> None:
    data = hand_made_scene(degree=0)
    gaussians = Gaussians.from_splat_data(data)
    gaussians.means = gaussians.means + 1.0
    assert gaussians.to_splat_data(data).vertices.tobytes() == data.vertices.tobytes()


def test_real_scene_round_trips_exactly(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "scenes" / "guitar" / "point_cloud.ply"
    template = read_ply(source)
    gaussians = Gaussians.from_splat_data(template)
    assert gaussians.count == 90_854 and gaussians.sh.shape == (90_854, 1, 3)
    write_ply(tmp_path / "copy.ply", gaussians.to_splat_data(template))
    assert (tmp_path / "copy.ply").read_bytes() == source.read_bytes()
