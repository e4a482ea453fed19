"""The stylization loop on CPU: identity, loss reduction, cancellation, checkpoint/resume, settings."""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.cameras import orbit_cameras
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.stylization import StylizeSettings, stylize
from core.views import render_views

RES = 64


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=1200, seed=1)


@pytest.fixture(scope="module")
def one_camera(scene):
    return orbit_cameras(scene.means(), scene.opacity(), count=1, elevations_deg=(25.0,), width=RES,
                         height=RES)


def settings(**kw) -> StylizeSettings:
    base = dict(iterations=4, resolution=RES, device="cpu", learning_rate=0.02)
    return StylizeSettings(**{**base, **kw})


@pytest.mark.slow
def test_identity_style_equal_to_content_leaves_colours_unchanged(scene, one_camera):
    """SGSST's loss at its optimum: from the capture, with content against the capture as it is. (A recoloured
    target equals the capture here only up to float64 round-off, which Adam's normalised steps would amplify.)"""
    content = render_views(scene, one_camera, resolution=RES, device="cpu")[0]
    result = stylize(scene, content, one_camera, settings(iterations=10, statistics="frame", init="capture",
                                                          content_colours="capture"))
    assert result.history[0]["total"] < 1e-6
    assert max(h["style"] for h in result.history) < 1e-6
    assert np.abs(result.splat.sh_dc() - scene.sh_dc()).max() < 1e-3


@pytest.mark.slow
def test_short_run_halves_the_style_loss(scene, one_camera):
    result = stylize(scene, demo_style(128), one_camera, settings(iterations=60, learning_rate=0.03))
    first, last = result.history[0]["style"], result.history[-1]["style"]
    assert last <= 0.5 * first, (first, last)
    assert not np.array_equal(result.splat.sh_dc(), scene.sh_dc())
    assert np.array_equal(result.splat.means(), scene.means())
    assert np.array_equal(result.splat.opacity(), scene.opacity())


@pytest.mark.slow
def test_optimize_choices_touch_only_their_parameters(scene, one_camera):
    """From the capture (the preview start maps every SH band, as a colour map does)."""
    colour_only = stylize(scene, demo_style(96), one_camera, settings(iterations=2, optimize="color", init="capture"))
    assert np.array_equal(colour_only.splat.sh_rest(), scene.sh_rest())
    with_sh = stylize(scene, demo_style(96), one_camera, settings(iterations=2, optimize="sh", init="capture"))
    assert not np.array_equal(with_sh.splat.sh_rest(), scene.sh_rest())
    assert np.array_equal(with_sh.splat.opacity(), scene.opacity())
    with_opacity = stylize(scene, demo_style(96), one_camera, settings(iterations=2, optimize="sh+opacity",
                                                                       init="capture"))
    assert not np.array_equal(with_opacity.splat.opacity(), scene.opacity())


def test_history_and_timings_hold_the_documented_keys(scene, one_camera):
    """stylize()'s docstring lists the keys of the history records and timings; they are what a run returns."""
    result = stylize(scene, demo_style(64), one_camera, settings(iterations=1))
    history_keys = {"iteration", "view", "gram", "mean", "std", "style", "content", "total", "gaussians"}
    timing_keys = {"total_s", "loop_s", "it_per_s", "densify_s"}  # + peak_gpu_mem_gib on CUDA
    assert set(result.history[0]) == history_keys and set(result.timings) == timing_keys
    for key in history_keys | timing_keys | {"peak_gpu_mem_gib"}:
        assert f"``{key}``" in stylize.__doc__, key
    assert all(section in stylize.__doc__ for section in ("Args:", "Returns:", "Example:"))


def test_progress_events_and_cooperative_cancel(scene, one_camera):
    events = []
    result = stylize(scene, demo_style(96), one_camera, settings(iterations=50),
                     progress=events.append, should_stop=lambda: len(events) >= 3)
    assert result.cancelled
    assert [e["iteration"] for e in events] == [1, 2, 3]
    assert {"style", "content", "total", "it_per_s", "eta_s", "iterations"} <= set(events[0])


@pytest.mark.slow
def test_checkpoint_resume_matches_an_uninterrupted_run(scene, one_camera, tmp_path, deterministic):
    ckpt = tmp_path / "checkpoint.pt"
    s = settings(iterations=6, checkpoint_every=3, optimize="sh+opacity")
    calls = []
    partial = stylize(scene, demo_style(96), one_camera, s, checkpoint_path=ckpt,
                      should_stop=lambda: calls.append(1) or len(calls) > 4)
    assert partial.cancelled and ckpt.is_file()
    resumed = stylize(scene, demo_style(96), one_camera, s, checkpoint_path=ckpt)
    straight = stylize(scene, demo_style(96), one_camera, settings(iterations=6, optimize="sh+opacity"))
    assert [h["iteration"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert resumed.history == straight.history
    for column in ("sh_dc", "sh_rest", "opacity"):
        np.testing.assert_array_equal(getattr(resumed.splat, column)(), getattr(straight.splat, column)())


def crafted_pickle(path: Path, marker: Path) -> None:
    """A checkpoint-named file whose unpickling would create ``marker`` (a pickle's __reduce__ runs code)."""

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"settings": {}, "payload": Payload()}, path)


def test_checkpoint_that_would_run_code_is_refused_unread(scene, one_camera, tmp_path):
    ckpt, marker = tmp_path / "checkpoint.pt", tmp_path / "pwned"
    crafted_pickle(ckpt, marker)
    with pytest.raises(InputError) as refused:
        stylize(scene, demo_style(64), one_camera, settings(iterations=1, checkpoint_every=1), checkpoint_path=ckpt)
    message = str(refused.value)
    assert message.startswith(f"{ckpt}: ") and "refused unread" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_damaged_checkpoint_is_a_one_line_input_error(scene, one_camera, tmp_path, damage):
    ckpt = tmp_path / "checkpoint.pt"
    stylize(scene, demo_style(64), one_camera, settings(iterations=1, checkpoint_every=1), checkpoint_path=ckpt)
    data = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"\x00not a checkpoint" * 10)
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)  # loads safely but is not a stylization checkpoint
    with pytest.raises(InputError) as refused:
        stylize(scene, demo_style(64), one_camera, settings(iterations=2, checkpoint_every=1), checkpoint_path=ckpt)
    assert str(refused.value).startswith(f"{ckpt}: ") and "\n" not in str(refused.value)


def test_checkpoint_holds_parameters_by_name(scene, one_camera, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    stylize(scene, demo_style(64), one_camera, settings(iterations=1, checkpoint_every=1, optimize="sh"),
            checkpoint_path=ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert set(state["params"]) == {"means", "quats", "log_scales", "opacity", "sh_dc", "sh_rest"}
    assert {t.shape[0] for t in state["params"].values()} == {scene.count}
    assert [g["name"] for g in state["optimizer"]["param_groups"]] == ["sh_dc", "sh_rest"]


@pytest.mark.slow
def test_checkpoint_from_other_settings_is_refused(scene, one_camera, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    stylize(scene, demo_style(96), one_camera, settings(iterations=2, checkpoint_every=1), checkpoint_path=ckpt)
    with pytest.raises(InputError, match="other settings"):
        stylize(scene, demo_style(96), one_camera, settings(iterations=2, checkpoint_every=1, seed=5),
                checkpoint_path=ckpt)


@pytest.mark.parametrize("changed", ["scene", "painting", "cameras", "region"])
@pytest.mark.slow
def test_checkpoint_of_other_inputs_is_refused_and_kept(scene, one_camera, tmp_path, changed):
    """Same settings and Gaussian count, one input different (the scene only in its colours): refused in one line
    naming that input, and the checkpoint is left as it was."""
    ckpt = tmp_path / "checkpoint.pt"
    s = settings(iterations=2, checkpoint_every=1)
    stylize(scene, demo_style(96), one_camera, s, checkpoint_path=ckpt, region=np.ones(scene.count, np.float32))
    saved = ckpt.read_bytes()
    inputs = {"scene": scene, "painting": demo_style(96), "cameras": one_camera,
              "region": np.ones(scene.count, np.float32)}
    if changed == "scene":
        inputs["scene"] = scene.with_sh(scene.sh_dc() + 0.25)
    elif changed == "painting":
        inputs["painting"] = 1.0 - demo_style(96)
    elif changed == "cameras":
        inputs["cameras"] = [one_camera[0].resized(RES - 2, RES - 2)]
    else:
        inputs["region"] = np.full(scene.count, 0.5, np.float32)
    with pytest.raises(InputError) as refused:
        stylize(inputs["scene"], inputs["painting"], inputs["cameras"], s, checkpoint_path=ckpt,
                region=inputs["region"])
    message = str(refused.value)
    assert message.startswith(f"{ckpt}: checkpoint was made for another {changed};") and "\n" not in message
    assert ckpt.read_bytes() == saved


@pytest.mark.slow
def test_preview_callback_gets_images(scene, one_camera):
    previews = []
    stylize(scene, demo_style(96), one_camera, settings(iterations=4, preview_every=2),
            preview=lambda i, im: previews.append((i, im.shape)))
    assert previews == [(2, torch.Size([RES, RES, 3])), (4, torch.Size([RES, RES, 3]))]


@pytest.mark.parametrize("field,value", [("iterations", -1), ("learning_rate", 0.0), ("resolution", 8),
                                         ("optimize", "geometry"), ("background", (2.0, 0.0, 0.0)),
                                         ("learning_rate", float("nan")), ("style_strength", float("inf")),
                                         ("seed", 2**64), ("iterations", "5"), ("bf16", 1), ("resolution", 0)])
def test_bad_settings_are_refused_with_their_name(scene, one_camera, field, value):
    with pytest.raises(InputError, match=f"^settings: {field} must be"):
        stylize(scene, demo_style(64), one_camera, settings(**{field: value}))


def test_no_cameras_is_an_input_error(scene):
    with pytest.raises(InputError, match="no cameras"):
        stylize(scene, demo_style(64), [], settings())
