"""The stylization loop on CPU: identity, loss reduction, cancellation, checkpoint/resume, settings."""

import numpy as np
import pytest
import torch

from core.cameras import orbit_cameras
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.stylize import StylizeSettings, render_views, stylize

RES = 64


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=1200, seed=1)


@pytest.fixture(scope="module")
def one_camera(scene):
    return orbit_cameras(scene.means(), scene.opacity_logits(), count=1, elevations_deg=(25.0,), width=RES,
                         height=RES)


def settings(**kw) -> StylizeSettings:
    base = dict(iterations=4, resolution=RES, device="cpu", learning_rate=0.02)
    return StylizeSettings(**{**base, **kw})


def test_identity_style_equal_to_content_leaves_colours_unchanged(scene, one_camera):
    content = render_views(scene, one_camera, resolution=RES, device="cpu")[0]
    result = stylize(scene, content, one_camera, settings(iterations=10))
    assert result.history[0]["total"] < 1e-6
    assert max(h["style"] for h in result.history) < 1e-6
    assert np.abs(result.splat.sh_dc() - scene.sh_dc()).max() < 1e-3


def test_short_run_halves_the_style_loss(scene, one_camera):
    result = stylize(scene, demo_style(128), one_camera, settings(iterations=60, learning_rate=0.03))
    first, last = result.history[0]["style"], result.history[-1]["style"]
    assert last <= 0.5 * first, (first, last)
    assert not np.array_equal(result.splat.sh_dc(), scene.sh_dc())
    assert np.array_equal(result.splat.means(), scene.means())
    assert np.array_equal(result.splat.opacity_logits(), scene.opacity_logits())


def test_optimize_choices_touch_only_their_parameters(scene, one_camera):
    colour_only = stylize(scene, demo_style(96), one_camera, settings(iterations=2, optimize="color"))
    assert np.array_equal(colour_only.splat.sh_rest(), scene.sh_rest())
    with_sh = stylize(scene, demo_style(96), one_camera, settings(iterations=2, optimize="sh"))
    assert not np.array_equal(with_sh.splat.sh_rest(), scene.sh_rest())
    assert np.array_equal(with_sh.splat.opacity_logits(), scene.opacity_logits())
    with_opacity = stylize(scene, demo_style(96), one_camera, settings(iterations=2, optimize="sh+opacity"))
    assert not np.array_equal(with_opacity.splat.opacity_logits(), scene.opacity_logits())


def test_progress_events_and_cooperative_cancel(scene, one_camera):
    events = []
    result = stylize(scene, demo_style(96), one_camera, settings(iterations=50),
                     progress=events.append, should_stop=lambda: len(events) >= 3)
    assert result.cancelled
    assert [e["iteration"] for e in events] == [1, 2, 3]
    assert {"style", "content", "total", "it_per_s", "eta_s", "iterations"} <= set(events[0])


def test_checkpoint_resume_matches_an_uninterrupted_run(scene, one_camera, tmp_path, one_thread):
    ckpt = tmp_path / "checkpoint.pt"
    s = settings(iterations=6, checkpoint_every=3)
    calls = []
    partial = stylize(scene, demo_style(96), one_camera, s, checkpoint_path=ckpt,
                      should_stop=lambda: calls.append(1) or len(calls) > 4)
    assert partial.cancelled and ckpt.is_file()
    resumed = stylize(scene, demo_style(96), one_camera, s, checkpoint_path=ckpt)
    straight = stylize(scene, demo_style(96), one_camera, settings(iterations=6))
    assert [h["iteration"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(resumed.splat.sh_dc(), straight.splat.sh_dc(), atol=1e-6)


def test_checkpoint_from_other_settings_is_refused(scene, one_camera, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    stylize(scene, demo_style(96), one_camera, settings(iterations=2, checkpoint_every=1), checkpoint_path=ckpt)
    with pytest.raises(InputError, match="other settings"):
        stylize(scene, demo_style(96), one_camera, settings(iterations=2, checkpoint_every=1, seed=5),
                checkpoint_path=ckpt)


def test_preview_callback_gets_images(scene, one_camera):
    previews = []
    stylize(scene, demo_style(96), one_camera, settings(iterations=4, preview_every=2),
            preview=lambda i, im: previews.append((i, im.shape)))
    assert previews == [(2, torch.Size([RES, RES, 3])), (4, torch.Size([RES, RES, 3]))]


@pytest.mark.parametrize("field,value", [("iterations", -1), ("learning_rate", 0.0), ("resolution", 8),
                                         ("optimize", "geometry"), ("background", (2.0, 0.0, 0.0))])
def test_bad_settings_are_refused_with_their_name(scene, one_camera, field, value):
    with pytest.raises(InputError, match="settings:"):
        stylize(scene, demo_style(64), one_camera, settings(**{field: value}))


def test_no_cameras_is_an_input_error(scene):
    with pytest.raises(InputError, match="no cameras"):
        stylize(scene, demo_style(64), [], settings())
