"""Style-driven densification: the image-plane gradient of the PyTorch renderer, the split rule (dropout, budget,
footprint), what children inherit (render, PLY rows, Adam state), pruning."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import densify
from core.cameras import orbit_cameras
from core.demo import demo_scene, demo_style
from core.errors import InputError
from core.gaussians import Gaussians
from interchange.ply import SplatData, read_ply
from core.raster_torch import project_gaussians, quat_scale_to_covar, rasterize_torch
from core.renderer import render
from core.stylization import StylizeSettings, stylize

RES = 64


def small_scene(count: int = 14, seed: int = 0, dtype=torch.float64):
    """Activated Gaussians in front of an identity camera, footprints of a few pixels, overlapping."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(count, 3, generator=gen, dtype=dtype) * 0.25 + torch.tensor([0.0, 0.0, 3.0], dtype=dtype)
    quats = torch.randn(count, 4, generator=gen, dtype=dtype)
    scales = torch.exp(torch.randn(count, 3, generator=gen, dtype=dtype) * 0.3 - 2.5)
    opacities = torch.rand(count, generator=gen, dtype=dtype) * 0.8 + 0.15
    colors = torch.rand(count, 3, generator=gen, dtype=dtype)
    return means, quats, scales, opacities, colors


def camera(size: int = 20, focal: float = 25.0, dtype=torch.float64):
    K = torch.tensor([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], dtype=dtype)
    return torch.eye(4, dtype=dtype), K


def direct_render(means2d: torch.Tensor, conics, opacities, colors, size: int) -> torch.Tensor:
    """Every pixel composites every (sorted) Gaussian, no tiles; ``means2d`` [P, V, 2] may differ per pixel."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=means2d.dtype) + 0.5,
                            torch.arange(size, dtype=means2d.dtype) + 0.5, indexing="ij")
    d = means2d - torch.stack([xs, ys], -1).reshape(-1, 1, 2)
    a, b, c = conics.unbind(-1)
    power = 0.5 * c * d[..., 1] ** 2 + b * d[..., 1] * d[..., 0] + 0.5 * a * d[..., 0] ** 2
    alpha = torch.clamp_max(opacities * torch.exp(-power), 0.999)
    alpha = torch.where((power >= 0) & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        going = torch.cumprod(1 - alpha, -1) > 1e-4
    survive = torch.cumprod(1 - alpha * going, -1)
    before = torch.cat([torch.ones_like(survive[:, :1]), survive[:, :-1]], -1)
    return (before - survive) @ colors


# --- the image-plane gradient ------------------------------------------------------------------------------


def test_torch_absgrad_equals_per_pixel_autograd_of_the_direct_formula():
    """Σ over pixels |dL/dmeans2d| from the tiled renderer = the same sum of a per-pixel direct formula, whose
    plain sum matches central finite differences; turning absgrad on leaves the image bit-identical."""
    means, quats, scales, opacities, colors = small_scene()
    viewmat, K = camera()
    upstream = torch.randn(20, 20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plain, _, _ = rasterize_torch(means, quats, scales, opacities, colors, viewmat[None], K[None], 20, 20,
                                  tile_size=4)
    image, _, meta = rasterize_torch(means, quats, scales, opacities, colors, viewmat[None], K[None], 20, 20,
                                     tile_size=4, absgrad=True)
    assert torch.equal(plain, image)
    (image[0] * upstream).sum().backward()

    p = project_gaussians(means, quat_scale_to_covar(quats, scales), opacities, viewmat, K, 20, 20, 0.01, 1e10, 0.3)
    assert len(p.ids) >= 10
    args = (p.conics.detach(), opacities[p.ids], colors[p.ids], 20)
    per_pixel = p.means2d.detach()[None].expand(400, -1, -1).clone().requires_grad_(True)
    (direct_render(per_pixel, *args) * upstream.reshape(-1, 3)).sum().backward()
    torch.testing.assert_close(meta["means2d"].absgrad[0, p.ids], per_pixel.grad.abs().sum(0), rtol=1e-10,
                               atol=1e-12)
    assert float(meta["means2d"].absgrad.abs().sum()) > 1.0

    def loss(m):
        return float((direct_render(m[None].expand(400, -1, -1), *args) * upstream.reshape(-1, 3)).sum())

    eps, base = 1e-5, p.means2d.detach()
    for v, axis in [(0, 0), (3, 1), (7, 0)]:
        step = torch.zeros_like(base)
        step[v, axis] = eps
        numeric = (loss(base + step) - loss(base - step)) / (2 * eps)
        assert numeric == pytest.approx(float(per_pixel.grad.sum(0)[v, axis]), rel=1e-5, abs=1e-8)


def gaussians_of(splat, device="cpu") -> Gaussians:
    return Gaussians.from_splat_data(splat, device)


def camera_tuple(cam) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    return (torch.tensor(cam.viewmat, dtype=torch.float32), torch.tensor(cam.K(), dtype=torch.float32),
            cam.width, cam.height)


@pytest.fixture(scope="module")
def scene():
    return demo_scene(count=1500, seed=1)


@pytest.fixture(scope="module")
def cameras(scene):
    return [camera_tuple(c) for c in orbit_cameras(scene.means(), scene.opacity(), count=4, width=RES,
                                                  height=RES)]


@pytest.mark.slow
def test_render_reports_drawn_gaussians_and_their_absgrad(scene, cameras):
    g = gaussians_of(scene)
    sh = g.sh.clone().requires_grad_(True)
    out = render(g.with_sh(sh), *cameras[0], backend="torch", absgrad=True)
    radii = rasterize_torch(g.means, g.quats, torch.exp(g.log_scales), torch.sigmoid(g.opacity), g.sh,
                            cameras[0][0][None], cameras[0][1][None], RES, RES, sh_degree=1)[2]["radii"][0]
    assert torch.equal(out.visible, torch.nonzero((radii > 0).all(-1)).squeeze(1))
    assert torch.equal(out.radii, radii[out.visible])
    assert torch.equal(out.means2d_absgrad(), torch.zeros(len(out.visible), 2))
    out.image.sum().backward()
    grads = out.means2d_absgrad()
    assert grads.shape == (len(out.visible), 2) and bool((grads >= 0).all()) and float(grads.max()) > 0
    assert render(g, *cameras[0], backend="torch").visible is None


def test_expected_depth_of_an_opaque_gaussian_is_its_depth():
    means = torch.tensor([[0.0, 0.0, 2.5]])
    g = Gaussians(means, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), math.log(0.3)), torch.tensor([4.0]),
                  torch.zeros(1, 1, 3), torch.zeros(1, 0, 3))
    viewmat, K = camera(16, 20.0, torch.float32)
    out = render(g, viewmat, K, 16, 16, backend="torch", depth=True)
    covered = out.alpha[..., 0] > 0.01
    assert covered.sum() > 50
    torch.testing.assert_close(out.depth[..., 0][covered], torch.full((int(covered.sum()),), 2.5))


# --- the split rule ----------------------------------------------------------------------------------------


def per_gaussian(g: Gaussians) -> densify.PerGaussian:
    return g.values()


def as_gaussians(t: densify.PerGaussian) -> Gaussians:
    return Gaussians.from_values(t)


def all_seen(densifier: densify.Densifier, gradient=None) -> None:
    """Statistics as if every Gaussian had been drawn once with a large footprint."""
    densifier.stats.views[:] = 1
    densifier.stats.max_radius[:] = 10.0
    densifier.stats.grad_sum[:] = 1.0 if gradient is None else gradient


def densifier(count: int, **kw) -> densify.Densifier:
    base = dict(detail=3.0, every=10, iterations=100, threshold=0.0, dropout=0.0, seed=0, device="cpu")
    return densify.Densifier(count, **{**base, **kw})


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float(((a - b) ** 2).mean()))


@pytest.mark.slow
def test_a_split_changes_an_unstyled_render_only_slightly(scene, cameras):
    """One round with dropout 0.5 splits about half the demo scene's 1500 Gaussians into 3DGS children.

    Measured: 26.5 and 29.6 dB PSNR in these two 64 px views (all Gaussians split: 24 dB; the flowers capture
    at 256 px: 28 dB with a quarter split, 22 dB with all). Children drawn at random inside their parent are
    not the parent: the change is the split's sampling noise, which stylization then paints over."""
    g = gaussians_of(scene)
    d = densifier(g.count, dropout=0.5, iterations=20)  # one round: the whole budget is open
    all_seen(d)
    split, record = d.split(10, per_gaussian(g), None, cameras)
    assert 0.4 * g.count < record.split < 0.6 * g.count
    values = [psnr(render(g, *cam, backend="torch").image, render(as_gaussians(split), *cam, backend="torch").image)
              for cam in cameras[:2]]
    assert min(values) > 25.0, values


def test_dropout_splits_each_candidate_with_probability_one_minus_p():
    count, p = 400, 0.7
    splits = []
    for seed in range(20):
        d = densifier(count, dropout=p, seed=seed)
        all_seen(d)
        parents, candidates = densify.choose_parents(d.stats, threshold=0.0, dropout=p, room=count,
                                                     generator=d.generator)
        assert candidates == count
        splits.append(len(parents))
    mean, sigma = count * (1 - p), math.sqrt(count * p * (1 - p) / len(splits))
    assert abs(np.mean(splits) - mean) < 4 * sigma, (np.mean(splits), mean)
    assert np.std(splits) > 0
    d = densifier(count)
    all_seen(d)
    assert len(densify.choose_parents(d.stats, threshold=0.0, dropout=0.0, room=count, generator=d.generator)[0]) \
        == count
    assert len(densify.choose_parents(d.stats, threshold=0.0, dropout=1.0, room=count, generator=d.generator)[0]) \
        == 0


def test_candidates_need_a_strong_gradient_and_a_footprint_above_the_finest_style_feature():
    d = densifier(6)
    d.stats.views[:] = torch.tensor([1, 1, 1, 1, 0, 2], dtype=torch.int32)
    d.stats.grad_sum[:] = torch.tensor([1.0, 10.0, 10.0, 10.0, 50.0, 20.0])
    d.stats.max_radius[:] = torch.tensor([9.0, 9.0, 2.0, densify.MIN_SPLIT_RADIUS_PX, 9.0, 9.0])
    # mean gradient over the seen: (1 + 10 + 10 + 10 + 10) / 5 = 8.2; #4 never drawn, #2 too small to split
    parents, candidates = densify.choose_parents(d.stats, threshold=1.0, dropout=0.0, room=10,
                                                 generator=d.generator)
    assert parents.tolist() == [1, 3, 5] and candidates == 3
    strongest, _ = densify.choose_parents(d.stats, threshold=1.0, dropout=0.0, room=1, generator=d.generator)
    assert strongest.tolist() == [1] or strongest.tolist() == [3] or strongest.tolist() == [5]
    assert densify.MIN_SPLIT_RADIUS_PX == pytest.approx(2.4)


def test_children_are_drawn_inside_the_parent_with_smaller_scales():
    means = torch.zeros(1, 3)
    quats = torch.tensor([[math.cos(0.4), 0.0, 0.0, math.sin(0.4)]])
    log_scales = torch.log(torch.tensor([[0.5, 0.1, 0.02]]))
    parents = torch.zeros(2000, dtype=torch.long)
    children, scales = densify.sample_children(means, quats, log_scales, parents, torch.Generator().manual_seed(0))
    assert children.shape == (4000, 3)
    torch.testing.assert_close(scales, (log_scales - math.log(1.6)).expand(4000, 3))
    rotation = torch.tensor([[math.cos(0.8), -math.sin(0.8), 0], [math.sin(0.8), math.cos(0.8), 0], [0, 0, 1]])
    local = children @ rotation  # back in the parent's frame: spread = the parent's scales
    torch.testing.assert_close(local.std(0), torch.tensor([0.5, 0.1, 0.02]), rtol=0.06, atol=0)


def test_children_inherit_every_property_and_adam_moments():
    """The first child takes the parent's row, the second is appended; colours, opacity, rotation and the
    optimiser's moments are the parent's, and the optimiser keeps stepping the new tensors."""
    g = gaussians_of(demo_scene(count=30, seed=2))
    tensors = per_gaussian(g)
    tensors["sh_dc"] = tensors["sh_dc"].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([tensors["sh_dc"]], lr=0.01)
    tensors["sh_dc"].grad = torch.randn_like(tensors["sh_dc"])
    optimizer.step()
    old_state = {k: v.clone() for k, v in optimizer.state[tensors["sh_dc"]].items()}
    d = densifier(30)
    parents = torch.tensor([3, 17])
    split, children = d._split(tensors, parents, optimizer)
    assert children.tolist() == [3, 17, 30, 31]
    assert d.origin.tolist() == list(range(30)) + [3, 17]
    new = split["sh_dc"]
    assert new.is_leaf and new.requires_grad and optimizer.param_groups[0]["params"] == [new]
    state = optimizer.state[new]
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(state[key], old_state[key][d.origin])
        torch.testing.assert_close(state[key][30], old_state[key][3])
    assert torch.equal(state["step"], old_state["step"])
    for name in ("sh_dc", "quats", "opacity"):
        assert torch.equal(split[name].detach()[[3, 30]], tensors[name].detach()[[3, 3]])
    assert not torch.equal(split["means"][3], split["means"][30])
    new.grad = torch.ones_like(new)
    optimizer.step()
    assert new.shape[0] == 32


def test_children_no_camera_draws_are_pruned():
    """Parents stretched along the view axis from just in front of the camera: children drawn behind it are
    dropped, exactly those (the same draws, replayed), and every child left is drawable."""
    count = 12
    means = torch.tensor([[0.0, 0.0, 0.6]]).repeat(count, 1) + torch.linspace(-0.1, 0.1, count)[:, None]
    tensors = {"means": means, "quats": torch.tensor([[1.0, 0, 0, 0]] * count),
               "log_scales": torch.log(torch.tensor([[0.01, 0.01, 3.0]] * count)),
               "opacity": torch.full((count,), 2.0), "sh": torch.arange(count * 3.0).reshape(count, 1, 3)}
    cameras = [(*camera(32, 30.0, torch.float32), 32, 32)]
    d = densifier(count, detail=1.0, iterations=20)
    all_seen(d)
    split, record = d.split(10, tensors, None, cameras)

    replay = torch.Generator().manual_seed(0)
    torch.rand(count, generator=replay)  # dropout's draws
    children, scales = densify.sample_children(tensors["means"], tensors["quats"], tensors["log_scales"],
                                               torch.arange(count), replay)
    drawn = densify.drawable(children, tensors["quats"].repeat(2, 1), scales, torch.full((2 * count,), 2.0), cameras)
    assert (record.before, record.split) == (count, count)
    assert record.pruned == int((~drawn).sum()) > 0
    assert record.after == 2 * count - record.pruned == d.count == len(split["sh"])
    assert bool(densify.drawable(split["means"], split["quats"], split["log_scales"], split["opacity"],
                                 cameras).all())
    torch.testing.assert_close(split["sh"][:, 0, 0], d.origin.float() * 3)


def test_budget_from_detail_and_memory():
    assert densify.budget(1000, 0.0) == 1000
    assert densify.budget(1000, 1.0) == 2000
    assert densify.budget(1000, 1.5) == 2500
    assert densify.budget(1000, 9.0) == 4000
    assert densify.budget(1000, 3.0, memory_bytes=300 * densify.BYTES_PER_GAUSSIAN / densify.MEMORY_SHARE) == 1300
    assert densify.reserved_bytes(1000, 1300) == 300 * densify.BYTES_PER_GAUSSIAN


def test_rounds_spread_the_budget_and_never_pass_it(scene, cameras):
    g = gaussians_of(scene)
    d = densifier(g.count, detail=0.5, every=10, iterations=50)  # rounds at 10, 20, 30, 40
    assert [i for i in range(1, 51) if d.due(i)] == [10, 20, 30, 40]
    tensors = per_gaussian(g)
    counts = []
    for iteration in (10, 20, 30, 40):
        all_seen(d)
        tensors, record = d.split(iteration, tensors, None, cameras)
        counts.append(record.after)
        assert record.split <= -(-(d.limit - record.before) // ((40 - iteration) // 10 + 1))
    assert d.limit == 2250 and max(counts) <= 2250
    assert counts[-1] >= 2250 - 10 * (sum(r.pruned for r in d.rounds) + 1)
    assert all(len(t) == d.count for t in tensors.values())
    assert not densifier(g.count, detail=0.0).due(10)


def test_output_rows_carry_extra_properties_and_new_geometry():
    base = demo_scene(count=5, seed=3)
    extra = np.zeros(5, dtype=base.vertices.dtype.descr + [("segment", "<i4")])
    for name in base.vertices.dtype.names:
        extra[name] = base.vertices[name]
    extra["segment"] = np.arange(5) * 10
    template = SplatData.from_table(extra)
    g = gaussians_of(template)
    tensors = per_gaussian(g)
    origin = torch.tensor([0, 1, 2, 3, 4, 2])
    tensors = densify.gather_rows(tensors, origin)
    tensors["means"][5] += 1.0
    out = densify.splat_data(template, origin, tensors)
    assert out.count == 6 and out.vertices.dtype == template.vertices.dtype
    assert out.vertices["segment"].tolist() == [0, 10, 20, 30, 40, 20]
    np.testing.assert_array_equal(out.means()[5], template.means()[2] + 1.0)
    np.testing.assert_array_equal(out.sh_rest()[5], template.sh_rest()[2])
    assert not out.vertices.flags.writeable


# --- in the stylization loop -------------------------------------------------------------------------------


def detail_settings(**kw) -> StylizeSettings:
    base = dict(iterations=6, resolution=48, device="cpu", learning_rate=0.02, detail=1.0, densify_every=2)
    return StylizeSettings(**{**base, **kw})


@pytest.mark.slow
def test_a_detail_run_resumes_exactly_after_a_split(scene, tmp_path, deterministic):
    """Splits after iterations 2 and 4; the checkpoint at 3 holds a changed count, and the resumed run ends
    exactly where an uninterrupted one does (count, origin rows, geometry, colours)."""
    views = orbit_cameras(scene.means(), scene.opacity(), count=2, width=48, height=48)
    style = demo_style(96)
    ckpt = tmp_path / "checkpoint.pt"
    settings = detail_settings(checkpoint_every=3)
    polls = []
    partial = stylize(scene, style, views, settings, checkpoint_path=ckpt,
                      should_stop=lambda: polls.append(1) or len(polls) > 3)
    assert partial.cancelled and partial.history[1]["densify"]["after"] > scene.count
    assert torch.load(ckpt, weights_only=False)["params"]["means"].shape[0] == partial.history[2]["gaussians"]
    resumed = stylize(scene, style, views, settings, checkpoint_path=ckpt)
    straight = stylize(scene, style, views, detail_settings())
    assert [h["gaussians"] for h in resumed.history] == [h["gaussians"] for h in straight.history]
    assert straight.history[-1]["gaussians"] > straight.history[1]["gaussians"] > scene.count
    assert resumed.splat.count == straight.splat.count
    np.testing.assert_array_equal(resumed.splat.means(), straight.splat.means())
    np.testing.assert_array_equal(resumed.splat.log_scales(), straight.splat.log_scales())
    np.testing.assert_allclose(resumed.splat.sh_dc(), straight.splat.sh_dc(), atol=1e-6)


def test_detail_zero_keeps_the_scene_and_colours_only(scene):
    views = orbit_cameras(scene.means(), scene.opacity(), count=1, width=48, height=48)
    result = stylize(scene, demo_style(96), views, detail_settings(detail=0.0, iterations=4))
    assert result.splat.count == scene.count and result.densify["gaussians_after"] == scene.count
    assert not result.densify["enabled"] and result.densify["rounds"] == []
    assert result.splat.vertices.tobytes() != scene.vertices.tobytes()
    np.testing.assert_array_equal(result.splat.means(), scene.means())
    assert result.origin.dtype == np.int32 and result.origin.tolist() == list(range(scene.count))


def test_the_result_names_each_rows_input_row_with_detail(scene):
    """StylizeResult.origin after a split: one input row per output row, and each output row carries that row's
    properties that are not trained (rotations; opacities with colour-only optimisation)."""
    views = orbit_cameras(scene.means(), scene.opacity(), count=2, width=48, height=48)
    result = stylize(scene, demo_style(96), views, detail_settings(iterations=4))  # a split after iteration 2
    origin = result.origin
    assert origin.dtype == np.int32 and len(origin) == result.splat.count > scene.count
    assert origin.min() >= 0 and origin.max() < scene.count
    for name in ("rot_0", "rot_3", "opacity"):
        np.testing.assert_array_equal(result.splat.vertices[name], scene.vertices[name][origin], err_msg=name)
    assert len(np.unique(origin)) < len(origin)  # some parents have children


@pytest.mark.slow
def test_command_line_detail_writes_a_larger_standard_ply_and_reports_it(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "core", "--demo", "-o", str(out), "--iterations", "4",
                           "--resolution", "48", "--views", "2", "--json-progress", "--detail", "1",
                           "--densify-every", "2"], check=False, cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ply = read_ply(out / "stylized.ply")
    original = demo_scene()
    assert ply.count > original.count and ply.vertices.dtype == original.vertices.dtype
    report = json.loads((out / "report.json").read_text())
    densified = report["densify"]
    assert densified["gaussians_before"] == original.count and densified["gaussians_after"] == ply.count
    assert densified["settings"] == {"detail": 1.0, "densify_every": 2, "densify_threshold": 0.5,
                                     "densify_dropout": 0.2, "geometry_lr": 5e-4}
    assert report["statistics"] in ("object", "frame")
    assert [r["iteration"] for r in densified["rounds"]] == [2] and densified["seconds"] > 0
    origin = np.load(out / "origin.npy")
    assert report["outputs"]["origin"] == str(out / "origin.npy")
    assert origin.dtype == np.int32 and len(origin) == ply.count and origin.max() < original.count
    np.testing.assert_array_equal(ply.vertices["rot_1"], original.vertices["rot_1"][origin])
    assert report["timings"]["densify_s"] == densified["seconds"]
    progress = [json.loads(line) for line in proc.stdout.splitlines()]
    progress = [e for e in progress if e["event"] == "progress"]
    assert [e["gaussians"] for e in progress][1:] == [ply.count] * 3 and progress[0]["gaussians"] == original.count
    assert progress[-1]["densify_s"] == densified["seconds"]


@pytest.mark.parametrize("field,value", [("detail", -1.0), ("detail", 3.5), ("densify_every", 0),
                                         ("densify_dropout", 1.5), ("densify_threshold", -1.0),
                                         ("geometry_lr", -0.1)])
def test_bad_densify_settings_are_refused_with_their_name(scene, field, value):
    views = orbit_cameras(scene.means(), scene.opacity(), count=1, width=48, height=48)
    with pytest.raises(InputError, match=f"settings: {field} must be"):
        stylize(scene, demo_style(96), views, detail_settings(**{field: value}))



@pytest.mark.slow
def test_geometry_moves_only_with_detail_on(scene):
    """Detail 0 recolours only: positions and scales stay byte-identical whatever geometry_lr says. With detail on
    (here with no split, densify_every past the run) positions and scales move a little; with splits too (the
    positions' Adam state is gathered like the colours'); geometry_lr 0 keeps them fixed."""
    views = orbit_cameras(scene.means(), scene.opacity(), count=2, width=48, height=48)
    colours_only = stylize(scene, demo_style(96), views, detail_settings(iterations=3, detail=0.0, geometry_lr=1e-3))
    assert np.array_equal(colours_only.splat.means(), scene.means())
    assert np.array_equal(colours_only.splat.log_scales(), scene.log_scales())
    moving = stylize(scene, demo_style(96), views, detail_settings(iterations=3, densify_every=10, geometry_lr=1e-3))
    assert moving.splat.count == scene.count
    shift = np.linalg.norm(moving.splat.means() - scene.means(), axis=1)
    assert 0 < shift.max() < 0.05
    assert not np.array_equal(moving.splat.log_scales(), scene.log_scales())
    fixed = stylize(scene, demo_style(96), views, detail_settings(iterations=3, densify_every=10, geometry_lr=0.0))
    assert np.array_equal(fixed.splat.means(), scene.means())
    both = stylize(scene, demo_style(96), views, detail_settings(iterations=4, geometry_lr=1e-3))
    assert both.splat.count > scene.count and np.isfinite(both.splat.means()).all()
