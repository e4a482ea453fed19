"""Memory planner: autograd where it fits, else the largest tile; out-of-memory retries with smaller tiles."""

import warnings

import pytest
import torch

from core import planner, sos, tiled
from core.planner import ScalePlan, plan_scales, run_with_oom_retry

GIB = 2**30


def test_8k_under_a_24_gib_cap_uses_tiles_at_the_fine_scales():
    sizes = sos.pyramid_sizes(4320, 7680)
    plans = plan_scales(sizes, free_bytes=80 * GIB, cap_bytes=24 * GIB, bf16=False)
    assert [p.size for p in plans] == sizes
    assert plans[0].method == "tiled" and plans[0].tile == 3072  # 3 x 2 tiles (test_tile_memory_is_sized_by...)
    assert [p.method for p in plans[2:]] == ["autograd"] * 3


def test_1080p_uncapped_on_80_gib_is_plain_autograd():
    plans = plan_scales(sos.pyramid_sizes(1080, 1920), free_bytes=80 * GIB, cap_bytes=None, bf16=False)
    assert [p.method for p in plans] == ["autograd"] * 3 and all(p.tile is None for p in plans)


def test_free_memory_limits_like_a_cap_and_bf16_fits_more():
    sizes = sos.pyramid_sizes(2160, 3840)
    free_limited = plan_scales(sizes, free_bytes=20 * GIB, cap_bytes=None, bf16=False)
    cap_limited = plan_scales(sizes, free_bytes=80 * GIB, cap_bytes=20 * GIB, bf16=False)
    assert free_limited == cap_limited and free_limited[0].method == "tiled"
    assert plan_scales(sizes, free_bytes=20 * GIB, cap_bytes=None, bf16=True)[0].method == "autograd"


def test_chosen_tile_fits_and_the_next_larger_does_not():
    sizes = sos.pyramid_sizes(4320, 7680)
    for cap in (8, 12, 24, 40):
        plan = plan_scales(sizes, free_bytes=80 * GIB, cap_bytes=cap * GIB, bf16=False)[0]
        budget = cap * GIB * (1 - planner.MARGIN) - planner.FIXED_BYTES - planner.RESIDENT_BYTES_PER_PX * 4320 * 7680
        assert planner.tiled_bytes(4320, 7680, plan.tile, False) <= budget
        larger = [t for t in planner.TILE_CHOICES if t > plan.tile]
        assert not larger or planner.tiled_bytes(4320, 7680, min(larger), False) > budget


def test_nothing_fits_warns_and_tries_the_smallest_tile():
    with pytest.warns(UserWarning, match="even 128-px tiles"):
        plans = plan_scales([(4320, 7680)], free_bytes=80 * GIB, cap_bytes=2 * GIB, bf16=False)
    assert plans == [ScalePlan((4320, 7680), "tiled", planner.MIN_TILE)]


def test_planner_halo_is_the_tiled_default():
    assert planner.TILE_HALO == tiled.DEFAULT_HALO


def test_free_bytes_is_positive_off_gpu():
    assert planner.free_gpu_bytes("cpu") > 0


def test_oom_retry_halves_the_tile_and_warns_once():
    tried = []

    def run(plan):
        tried.append(plan.tile)
        if plan.tile is None or plan.tile > 300:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return "done"

    with pytest.warns(UserWarning, match="out of GPU memory") as caught:
        result, used = run_with_oom_retry(run, ScalePlan((2160, 3840), "autograd"))
    assert result == "done" and used == ScalePlan((2160, 3840), "tiled", 240)
    assert tried == [None, 1920, 960, 480, 240]
    assert len([w for w in caught if "out of GPU memory" in str(w.message)]) == 1


def test_oom_retry_gives_up_below_the_smallest_tile():
    def run(plan):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_with_oom_retry(run, ScalePlan((512, 512), "tiled", 256))


def test_oom_retry_without_oom_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_with_oom_retry(lambda plan: 7, ScalePlan((64, 64), "autograd")) == (7, ScalePlan((64, 64),
                                                                                                    "autograd"))


def test_sos_gradient_retries_a_scale_with_tiles_and_updates_the_plan(monkeypatch):
    """A simulated OOM in plain autograd makes sos_gradient switch that scale to tiles, for later calls too."""
    calls = []

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    def fake_tiled(vgg, image, style_stats, content_feat, weights, *, tile, **options):
        calls.append((tuple(image.shape[-2:]), tile))
        return torch.ones_like(image), {"total": torch.tensor(1.0)}

    monkeypatch.setattr(sos, "scale_gradient_autograd", out_of_memory)
    monkeypatch.setattr(tiled, "scale_gradient_tiled", fake_tiled)
    style = sos.StyleTargets([(256, 320)], [{}])
    plan = [ScalePlan((256, 320), "autograd")]
    with pytest.warns(UserWarning, match="out of GPU memory"):
        grad, terms = sos.sos_gradient(None, torch.zeros(1, 3, 256, 320), style, None, sos.LossWeights(), plan=plan)
    assert plan == [ScalePlan((256, 320), "tiled", 160)] and calls == [((256, 320), 160)]
    assert terms == {"total": 1.0} and torch.equal(grad, torch.ones(1, 3, 256, 320))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sos.sos_gradient(None, torch.zeros(1, 3, 256, 320), style, None, sos.LossWeights(), plan=plan)
    assert calls[-1] == ((256, 320), 160)


def test_tile_memory_is_sized_by_the_regions_core_tiled_makes():
    """7680 x 4320 with 3072-px tiles runs 3 x 2 tiles of 2560 x 2160 px; with the 160-px halo the largest region
    is 2880 x 2320 px (a middle column, either row), not (3072 + 320)²: so a 24 GiB cap takes 4096-px tiles (2 x 2)."""
    scale = planner.SCALE_BYTES_PER_PX * 4320 * 7680
    assert planner.tiled_bytes(4320, 7680, 3072, True) == planner.AUTOGRAD_BYTES_PER_PX[True] * 2880 * 2320 + scale
    plans = plan_scales(sos.pyramid_sizes(4320, 7680), free_bytes=80 * GIB, cap_bytes=24 * GIB, bf16=True)
    assert plans[0] == ScalePlan((4320, 7680), "tiled", 4096)
