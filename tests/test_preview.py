"""Issue 22's instant preview: a colour-space WCT applied exactly to the SH coefficients, as a result (0 iterations)
and as the optimisation's start (init="preview")."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.cameras import orbit_cameras
from core.colour_transfer import ColourMoments, colour_map
from core.demo import demo_scene, demo_style
from core.gaussians import Gaussians
from core.preview import preview_colours
from core.renderer import render
from core.sh import C0
from core.stylization import StylizeSettings, stylize
from core.views import survey_cameras

RES = 40


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=600, seed=2)


@pytest.fixture(scope="module")
def cameras(scene):
    return orbit_cameras(scene.means(), scene.opacity(), count=3, width=RES, height=RES)


def view(g: Gaussians, camera) -> tuple[torch.Tensor, torch.Tensor]:
    out = render(g, torch.as_tensor(camera.viewmat, dtype=torch.float32),
                 torch.as_tensor(camera.K(), dtype=torch.float32), camera.width, camera.height, backend="torch")
    return out.image.double(), out.alpha.double()


def test_every_view_of_the_preview_is_the_captures_with_its_colours_mapped(scene, cameras):
    """Compositing is linear in the colours: a render of the preview is A·I + b·α of the capture's render I (black
    background), wherever no colour is clamped at 0."""
    capture = Gaussians.from_splat_data(scene)
    moments = ColourMoments()
    moments.add(view(capture, cameras[0])[0], view(capture, cameras[0])[1])
    painting = 0.25 + 0.5 * demo_style(48)
    dc, rest = preview_colours(capture, painting, moments)
    previewed = Gaussians(capture.means, capture.quats, capture.log_scales, capture.opacity, dc, rest)
    target = ColourMoments()
    target.add(painting)
    matrix, offset = colour_map(*moments.mean_covariance(), *target.mean_covariance())
    for camera in cameras:
        image, alpha = view(capture, camera)
        mapped, _ = view(previewed, camera)
        expected = image @ matrix.T + offset * alpha
        torch.testing.assert_close(mapped, expected, atol=2e-5, rtol=1e-4)


def test_the_preview_result_has_the_paintings_colour_statistics_over_the_object(scene, cameras):
    painting = 0.2 + 0.6 * demo_style(48)
    settings = StylizeSettings(iterations=0, init="preview", resolution=RES, device="cpu", statistics="object")
    result = stylize(scene, painting, cameras, settings)
    assert result.history == [] and result.splat.count == scene.count and result.statistics == "object"
    g = Gaussians.from_splat_data(result.splat)
    seen = ColourMoments()
    for camera in cameras:
        image, alpha = view(g, camera)  # 3 cameras of 40 px: the survey's
        covered = alpha >= 1e-3
        seen.add(image / alpha.clamp_min(1e-3), alpha * covered)  # the object's own colours, as the survey sees
    target = ColourMoments()
    target.add(painting)
    for got, want in zip(seen.mean_covariance(), target.mean_covariance()):
        torch.testing.assert_close(got, want, atol=2e-3, rtol=0.05)
    unchanged = {"x", "y", "z", "opacity", "scale_0", "rot_0"}
    for name in unchanged:
        assert np.array_equal(result.splat.vertices[name], scene.vertices[name])


def test_a_region_takes_the_preview_by_its_weight(scene, cameras):
    weights = np.zeros(scene.count, np.float32)
    weights[: scene.count // 2] = 1.0
    settings = StylizeSettings(iterations=0, init="preview", resolution=RES, device="cpu")
    result = stylize(scene, demo_style(48), cameras, settings, region=weights)
    kept = slice(scene.count // 2, None)
    assert np.array_equal(result.splat.sh_dc()[kept], scene.sh_dc()[kept])
    assert not np.allclose(result.splat.sh_dc()[: scene.count // 2], scene.sh_dc()[: scene.count // 2])


def test_zero_iterations_from_the_capture_return_the_capture(scene, cameras):
    result = stylize(scene, demo_style(48), cameras, StylizeSettings(iterations=0, init="capture", resolution=RES,
                                                                       device="cpu"))
    assert result.splat.vertices.tobytes() == scene.vertices.tobytes()


def test_init_preview_starts_the_optimisation_from_the_preview(scene, cameras):
    """One step of 1e-6 from init="preview" lands on the preview's colours (Adam moves each by at most the rate),
    while the content term is still measured against the capture."""
    painting = demo_style(48)
    common = dict(resolution=RES, device="cpu", learning_rate=1e-6, init="preview")
    preview = stylize(scene, painting, cameras, StylizeSettings(iterations=0, **common)).splat
    stepped = stylize(scene, painting, cameras, StylizeSettings(iterations=1, **common))
    np.testing.assert_allclose(stepped.splat.sh_dc(), preview.sh_dc(), atol=2e-6, rtol=0)
    assert not np.allclose(preview.sh_dc(), scene.sh_dc(), atol=1e-3)
    assert stepped.history[0]["content"] > 0  # the preview differs from the capture the content term compares with


def test_the_survey_spreads_over_fewer_cameras_than_it_may_render(cameras):
    """With fewer cameras than SURVEY_VIEWS every camera is surveyed once (each may be the only one that sees the
    scene); with more, they are spread evenly over the list."""
    assert [c.name for c in survey_cameras(cameras[:2], RES)] == [cameras[0].name, cameras[1].name]
    many = orbit_cameras(np.zeros((1, 3)), count=8, width=RES, height=RES)
    assert [c.name for c in survey_cameras(many, RES)] == [many[i].name for i in (0, 2, 4, 6)]


def test_a_preview_of_a_scene_no_survey_view_sees_is_the_capture_with_one_warning(scene, cameras):
    """Cameras that all look away: nothing to take colours from, so the preview start falls back to the capture and
    says so once, instead of failing."""
    away = [replace(c, viewmat=np.diag([-1.0, 1.0, -1.0, 1.0]) @ c.viewmat) for c in cameras]
    with pytest.warns(UserWarning, match="covers none of the start-up survey's views") as caught:
        result = stylize(scene, demo_style(48), away, StylizeSettings(iterations=0, resolution=RES, device="cpu"))
    assert len([w for w in caught if "survey" in str(w.message)]) == 1
    assert result.splat.vertices.tobytes() == scene.vertices.tobytes()


def test_the_previewed_base_colours_stay_in_the_displayable_range(scene, cameras):
    """A painting of wider contrast than the capture stretches its colours past [0, 1]; the preview keeps each
    Gaussian's base colour inside (where Blender's native splats and our engine agree)."""
    capture = Gaussians.from_splat_data(scene)
    moments = ColourMoments()
    moments.add(*view(capture, cameras[0]))
    painting = (demo_style(48) - 0.5) * 4 + 0.5  # far more contrast than any capture
    target = ColourMoments()
    target.add(painting)
    matrix, offset = colour_map(*moments.mean_covariance(), *target.mean_covariance())
    unclamped = (C0 * capture.sh_dc + 0.5) @ matrix.to(capture.sh_dc).T + offset.to(capture.sh_dc)
    assert unclamped.min() < 0 and unclamped.max() > 1
    base = C0 * preview_colours(capture, painting, moments)[0] + 0.5
    assert base.min() >= 0 and base.max() <= 1 + 1e-6
    torch.testing.assert_close(base, unclamped.clamp(0, 1))
