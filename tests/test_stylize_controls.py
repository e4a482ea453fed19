"""The stylization controls of issue 10 as the loop and the CLI see them: object statistics fed by the render's
alpha, the stroke scale, the new settings and their validation, the CLI flags."""

import warnings
from dataclasses import replace

import pytest
import torch

from core import cli, sos
from core.cameras import orbit_cameras
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.gaussians import Gaussians
from core.loss_terms import LossWeights
from core.renderer import render
from core.stylization import StylizeSettings, stylize
from core.vgg import load_vgg19

RES = 48


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=600, seed=2)


@pytest.fixture(scope="module")
def camera(scene):
    return orbit_cameras(scene.means(), scene.opacity(), count=1, elevations_deg=(25.0,), width=RES,
                         height=RES)


def test_object_statistics_are_weighted_by_the_render_alpha(scene, camera):
    """The first iteration's style term is the loss of the capture with its own alpha as coverage."""
    painting = demo_style(64)
    settings = dict(iterations=1, resolution=RES, device="cpu", balance="sgsst", content_weight=0.0,
                    style_strength=1.0, init="capture")
    first = {mode: stylize(scene, painting, camera, StylizeSettings(statistics=mode, **settings)).history[0]["style"]
             for mode in ("object", "frame")}
    out = render(Gaussians.from_splat_data(scene), torch.as_tensor(camera[0].viewmat, dtype=torch.float32),
                 torch.as_tensor(camera[0].K(), dtype=torch.float32), RES, RES)
    image = out.image.permute(2, 0, 1)[None]
    vgg = load_vgg19()
    style = sos.build_style_targets(vgg, painting.permute(2, 0, 1)[None], sos.pyramid_sizes(RES, RES))
    with torch.no_grad():
        _, covered = sos.sos_loss(vgg, image, style, None, LossWeights(), coverage=sos.Coverage.of_alpha(out.alpha))
        _, frame = sos.sos_loss(vgg, image, style, None, LossWeights())
    assert 0.2 < float(out.alpha.mean()) < 0.9  # an object on a background: the two statistics differ
    assert first["object"] == pytest.approx(covered["style"], rel=1e-4)
    assert first["frame"] == pytest.approx(frame["style"], rel=1e-4)
    assert first["object"] != pytest.approx(first["frame"], rel=0.05)


@pytest.mark.parametrize("zoom,chosen", [(0.5, "object"), (2.0, "frame")])
@pytest.mark.slow
def test_auto_statistics_follow_the_scene_coverage(scene, camera, zoom, chosen):
    """auto = object statistics for an object on a background (coverage 0.15 here), frame statistics when the scene
    fills the frame (coverage 0.92): the same first style term as the explicit choice, and the result says which."""
    view = [replace(camera[0], fx=camera[0].fx * zoom, fy=camera[0].fy * zoom)]
    settings = dict(iterations=1, resolution=RES, device="cpu", balance="sgsst", content_weight=0.0)
    runs = {mode: stylize(scene, demo_style(64), view, StylizeSettings(statistics=mode, **settings))
            for mode in ("auto", "object", "frame")}
    assert runs["auto"].statistics == chosen
    assert runs["object"].statistics == "object" and runs["frame"].statistics == "frame"
    assert runs["auto"].history[0]["style"] == runs[chosen].history[0]["style"]
    other = "frame" if chosen == "object" else "object"
    assert runs["auto"].history[0]["style"] != pytest.approx(runs[other].history[0]["style"], rel=1e-4)


@pytest.mark.slow
def test_stroke_scale_reaches_the_painting_pyramid(scene, camera):
    """A 64-px painting covers a 48-px render at stroke scale 1; asked for 8, it is used at its own size and says so."""
    settings = dict(iterations=1, resolution=RES, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stylize(scene, demo_style(64), camera, StylizeSettings(**settings))
    with pytest.warns(UserWarning, match="times the stroke scale 8: at the 1 finest"):
        stylize(scene, demo_style(64), camera, StylizeSettings(stroke_scale=8.0, **settings))


@pytest.mark.parametrize("field,value", [("statistics", "pixels"), ("balance", "even"), ("stroke_scale", 0.1),
                                         ("stroke_scale", 9.0)])
def test_bad_new_settings_are_refused_with_their_name(scene, camera, field, value):
    with pytest.raises(InputError, match=f"settings: {field} "):
        stylize(scene, demo_style(64), camera, StylizeSettings(device="cpu", resolution=RES, **{field: value}))


def test_cli_flags_reach_the_settings():
    args = cli.build_parser().parse_args(["scene.ply", "style.png", "-o", "out", "--statistics", "frame",
                                          "--balance", "sgsst", "--preserve-colors", "--stroke-scale", "2.5",
                                          "--style-strength", "3"])
    settings = cli.settings_from_args(args)
    assert (settings.statistics, settings.balance, settings.preserve_colors, settings.stroke_scale,
            settings.style_strength) == ("frame", "sgsst", True, 2.5, 3.0)
    defaults = cli.settings_from_args(cli.build_parser().parse_args(["scene.ply", "style.png", "-o", "out"]))
    assert (defaults.statistics, defaults.balance, defaults.preserve_colors, defaults.stroke_scale) == (
        "auto", "relative", False, 1.0)


def test_cli_refuses_a_bad_region_file_in_one_line(tmp_path, capsys):
    region = tmp_path / "region.txt"
    region.write_text("0.5\n" * 7)
    assert cli.main(["--demo", "-o", str(tmp_path / "out"), "--region", str(region)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: {region}: region has 7 values but the scene has {demo_scene().count} Gaussians\n"
    assert not (tmp_path / "out").exists()
