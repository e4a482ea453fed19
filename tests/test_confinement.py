"""Issue 20: detail's geometry stays inside the capture. Confinement keeps every row's footprint inside its input
Gaussian's; spill and lost coverage are measured against the capture; the guard rolls back a run that spills."""

import math
import warnings

import pytest
import torch

from core import confinement, trained_scene
from core.cameras import orbit_cameras
from core.confinement import FOOTPRINT_SIGMAS, GeometryGuard, confine_
from core.demo import demo_scene, demo_style
from core.errors import InputWarning
from core.gaussians import Gaussians
from core.raster_torch import quat_to_rotmat
from core.renderer import pick_backend
from core.silhouette import SPILL_LIMIT, coverage_change, coverage_sums
from core.stylization import StylizeSettings, stylize
from core.views import Views

RES = 40


def random_anchor(count: int, generator: torch.Generator) -> Gaussians:
    return Gaussians(torch.randn(count, 3, generator=generator), torch.randn(count, 4, generator=generator),
                     torch.randn(count, 3, generator=generator) * 0.5 - 2, torch.zeros(count),
                     torch.zeros(count, 1, 3), torch.zeros(count, 0, 3))


def footprint_excess(means: torch.Tensor, log_scales: torch.Tensor, anchor: Gaussians) -> torch.Tensor:
    """How far each row's 3-sigma ellipsoid reaches past its anchor's, in anchor sigmas (≤ 0: inside). Checked
    by sampling the row's ellipsoid surface in the anchor's frame (rotations shared)."""
    rotation = quat_to_rotmat(anchor.quats)
    sigma = torch.exp(anchor.log_scales)
    centre = torch.einsum("ni,nij->nj", means - anchor.means, rotation) / sigma
    ratio = torch.exp(log_scales - anchor.log_scales)
    directions = torch.nn.functional.normalize(torch.randn(256, 3, generator=torch.Generator().manual_seed(9)), dim=1)
    surface = centre[:, None, :] + FOOTPRINT_SIGMAS * ratio[:, None, :] * directions[None]
    return surface.norm(dim=-1).amax(dim=1) - FOOTPRINT_SIGMAS


def test_confinement_keeps_every_footprint_inside_its_anchor_and_leaves_inside_rows_alone():
    """Rows half the anchor's size 1 sigma off-centre are inside (allowed: 1.5 sigmas) and are not touched; rows
    grown or thrown 2 sigmas off are pulled back so that their footprint fits."""
    generator = torch.Generator().manual_seed(4)
    anchor = random_anchor(500, generator)
    rotation, sigma = quat_to_rotmat(anchor.quats), torch.exp(anchor.log_scales)
    directions = torch.nn.functional.normalize(torch.randn(500, 3, generator=generator), dim=1)
    radius = torch.where(torch.arange(500) < 250, 1.0, 2.0)[:, None]
    means = anchor.means + torch.einsum("nj,nij->ni", directions * radius * sigma, rotation)
    log_scales = anchor.log_scales - math.log(2.0)
    log_scales[250:] += torch.randn(250, 3, generator=generator) * 0.5
    before = means.clone()
    moved = confine_(means, log_scales, anchor)
    assert bool((log_scales <= anchor.log_scales).all())
    assert bool((footprint_excess(means, log_scales, anchor) <= 1e-4).all())
    assert torch.equal(means[:250], before[:250]) and 200 < moved <= 250


def test_a_split_child_stays_inside_its_parent():
    """Children drawn from the parent's Gaussian at 1/1.6 of its scale may sit up to 3 (1 − 1/1.6) sigmas off."""
    generator = torch.Generator().manual_seed(2)
    parent = random_anchor(1, generator)
    anchor = parent.rows(torch.zeros(400, dtype=torch.long))
    offsets = torch.randn(400, 3, generator=generator) * torch.exp(parent.log_scales)
    means = anchor.means + torch.einsum("nj,nij->ni", offsets, quat_to_rotmat(anchor.quats))
    log_scales = anchor.log_scales - math.log(1.6)
    confine_(means, log_scales, anchor)
    assert bool((footprint_excess(means, log_scales, anchor) <= 1e-4).all())
    local = torch.einsum("ni,nij->nj", means - anchor.means, quat_to_rotmat(anchor.quats)) / torch.exp(
        anchor.log_scales)
    assert float(local.norm(dim=1).max()) == pytest.approx(3 * (1 - 1 / 1.6), rel=1e-4)


def test_spill_and_lost_coverage_are_fractions_of_the_captures_area():
    capture = torch.zeros(1, 1, 10, 10)
    capture[..., 2:8, 2:8] = 1.0  # 36 px
    result = capture.clone()
    result[..., 0, :] = 0.5         # 10 px of half coverage outside: 5 px of spill
    result[..., 2:4, 2:8] = 0.0     # 12 px lost inside
    change = coverage_change(coverage_sums(result, capture))
    assert change.spill == pytest.approx(5 / 36) and change.lost == pytest.approx(12 / 36)
    assert coverage_change(coverage_sums(capture, capture)).spill == 0


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=600, seed=2)


@pytest.fixture(scope="module")
def cameras(scene):
    return orbit_cameras(scene.means(), scene.opacity(), count=3, width=RES, height=RES)


def guard_views(cameras) -> Views:
    return Views(cameras, torch.device("cpu"), pick_backend("cpu"), torch.zeros(3))


def test_the_guard_passes_the_capture_and_fails_a_swollen_scene(scene, cameras):
    capture = Gaussians.from_splat_data(scene)
    guard = GeometryGuard(capture, guard_views(cameras))
    assert guard.passes(capture, 1)
    swollen = Gaussians(capture.means, capture.quats, capture.log_scales + 1.0, capture.opacity, capture.sh_dc,
                        capture.sh_rest)
    assert not guard.passes(swollen, 2)
    assert guard.checks[0]["spill"] == 0 and guard.checks[1]["spill"] > SPILL_LIMIT


def detail_settings(**changes) -> StylizeSettings:
    return StylizeSettings(**{"iterations": 8, "resolution": RES, "device": "cpu", "detail": 1.0, "densify_every": 3,
                              "geometry_lr": 0.02, **changes})


def test_a_run_whose_geometry_would_spill_is_rolled_back_by_the_guard(scene, cameras, monkeypatch):
    """Geometry learning without confinement, at a high rate, grows the splats past the capture's silhouette: the
    guard catches it at the first split, puts every row back where it was made, freezes the geometry, warns once
    and reports it."""
    monkeypatch.setattr(trained_scene.TrainedScene, "step", lambda self: self.optimizer.step())  # no projection
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stylize(scene, demo_style(64), cameras, detail_settings(geometry_lr=0.3))
    guard = result.densify["guard"]
    assert guard["rolled_back"] == 3 and guard["checks"][0]["spill"] > SPILL_LIMIT
    assert [str(w.message) for w in caught if issubclass(w.category, InputWarning)][0].startswith(
        "detail: at iteration 3 the splats covered")
    assert guard["checks"][-1]["spill"] <= SPILL_LIMIT  # the final check, after the roll-back
    # every row back at the scale it was made with: its input's, or a split child's (÷ 1.6 per split)
    steps = (scene.log_scales()[:, None, :] - result.splat.log_scales()[None, :, :]) / math.log(1.6)
    made = (abs(steps - steps.round()) < 1e-4).all(-1) & (steps.round() >= 0).all(-1)
    assert bool(made.any(0).all())


def test_with_confinement_the_same_run_never_needs_the_guard(scene, cameras):
    result = stylize(scene, demo_style(64), cameras, detail_settings(geometry_lr=0.3))
    guard = result.densify["guard"]
    assert guard["rolled_back"] is None and len(guard["checks"]) == 2  # the split at iteration 3 and the end
    assert all(check["spill"] <= SPILL_LIMIT for check in guard["checks"])
    assert result.splat.count > scene.count


def test_no_guard_without_geometry_learning(scene, cameras):
    assert stylize(scene, demo_style(64), cameras, detail_settings(geometry_lr=0.0)).densify["guard"] is None


def test_guard_side_is_small():
    assert confinement.GUARD_SIDE <= 512
