"""Regions: the region file formats and their one-line errors, and a stylization that leaves unselected Gaussians."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from core import regions
from core.cameras import orbit_cameras
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.gaussians import Gaussians
from core.renderer import render
from core.stylization import StylizeSettings, stylize


def test_region_file_formats(tmp_path):
    values = np.array([0.0, 0.25, 1.0, 0.5], dtype=np.float32)
    np.save(tmp_path / "column.npy", values[:, None])
    np.save(tmp_path / "mask.npy", np.array([True, False, True, True]))
    (tmp_path / "weights.txt").write_text("# one per Gaussian\n0\n0.25\n\n1\n0.5\n")
    np.testing.assert_array_equal(regions.load_region(tmp_path / "column.npy", 4), values)
    np.testing.assert_array_equal(regions.load_region(tmp_path / "mask.npy", 4), [1, 0, 1, 1])
    np.testing.assert_array_equal(regions.load_region(tmp_path / "weights.txt", 4), values)
    assert regions.load_region(tmp_path / "weights.txt", 4).dtype == np.float32


@pytest.mark.parametrize("name,content,message", [
    ("short.txt", "0\n1\n", "has 2 values but the scene has 4 Gaussians"),
    ("range.txt", "0\n1\n1.5\n0\n", "value 2 is 1.5"),
    ("nan.txt", "0\nnan\n1\n0\n", "value 1 is nan"),
    ("words.txt", "0\nhalf\n1\n0\n", "line 2 is not a number"),
    ("bad.npy", "not an array", "not a readable .npy array"),
    ("missing.txt", None, "no such region file"),
])
def test_bad_region_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as error:
        regions.load_region(path, 4)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_matrix_region_is_refused(tmp_path):
    np.save(tmp_path / "matrix.npy", np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"shape \(4, 2\)"):
        regions.load_region(tmp_path / "matrix.npy", 4)


def test_blend_takes_each_gaussians_share_of_the_change():
    g = Gaussians.from_splat_data(demo_scene(count=6, seed=2))
    changed = Gaussians.from_sh(g.means, g.quats, g.log_scales, g.opacity + 1.0, g.sh + 2.0)
    weights = torch.tensor([0.0, 1.0, 0.5, 0.0, 1.0, 0.25])
    mixed = regions.blend(g, changed, weights)
    assert torch.equal(mixed.sh[0], g.sh[0]) and torch.equal(mixed.opacity[3], g.opacity[3])
    torch.testing.assert_close(mixed.sh - g.sh, 2.0 * weights[:, None, None].expand_as(g.sh))
    torch.testing.assert_close(mixed.opacity - g.opacity, weights)


def test_selection_coverage_is_alpha_where_everything_is_selected():
    scene = demo_scene(count=300, seed=3)
    g = Gaussians.from_splat_data(scene)
    cam = orbit_cameras(scene.means(), scene.opacity(), count=1, width=32, height=32)[0]
    viewmat, K = torch.as_tensor(cam.viewmat, dtype=torch.float32), torch.as_tensor(cam.K(), dtype=torch.float32)
    alpha = render(g, viewmat, K, 32, 32).alpha
    everything = render(regions.coverage_colours(g, torch.ones(g.count)), viewmat, K, 32, 32).image
    torch.testing.assert_close(everything, alpha.expand(-1, -1, 3), atol=1e-5, rtol=0)
    nothing = render(regions.coverage_colours(g, torch.zeros(g.count)), viewmat, K, 32, 32).image
    assert float(nothing.abs().max()) == 0.0


@pytest.mark.slow
def test_unselected_gaussians_keep_their_colours():
    scene = demo_scene(count=900, seed=1)
    cams = orbit_cameras(scene.means(), scene.opacity(), count=1, elevations_deg=(25.0,), width=48, height=48)
    sphere = scene.count * 2 // 3  # demo_scene: the sphere's Gaussians first, then the ground disc's
    region = np.zeros(scene.count, dtype=np.float32)
    region[:sphere] = 1.0
    settings = StylizeSettings(iterations=6, resolution=48, device="cpu", learning_rate=0.05, optimize="sh+opacity")
    result = stylize(scene, demo_style(64), cams, settings, region=region)
    assert np.array_equal(result.splat.sh_dc()[sphere:], scene.sh_dc()[sphere:])
    assert np.array_equal(result.splat.sh_rest()[sphere:], scene.sh_rest()[sphere:])
    assert np.array_equal(result.splat.opacity()[sphere:], scene.opacity()[sphere:])
    assert np.abs(result.splat.sh_dc()[:sphere] - scene.sh_dc()[:sphere]).max() > 0.05
    with pytest.raises(InputError, match="region: need 900 values"):
        stylize(scene, demo_style(64), cams, settings, region=region[:-1])


@pytest.mark.slow
def test_detail_inside_a_region_splits_and_moves_only_the_selected_gaussians(tmp_path):
    """With detail on, only selected Gaussians are split and reshaped: every unselected row comes back bit for bit
    (colours, opacity and geometry), once each; a resumed run after a split ends where an uninterrupted one does."""
    scene = demo_scene(count=900, seed=1)
    cams = orbit_cameras(scene.means(), scene.opacity(), count=2, width=48, height=48)
    sphere = scene.count * 2 // 3
    region = np.zeros(scene.count, dtype=np.float32)
    region[:sphere] = 1.0
    settings = StylizeSettings(iterations=6, resolution=48, device="cpu", learning_rate=0.05, detail=1.0,
                               densify_every=2)
    result = stylize(scene, demo_style(64), cams, settings, region=region)
    assert result.splat.count > scene.count
    out_rows = [row.tobytes() for row in result.splat.vertices]
    for row in scene.vertices[sphere:]:
        assert out_rows.count(row.tobytes()) == 1
    inside = {row.tobytes() for row in scene.vertices[:sphere]}
    assert sum(row in inside for row in out_rows) < sphere // 2  # most selected rows were recoloured or moved

    checkpoint = tmp_path / "run.pt"
    stopped = stylize(scene, demo_style(64), cams, replace(settings, checkpoint_every=1), region=region,
                      checkpoint_path=checkpoint, should_stop=iter([False] * 3 + [True] * 9).__next__)
    assert stopped.cancelled and stopped.splat.count > scene.count  # stopped after the split at 2
    resumed = stylize(scene, demo_style(64), cams, replace(settings, checkpoint_every=1), region=region,
                      checkpoint_path=checkpoint)
    assert resumed.splat.count == result.splat.count
    for name in ("means", "sh_dc", "log_scales"):
        np.testing.assert_allclose(getattr(resumed.splat, name)(), getattr(result.splat, name)(), atol=1e-5,
                                   err_msg=name)
